"""Statistiques du planificateur PostgreSQL, rafraîchies après un gros import.

Sans elles, PostgreSQL planifie une table d'un million de lignes comme une table vide (parcours
complets à chaque lot du rapprochement) tant que l'autovacuum ne l'a pas analysée, et il peut
être coupé. On reprend sa règle (50 lignes + 10 % de la table), appliquée dès la fin de l'import.
SQLite n'est pas concerné : ses plans ne dépendent que des index.
"""

from __future__ import annotations

from collections.abc import Sequence

import structlog
from sqlalchemy import Engine, text

log = structlog.get_logger()
SEUIL_FIXE = 50  # autovacuum_analyze_threshold
SEUIL_PROPORTION = 0.1  # autovacuum_analyze_scale_factor


def rafraichir_statistiques(moteur: Engine, tables: Sequence[str], nouvelles_lignes: int) -> list[str]:
    """ANALYZE des tables qui viennent de grossir d'au moins 50 lignes + 10 % ; rend celles analysées.

    Après la validation de l'import, dans une transaction à part : l'import reste court et ses verrous
    ne durent pas le temps de l'échantillonnage.
    """
    if moteur.dialect.name != "postgresql" or nouvelles_lignes < SEUIL_FIXE:
        return []
    analysees: list[str] = []
    with moteur.connect() as conn:
        for table in tables:
            # reltuples vaut -1 tant que la table n'a jamais été analysée.
            estimees = conn.execute(text("SELECT reltuples FROM pg_class WHERE oid = CAST(:t AS regclass)"),
                                    {"t": table}).scalar_one()
            if nouvelles_lignes >= SEUIL_FIXE + SEUIL_PROPORTION * max(float(estimees), 0.0):
                conn.exec_driver_sql(f"ANALYZE {table}")
                analysees.append(table)
        conn.commit()
    if analysees:
        log.info("statistiques_rafraichies", tables=analysees, nouvelles_lignes=nouvelles_lignes)
    return analysees
