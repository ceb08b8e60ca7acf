"""Banc d'essai : N factures et N paiements de tous les canaux (5 % d'anomalies), import + rapprochement.

    .venv/bin/python bench/rapprochement_bout_en_bout.py --nombre 1000000 [--bases sqlite,postgresql]

Chaque base : `regie init`, import des factures, import de chaque fichier de paiements (le
rapprochement suit chaque import), puis une seconde passe sur les mêmes fichiers (déjà importés,
rien à rapprocher). Mesure la durée de bout en bout et la mémoire maximale des processus `regie`.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from sqlalchemy import create_engine, text

RACINE = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(RACINE))

from connecteurs.buralistes.datamatrix import charge_utile  # noqa: E402
from regie.jeu_essai import ecrire_jsonl, factures  # noqa: E402
from regie.montants import centimes_en_euros  # noqa: E402

PG = os.environ.get("REGIE_BENCH_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")


def ecrire_paiements(dossier: Path, montants: list[int], numeros: list[str]) -> list[tuple[str, Path]]:
    """Paiements de 4 canaux : 40 % buralistes, 30 % chèques, 20 % CESU, 10 % chèques sans facture."""
    rng = random.Random(7)
    n = len(montants)
    bur = dossier / "releve.csv"
    chq = dossier / "cheques.csv"
    ces = dossier / "cesu.csv"
    with bur.open("w", encoding="utf-8") as b, chq.open("w", encoding="utf-8") as c, \
            ces.open("w", encoding="utf-8") as s:
        b.write("transaction;date_heure;datamatrix;montant;mode;point_de_vente\n")
        c.write("remise;numero_cheque;tireur;banque;montant;facture;recu_le\n")
        s.write("remise;numero_titre;support;emetteur;millesime;valeur;facture;recu_le\n")
        for i in range(n):
            anomalie = rng.random() < 0.05
            m = montants[i]
            tirage = i % 10
            if tirage < 4:
                dette = i + 1 if not anomalie else n + 10 + i  # numéro de dette inconnu
                dm = charge_utile(code_etablissement="019", periode="2026-05", code_produit="043",
                                  numero_dette=dette, codique="094012", montant_centimes=m)
                b.write(f'PP-{i:09d};2026-06-01T10:00:00+02:00;"{dm}";{centimes_en_euros(m)};CARTE;TAB-1\n')
            elif tirage < 7 or tirage == 9:
                facture = numeros[i] if not anomalie else f"X{i:09d}"
                if tirage == 9 and not anomalie:
                    facture = numeros[i]
                c.write(f"RC-{i // 500:06d};{i};MARTIN CLAIRE;CCM;{centimes_en_euros(m)};{facture};2026-06-02\n")
            else:
                facture = numeros[i] if not anomalie else f"X{i:09d}"
                s.write(f"R-{i // 500:06d};{10**9 + i};PAPIER;EDENRED;2026;{centimes_en_euros(min(m, 2000))};"
                        f"{facture};2026-06-03\n")
    return [("buraliste", bur), ("cheque", chq), ("cesu", ces)]


def lancer(url: str, dossier: Path, factures_jsonl: Path, paiements: list[tuple[str, Path]]) -> dict[str, float]:
    env = dict(os.environ, REGIE_DATABASE_URL=url, REGIE_CONFIG=str(RACINE / "exemples" / "regie.toml"),
               REGIE_DONNEES=str(dossier / "var"), REGIE_LOG_NIVEAU="warning")
    regie = [sys.executable, "-m", "regie.cli"]
    subprocess.run([*regie, "init"], env=env, check=True, capture_output=True)
    debut = time.perf_counter()
    subprocess.run([*regie, "factures", "importer", str(factures_jsonl)], env=env, check=True)
    t_factures = time.perf_counter() - debut
    for canal, chemin in paiements:
        subprocess.run([*regie, "paiements", "importer", "--canal", canal, str(chemin)], env=env, check=True)
    total = time.perf_counter() - debut
    debut = time.perf_counter()
    subprocess.run([*regie, "factures", "importer", str(factures_jsonl)], env=env, check=True, capture_output=True)
    for canal, chemin in paiements:
        subprocess.run([*regie, "paiements", "importer", "--canal", canal, str(chemin)], env=env, check=True,
                       capture_output=True)
    subprocess.run([*regie, "rapprocher"], env=env, check=True, capture_output=True)
    seconde = time.perf_counter() - debut
    pic = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return {"factures_s": t_factures, "total_s": total, "seconde_s": seconde, "pic_mo": pic}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--nombre", type=int, default=1_000_000)
    p.add_argument("--bases", default="sqlite,postgresql")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        dossier = Path(tmp)
        fjsonl = dossier / "factures.jsonl"
        objets = list(factures(args.nombre, nb_lignes=3, dossiers=max(1, args.nombre // 3)))
        ecrire_jsonl(fjsonl, iter(objets))
        montants = [int(o["montant"].replace(".", "")) for o in objets]
        numeros = [o["numero"] for o in objets]
        del objets
        paiements = ecrire_paiements(dossier, montants, numeros)
        print(f"machine : {platform.node()} {platform.machine()}, {os.cpu_count()} cœurs, Python "
              f"{platform.python_version()} ; {args.nombre} factures et {args.nombre} paiements")
        for base in args.bases.split(","):
            if base == "sqlite":
                url = f"sqlite:///{dossier / 'bench.db'}"
            else:
                admin = create_engine(PG, isolation_level="AUTOCOMMIT")
                with admin.connect() as c:
                    c.execute(text("DROP DATABASE IF EXISTS regie_bench_bout"))
                    c.execute(text("CREATE DATABASE regie_bench_bout"))
                url = PG.rsplit("/", 1)[0] + "/regie_bench_bout"
            r = lancer(url, dossier, fjsonl, paiements)
            print(f"{base:10s} : import + rapprochement {r['total_s']:.1f} s (dont factures {r['factures_s']:.1f} s) ; "
                  f"seconde passe {r['seconde_s']:.1f} s ; mémoire max {r['pic_mo']:.0f} Mo")


if __name__ == "__main__":
    main()
