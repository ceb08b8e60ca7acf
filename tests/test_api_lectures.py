"""Les lectures de l'API : sur PostgreSQL pool à part en autocommit, curseur psycopg, connexion coupée ; sur SQLite
sans attendre l'écrivain."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import timedelta

import pytest
from psycopg import OperationalError
from sqlalchemy import Engine, select, text
from sqlalchemy.pool import QueuePool

from regie.api import lectures
from regie.application import Application
from regie.pages.auth import agent_de_la_session, creer_utilisateur, se_connecter
from regie.pages.requetes import FiltresFile, file_revue
from regie.registre.modeles_pages import SessionAgent
from regie.registre.moteur import connexion_lecture, creer_moteur, curseur_psycopg, moteur_lecture
from regie.registre.types import maintenant
from regie.services.etat import etat
from regie.services.factures import pousser_objets
from regie.services.payfip import aujourd_hui_paris
from tests.test_payfip_parcours import facture_json, trois_factures


def _postgresql(app: Application) -> None:
    if app.moteur.dialect.name != "postgresql":
        pytest.skip("PostgreSQL seulement")


def test_sur_sqlite_les_lectures_n_attendent_pas_l_import_qui_tient_le_verrou(app: Application) -> None:
    """L'import de la nuit tient le verrou d'écriture de SQLite pendant toute sa transaction : l'état,
    la file de revue et la session d'un agent (dont l'heure de visite n'est alors pas notée) répondent
    quand même, avec le dernier état validé. Avant, chaque lecture attendait la fin de l'import."""
    if app.moteur.dialect.name != "sqlite":
        pytest.skip("SQLite seulement")
    pousser_objets(app, [facture_json("F01-26-05-0000123")])
    creer_utilisateur(app, "agent.martin", "agent", "un mot de passe assez long")
    jeton = se_connecter(app, "agent.martin", "un mot de passe assez long").jeton
    tient, relache = threading.Event(), threading.Event()

    def import_en_cours() -> None:
        with app.moteur.begin() as conn:  # BEGIN IMMEDIATE : le verrou d'écriture, jusqu'à la fin
            conn.execute(text("UPDATE etat_facture SET paye = paye"))
            tient.set()
            relache.wait(120)

    ecrivain = threading.Thread(target=import_en_cours)
    ecrivain.start()
    try:
        assert tient.wait(30)
        assert [f["numero"] for f in etat(app)["factures"]] == ["F01-26-05-0000123"]
        assert file_revue(app, FiltresFile()).total == 0
        agent = agent_de_la_session(app, jeton, maintenant() + timedelta(minutes=5))
        assert agent is not None and agent.identifiant == "agent.martin"
        assert ecrivain.is_alive()  # tout cela sans que l'import ait fini
    finally:
        relache.set()
        ecrivain.join()
    with app.sessions() as s:  # la visite n'a pas été notée : le verrou n'était pas libre
        vue_le = s.scalar(select(SessionAgent.vue_le))
    assert vue_le is not None and vue_le < maintenant() + timedelta(minutes=1)


def test_les_lectures_ont_leur_pool_en_autocommit_ferme_avec_le_moteur(app: Application) -> None:
    _postgresql(app)
    lecture = moteur_lecture(app.moteur)
    assert lecture is not app.moteur and moteur_lecture(app.moteur) is lecture
    with connexion_lecture(app.moteur) as conn:
        assert conn.connection.driver_connection.autocommit is True  # type: ignore[union-attr]
    with app.moteur.connect() as conn:  # les écritures gardent leurs transactions
        assert conn.connection.driver_connection.autocommit is False  # type: ignore[union-attr]
    pool = lecture.pool
    assert isinstance(pool, QueuePool) and pool.checkedin() >= 1
    app.moteur.dispose()
    assert isinstance(lecture.pool, QueuePool) and lecture.pool.checkedin() == 0


def test_le_curseur_est_garde_avec_sa_connexion_et_la_requete_preparee(app: Application) -> None:
    _postgresql(app)
    trois_factures(app)
    for _ in range(3):
        lectures.facture(app, "F2611-0000001", aujourd_hui_paris())
    with curseur_psycopg(app.moteur) as curseur:
        premier = curseur
        preparees = curseur.execute(text("select count(*) from pg_prepared_statements").text).fetchone()
    with curseur_psycopg(app.moteur) as curseur:
        assert curseur is premier
    assert preparees is not None and preparees[0] >= 1


@pytest.fixture
def moteur_sans_ping(app: Application, monkeypatch: pytest.MonkeyPatch) -> Iterator[Engine]:
    """Comme sous `regie serveur` : pas de ping avant l'emprunt, une connexion coupée se voit à l'usage."""
    _postgresql(app)
    monkeypatch.setenv("REGIE_PING_CONNEXIONS", "0")
    moteur = creer_moteur(str(app.url))
    yield moteur
    moteur.dispose()


def test_une_connexion_coupee_est_jetee_et_la_suivante_marche(app: Application, moteur_sans_ping: Engine) -> None:
    with curseur_psycopg(moteur_sans_ping) as curseur:
        row = curseur.execute("select pg_backend_pid()").fetchone()
        assert row is not None
        pid = row[0]
    with app.moteur.begin() as conn:
        conn.execute(text("select pg_terminate_backend(:pid, 10000)"), {"pid": pid})  # attend sa fin
    with pytest.raises(OperationalError), curseur_psycopg(moteur_sans_ping) as curseur:
        curseur.execute("select 1")
    with curseur_psycopg(moteur_sans_ping) as curseur:
        row = curseur.execute("select pg_backend_pid()").fetchone()
    assert row is not None and row[0] != pid


def test_la_lecture_brute_et_la_lecture_sqlalchemy_rendent_la_meme_facture(app: Application) -> None:
    _postgresql(app)
    trois_factures(app)
    pousser_objets(app, [facture_json("F2611-0000009", regie="LOISIRS", echeance_dans=-60)])
    with connexion_lecture(app.moteur) as conn:
        for numero in ("F2611-0000001", "F2611-0000009"):
            attendu = conn.execute(lectures._REQ_FACTURE, {"numero": numero}).one()
            assert tuple(lectures._facture_pg(app.moteur, numero) or ()) == tuple(attendu)
    assert lectures._facture_pg(app.moteur, "F9999") is None
