"""Écritures en masse : executemany direct au pilote, valeurs converties par les types des colonnes.

Pour les imports d'un million de lignes : pas de compilation ni d'objet par ligne.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from operator import itemgetter
from typing import Any

from sqlalchemy import Connection, FromClause, Table, text
from sqlalchemy.orm import DeclarativeBase


def table_de(modele: type[DeclarativeBase]) -> Table:
    """La table (Core) d'un modèle, typée comme telle pour les écritures en masse."""
    table = modele.__table__
    assert isinstance(table, Table)
    return table


def inserer(conn: Connection, table: FromClause, lignes: Sequence[Mapping[str, Any]]) -> None:
    if not lignes:
        return
    colonnes = list(lignes[0].keys())
    marque = "?" if conn.dialect.paramstyle == "qmark" else "%s"
    sql = (f"INSERT INTO {table.name} ({', '.join(colonnes)}) "  # type: ignore[attr-defined]
           f"VALUES ({', '.join([marque] * len(colonnes))})")
    lire = itemgetter(*colonnes)
    convertir: list[tuple[int, Callable[[Any], Any], dict[Any, Any]]] = []
    for i, c in enumerate(colonnes):
        proc = table.c[c].type._cached_bind_processor(conn.dialect)
        if proc is not None:
            convertir.append((i, proc, {}))  # les dates se répètent : on convertit chaque valeur une fois
    if len(colonnes) == 1:
        donnees: list[Any] = [(lire(r),) for r in lignes]
    else:
        donnees = [lire(r) for r in lignes]
    if convertir:
        for n, t in enumerate(donnees):
            ligne = list(t)
            for i, f, memo in convertir:
                v = ligne[i]
                if v is None:
                    continue
                if isinstance(v, (dict, list)):  # JSON : pas de mémo possible
                    ligne[i] = f(v)
                    continue
                try:
                    ligne[i] = memo[v]
                except KeyError:
                    ligne[i] = memo[v] = f(v)
            donnees[n] = tuple(ligne)
    if conn.dialect.name == "postgresql":
        # COPY : un seul aller-retour pour tout le lot, au lieu d'un par ligne.
        brute = conn.connection.dbapi_connection
        assert brute is not None
        with brute.cursor() as cur, cur.copy(  # type: ignore[attr-defined]
                f"COPY {table.name} ({', '.join(colonnes)}) FROM STDIN") as copie:  # type: ignore[attr-defined]
            for t in donnees:
                copie.write_row(t)
        return
    conn.exec_driver_sql(sql, donnees)


def reserver_ids(conn: Connection, table: FromClause, n: int) -> list[int]:
    """Réserve n identifiants de clé primaire pour des insertions en masse.

    SQLite : l'import tient le verrou d'écriture (BEGIN IMMEDIATE), max(id) est donc sûr.
    PostgreSQL : la séquence de la colonne.
    """
    nom = table.name  # type: ignore[attr-defined]
    if conn.dialect.name == "postgresql":
        res = conn.execute(text(f"SELECT nextval(pg_get_serial_sequence('{nom}', 'id')) "
                                "FROM generate_series(1, :n)"), {"n": n})
        return [int(x) for x in res.scalars()]
    debut = int(conn.execute(text(f"SELECT coalesce(max(id), 0) FROM {nom}")).scalar_one()) + 1
    return list(range(debut, debut + n))
