"""Diagnostic : `python -m connecteurs.cfonb lire FICHIER [--compte NUMERO ...]`.

Affiche les relevés et les mouvements d'un fichier CFONB 120 tels que le connecteur les lit,
ou toutes les erreurs qui le feraient refuser (code de sortie 1). Rien n'est importé.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from connecteurs.cfonb.cfonb120 import lire_releves_flux, remise_citee
from regie.erreurs import FichierRefuse
from regie.montants import centimes_en_euros


def _lire(chemin: Path, comptes: list[str] | None) -> int:
    releves = 0
    with chemin.open("rb") as flux:
        try:
            for releve in lire_releves_flux(flux, chemin.name, comptes):
                releves += 1
                print(f"relevé {releve.compte} lignes {releve.ligne_debut}-{releve.ligne_fin} : "
                      f"du {releve.date_debut.isoformat()} ({centimes_en_euros(releve.solde_debut)}) "
                      f"au {releve.date_fin.isoformat()} ({centimes_en_euros(releve.solde_fin)}), "
                      f"{len(releve.mouvements)} mouvement(s)")
                for m in releve.mouvements:
                    remise = remise_citee(m.texte)
                    print(f"  {m.ligne:>7} {m.reference:<40} op {m.code_operation} "
                          f"{centimes_en_euros(m.montant):>14}  {m.texte}"
                          + (f"  [remise {remise}]" if remise else ""))
        except FichierRefuse as refus:
            print(f"{refus}", file=sys.stderr)
            for erreur in refus.erreurs:
                print(f"  {erreur}", file=sys.stderr)
            return 1
    print(f"{releves} relevé(s) lu(s)")
    return 0


def main(argv: list[str] | None = None) -> int:
    parseur = argparse.ArgumentParser(prog="python -m connecteurs.cfonb",
                                      description="Diagnostic des relevés CFONB 120 du compte DFT.")
    commandes = parseur.add_subparsers(dest="commande", required=True)
    lire = commandes.add_parser("lire", help="afficher relevés et mouvements, ou les erreurs")
    lire.add_argument("fichier", type=Path)
    lire.add_argument("--compte", action="append", help="compte DFT autorisé (répétable) ; par défaut tous")
    args = parseur.parse_args(argv)
    if not args.fichier.is_file():
        print(f"{args.fichier} : fichier introuvable", file=sys.stderr)
        return 2
    return _lire(args.fichier, args.compte)


if __name__ == "__main__":
    sys.exit(main())
