"""Plancher du stockage : ce que coûtent les seules écritures du registre, sans Python ni lecture de fichier.

    .venv/bin/python bench/plancher_stockage.py [--nombre 1000000] [--bases sqlite,postgresql]

Sur le vrai schéma (`regie init`), chaque base génère elle-même ses données et les écrit par des
`INSERT … SELECT` et des `UPDATE` ensemblistes : aucun aller-retour, aucune conversion côté Python,
aucun contrôle métier. C'est une borne basse de tout import et de tout rapprochement :

- côté factures : N factures (leurs 3 lignes dans la facture, en JSON) et leur état (ce qu'écrit
  `regie factures importer` ; l'émission d'une facture n'est pas recopiée dans le compte famille) ;
- côté paiements : N paiements, N affectations (parts par ligne en JSON ; l'affectation du moteur est
  aussi l'écriture du compte famille), puis les mises à jour de l'état des factures et des paiements
  (ce qu'écrivent l'import des paiements et le rapprochement quand chaque paiement solde sa facture).

Deux variantes : le schéma tel quel, et un schéma « allégé » sans clés étrangères ni les index
secondaires de `facture` et `etat_facture` qui servent aux suggestions, aux comptes et aux reprises :
ce que coûterait le même travail si l'on renonçait à ces services.
"""

from __future__ import annotations

import argparse
import os
import platform
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import psycopg

RACINE = Path(__file__).resolve().parent.parent
PG = os.environ.get("REGIE_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
INDEX_FACULTATIFS = ("ix_facture_cree_le", "ix_facture_dossier_id", "ix_facture_refdet", "ix_etat_facture_reste_du")
LIGNES = ('[[1,"CANTINE","Repas","Noé ROUX","2017-11-28",800,350,2800,false],'
          '[2,"CRECHE","Heures de crèche","Inès ROUX","2022-10-20",1600,175,2800,true],'
          '[3,"PERISCOLAIRE","Accueil du soir","Gabriel ROUX","2016-09-27",1244,225,2800,false]]')
DETAILS = ('{"remise":"RC-000001","numero_cheque":"1234567","tireur":"ROUX SOPHIE","banque":"CCM",'
           '"facture":"F2605-0000001"}')

# Expressions propres à chaque base : numéros formatés, aléa, empreinte hexadécimale, instant.
EXPR = {
    "sqlite": {"num": "printf('%07d', v)", "alea": "abs(random()) % {n}", "hex": "hex(randomblob(32))",
               "instant": "'2026-11-25 10:00:00.000000'", "vrai": "1", "faux": "0"},
    "postgresql": {"num": "lpad(v::text, 7, '0')", "alea": "floor(random() * {n})::bigint",
                   "hex": "md5(random()::text) || md5(random()::text)", "instant": "'2026-11-25 10:00:00+00'",
                   "vrai": "true", "faux": "false"},
}


def dossiers(n: int) -> int:
    return min(n, 100_000)


def etapes(dialecte: str, n: int) -> list[tuple[str, str, str]]:
    e = EXPR[dialecte]
    alea_dossier = e["alea"].format(n=dossiers(n))
    return [
        ("factures", "facture", f"""
            INSERT INTO facture (id, numero, regie_code, dossier_id, emise_le, echeance, periode, montant, refdet,
                civilite, nom, prenom, payeur_cle, email, adresse1, adresse2, code_postal, ville, lignes, empreinte,
                fichier_id, cree_le)
            SELECT v, 'F2605-' || {e['num']}, 'ENFANCE', 1 + {alea_dossier}, '2026-04-27', '2026-05-27',
                '2026-05', 8400, 'F2605' || {e['num']}, 'M', 'ROUX', 'Sophie', 'ROUX SOPHIE', 'famille@example.fr',
                '15 rue des Écoles', NULL, '94270', 'LE KREMLIN-BICÊTRE', '{LIGNES}', {e['hex']}, NULL, {e['instant']}
            FROM s"""),
        ("factures", "état", """
            INSERT INTO etat_facture (facture_id, montant, paye, avoirs, statut, payeur_cle)
            SELECT id, montant, 0, 0, 'emise', payeur_cle FROM facture ORDER BY id"""),
        ("paiements", "paiements", f"""
            INSERT INTO paiement (id, canal, reference, montant, recu_le, reference_facture, details, brut, ligne,
                empreinte, affecte, en_credit, rembourse, statut, decision_manuelle, version, cree_le)
            SELECT v, 'cheque', 'RC-000001/' || {e['num']}, 8400, {e['instant']}, 'F2605-' || {e['num']},
                '{DETAILS}', 'RC-000001;' || {e['num']} || ';ROUX SOPHIE;CCM;84.00;F2605-' || {e['num']}
                || ';2026-06-02', v + 1, {e['hex']}, 0, 0, 0, 'a_traiter', {e['faux']}, 1, {e['instant']}
            FROM s"""),
        ("paiements", "affectations", f"""
            INSERT INTO affectation (paiement_id, facture_id, montant, parts, regle, preuve, auteur, cree_le,
                imputation)
            SELECT id, id, montant, '[[1,2800],[2,2800],[3,2800]]', 'cheque_numero_facture', '{DETAILS}',
                'systeme', {e['instant']}, 'du'
            FROM facture ORDER BY id"""),
        ("paiements", "factures payées", "UPDATE etat_facture SET paye = montant, statut = 'payee'"),
        ("paiements", "paiements affectés", f"UPDATE paiement SET affecte = montant, statut = 'affecte', "
                                            f"dossier_id = 1 + (id % {dossiers(n)}), version = version + 1"),
    ]


def initialiser(url: str) -> None:
    env = dict(os.environ, REGIE_DATABASE_URL=url, REGIE_CONFIG=str(RACINE / "exemples" / "regie.toml"))
    subprocess.run([sys.executable, "-m", "regie.cli", "init"], env=env, check=True, capture_output=True, cwd=RACINE)


def mesurer(executer: Callable[[str], None], valider: Callable[[], None], dialecte: str,
            n: int) -> dict[str, float]:
    """Chaque côté (factures, paiements) dans sa propre transaction, comme les vraies commandes."""
    temps: dict[str, float] = {}
    for cote in ("factures", "paiements"):
        debut = time.perf_counter()
        for c, nom, sql in etapes(dialecte, n):
            if c != cote:
                continue
            t = time.perf_counter()
            executer(sql)
            temps[f"{cote} / {nom}"] = time.perf_counter() - t
        t = time.perf_counter()
        valider()
        temps[f"{cote} / validation"] = time.perf_counter() - t
        temps[cote] = time.perf_counter() - debut
    return temps


def sqlite(n: int, allege: bool) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as dossier:
        chemin = Path(dossier) / "plancher.db"
        initialiser(f"sqlite:///{chemin}")
        c = sqlite3.connect(chemin, isolation_level=None)
        # Les réglages de regie.registre.moteur.
        for p in ("journal_mode=WAL", "synchronous=NORMAL", "cache_size=-65536", "temp_store=MEMORY"):
            c.execute(f"PRAGMA {p}")
        c.execute(f"PRAGMA foreign_keys={'OFF' if allege else 'ON'}")
        if allege:
            for ix in INDEX_FACULTATIFS:
                c.execute(f"DROP INDEX {ix}")
        c.execute("CREATE TEMP TABLE s (v INTEGER PRIMARY KEY)")
        c.execute(f"INSERT INTO s WITH RECURSIVE g(v) AS (SELECT 1 UNION ALL SELECT v + 1 FROM g WHERE v < {n}) "
                  "SELECT v FROM g")
        c.execute("INSERT INTO dossier (id, numero, cree_le) SELECT v, 'D' || printf('%06d', v), "
                  f"'2026-01-01 00:00:00' FROM s WHERE v <= {dossiers(n)}")
        etat = {"ouverte": False}

        def executer(sql: str) -> None:
            if not etat["ouverte"]:
                c.execute("BEGIN IMMEDIATE")
                etat["ouverte"] = True
            c.execute(sql)

        def valider() -> None:
            c.execute("COMMIT")
            etat["ouverte"] = False

        try:
            return mesurer(executer, valider, "sqlite", n)
        finally:
            c.close()


def postgresql(n: int, allege: bool) -> dict[str, float]:
    with psycopg.connect(PG, autocommit=True) as a:
        a.execute("DROP DATABASE IF EXISTS regie_plancher")
        a.execute("CREATE DATABASE regie_plancher")
    base = PG.rsplit("/", 1)[0] + "/regie_plancher"
    try:
        initialiser(base.replace("postgresql://", "postgresql+psycopg://", 1))
        with psycopg.connect(base) as c:
            if allege:
                cles = c.execute("SELECT conrelid::regclass::text, conname FROM pg_constraint WHERE contype = 'f' "
                                 "AND conrelid::regclass::text IN ('facture', 'etat_facture', 'paiement', "
                                 "'affectation', 'mouvement_compte')").fetchall()
                for table, cle in cles:
                    c.execute(f"ALTER TABLE {table} DROP CONSTRAINT {cle}".encode())
                for ix in INDEX_FACULTATIFS:
                    c.execute(f"DROP INDEX {ix}")
            c.execute(f"CREATE TABLE s AS SELECT generate_series(1, {n}) AS v")
            c.execute("INSERT INTO dossier (id, numero, cree_le) SELECT v, 'D' || lpad(v::text, 6, '0'), now() "
                      f"FROM s WHERE v <= {dossiers(n)}")
            c.commit()

            def executer(sql: str) -> None:
                c.execute(sql.encode())

            return mesurer(executer, c.commit, "postgresql", n)
    finally:
        with psycopg.connect(PG, autocommit=True) as a:
            a.execute("DROP DATABASE IF EXISTS regie_plancher")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nombre", type=int, default=1_000_000)
    parser.add_argument("--bases", default="sqlite,postgresql")
    args = parser.parse_args()
    n = args.nombre
    print(f"machine : {platform.node()} {platform.machine()}, {os.cpu_count()} cœurs, Python "
          f"{platform.python_version()}, SQLite {sqlite3.sqlite_version} ; {n} factures et {n} paiements")
    for base in args.bases.split(","):
        for allege in (False, True):
            temps = (sqlite if base == "sqlite" else postgresql)(n, allege)
            variante = "allégé (sans clés étrangères, 4 index de moins)" if allege else "schéma tel quel"
            f, p = temps["factures"], temps["paiements"]
            print(f"{base:10} {variante} : factures {f:.1f} s ({f / n * 1e6:.1f} µs/facture, "
                  f"{n / f:,.0f}/s) ; paiements {p:.1f} s ({p / n * 1e6:.1f} µs/paiement) ; "
                  f"ensemble {f + p:.1f} s", flush=True)
            for etape, duree in temps.items():
                if " / " in etape:
                    print(f"    {etape:32} {duree:6.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
