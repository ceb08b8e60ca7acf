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


def main() -> None:
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
    args = p.parse_args()
    args.faire(args)


if __name__ == "__main__":
    main()
