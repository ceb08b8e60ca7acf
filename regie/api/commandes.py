"""Commandes `regie serveur`, `regie cles-api ...` et `regie payfip consulter` (ajoutées à regie/cli.py)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

OK, USAGE, INJOIGNABLE = 0, 2, 3


def cmd_serveur(app: Any, args: argparse.Namespace) -> int:
    import os

    import uvicorn

    os.environ.setdefault("REGIE_PING_CONNEXIONS", "0")

    from regie.api.app import creer_app

    if args.workers > 1:
        # Plusieurs processus : chacun construit son application depuis l'environnement.
        uvicorn.run("regie.api.commandes:application_asgi", factory=True, host=args.hote, port=args.port,
                    workers=args.workers, access_log=args.journal_acces, log_level="warning")
    else:
        uvicorn.run(creer_app(app), host=args.hote, port=args.port, access_log=args.journal_acces,
                    log_level="warning")
    return OK


def application_asgi() -> Any:
    """Fabrique pour `uvicorn --factory` (un appel par processus de travail)."""
    from regie.api.app import creer_app
    from regie.application import Application
    from regie.journalisation import configurer

    configurer()
    return creer_app(Application.depuis_environnement())


def cmd_cle_creer(app: Any, args: argparse.Namespace) -> int:
    from regie.api.securite import creer_cle

    try:
        creee = creer_cle(app, args.nom)
    except ValueError as exc:
        print(f"regie : {exc}", file=sys.stderr)
        return USAGE
    print(creee.cle)
    print(f"Clé « {creee.nom} » créée (préfixe {creee.prefixe}). Elle n'est affichée qu'une fois : "
          "la garder maintenant.", file=sys.stderr)
    return OK


def cmd_cle_lister(app: Any, _args: argparse.Namespace) -> int:
    from regie.api.securite import lister_cles

    cles = lister_cles(app)
    if not cles:
        print("aucune clé d'API")
    for c in cles:
        etat = f"révoquée le {c.revoquee_le:%Y-%m-%d %H:%M}" if c.revoquee_le else "active"
        utilisee = f", utilisée le {c.utilisee_le:%Y-%m-%d %H:%M}" if c.utilisee_le else ""
        print(f"{c.prefixe}\t{c.nom}\tcréée le {c.creee_le:%Y-%m-%d %H:%M}\t{etat}{utilisee}")
    return OK


def cmd_cle_revoquer(app: Any, args: argparse.Namespace) -> int:
    from regie.api.securite import revoquer_cle

    if not revoquer_cle(app, args.prefixe):
        print(f"regie : aucune clé active de préfixe « {args.prefixe} »", file=sys.stderr)
        return USAGE
    print(f"Clé {args.prefixe} révoquée (effective sous 10 s pour les serveurs en marche).")
    return OK


def cmd_payfip_consulter(app: Any, _args: argparse.Namespace) -> int:
    from regie.services.payfip import PasserellePayfip, consulter_operations_en_attente

    passerelle = PasserellePayfip(app)
    try:
        bilan = consulter_operations_en_attente(app, passerelle)
    finally:
        passerelle.close()
    print(bilan.message())
    if bilan.injoignable:
        print(f"regie : PayFiP injoignable ({app.env.payfip_endpoint}) après les nouvelles tentatives ; "
              "les opérations restent en attente", file=sys.stderr)
        return INJOIGNABLE
    return OK


def ajouter_commandes(sous: Any, sous_factures: Any) -> None:
    """Ajoute les sous-commandes aux analyseurs de `regie` (chacune pose `faire=`)."""
    del sous_factures  # rien à ajouter sous `regie factures`
    c = sous.add_parser("serveur", help="sert l'API du portail et les adresses PayFiP (uvicorn)")
    c.add_argument("--hote", default="127.0.0.1")
    c.add_argument("--port", type=int, default=8000)
    c.add_argument("--workers", type=int, default=1, help="processus de travail (uvicorn)")
    c.add_argument("--journal-acces", action="store_true", help="une ligne par requête (désactivé par défaut)")
    c.set_defaults(faire=cmd_serveur)

    cles = sous.add_parser("cles-api", help="clés d'API du portail")
    cs = cles.add_subparsers(dest="action", required=True, metavar="ACTION")
    c = cs.add_parser("creer", help="crée une clé et l'affiche une seule fois")
    c.add_argument("nom", metavar="NOM")
    c.set_defaults(faire=cmd_cle_creer)
    c = cs.add_parser("lister", help="liste les clés (préfixe, nom, état)")
    c.set_defaults(faire=cmd_cle_lister)
    c = cs.add_parser("revoquer", help="révoque la clé de ce préfixe")
    c.add_argument("prefixe", metavar="PREFIXE")
    c.set_defaults(faire=cmd_cle_revoquer)

    pay = sous.add_parser("payfip", help="paiements en ligne PayFiP")
    ps = pay.add_subparsers(dest="action", required=True, metavar="ACTION")
    c = ps.add_parser("consulter", help="consulte une fois chaque opération en attente (travail périodique)")
    c.set_defaults(faire=cmd_payfip_consulter)
