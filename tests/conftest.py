"""Fixtures communes : chaque test du registre tourne sur SQLite et sur PostgreSQL."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from regie.application import Application
from regie.parametres import Environnement, charger_configuration
from regie.registre.modeles import Base

RACINE = Path(__file__).resolve().parents[1]
CONFIG_EXEMPLE = RACINE / "exemples" / "regie.toml"
PG_ADMIN = os.environ.get("REGIE_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
DANS_CI = bool(os.environ.get("CI"))


def _pg_joignable() -> str | None:
    try:
        with create_engine(PG_ADMIN, connect_args={"connect_timeout": 3}).connect() as c:
            c.execute(text("select 1"))
        return None
    except Exception as exc:
        return str(exc).splitlines()[0]


@contextmanager
def base_postgresql_vierge(nom: str) -> Iterator[str]:
    """Une base PostgreSQL neuve (sans table) le temps du bloc ; son URL."""
    admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f'DROP DATABASE IF EXISTS "{nom}"'))
        c.execute(text(f'CREATE DATABASE "{nom}"'))
    try:
        yield PG_ADMIN.rsplit("/", 1)[0] + "/" + nom
    finally:
        with admin.connect() as c:
            c.execute(text(f'DROP DATABASE IF EXISTS "{nom}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(scope="session")
def url_postgresql(worker_id: str) -> Iterator[str]:
    raison = _pg_joignable()
    if raison is not None:
        if DANS_CI or os.environ.get("REGIE_EXIGER_PG"):
            pytest.fail(f"PostgreSQL injoignable ({PG_ADMIN}) : {raison}")
        pytest.skip(f"PostgreSQL injoignable : {raison}")
    with base_postgresql_vierge(f"regie_test_{worker_id}_{os.getpid()}") as url:
        yield url


@pytest.fixture(scope="session")
def _pg_initialisee(url_postgresql: str) -> str:
    app = Application(charger_configuration(CONFIG_EXEMPLE), url=url_postgresql)
    app.initialiser()
    app.moteur.dispose()
    return url_postgresql


def _vider_postgresql(url: str) -> None:
    moteur = create_engine(url)
    tables = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
    with moteur.begin() as c:
        c.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    moteur.dispose()


@pytest.fixture(scope="session")
def _sqlite_modele(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Une base SQLite migrée une fois par session ; chaque test en reçoit une copie (la migration coûte)."""
    chemin = tmp_path_factory.mktemp("modele_sqlite") / "regie.db"
    app = Application(charger_configuration(CONFIG_EXEMPLE), url=f"sqlite:///{chemin}")
    app.initialiser()
    app.moteur.dispose()
    with closing(sqlite3.connect(chemin)) as con:  # tout dans le fichier principal, rien dans le WAL
        con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return chemin


@pytest.fixture(params=["sqlite", "postgresql"])
def url_base(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        modele: Path = request.getfixturevalue("_sqlite_modele")
        shutil.copyfile(modele, tmp_path / "regie.db")
        return f"sqlite:///{tmp_path / 'regie.db'}"
    url: str = request.getfixturevalue("_pg_initialisee")
    _vider_postgresql(url)
    return url


@pytest.fixture
def app(url_base: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Application]:
    """Une application sur une base neuve (SQLite ou PostgreSQL) avec la configuration d'exemple."""
    env = Environnement(database_url=url_base, config=CONFIG_EXEMPLE, donnees=tmp_path / "var")
    application = Application(charger_configuration(CONFIG_EXEMPLE), env, url=url_base)
    application.synchroniser_referentiel()  # la base vient migrée (modèle SQLite, PostgreSQL de session)
    yield application
    application.moteur.dispose()


@pytest.fixture
def regie_cli(app: Application, tmp_path: Path):  # type: ignore[no-untyped-def]
    """Lance la vraie commande `regie` dans un sous-processus, sur la base de `app`."""

    def lancer(*args: str, entree: str | None = None) -> subprocess.CompletedProcess[str]:
        env = dict(os.environ, REGIE_DATABASE_URL=str(app.url), REGIE_CONFIG=str(CONFIG_EXEMPLE),
                   REGIE_DONNEES=str(app.env.donnees))
        return subprocess.run([sys.executable, "-m", "regie.cli", *args], capture_output=True, text=True,
                              env=env, cwd=tmp_path, input=entree, timeout=300, check=False)

    return lancer
