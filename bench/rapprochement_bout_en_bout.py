"""Banc d'essai : N factures et N paiements de tous les canaux (5 % d'anomalies), import + rapprochement.

    .venv/bin/python bench/rapprochement_bout_en_bout.py --nombre 1000000 [--bases sqlite,postgresql]

Chaque base : `regie init`, import des factures, import de chaque fichier de paiements (le
rapprochement suit chaque import), puis une seconde passe sur les mêmes fichiers (déjà importés,
rien à rapprocher). Mesure la durée de bout en bout, celle de chaque étape (chaque commande `regie`)
et la mémoire maximale des processus `regie`.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from sqlalchemy import create_engine, text

RACINE = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(RACINE))

from connecteurs.buralistes.datamatrix import charge_utile  # noqa: E402
from regie import natif  # noqa: E402
from regie.jeu_essai import ecrire_jsonl, factures  # noqa: E402
from regie.montants import centimes_en_euros  # noqa: E402

PG = os.environ.get("REGIE_BENCH_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")


def generer(dossier: Path, nombre: int) -> None:
    """Les fichiers du banc : factures.jsonl et un fichier de paiements par canal."""
    objets = list(factures(nombre, nb_lignes=3, dossiers=max(1, nombre // 3)))
    ecrire_jsonl(dossier / "factures.jsonl", iter(objets))
    montants = [int(o["montant"].replace(".", "")) for o in objets]
    numeros = [o["numero"] for o in objets]
    del objets
    ecrire_paiements(dossier, montants, numeros)


FICHIERS_PAIEMENTS = (("buraliste", "releve.csv"), ("cheque", "cheques.csv"), ("cesu", "cesu.csv"))


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
    """Durées de chaque étape (s), dans l'ordre, et mémoire maximale des processus `regie` (Mo)."""
    env = dict(os.environ, REGIE_DATABASE_URL=url, REGIE_CONFIG=str(RACINE / "exemples" / "regie.toml"),
               REGIE_DONNEES=str(dossier / "var"), REGIE_LOG_NIVEAU="warning")
    regie = [sys.executable, "-m", "regie.cli"]
    subprocess.run([*regie, "init"], env=env, check=True, capture_output=True)
    etapes: dict[str, float] = {}
    pic = 0.0

    def etape(nom: str, *arguments: str, silencieux: bool = False) -> None:
        nonlocal pic
        debut = time.perf_counter()
        sortie = subprocess.DEVNULL if silencieux else None
        processus = subprocess.Popen([*regie, *arguments], env=env, stdout=sortie, stderr=sortie)
        # wait4 : la mémoire maximale de ce processus-là (RUSAGE_CHILDREN mêlerait tous les enfants).
        _, statut, usage = os.wait4(processus.pid, 0)
        processus.returncode = os.waitstatus_to_exitcode(statut)
        if processus.returncode:
            raise subprocess.CalledProcessError(processus.returncode, processus.args)
        etapes[nom] = time.perf_counter() - debut
        pic = max(pic, usage.ru_maxrss / 1024)

    etape("factures", "factures", "importer", str(factures_jsonl))
    for canal, chemin in paiements:
        # L'import d'un fichier de paiements rapproche ensuite tout ce qui est ouvert.
        etape(f"paiements {canal}", "paiements", "importer", "--canal", canal, str(chemin))
    etape("seconde passe factures", "factures", "importer", str(factures_jsonl), silencieux=True)
    for canal, chemin in paiements:
        etape(f"seconde passe {canal}", "paiements", "importer", "--canal", canal, str(chemin), silencieux=True)
    etape("seconde passe rapprocher", "rapprocher", silencieux=True)
    etapes["pic_mo"] = pic
    return etapes


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--nombre", type=int, default=1_000_000)
    p.add_argument("--bases", default="sqlite,postgresql")
    p.add_argument("--generer", metavar="DOSSIER", help=argparse.SUPPRESS)  # usage interne : les fichiers seuls
    p.add_argument("--garder", metavar="DOSSIER", type=Path,
                   help="travaille dans ce dossier (vide) et l'y laisse : fichiers et base SQLite à comparer")
    args = p.parse_args()
    if args.generer:
        generer(Path(args.generer), args.nombre)
        return
    with tempfile.TemporaryDirectory() as tmp:
        dossier = Path(tmp)
        if args.garder:
            args.garder.mkdir(parents=True, exist_ok=True)
            dossier = args.garder.resolve()
        fjsonl = dossier / "factures.jsonl"
        # Dans un processus à part : un processus `regie` lancé par un parent de plusieurs Go hériterait
        # de sa mémoire maximale (le noyau la garde à l'exec) et fausserait la mesure.
        subprocess.run([sys.executable, __file__, "--nombre", str(args.nombre), "--generer", str(dossier)],
                       check=True)
        paiements = [(canal, dossier / nom) for canal, nom in FICHIERS_PAIEMENTS]
        print(f"machine : {platform.node()} {platform.machine()}, {os.cpu_count()} cœurs, Python "
              f"{platform.python_version()} ; {args.nombre} factures et {args.nombre} paiements ; modules compilés : "
              f"{'oui' if natif.a_jour() else 'non (sources Python)'}")
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
            pic = r.pop("pic_mo")
            premiere = sum(v for k, v in r.items() if not k.startswith("seconde"))
            seconde = sum(v for k, v in r.items() if k.startswith("seconde"))
            print(f"{base:10s} : import + rapprochement {premiere:.1f} s (dont factures {r['factures']:.1f} s, "
                  f"paiements et rapprochement {premiere - r['factures']:.1f} s) ; seconde passe {seconde:.1f} s ; "
                  f"mémoire max {pic:.0f} Mo")
            for nom, duree in r.items():
                print(f"    {nom:28s} {duree:7.1f} s")

if __name__ == "__main__":
    main()
