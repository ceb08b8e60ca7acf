"""Commandes `regie paiements importer`, `regie rapprocher` (specs/cli.md)."""

from __future__ import annotations

import argparse
from datetime import date
from pathlib import Path
from typing import Any

from regie.application import Application

CANAUX_CLI = ("buraliste", "cesu", "crcesu", "cheque", "cfonb", "pes-retour")


def _date(texte: str) -> date:
    try:
        return date.fromisoformat(texte)
    except ValueError:
        raise argparse.ArgumentTypeError(f"« {texte} » n'est pas une date AAAA-MM-JJ") from None


def _fichier(texte: str) -> Path:
    chemin = Path(texte)
    if not chemin.is_file():
        raise argparse.ArgumentTypeError(f"« {texte} » : fichier introuvable")
    return chemin


def cmd_paiements_importer(app: Application, args: argparse.Namespace) -> int:
    from regie.services.paiements import importer_fichier_paiements

    app.synchroniser_referentiel()
    rapport = importer_fichier_paiements(app, args.canal, args.fichier, aujourd_hui=args.date)
    print(rapport.message())
    return 0


def cmd_rapprocher(app: Application, args: argparse.Namespace) -> int:
    from rapprochement.moteur import rapprocher

    print(rapprocher(app, aujourd_hui=args.date).message())
    return 0


def ajouter_commandes(sous: Any, _sous_factures: Any) -> None:
    pai = sous.add_parser("paiements", help="paiements reçus par les canaux")
    ps = pai.add_subparsers(dest="action", required=True, parser_class=sous._parser_class, metavar="ACTION")
    c = ps.add_parser("importer", help="importe un fichier d'un canal, puis rapproche")
    c.add_argument("--canal", required=True, choices=CANAUX_CLI)
    c.add_argument("--date", type=_date, default=None, help="« aujourd'hui » pour les règles (AAAA-MM-JJ)")
    c.add_argument("fichier", type=_fichier, metavar="FICHIER")
    c.set_defaults(faire=cmd_paiements_importer)

    c = sous.add_parser("rapprocher", help="rapproche chaque paiement ouvert et affiche un résumé")
    c.add_argument("--date", type=_date, default=None)
    c.set_defaults(faire=cmd_rapprocher)
