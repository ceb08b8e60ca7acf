"""Environnement Alembic : la connexion vient de `initialiser_schema` (ou d'une URL pour `alembic`)."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

import regie.registre.modeles_pages  # noqa: F401  (comptes et sessions des pages de revue)
from regie.registre.modeles import Base

config = context.config
cible = Base.metadata


def _migrer(connexion: Connection) -> None:
    context.configure(connection=connexion, target_metadata=cible,
                      render_as_batch=connexion.dialect.name == "sqlite", compare_type=True)
    with context.begin_transaction():
        context.run_migrations()


connexion = config.attributes.get("connection")
if connexion is not None:
    _migrer(connexion)
else:
    from regie.registre.moteur import creer_moteur

    url = config.get_main_option("sqlalchemy.url") or "sqlite:///regie.db"
    with creer_moteur(url).connect() as conn:
        _migrer(conn)
        conn.commit()
