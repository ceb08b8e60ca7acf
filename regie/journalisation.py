"""Journaux structurés (structlog) : lisibles sur un terminal, JSON par ligne si REGIE_LOG_JSON=1."""

from __future__ import annotations

import logging
import os
import sys

import structlog


def configurer(json: bool | None = None, niveau: int | None = None) -> None:
    if niveau is None:
        nom = os.environ.get("REGIE_LOG_NIVEAU", "info").upper()
        niveau = logging.getLevelNamesMapping().get(nom, logging.INFO)
    if json is None:
        json = os.environ.get("REGIE_LOG_JSON", "") in ("1", "true", "oui")
    rendu: structlog.types.Processor = (
        structlog.processors.JSONRenderer(ensure_ascii=False) if json
        else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            rendu,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(niveau),
        # Les journaux vont sur la sortie d'erreur : la sortie standard reste aux résultats (etat --json).
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=False,
    )
