"""Banc du relevé buralistes : génère N lignes dans un fichier temporaire, les lit en flux.

    .venv/bin/python bench/parseurs_buralistes.py [--lignes 1000000] [--decodeur]

Le fichier est lu par `lire_releve_flux` (par blocs : il n'est jamais tenu en entier). Affiche les
enregistrements par seconde (temps réel et temps CPU) et la mémoire : RSS avant la lecture et pic
(resource.getrusage). Objectif : ≥ 200 000 enregistrements/s sur un cœur, mémoire plate.
"""

from __future__ import annotations

import argparse
import logging
import resource
import sys
import tempfile
import time
from pathlib import Path

import psutil
import structlog

from connecteurs.buralistes.datamatrix import charge_utile, decoder
from connecteurs.buralistes.releve import lire_releve, lire_releve_flux
from connecteurs.modeles import PaiementRecu


def generer(chemin: Path, n: int) -> None:
    # Quelques milliers de charges utiles distinctes suffisent : le décodeur n'a pas de cache.
    charges = [charge_utile(code_etablissement="019", periode=f"2026-{1 + i % 12:02d}", code_produit="043",
                            numero_dette=100_000 + i * 7919, codique="094012", montant_centimes=500 + i * 37)
               for i in range(4096)]
    with chemin.open("w", encoding="utf-8", newline="") as f:
        f.write("transaction;date_heure;datamatrix;montant;mode;point_de_vente\r\n")
        for i in range(n):
            charge = charges[i % 4096]
            if i % 100 == 99:
                charge = charge[:-1] + ("1" if charge[-1] != "1" else "2")  # 1 % de datamatrix invalides
            mode = "ESPECES" if i % 3 else "CARTE"
            f.write(f'PP-2026-{i:010d};2026-05-{1 + i % 28:02d}T{i % 24:02d}:{i % 60:02d}:10+02:00;"{charge}";'
                    f"{(i % 30000) // 100 + 1}.{i % 100:02d};{mode};TAB-94-{i % 9999:04d}\r\n")


def chiffres_releve() -> bytes:
    charge = charge_utile(code_etablissement="019", periode="2026-05", code_produit="043", numero_dette=123,
                          codique="094012", montant_centimes=4200)
    return ("transaction;date_heure;datamatrix;montant;mode;point_de_vente\r\n"
            f'PP-1;2026-05-12T17:42:10+02:00;"{charge}";42.00;ESPECES;TAB-94-0117\r\n').encode()


def rss_courant_mio() -> float:
    return float(psutil.Process().memory_info().rss) / 2**20


def pic_rss_mio() -> float:
    # ru_maxrss est en kio sous Linux.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lignes", type=int, default=1_000_000)
    parser.add_argument("--decodeur", action="store_true", help="mesurer aussi decoder() seul")
    args = parser.parse_args()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))

    with tempfile.TemporaryDirectory() as dossier:
        chemin = Path(dossier) / "releve.csv"
        t0 = time.perf_counter()
        generer(chemin, args.lignes)
        print(f"génération : {args.lignes} lignes, {chemin.stat().st_size / 2**20:.1f} Mio, "
              f"{time.perf_counter() - t0:.1f} s ; RSS après génération {pic_rss_mio():.0f} Mio")

        if args.decodeur:
            charges = [charge_utile(code_etablissement="019", periode="2026-05", code_produit="043",
                                    numero_dette=i + 1, codique="094012", montant_centimes=4200)
                       for i in range(100_000)]
            t0 = time.perf_counter()
            for c in charges:
                decoder(c)
            duree = time.perf_counter() - t0
            print(f"decoder() seul : {len(charges) / duree:,.0f} charges utiles/s".replace(",", " "))
            # La part du modèle commun : validation pydantic d'un PaiementRecu déjà prêt.
            premier = next(lire_releve(chiffres_releve(), "un.csv"))
            donnees = premier.model_dump()
            t0 = time.perf_counter()
            for _ in range(100_000):
                PaiementRecu.model_validate(donnees)
            duree = time.perf_counter() - t0
            print(f"PaiementRecu.model_validate seul : {100_000 / duree:,.0f} par seconde".replace(",", " "))

        rss_avant = rss_courant_mio()
        t0, c0 = time.perf_counter(), time.process_time()
        n = invalides = 0
        with chemin.open("rb") as flux:
            for paiement in lire_releve_flux(flux, chemin.name):
                n += 1
                if not paiement.details["datamatrix_valide"]:
                    invalides += 1
        duree, cpu = time.perf_counter() - t0, time.process_time() - c0
    # Le temps CPU du processus dit le coût sur un cœur même quand la machine est partagée.
    print(f"lecture : {n} paiements ({invalides} datamatrix invalides) en {duree:.2f} s "
          f"({cpu:.2f} s CPU) : {n / duree:,.0f} enregistrements/s, {n / cpu:,.0f} par seconde CPU"
          .replace(",", " "))
    print(f"mémoire : RSS {rss_avant:.0f} Mio avant la lecture, pic {pic_rss_mio():.0f} Mio")
    return 0


if __name__ == "__main__":
    sys.exit(main())
