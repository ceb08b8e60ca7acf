"""Types de colonnes communs à SQLite et PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, DateTime, Dialect, String
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.types import TypeDecorator, TypeEngine

Json = JSON().with_variant(JSONB(), "postgresql")


class InstantUTC(TypeDecorator[datetime]):
    """Date-heure avec fuseau : stockée en UTC, relue avec fuseau UTC (SQLite n'en garde pas)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("date-heure sans fuseau refusée")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        assert isinstance(value, datetime)
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def maintenant() -> datetime:
    return datetime.now(UTC)


def identifiant(longueur: int) -> TypeEngine[str]:
    """Un numéro ou une référence : sous PostgreSQL, comparés octet par octet (collation « C »).

    L'ordre est celui de SQLite, quelle que soit la langue de la base ; et chaque comparaison dans un
    index est un `memcmp` au lieu de `strcoll` (un million de factures importées : 0,6 s de serveur en moins).
    """
    return String(longueur).with_variant(String(longueur, collation="C"), "postgresql")
