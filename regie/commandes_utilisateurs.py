"""Commandes `regie utilisateurs creer|lister|desactiver` : les comptes des pages de revue.

Le mot de passe n'est jamais un argument (il finirait dans l'historique du shell et dans `ps`) :
il est lu sur l'entrée standard (première ligne) ou demandé deux fois au terminal.
"""

from __future__ import annotations

import argparse
import getpass
import sys
from typing import Any

OK, USAGE = 0, 2


def _lire_mot_de_passe() -> str | None:
    if sys.stdin.isatty():
        premier = getpass.getpass("Mot de passe : ")
        if getpass.getpass("Encore une fois : ") != premier:
            print("regie : les deux saisies diffèrent", file=sys.stderr)
            return None
        return premier
    return sys.stdin.readline().rstrip("\r\n")


def cmd_creer(app: Any, args: argparse.Namespace) -> int:
    from regie.pages.auth import CompteRefuse, creer_utilisateur

    mot_de_passe = _lire_mot_de_passe()
    if mot_de_passe is None:
        return USAGE
    try:
        creer_utilisateur(app, args.identifiant, args.role, mot_de_passe, args.nom)
    except CompteRefuse as exc:
        print(f"regie : {exc}", file=sys.stderr)
        return USAGE
    print(f"Utilisateur « {args.identifiant} » créé (rôle {args.role}).")
    return OK


def cmd_lister(app: Any, _args: argparse.Namespace) -> int:
    from regie.pages.auth import lister_utilisateurs

    comptes = lister_utilisateurs(app)
    if not comptes:
        print("aucun utilisateur")
    for u in comptes:
        etat = "actif" if u.actif else "désactivé"
        if u.actif and u.verrouille_jusqu_a is not None:
            etat = f"verrouillé jusqu'à {u.verrouille_jusqu_a:%Y-%m-%d %H:%M} UTC"
        vu = f"\tdernière connexion {u.derniere_connexion:%Y-%m-%d %H:%M}" if u.derniere_connexion else ""
        print(f"{u.identifiant}\t{u.role}\t{u.nom}\t{etat}{vu}")
    return OK


def cmd_desactiver(app: Any, args: argparse.Namespace) -> int:
    from regie.pages.auth import desactiver_utilisateur

    if not desactiver_utilisateur(app, args.identifiant):
        print(f"regie : utilisateur « {args.identifiant} » inconnu", file=sys.stderr)
        return USAGE
    print(f"Utilisateur « {args.identifiant} » désactivé ; ses sessions sont fermées.")
    return OK


def ajouter_commandes(sous: Any, sous_factures: Any) -> None:
    del sous_factures
    from regie.registre.modeles_pages import ROLES

    u = sous.add_parser("utilisateurs", help="comptes des agents (pages de revue)")
    us = u.add_subparsers(dest="action", required=True, metavar="ACTION")
    c = us.add_parser("creer", help="crée un compte ; mot de passe lu sur l'entrée standard ou demandé")
    c.add_argument("identifiant", metavar="IDENTIFIANT")
    c.add_argument("--role", required=True, choices=ROLES)
    c.add_argument("--nom", help="nom affiché (par défaut l'identifiant)")
    c.set_defaults(faire=cmd_creer)
    c = us.add_parser("lister", help="liste les comptes (identifiant, rôle, nom, état)")
    c.set_defaults(faire=cmd_lister)
    c = us.add_parser("desactiver", help="désactive un compte et ferme ses sessions")
    c.add_argument("identifiant", metavar="IDENTIFIANT")
    c.set_defaults(faire=cmd_desactiver)
