"""Banc d'essai : la page de statut d'une facture (GET /api/v1/factures/{numero}) sous charge.

    .venv/bin/python bench/api_statut.py --nombre 1000000 [--duree 20] [--connexions 32] [--workers 2]

1. Charge N factures dans PostgreSQL (base `regie_bench_api`) par l'import du projet (`regie factures
   importer`) ; `--garder` réutilise la base si elle a déjà N factures.
2. Crée une clé d'API, lance `regie serveur` (uvicorn, `--workers` processus) sur la boucle locale.
3. Mesure depuis un second processus : `wrk` (Debian) si présent, sinon un petit client httpx en fils ;
   chaque requête demande une facture tirée au hasard parmi les N. Affiche req/s, p50, p99.

Objectif : ≥ 1 000 req/s et p99 ≤ 20 ms sur 2 cœurs.
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
from pathlib import Path

from sqlalchemy import create_engine, func, select, text

RACINE = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(RACINE))

from regie.jeu_essai import ecrire_jsonl, factures  # noqa: E402

PG = os.environ.get("REGIE_BENCH_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
BASE = "regie_bench_api"
SCRIPT_WRK = """
math.randomseed(os.time())
local n = {n}
request = function()
  return wrk.format("GET", string.format("/api/v1/factures/F2605-%07d", math.random(1, n)))
end
"""


def preparer_base(nombre: int, garder: bool, env: dict[str, str], dossier: Path) -> None:
    url = env["REGIE_DATABASE_URL"]
    if garder:
        try:
            from regie.registre.modeles import Facture

            moteur = create_engine(url)
            with moteur.connect() as c:
                deja = c.execute(select(func.count()).select_from(Facture)).scalar_one()
            moteur.dispose()
            if deja == nombre:
                print(f"base {BASE} gardée : {deja} factures")
                return
        except Exception:
            pass
    admin = create_engine(PG, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f"DROP DATABASE IF EXISTS {BASE} WITH (FORCE)"))
        c.execute(text(f"CREATE DATABASE {BASE}"))
    admin.dispose()
    regie = [sys.executable, "-m", "regie.cli"]
    subprocess.run([*regie, "init"], env=env, check=True, capture_output=True)
    fichier = dossier / "factures.jsonl"
    debut = time.perf_counter()
    ecrire_jsonl(fichier, factures(nombre, dossiers=max(1, nombre // 3)))
    subprocess.run([*regie, "factures", "importer", str(fichier)], env=env, check=True, capture_output=True)
    fichier.unlink()
    moteur = create_engine(url)
    with moteur.begin() as c:
        c.execute(text("ANALYZE"))
    moteur.dispose()
    print(f"{nombre} factures chargées en {time.perf_counter() - debut:.0f} s")


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


def mesurer_wrk(base: str, cle: str, nombre: int, duree: int, connexions: int, dossier: Path) -> None:
    script = dossier / "statut.lua"
    script.write_text(SCRIPT_WRK.replace("{n}", str(nombre)))
    commande = ["wrk", "-t2", f"-c{connexions}", f"-d{duree}s", "--latency", "-s", str(script),
                "-H", f"X-Api-Key: {cle}", base]
    print("client :", " ".join(commande).replace(cle, "<clé>"))
    sortie = subprocess.run(commande, capture_output=True, text=True, check=True).stdout
    debit = float(re.search(r"Requests/sec:\s+([0-9.]+)", sortie).group(1))  # type: ignore[union-attr]
    quantiles = dict(re.findall(r"^\s+(50|75|90|99)%\s+([0-9.]+\w+)", sortie, re.M))
    erreurs = re.search(r"Non-2xx or 3xx responses: (\d+)", sortie)
    print(f"résultat : {debit:,.0f} req/s ; p50 {quantiles.get('50')} ; p90 {quantiles.get('90')} ; "
          f"p99 {quantiles.get('99')} ; réponses non 2xx : {erreurs.group(1) if erreurs else 0}")


def mesurer_python(base: str, cle: str, nombre: int, duree: int, connexions: int) -> None:
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
    print(f"résultat (client Python) : {len(latences) / ecoule:,.0f} req/s ; p50 {q[49] * 1000:.2f} ms ; "
          f"p99 {q[98] * 1000:.2f} ms ; erreurs {erreurs[0]}")


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--nombre", type=int, default=1_000_000)
    p.add_argument("--duree", type=int, default=20)
    p.add_argument("--connexions", type=int, default=32)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--garder", action="store_true", help="réutiliser la base si elle a déjà N factures")
    p.add_argument("--client", choices=["wrk", "python"], default="wrk" if shutil.which("wrk") else "python")
    args = p.parse_args()
    print(f"machine : {platform.node()} {platform.machine()}, {os.cpu_count()} cœurs, Python "
          f"{platform.python_version()}")
    with tempfile.TemporaryDirectory() as tmp:
        dossier = Path(tmp)
        env = dict(os.environ, REGIE_DATABASE_URL=PG.rsplit("/", 1)[0] + "/" + BASE,
                   REGIE_CONFIG=str(RACINE / "exemples" / "regie.toml"), REGIE_DONNEES=str(dossier / "var"),
                   REGIE_LOG_NIVEAU="warning")
        preparer_base(args.nombre, args.garder, env, dossier)
        cle = subprocess.run([sys.executable, "-m", "regie.cli", "cles-api", "creer", "banc"], env=env,
                             check=True, capture_output=True, text=True).stdout.strip()
        port = port_libre()
        serveur = subprocess.Popen([sys.executable, "-m", "regie.cli", "serveur", "--port", str(port),
                                    "--workers", str(args.workers)], env=env)
        base = f"http://127.0.0.1:{port}"
        try:
            attendre_serveur(base)
            print(f"serveur : regie serveur --workers {args.workers} ; {args.nombre} factures ; "
                  f"{args.connexions} connexions ; {args.duree} s")
            if args.client == "wrk":
                mesurer_wrk(base, cle, args.nombre, args.duree, args.connexions, dossier)
            else:
                mesurer_python(base, cle, args.nombre, args.duree, args.connexions)
        finally:
            serveur.terminate()
            serveur.wait(timeout=30)


if __name__ == "__main__":
    main()
