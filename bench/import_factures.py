"""Banc d'essai : importer N factures (3 lignes chacune) dans SQLite et PostgreSQL.

    .venv/bin/python bench/import_factures.py --nombre 1000000 [--bases sqlite,postgresql]

Mesure factures/s et la mémoire maximale du processus d'import (il tourne à part).
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from sqlalchemy import create_engine, text

RACINE = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(RACINE))

from regie.jeu_essai import ecrire_jsonl, factures  # noqa: E402

PG = os.environ.get("REGIE_BENCH_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")


def lancer(url: str, fichier: Path, dossier: Path) -> tuple[float, float, int]:
    env = dict(os.environ, REGIE_DATABASE_URL=url, REGIE_CONFIG=str(RACINE / "exemples" / "regie.toml"),
               REGIE_DONNEES=str(dossier / "var"), REGIE_LOG_NIVEAU="warning")
    regie = [sys.executable, "-m", "regie.cli"]
    subprocess.run([*regie, "init"], env=env, check=True, capture_output=True)
    debut = time.perf_counter()
    proc = subprocess.Popen([*regie, "factures", "importer", str(fichier)], env=env)
    # wait4 : les ressources de ce seul processus (RUSAGE_CHILDREN garderait le pic de la base précédente).
    _, statut, usage = os.wait4(proc.pid, 0)
    duree = time.perf_counter() - debut
    proc.returncode = os.waitstatus_to_exitcode(statut)
    if proc.returncode:
        raise subprocess.CalledProcessError(proc.returncode, proc.args)
    # Temps CPU du seul processus d'import (sans le serveur PostgreSQL) : lisible même machine chargée.
    return duree, usage.ru_utime + usage.ru_stime, usage.ru_maxrss


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--nombre", type=int, default=1_000_000)
    p.add_argument("--bases", default="sqlite,postgresql")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        dossier = Path(tmp)
        fichier = dossier / "factures.jsonl"
        debut = time.perf_counter()
        ecrire_jsonl(fichier, factures(args.nombre, nb_lignes=3, dossiers=max(1, args.nombre // 3)))
        print(f"jeu d'essai : {args.nombre} factures, {fichier.stat().st_size / 1e6:.0f} Mo "
              f"({time.perf_counter() - debut:.1f} s)")
        print(f"machine : {platform.node()} {platform.machine()}, {os.cpu_count()} cœurs, Python "
              f"{platform.python_version()}")
        for base in args.bases.split(","):
            if base == "sqlite":
                url = f"sqlite:///{dossier / 'bench.db'}"
            else:
                admin = create_engine(PG, isolation_level="AUTOCOMMIT")
                with admin.connect() as c:
                    c.execute(text("DROP DATABASE IF EXISTS regie_bench"))
                    c.execute(text("CREATE DATABASE regie_bench"))
                url = PG.rsplit("/", 1)[0] + "/regie_bench"
            charge = os.getloadavg()[0]
            duree, cpu, pic_ko = lancer(url, fichier, dossier)
            print(f"{base:10s} : {args.nombre} factures en {duree:.1f} s = {args.nombre / duree:,.0f} factures/s ; "
                  f"CPU de l'import {cpu:.1f} s ({args.nombre / cpu:,.0f} factures/s CPU) ; "
                  f"mémoire max {pic_ko / 1024:.0f} Mo ; charge avant {charge:.1f}, après {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
