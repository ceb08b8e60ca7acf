"""Banc : un PES_Aller de 100 000 titres (3 lignes chacun) écrit en flux.

    .venv/bin/python bench/pes_aller_100k.py [--titres 100000]

Mesure le temps d'écriture et la mémoire de pointe (RSS) pour 10 000 puis 100 000 titres :
la mémoire doit rester plate (une pièce à la fois). Cible : ≤ 10 s pour 100 000 titres.
Le fichier produit est ensuite validé une fois contre le schéma officiel (hors chrono).
Chaque mesure tourne dans un processus neuf, sinon la pointe de RSS du premier masquerait le second.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import date
from pathlib import Path

from exports.pes_aller import (
    BordereauPes,
    Collectivite,
    LignePes,
    PiecePes,
    TiersPes,
    ecrire_pes_aller,
    nom_fichier_pes,
    objet_piece,
)

LIGNES = (("Repas cantine", "CANT", "7067", 4200), ("Heures de crèche", "CREC", "7066", 3575),
          ("Accueil périscolaire", "PERI", "7067", 1290))
PRENOMS = ("Hélène", "Zoé", "Chloé", "Noël", "Œdipe", "Léa")
PIECES_PAR_BORDEREAU = 50_000  # NbrPce est un Base_Num5 : 99 999 pièces au plus par bordereau


def pieces(debut: int, nombre: int) -> Iterator[PiecePes]:
    for i in range(debut, debut + nombre):
        tiers = TiersPes(f"D{i:07d}", "MME" if i % 2 else "M", f"NOM{i}", PRENOMS[i % len(PRENOMS)],
                         f"{i % 200 + 1} rue des Écoles", "Bâtiment B" if i % 3 == 0 else None, "94250", "GENTILLY")
        lignes = [LignePes(n, objet, code, nature, montant + i % 100)
                  for n, (objet, code, nature, montant) in enumerate(LIGNES, 1)]
        yield PiecePes(i, objet_piece(f"F01-26-10-{i:07d}", "2026-10"), i, tiers, lignes)


def bordereaux(titres: int) -> Iterator[BordereauPes]:
    debut = 1
    numero = 1
    while debut <= titres:
        nombre = min(PIECES_PAR_BORDEREAU, titres - debut + 1)
        montant = sum(sum(lig.montant_centimes for lig in p.lignes) for p in pieces(debut, nombre))
        yield BordereauPes(2026, numero, date(2026, 11, 25), nombre, montant, pieces(debut, nombre))
        debut += nombre
        numero += 1


def mesurer(titres: int, chemin: Path) -> dict[str, float | int]:
    collectivite = Collectivite("21940037900019", "094012", "001", "01", "Ville de Gentilly")
    # Les totaux annoncés se calculent d'avance (comme le ferait l'appelant) : hors chrono.
    lots = list(bordereaux(titres))
    debut = time.perf_counter()
    with chemin.open("wb") as sortie:
        resume = ecrire_pes_aller(sortie, collectivite, lots,
                                  nom_fichier=nom_fichier_pes(collectivite.siret, date(2026, 11, 25), 1),
                                  date_fichier=date(2026, 11, 25))
    duree = time.perf_counter() - debut
    rss_ko = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"titres": resume.nombre_pieces, "secondes": round(duree, 2), "rss_pointe_mo": round(rss_ko / 1024, 1),
            "octets": resume.taille_octets}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--titres", type=int, default=100_000)
    parser.add_argument("--une-mesure", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--sortie", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.une_mesure:
        print(json.dumps(mesurer(args.une_mesure, Path(args.sortie))))
        return 0

    import structlog

    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(30))
    with tempfile.TemporaryDirectory() as dossier:
        for titres in (10_000, args.titres):
            chemin = Path(dossier) / f"pes_{titres}.xml"
            sortie = subprocess.run(
                [sys.executable, __file__, "--une-mesure", str(titres), "--sortie", str(chemin)],
                check=True, capture_output=True, text=True, env={**os.environ, "PYTHONWARNINGS": "ignore"})
            mesure = json.loads(sortie.stdout.strip().splitlines()[-1])
            print(f"{mesure['titres']:>7} titres : {mesure['secondes']:6.2f} s, RSS de pointe "
                  f"{mesure['rss_pointe_mo']:6.1f} Mo, fichier {mesure['octets'] / 1e6:.1f} Mo")
        sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
        pes_schema = importlib.import_module("tests.pes_schema")

        debut = time.perf_counter()
        erreurs = pes_schema.erreurs_schema(chemin)
        print(f"validation XSD du fichier de {args.titres} titres : "
              f"{'valide' if not erreurs else f'{len(erreurs)} erreur(s)'} ({time.perf_counter() - debut:.1f} s)")
        for erreur in erreurs[:10]:
            print("  ", erreur)
        return 1 if erreurs else 0


if __name__ == "__main__":
    sys.exit(main())
