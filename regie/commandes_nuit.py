"""Commandes `regie nuit` et `regie planificateur` (specs/cli.md)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from regie.application import Application
from regie.arguments import date_iso as _date


def cmd_nuit(app: Application, args: argparse.Namespace) -> int:
    from regie.services.nuit import executer_nuit

    app.synchroniser_referentiel()
    progression = None
    if sys.stderr.isatty():
        def progression(libelle: str) -> None:
            print(f"… {libelle}", file=sys.stderr, flush=True)
    rapport = executer_nuit(app, aujourd_hui=args.date, progression=progression)
    print(rapport.resume())
    return rapport.code_sortie


def cmd_planificateur(app: Application, _args: argparse.Namespace) -> int:
    import scheduler

    app.synchroniser_referentiel()
    scheduler.lancer(app)
    return 0


def ajouter_commandes(sous: Any, _sous_factures: Any) -> None:
    c = sous.add_parser("nuit", help="la nuit : relever, importer, rapprocher, émettre, déposer")
    c.add_argument("--date", type=_date, default=None, help="« aujourd'hui » pour les règles (AAAA-MM-JJ)")
    c.set_defaults(faire=cmd_nuit)
    c = sous.add_parser("planificateur", help="lance le planificateur au premier plan (SIGTERM pour l'arrêter)")
    c.set_defaults(faire=cmd_planificateur)
