"""Le moteur (un par processus), les sessions, et la création ou mise à niveau du schéma."""

from __future__ import annotations

import os
import threading
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import structlog
from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

if TYPE_CHECKING:
    import psycopg

log = structlog.get_logger()

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


ATTENTE_VERROU_MS = 60_000  # SQLite : attente du verrou d'écriture tenu par un autre processus


def normaliser_url(url: str) -> str:
    """`postgresql://` sans pilote désigne psycopg 3 (le pilote installé)."""
    if url.startswith("postgresql://"):
        return "postgresql+psycopg://" + url[len("postgresql://"):]
    if url.startswith("postgres://"):
        return "postgresql+psycopg://" + url[len("postgres://"):]
    return url


def creer_moteur(url: str, *, lecture: bool = False, **options: Any) -> Engine:
    """Le moteur de la base. SQLite : chaque transaction prend le verrou d'écriture d'emblée, sauf sur
    le moteur de `lecture` (des lectures seules, qui ne doivent pas attendre un écrivain)."""
    url = normaliser_url(url)
    if url.startswith("sqlite"):
        moteur = create_engine(url, connect_args={"timeout": 60}, **options)

        @event.listens_for(moteur, "connect")
        def _pragmas(dbapi_con: Any, _record: Any) -> None:
            # WAL : lecteurs et écrivain ne se bloquent pas ; clés étrangères vérifiées.
            dbapi_con.isolation_level = None
            cur = dbapi_con.cursor()
            # Pages de 8 Kio (prises en compte à la création de la base) : un import en écrit 7 % plus vite.
            cur.execute("PRAGMA page_size=8192")
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute(f"PRAGMA busy_timeout={ATTENTE_VERROU_MS}")
            # 256 Mo de cache (alloués à l'usage) : les index d'un million de factures et les pages que le
            # rapprochement relit tiennent en mémoire. Mesuré sur 400 000 chèques : 57 s avec 64 Mo, 41 à
            # 50 s avec 256, rien de plus avec 512 (BENCHMARKS.md).
            cur.execute("PRAGMA cache_size=-262144")
            cur.execute("PRAGMA temp_store=MEMORY")
            cur.close()

        # BEGIN IMMEDIATE : l'écrivain prend le verrou d'emblée, pas d'impasse à la montée en écriture.
        # Les lectures seules : BEGIN différé, un instantané du WAL, sans attendre l'import de la nuit.
        debut = "BEGIN" if lecture else "BEGIN IMMEDIATE"

        @event.listens_for(moteur, "begin")
        def _begin(conn: Any) -> None:
            conn.exec_driver_sql(debut)

        return moteur
    return create_engine(url, pool_pre_ping=_ping(), pool_recycle=1800, **options)


def _ping() -> bool:
    # Le serveur HTTP se passe du ping avant chaque emprunt (un aller-retour par requête) : une
    # connexion coupée est jetée à la première erreur et le pool se renouvelle (pool_recycle).
    return os.environ.get("REGIE_PING_CONNEXIONS", "1") != "0"


_LECTURE: weakref.WeakKeyDictionary[Engine, Engine] = weakref.WeakKeyDictionary()
_VERROU_LECTURE = threading.Lock()


def moteur_lecture(moteur: Engine) -> Engine:
    """Le moteur des lectures seules (API, pages, état) : la même base, son propre pool.

    PostgreSQL : en autocommit, un aller-retour par requête SQL au lieu de trois (BEGIN, requête, ROLLBACK
    au retour au pool), et psycopg y garde ses requêtes préparées côté serveur (un ROLLBACK les oublie
    toutes). Même cohérence qu'avant : en READ COMMITTED chaque requête a déjà son propre instantané. Un
    pool à part plutôt qu'une bascule d'autocommit à chaque emprunt (deux attentes psycopg par requête).
    SQLite : un BEGIN différé au lieu d'IMMEDIATE ; la lecture voit le dernier état validé, pendant
    qu'un import tient le verrou d'écriture. Créé au premier besoin, fermé avec `moteur`.
    """
    with _VERROU_LECTURE:
        lecture = _LECTURE.get(moteur)
        if lecture is None:
            if moteur.dialect.name == "postgresql":
                # Pas de ROLLBACK au retour au pool : en autocommit aucune transaction n'y reste ouverte.
                lecture = create_engine(moteur.url, isolation_level="AUTOCOMMIT", pool_reset_on_return=None,
                                        pool_pre_ping=_ping(), pool_recycle=1800)
            elif moteur.url.database in (None, "", ":memory:"):
                return moteur  # une base en mémoire n'existe que pour sa connexion
            else:
                lecture = creer_moteur(moteur.url.render_as_string(hide_password=False), lecture=True)
            event.listen(moteur, "engine_disposed", lambda _conn: lecture.dispose())
            _LECTURE[moteur] = lecture
        return lecture


@contextmanager
def ecriture_sans_attendre(moteur: Engine) -> Iterator[Connection | None]:
    """Une transaction d'écriture si le verrou est libre tout de suite, sinon None (SQLite).

    Pour les écritures accessoires d'une requête (l'heure de la dernière visite d'une session, d'un usage
    de clé) : pendant l'import de la nuit, qui tient le verrou d'écriture de SQLite, la page répond
    sans elles plutôt que d'attendre la fin de l'import.
    """
    if moteur.dialect.name != "sqlite":
        with moteur.begin() as conn:
            yield conn
        return
    with moteur.connect() as conn, attente_du_verrou(conn, 0):
        try:
            transaction = conn.begin()
        except OperationalError:  # « database is locked » : un écrivain tient le verrou
            yield None
            return
        with transaction:
            yield conn


@contextmanager
def attente_du_verrou(conn: Connection, attente_ms: int) -> Iterator[None]:
    """SQLite : ce qu'attend le verrou d'écriture la transaction que `conn` va ouvrir, puis l'attente ordinaire.

    Réglé par le pilote, hors transaction (avant BEGIN) ; sans effet sous PostgreSQL.
    """
    pilote = conn.connection.driver_connection
    if conn.dialect.name != "sqlite" or pilote is None:
        yield
        return
    pilote.execute(f"PRAGMA busy_timeout={attente_ms}")
    try:
        yield
    finally:
        pilote.execute(f"PRAGMA busy_timeout={ATTENTE_VERROU_MS}")


@contextmanager
def connexion_lecture(moteur: Engine) -> Iterator[Connection]:
    """Une connexion pour des lectures seules (les pages de l'API) : voir `moteur_lecture`."""
    with moteur_lecture(moteur).connect() as conn:
        yield conn


@contextmanager
def curseur_psycopg(moteur: Engine) -> Iterator[psycopg.Cursor[Any]]:
    """Un curseur psycopg sur un emprunt au pool de `moteur_lecture` (PostgreSQL seulement).

    Pour la page de statut d'une facture (l'appel le plus fréquent du portail) : sans l'exécution de
    SQLAlchemy, avec une requête préparée (`prepare=True`), et un curseur gardé avec sa connexion (le
    recréer coûtait autant que la requête côté client). La connexion est jetée si elle est coupée.
    """
    emprunt = moteur_lecture(moteur).raw_connection()
    brute: psycopg.Connection[Any] = emprunt.driver_connection  # type: ignore[assignment]
    try:
        curseur: psycopg.Cursor[Any] | None = emprunt.info.get("curseur_psycopg")
        if curseur is None or curseur.closed or curseur.connection is not brute:
            curseur = emprunt.info["curseur_psycopg"] = brute.cursor()
        yield curseur
    except BaseException:
        if brute.broken or brute.closed:
            emprunt.invalidate()
        raise
    finally:
        emprunt.close()


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
