"""Les migrations : le schéma qu'elles construisent est celui des modèles, et une base d'une révision
antérieure monte sans rien perdre (SQLite et PostgreSQL)."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy import text

import regie.registre.modeles_pages  # noqa: F401  (les tables des pages sont dans le même schéma)
from regie.application import Application
from regie.parametres import Environnement, charger_configuration
from regie.registre.modeles import Base
from regie.registre.moteur import MIGRATIONS, creer_moteur
from tests.conftest import CONFIG_EXEMPLE, base_postgresql_vierge
from tests.scenarios import FACTURE, Scenario, autre


@pytest.fixture(params=["sqlite", "postgresql"])
def url_vierge(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """Une base sans aucune table : chaque test y choisit sa révision."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'regie.db'}"
        return
    # Joignable (sinon échec en CI, saut ailleurs) ; la base de session, elle, est déjà migrée.
    session = request.getfixturevalue("url_postgresql")
    with base_postgresql_vierge(session.rsplit("/", 1)[1] + "_migration") as url:
        yield url


def _migrer(url: str, revision: str, *, descendre: bool = False) -> None:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    moteur = creer_moteur(url)
    with moteur.connect() as conn:
        cfg.attributes["connection"] = conn
        (command.downgrade if descendre else command.upgrade)(cfg, revision)
        conn.commit()
    moteur.dispose()


def test_le_schema_des_migrations_est_celui_des_modeles(url_vierge: str) -> None:
    _migrer(url_vierge, "head")
    moteur = creer_moteur(url_vierge)
    with moteur.connect() as conn, warnings.catch_warnings():
        # Les index sur expression ne se relisent pas : Alembic le dit et ne les compare pas.
        warnings.simplefilter("ignore")
        ecarts = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata)
    moteur.dispose()
    assert ecarts == []


def test_une_base_d_avant_la_cle_du_payeur_dans_l_etat_monte_et_trouve_la_famille_du_tireur(
        url_vierge: str, tmp_path: Path) -> None:
    """Les factures importées avant la révision 0002 reçoivent la clé de leur payeur : un chèque sans
    facture retrouve ensuite la famille de son tireur, et ce que la facture a reçu avant reste compté."""
    _migrer(url_vierge, "head")
    env = Environnement(database_url=url_vierge, config=CONFIG_EXEMPLE, donnees=tmp_path / "var")
    app = Application(charger_configuration(CONFIG_EXEMPLE), env, url=url_vierge)
    app.synchroniser_referentiel()
    sc = Scenario(app, tmp_path)
    durand = {**FACTURE["payeur"], "nom": "Durand-Lefèvre", "prenom": "Paul"}
    sc.factures(autre("F01-26-05-0000910", "30.00", dossier="D000910", payeur=durand),
                autre("F01-26-05-0000911", "20.00", dossier="D000911", payeur=durand))
    sc.cheques(("RC-1", "1", "DURAND PAUL", "10.00", "F01-26-05-0000910"))
    app.moteur.dispose()

    # La base telle que l'aurait laissée la révision 0001 : sans la colonne ni son index.
    _migrer(url_vierge, "0001", descendre=True)
    moteur = creer_moteur(url_vierge)
    with moteur.connect() as c:
        colonnes = {d[0] for d in c.exec_driver_sql("SELECT * FROM etat_facture").cursor.description}
    assert "payeur_cle" not in colonnes and "reste_du" in colonnes
    moteur.dispose()

    app = Application(charger_configuration(CONFIG_EXEMPLE), env, url=url_vierge)
    app.initialiser()  # `regie init` : monte à la tête
    with app.moteur.connect() as c:
        cles = dict(c.execute(text("SELECT f.numero, e.payeur_cle FROM etat_facture e "
                                   "JOIN facture f ON f.id = e.facture_id")).all())
    assert cles == {"F01-26-05-0000910": "DURAND LEFEVRE PAUL", "F01-26-05-0000911": "DURAND LEFEVRE PAUL"}
    sc.app = app
    # Reste 20.00 sur les deux : le tireur ne choisit pas ; il paie les 10.00 restants d'une, par son montant.
    sc.cheques(("RC-2", "2", "M. PAUL DURAND LEFEVRE", "20.00", ""))
    assert sc.paiement("cheque", "RC-2/2")["anomalie"] == "AMBIGU"
    sc.cheques(("RC-3", "3", "DURAND-LEFEVRE PAUL", "10.00", "F01-26-05-0000911"))
    sc.cheques(("RC-4", "4", "PAUL DURAND LEFEVRE", "10.00", ""))
    assert sc.paiement("cheque", "RC-4/4")["affectations"] == [{"facture": "F01-26-05-0000911", "montant": "10.00"}]
    assert sc.facture("F01-26-05-0000910")["statut"] == "partiellement_payee"
    app.moteur.dispose()


def test_les_numeros_et_references_se_comparent_octet_par_octet(url_vierge: str) -> None:
    """Sous PostgreSQL, la collation « C » que déclarent les modèles (Alembic ne compare pas les collations) : les
    numéros se trient comme sous SQLite, quelle que soit la langue de la base."""
    _migrer(url_vierge, "head")
    moteur = creer_moteur(url_vierge)
    with moteur.connect() as conn:
        if conn.dialect.name == "postgresql":
            collations = dict(((t, c), k) for t, c, k in conn.execute(text(
                "SELECT table_name, column_name, collation_name FROM information_schema.columns "
                "WHERE table_schema = current_schema()")))
            attendues = {(t.name, c.name): c.type.dialect_impl(conn.dialect).collation
                         for t in Base.metadata.sorted_tables for c in t.columns
                         if getattr(c.type.dialect_impl(conn.dialect), "collation", None)}
            assert attendues and all(collations[cle] == k for cle, k in attendues.items())
        conn.execute(text("INSERT INTO dossier (numero, cree_le) VALUES ('D-b', '2026-12-03'), ('D-B', '2026-12-03'), "
                          "('D-a', '2026-12-03')"))
        assert [n for n, in conn.execute(text("SELECT numero FROM dossier ORDER BY numero"))] == ["D-B", "D-a", "D-b"]
    moteur.dispose()
