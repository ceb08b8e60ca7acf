"""Aides de la démonstration (scripts/demo.sh) : jeux d'essai et extrait lisible de l'état."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from regie.jeu_essai import ecrire_jsonl, factures


def _factures(args: argparse.Namespace) -> None:
    n = ecrire_jsonl(Path(args.sortie), factures(args.nombre, dossiers=max(1, args.nombre // 3)))
    print(f"{n} factures écrites dans {args.sortie}")


def _fichier_errone(args: argparse.Namespace) -> None:
    objets = list(factures(3, graine=7, periode="2026-06"))
    objets[1]["regie"] = "PISCINE"
    objets[2]["lignes"][0]["montant"] = "3,50"
    objets[2]["echeance"] = "2026-01-01"
    with Path(args.sortie).open("w", encoding="utf-8") as f:
        for o in objets:
            f.write(json.dumps(o, ensure_ascii=False) + "\n")
        f.write('{"type": "facture", "numero": \n')
    print(f"{len(objets) + 1} lignes (dont 3 erronées) écrites dans {args.sortie}")


def _extrait(_args: argparse.Namespace) -> None:
    e = json.load(sys.stdin)
    extrait = {"factures": e["factures"][:2], "paiements": e["paiements"][:2], "familles": e["familles"][:2]}
    print(json.dumps(extrait, ensure_ascii=False, indent=2))
    print(f"   … {len(e['factures'])} factures, {len(e['paiements'])} paiements, {len(e['familles'])} familles")


def _jeu_de_nuit(args: argparse.Namespace) -> None:
    from regie.jeu_essai import ecrire_jeu_de_nuit

    for f in ecrire_jeu_de_nuit(Path(args.dossier), nombre=args.nombre, avec_fichier_errone=True):
        print(f"   déposé dans la boîte : {f.name}")


def _payfip(args: argparse.Namespace) -> None:
    """Une famille paie deux factures en ligne ; la notification se perd (aucun serveur n'écoute)."""
    from datetime import datetime
    from zoneinfo import ZoneInfo

    import requests
    from sqlalchemy import select

    from regie.application import Application
    from regie.registre.modeles import Dossier, EtatFacture, Facture
    from regie.services.payfip import DemandePaiement, FactureDemandee, PasserellePayfip, demarrer_paiement

    app = Application.depuis_environnement()
    quand = datetime(2026, 6, 10, 18, 30, tzinfo=ZoneInfo("Europe/Paris"))
    with app.moteur.connect() as c:
        lignes = c.execute(select(Dossier.numero, Facture.numero).join(Facture, Facture.dossier_id == Dossier.id)
                           .join(EtatFacture, EtatFacture.facture_id == Facture.id)
                           .where(Facture.regie_code == "ENFANCE", EtatFacture.statut == "emise")
                           .order_by(Dossier.numero, Facture.numero)).all()
    paniers: dict[str, list[str]] = {}
    for dossier, numero in lignes:
        paniers.setdefault(dossier, []).append(numero)
    dossier, numeros = next((d, n[:2]) for d, n in paniers.items() if len(n) >= 2)
    passerelle = PasserellePayfip(app, base_page=args.page)
    try:
        demarre = demarrer_paiement(app, passerelle, DemandePaiement(dossier, tuple(FactureDemandee(n)
                                                                                     for n in numeros)),
                                    maintenant=quand)
    finally:
        passerelle.close()
    print(f"   panier PayFiP du dossier {dossier} : {', '.join(numeros)} ({demarre.montant / 100:.2f} €), "
          f"idOp {demarre.id_op}")
    print(f"   la famille est envoyée sur {demarre.url}")
    reponse = requests.post(args.page, data={"idop": demarre.id_op, "action": "payer"}, timeout=10,
                            allow_redirects=False)
    print(f"   … et paie (réponse du simulateur : {reponse.status_code}) ; la notification n'arrive pas : "
          "la nuit interrogera PayFiP")


def main() -> None:
    from regie.journalisation import configurer

    configurer()
    p = argparse.ArgumentParser(prog="python -m regie.demo")
    sous = p.add_subparsers(required=True)
    c = sous.add_parser("factures")
    c.add_argument("--nombre", type=int, default=300)
    c.add_argument("--sortie", required=True)
    c.set_defaults(faire=_factures)
    c = sous.add_parser("fichier-errone")
    c.add_argument("--sortie", required=True)
    c.set_defaults(faire=_fichier_errone)
    c = sous.add_parser("extrait")
    c.set_defaults(faire=_extrait)
    c = sous.add_parser("jeu-de-nuit")
    c.add_argument("--dossier", required=True)
    c.add_argument("--nombre", type=int, default=300)
    c.set_defaults(faire=_jeu_de_nuit)
    c = sous.add_parser("payfip")
    c.add_argument("--page", required=True)
    c.set_defaults(faire=_payfip)
    args = p.parse_args()
    args.faire(args)


if __name__ == "__main__":
    main()
