"""Mises à jour en masse : un UPDATE paramétré, exécuté d'un coup au pilote (executemany).

Pour les lots du rapprochement : ni compilation ni traitement des paramètres ligne à ligne par
SQLAlchemy. Les valeurs doivent être déjà dans leur forme de base (entiers, textes, NULL).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from sqlalchemy import Connection
from sqlalchemy.engine import Dialect

from regie.registre.masse import Ecriture, executer_ecritures, preparer_paquets


def mettre_a_jour(conn: Connection, table: str, affectations: Sequence[str], cle: str,
                  lignes: Sequence[Sequence[Any]], types: Sequence[str]) -> None:
    """UPDATE table SET <affectations> WHERE cle = ? pour chaque ligne (ses paramètres, la clé en dernier).

    `affectations` : des expressions SQL où `{}` marque chaque paramètre, ex. « affecte = affecte + {} » ;
    `types` : le type SQL de chaque paramètre, clé comprise (PostgreSQL). Une clé ne figure qu'une fois.
    """
    executer_ecritures(conn, preparer_mise_a_jour(conn.dialect, table, affectations, cle, lignes, types))


def preparer_mise_a_jour(dialect: Dialect, table: str, affectations: Sequence[str], cle: str,
                         lignes: Sequence[Sequence[Any]], types: Sequence[str]) -> list[Ecriture]:
    """Les instructions de `mettre_a_jour`, sans les exécuter."""
    if not lignes:
        return []
    if dialect.name == "postgresql":
        # Une seule requête : les paramètres en colonnes (un tableau par colonne), joints par la clé.
        # Sinon un aller-retour et une exécution par ligne.
        n = len(types) - 1
        noms = iter(f"v.p{i}" for i in range(n))
        ensembles = [_remplir(a, noms) for a in affectations]
        colonnes = ", ".join(f"%s::{t}[]" for t in types)
        alias = ", ".join([*(f"p{i}" for i in range(n)), "cle"])
        sql = (f"UPDATE {table} SET {', '.join(ensembles)} FROM unnest({colonnes}) AS v({alias}) "
               f"WHERE {table}.{cle} = v.cle")
        return [Ecriture(sql, tuple(list(c) for c in zip(*lignes, strict=True)))]
    # SQLite : UPDATE … FROM (VALUES …) par paquets de rangées, une instruction par paquet plutôt qu'une
    # exécution par rangée.
    n = len(lignes[0])
    valeurs = iter(f"v.column{i}" for i in range(1, n))
    affecter = ", ".join(_remplir(a, valeurs) for a in affectations)
    rangee = "(" + ", ".join("?" * n) + ")"
    return preparer_paquets(lambda k: (f"UPDATE {table} SET {affecter} FROM (VALUES {', '.join([rangee] * k)}) "
                                       f"AS v WHERE {table}.{cle} = v.column{n}"), lignes, n)


def _remplir(gabarit: str, noms: Iterator[str]) -> str:
    morceaux = gabarit.split("{}")
    return morceaux[0] + "".join(next(noms) + m for m in morceaux[1:])

