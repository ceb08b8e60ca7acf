"""Banc d'essai : la page de statut d'une facture (GET /api/v1/factures/{numero}) sous charge.

    .venv/bin/python bench/api_statut.py --nombre 1000000 --garder [--duree 15] [--passages 3] [--base NOM]

1. Charge N factures dans PostgreSQL (base `regie_bench_api`, ou `--base`) par l'import du projet
   (`regie factures importer`), puis VACUUM ANALYZE (comme l'autovacuum le ferait : sans lui, chaque
   première lecture d'une ligne réécrit sa page, et les premiers passages mesurent des écritures) ;
   `--garder` réutilise la base si elle a déjà N factures.
2. Crée une clé d'API, lance `regie serveur` (uvicorn, `--workers` processus) sur la boucle locale.
3. Chauffe `--chauffe` secondes (non comptées), puis mesure `--passages` fois `--duree` secondes depuis
   un second processus : `wrk` (Debian) si présent, sinon un petit client httpx en fils ; chaque requête
   demande une facture tirée au hasard parmi les N. Affiche req/s, p50, p99 de chaque passage, le temps
   CPU par requête du serveur et de PostgreSQL, et la charge de la machine avant chaque passage.

Par défaut : `regie serveur --workers 2`, wrk à 1 fil et 8 connexions (les deux cœurs sont partagés par
le client, les deux processus du serveur et PostgreSQL ; plus de connexions allongent surtout l'attente en
file : `--connexions 32` pour le voir), 5 s de chauffe puis 3 passages de 15 s.

Objectif : ≥ 1 000 req/s et p99 ≤ 20 ms sur 2 cœurs, à chaque passage.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import psutil
from sqlalchemy import create_engine, func, select, text

RACINE = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(RACINE))

from regie.jeu_essai import ecrire_jsonl, factures  # noqa: E402

PG = os.environ.get("REGIE_BENCH_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
BASE = "regie_bench_api"
DEBIT_VISE, P99_VISE_MS = 1000.0, 20.0
SCRIPT_WRK = """
math.randomseed(os.time())
local n = {n}
request = function()
  return wrk.format("GET", string.format("/api/v1/factures/F2605-%07d", math.random(1, n)))
end
"""


@dataclass
class Passage:
    debit: float
    p50_ms: float
    p99_ms: float
    erreurs: int


def nettoyer(url: str) -> None:
    """VACUUM ANALYZE si une table n'a jamais été nettoyée (l'autovacuum est coupé sur cette machine)."""
    moteur = create_engine(url, isolation_level="AUTOCOMMIT")
    with moteur.connect() as c:
        jamais = c.execute(text("select count(*) from pg_stat_user_tables where n_live_tup > 0 "
                                "and last_vacuum is null and last_autovacuum is null")).scalar_one()
        if jamais:
            debut = time.perf_counter()
            c.execute(text("VACUUM (ANALYZE)"))
            print(f"VACUUM ANALYZE : {time.perf_counter() - debut:.0f} s")
    moteur.dispose()


def preparer_base(nombre: int, garder: bool, env: dict[str, str], dossier: Path, base: str) -> None:
    url = env["REGIE_DATABASE_URL"]
    if garder:
        try:
            from regie.registre.modeles import Facture

            moteur = create_engine(url)
            with moteur.connect() as c:
                deja = c.execute(select(func.count()).select_from(Facture)).scalar_one()
            moteur.dispose()
            if deja == nombre:
                print(f"base {base} gardée : {deja} factures")
                nettoyer(url)
                return
        except Exception:
            pass
    admin = create_engine(PG, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f"DROP DATABASE IF EXISTS {base} WITH (FORCE)"))
        c.execute(text(f"CREATE DATABASE {base}"))
    admin.dispose()
    regie = [sys.executable, "-m", "regie.cli"]
    subprocess.run([*regie, "init"], env=env, check=True, capture_output=True)
    fichier = dossier / "factures.jsonl"
    debut = time.perf_counter()
    ecrire_jsonl(fichier, factures(nombre, dossiers=max(1, nombre // 3)))
    subprocess.run([*regie, "factures", "importer", str(fichier)], env=env, check=True, capture_output=True)
    fichier.unlink()
    print(f"{nombre} factures chargées en {time.perf_counter() - debut:.0f} s")
    nettoyer(url)


def port_libre() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def attendre_serveur(base: str, delai: float = 30.0) -> None:
    import httpx

    limite = time.monotonic() + delai
    while time.monotonic() < limite:
        try:
            if httpx.get(f"{base}/sante", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise SystemExit("le serveur n'a pas démarré")


def en_ms(duree: str) -> float:
    """« 812.00us », « 3.41ms », « 1.02s » (wrk) en millisecondes."""
    m = re.fullmatch(r"([0-9.]+)(us|ms|s|m)", duree)
    if m is None:
        raise ValueError(f"durée wrk illisible : {duree}")
    return float(m.group(1)) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}[m.group(2)]


def mesurer_wrk(base: str, cle: str, nombre: int, duree: int, connexions: int, fils: int,
                dossier: Path, afficher: bool = True) -> Passage:
    script = dossier / "statut.lua"
    script.write_text(SCRIPT_WRK.replace("{n}", str(nombre)))
    commande = ["wrk", f"-t{fils}", f"-c{connexions}", f"-d{duree}s", "--latency", "-s", str(script),
                "-H", f"X-Api-Key: {cle}", base]
    if afficher:
        print("client :", " ".join(commande).replace(cle, "<clé>"))
    sortie = subprocess.run(commande, capture_output=True, text=True, check=True).stdout
    debit = float(re.search(r"Requests/sec:\s+([0-9.]+)", sortie).group(1))  # type: ignore[union-attr]
    quantiles = dict(re.findall(r"^\s+(50|75|90|99)%\s+([0-9.]+\w+)", sortie, re.M))
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", sortie)
    sockets = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", sortie)
    erreurs = (int(non_2xx.group(1)) if non_2xx else 0) + (sum(map(int, sockets.groups())) if sockets else 0)
    return Passage(debit, en_ms(quantiles["50"]), en_ms(quantiles["99"]), erreurs)


def mesurer_python(base: str, cle: str, nombre: int, duree: int, connexions: int) -> Passage:
    import httpx

    latences: list[float] = []
    erreurs = [0]
    verrou = threading.Lock()
    fin = time.monotonic() + duree

    def travailler() -> None:
        rng = random.Random()
        locales: list[float] = []
        with httpx.Client(base_url=base, headers={"X-Api-Key": cle}) as c:
            while time.monotonic() < fin:
                t = time.perf_counter()
                r = c.get(f"/api/v1/factures/F2605-{rng.randint(1, nombre):07d}")
                locales.append(time.perf_counter() - t)
                if r.status_code != 200:
                    erreurs[0] += 1
        with verrou:
            latences.extend(locales)

    fils = [threading.Thread(target=travailler) for _ in range(connexions)]
    debut = time.monotonic()
    for f in fils:
        f.start()
    for f in fils:
        f.join()
    ecoule = time.monotonic() - debut
    q = statistics.quantiles(latences, n=100)
    return Passage(len(latences) / ecoule, q[49] * 1000, q[98] * 1000, erreurs[0])


def temps_cpu(processus: list[psutil.Process]) -> tuple[float, float]:
    """Temps CPU (utilisateur, système) cumulé de ces processus ; ceux qui ont disparu comptent 0."""
    utilisateur = systeme = 0.0
    for p in processus:
        try:
            t = p.cpu_times()
            utilisateur, systeme = utilisateur + t.user, systeme + t.system
        except psutil.Error:
            pass
    return utilisateur, systeme


def postgres() -> list[psutil.Process]:
    return [p for p in psutil.process_iter(["name", "cmdline"])
            if p.info["name"] == "postgres" or (p.info["cmdline"] or [""])[0].startswith("postgres:")]


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--nombre", type=int, default=1_000_000)
    p.add_argument("--duree", type=int, default=15, help="secondes mesurées par passage")
    p.add_argument("--passages", type=int, default=3, help="passages mesurés l'un après l'autre")
    p.add_argument("--chauffe", type=int, default=5, help="secondes de charge non comptées avant de mesurer")
    p.add_argument("--connexions", type=int, default=8)
    p.add_argument("--fils", type=int, default=1, help="fils de wrk")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--base", default=BASE, help="nom de la base PostgreSQL du banc")
    p.add_argument("--garder", action="store_true", help="réutiliser la base si elle a déjà N factures")
    p.add_argument("--client", choices=["wrk", "python"], default="wrk" if shutil.which("wrk") else "python")
    args = p.parse_args()
    if not re.fullmatch(r"[a-z_][a-z0-9_]*", args.base):
        raise SystemExit(f"nom de base refusé : {args.base}")
    print(f"machine : {platform.node()} {platform.machine()}, {os.cpu_count()} cœurs, Python "
          f"{platform.python_version()}")
    with tempfile.TemporaryDirectory() as tmp:
        dossier = Path(tmp)
        env = dict(os.environ, REGIE_DATABASE_URL=PG.rsplit("/", 1)[0] + "/" + args.base,
                   REGIE_CONFIG=str(RACINE / "exemples" / "regie.toml"), REGIE_DONNEES=str(dossier / "var"),
                   REGIE_LOG_NIVEAU="warning")
        preparer_base(args.nombre, args.garder, env, dossier, args.base)
        cle = subprocess.run([sys.executable, "-m", "regie.cli", "cles-api", "creer", "banc"], env=env,
                             check=True, capture_output=True, text=True).stdout.strip()
        port = port_libre()
        serveur = subprocess.Popen([sys.executable, "-m", "regie.cli", "serveur", "--port", str(port),
                                    "--workers", str(args.workers)], env=env)
        base = f"http://127.0.0.1:{port}"
        try:
            attendre_serveur(base)
            print(f"serveur : regie serveur --workers {args.workers} ; {args.nombre} factures ; "
                  f"{args.connexions} connexions ; {args.passages} passage(s) de {args.duree} s")

            def mesurer(duree: int, afficher: bool = True) -> Passage:
                if args.client == "wrk":
                    return mesurer_wrk(base, cle, args.nombre, duree, args.connexions, args.fils, dossier, afficher)
                return mesurer_python(base, cle, args.nombre, duree, args.connexions)

            if args.chauffe > 0:
                chauffe = mesurer(args.chauffe, afficher=False)
                print(f"chauffe ({args.chauffe} s, non comptée) : {chauffe.debit:,.0f} req/s")
            processus_serveur = [psutil.Process(serveur.pid), *psutil.Process(serveur.pid).children(recursive=True)]
            passages: list[Passage] = []
            for n in range(1, args.passages + 1):
                charge = os.getloadavg()[0]
                avant_serveur, avant_pg = temps_cpu(processus_serveur), temps_cpu(postgres())
                r = mesurer(args.duree, afficher=n == 1)
                apres_serveur, apres_pg = temps_cpu(processus_serveur), temps_cpu(postgres())
                requetes = max(1.0, r.debit * args.duree)
                cpu_serveur = apres_serveur[0] + apres_serveur[1] - avant_serveur[0] - avant_serveur[1]
                systeme_serveur = apres_serveur[1] - avant_serveur[1]
                cpu_pg = apres_pg[0] + apres_pg[1] - avant_pg[0] - avant_pg[1]
                atteint = r.debit >= DEBIT_VISE and r.p99_ms <= P99_VISE_MS and r.erreurs == 0
                print(f"passage {n} : {r.debit:,.0f} req/s ; p50 {r.p50_ms:.2f} ms ; p99 {r.p99_ms:.2f} ms ; "
                      f"erreurs {r.erreurs} ; CPU par requête : serveur {cpu_serveur / requetes * 1e6:.0f} µs "
                      f"(dont système {systeme_serveur / requetes * 1e6:.0f}), "
                      f"PostgreSQL {cpu_pg / requetes * 1e6:.0f} µs ; charge avant {charge:.2f} ; "
                      f"{'objectif atteint' if atteint else 'objectif MANQUÉ'}")
                passages.append(r)
            tenus = sum(r.debit >= DEBIT_VISE and r.p99_ms <= P99_VISE_MS and r.erreurs == 0 for r in passages)
            print(f"bilan : {tenus}/{len(passages)} passages ≥ {DEBIT_VISE:,.0f} req/s et p99 ≤ {P99_VISE_MS:.0f} ms ; "
                  f"débit de {min(r.debit for r in passages):,.0f} à {max(r.debit for r in passages):,.0f} req/s, "
                  f"p99 de {min(r.p99_ms for r in passages):.2f} à {max(r.p99_ms for r in passages):.2f} ms")
        finally:
            serveur.terminate()
            serveur.wait(timeout=30)


if __name__ == "__main__":
    main()
