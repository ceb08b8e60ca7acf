"""Le moteur (un par processus), les sessions, et la création ou mise à niveau du schéma."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import structlog
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

log = structlog.get_logger()

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def normaliser_url(url: str) -> str:
    """`postgresql://` sans pilote désigne psycopg 3 (le pilote installé)."""
    if url.startswith("postgresql://"):
        return "postgresql+psycopg://" + url[len("postgresql://"):]
    if url.startswith("postgres://"):
        return "postgresql+psycopg://" + url[len("postgres://"):]
    return url


def creer_moteur(url: str, **options: Any) -> Engine:
    url = normaliser_url(url)
    if url.startswith("sqlite"):
        moteur = create_engine(url, connect_args={"timeout": 60}, **options)

        @event.listens_for(moteur, "connect")
        def _pragmas(dbapi_con: Any, _record: Any) -> None:
            # WAL : lecteurs et écrivain ne se bloquent pas ; clés étrangères vérifiées.
            dbapi_con.isolation_level = None
            cur = dbapi_con.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=60000")
            # 64 Mo de cache : les index d'un million de factures tiennent en mémoire pendant un import.
            cur.execute("PRAGMA cache_size=-65536")
            cur.execute("PRAGMA temp_store=MEMORY")
            cur.close()

        @event.listens_for(moteur, "begin")
        def _begin(conn: Any) -> None:
            # BEGIN IMMEDIATE : l'écrivain prend le verrou d'emblée, pas d'impasse à la montée en écriture.
            conn.exec_driver_sql("BEGIN IMMEDIATE")

        return moteur
    # Le serveur HTTP se passe du ping avant chaque emprunt (un aller-retour par requête) : une
    # connexion coupée est jetée à la première erreur et le pool se renouvelle (pool_recycle).
    ping = os.environ.get("REGIE_PING_CONNEXIONS", "1") != "0"
    return create_engine(url, pool_pre_ping=ping, pool_recycle=1800, **options)


def fabrique_sessions(moteur: Engine) -> sessionmaker[Session]:
    return sessionmaker(moteur, expire_on_commit=False)


@contextmanager
def unite_de_travail(fabrique: sessionmaker[Session]) -> Iterator[Session]:
    """Une transaction : tout est validé ensemble, ou rien."""
    with fabrique() as session, session.begin():
        yield session


def initialiser_schema(moteur: Engine) -> str:
    """Crée ou met à niveau le schéma (Alembic) ; sans effet s'il est à jour. Rend la révision."""
    from alembic import command
    from alembic.config import Config
    from alembic.runtime.migration import MigrationContext

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    with moteur.connect() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")
        conn.commit()
    with moteur.connect() as conn:
        revision = MigrationContext.configure(conn).get_current_revision()
    log.info("schema_a_jour", revision=revision, base=moteur.url.render_as_string(hide_password=True))
    return revision or ""


def schema_a_jour(moteur: Engine) -> bool:
    """Vrai si la base est à la dernière révision du schéma."""
    from alembic.config import Config
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    tete = ScriptDirectory.from_config(cfg).get_current_head()
    with moteur.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision() == tete
