"""Banc d'essai du lecteur CFONB 120 : un fichier d'un million d'enregistrements, lu en flux.

    .venv/bin/python bench/parseurs_cfonb.py [--enregistrements 1000000] [--sans-fin-de-ligne]

Écrit le fichier dans un répertoire temporaire (relevés d'environ 1000 mouvements, un 05 pour
un mouvement sur dix, fins de ligne CR LF comme les banques), le lit avec `lire_releves_flux`
et affiche le débit (enregistrements/s, objectif ≥ 200 000 sur un cœur) et la mémoire : la
mémoire de pointe doit rester plate, le fichier n'est jamais tenu en entier.
"""

from __future__ import annotations

import argparse
import gc
import resource
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import psutil

from connecteurs.cfonb.cfonb120 import ecrire_montant, lire_releves_flux

COMPTE = "12345678901"
MOUVEMENTS_PAR_RELEVE = 1000


def _enr(code: str, zone_33_90: str, montant: int, fin: str = "", interne: str = "    ") -> str:
    enr = f"{code}30001{interne}00000EUR2 {COMPTE}{zone_33_90}{ecrire_montant(montant)}{fin}"
    return enr.ljust(120)


def _jjmmaa(jour: int) -> str:
    return f"{1 + jour % 28:02d}{1 + (jour // 28) % 12:02d}26"


def enregistrements(nombre: int) -> Iterator[str]:
    """Relevés complets et justes jusqu'à `nombre` enregistrements (le dernier relevé raccourci)."""
    produits = 0
    jour = 0
    solde = 1_000_000
    while produits < nombre:
        place = nombre - produits - 2  # le 01 et le 07
        if place < 1:
            break
        date = _jjmmaa(jour)
        yield _enr("01", "  " + date + " " * 50, solde)
        produits += 1
        i = 0
        while place > 0 and i < MOUVEMENTS_PAR_RELEVE:
            montant = (i * 7919) % 50_000 + 1
            montant = -montant if i % 5 == 0 else montant
            libelle = f"VIR SEPA FAMILLE {i:06d}".ljust(31) if montant > 0 else "PRLV REMBOURSEMENT".ljust(31)
            yield _enr("04", f"05{date}  {date}{libelle}  {i % 10_000_000:07d}  ", montant, interne="0005")
            solde += montant
            produits += 1
            place -= 1
            if i % 10 == 0 and place > 0:
                info = "F01-26-05-0000123 REMISE R-2026-014"
                yield f"0530001000500000EUR2 {COMPTE}05{date}     LIB{info:<70}  "
                produits += 1
                place -= 1
            i += 1
        yield _enr("07", "  " + date + " " * 50, solde)
        produits += 1
        jour += 1


def ecrire_fichier(chemin: Path, nombre: int, fin_de_ligne: str) -> int:
    total = 0
    with chemin.open("w", encoding="latin-1", newline="") as f:
        paquet: list[str] = []
        for enr in enregistrements(nombre):
            paquet.append(enr)
            total += 1
            if len(paquet) == 10_000:
                f.write(fin_de_ligne.join(paquet) + fin_de_ligne)
                paquet = []
        if paquet:
            f.write(fin_de_ligne.join(paquet) + fin_de_ligne)
    return total


def rss_courant_mio() -> float:
    return float(psutil.Process().memory_info().rss) / 2**20


def main() -> None:
    parseur = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parseur.add_argument("--enregistrements", type=int, default=1_000_000)
    parseur.add_argument("--sans-fin-de-ligne", action="store_true", help="fichier coupé tous les 120 caractères")
    args = parseur.parse_args()

    import structlog
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(30))  # pas de bruit dans la mesure

    with tempfile.TemporaryDirectory() as dossier:
        chemin = Path(dossier) / "releve.cfonb"
        t0 = time.perf_counter()
        total = ecrire_fichier(chemin, args.enregistrements, "" if args.sans_fin_de_ligne else "\r\n")
        taille = chemin.stat().st_size
        print(f"fichier : {total} enregistrements, {taille / 2**20:.1f} Mio, écrit en {time.perf_counter() - t0:.1f} s")

        gc.collect()
        rss_avant = rss_courant_mio()
        pic_avant = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        releves = mouvements = 0
        t0 = time.perf_counter()
        c0 = time.process_time()
        with chemin.open("rb") as flux:
            for releve in lire_releves_flux(flux, chemin.name, comptes_autorises={COMPTE}):
                releves += 1
                mouvements += len(releve.mouvements)
        duree = time.perf_counter() - t0
        cpu = time.process_time() - c0
        pic_apres = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    print(f"lu : {releves} relevés, {mouvements} mouvements en {duree:.2f} s")
    print(f"débit : {total / cpu:_.0f} enregistrements/s de temps CPU, {total / duree:_.0f} au mur "
          "(objectif ≥ 200 000 sur un cœur)".replace("_", " "))
    print(f"mémoire : {rss_avant:.0f} Mio avant la lecture, pic {max(pic_avant, pic_apres):.0f} Mio "
          f"(pic avant la lecture {pic_avant:.0f} Mio ; fichier {taille / 2**20:.0f} Mio)")


if __name__ == "__main__":
    main()
