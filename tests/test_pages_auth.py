"""Connexion aux pages de revue : sessions, expiration, CSRF, verrouillage, comptes (SQLite et PostgreSQL)."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update

from regie.application import Application
from regie.pages import auth
from regie.registre.modeles_pages import SessionAgent, Utilisateur
from regie.registre.types import maintenant
from tests import test_pages_revue as revue
from tests.test_pages_revue import MDP, connecter, csrf_de, texte, virement_ambigu

# Les fixtures des pages (client de test, hachage rapide) sont celles de test_pages_revue.
client = revue.client
hachage_rapide = revue.hachage_rapide


def _tenter(client: TestClient, identifiant: str, mot_de_passe: str) -> tuple[int, str]:
    r = client.get("/connexion")
    r = client.post("/connexion", data={"csrf": csrf_de(texte(r)), "identifiant": identifiant,
                                        "mot_de_passe": mot_de_passe}, follow_redirects=False)
    return r.status_code, texte(r)


@pytest.mark.parametrize("chemin", ["/", "/file", "/paiements/1", "/familles/D004512", "/fichiers", "/titres",
                                    "/audit"])
def test_sans_session_chaque_page_renvoie_a_la_connexion(client: TestClient, chemin: str) -> None:
    r = client.get(chemin, follow_redirects=False)
    assert r.status_code == 303
    assert r.headers["location"].startswith("/connexion?suite=" + chemin.replace("/", "%2F"))


def test_apres_connexion_l_agent_revient_a_la_page_demandee(client: TestClient) -> None:
    r = client.get("/file?code=AMBIGU")
    assert "Connexion" in texte(r)
    suite = re.search(r'name="suite" value="([^"]+)"', texte(r))
    csrf = csrf_de(texte(r))
    assert suite and suite.group(1) == "/file?code=AMBIGU"
    r = client.post("/connexion", data={"csrf": csrf, "identifiant": "agent", "mot_de_passe": MDP,
                                        "suite": suite.group(1)}, follow_redirects=False)
    assert r.headers["location"] == "/file?code=AMBIGU"
    assert "Camille Agent" in texte(client.get("/"))


def test_la_suite_ne_mene_jamais_hors_du_site(client: TestClient) -> None:
    r = client.get("/connexion")
    r = client.post("/connexion", data={"csrf": csrf_de(texte(r)), "identifiant": "agent", "mot_de_passe": MDP,
                                        "suite": "//ailleurs.example/piege"}, follow_redirects=False)
    assert r.headers["location"] == "/"


def test_un_mauvais_mot_de_passe_et_un_compte_inconnu_recoivent_la_meme_reponse(client: TestClient) -> None:
    assert _tenter(client, "agent", "pas-le-bon-mot")[0] == 401
    assert _tenter(client, "personne", "pas-le-bon-mot")[0] == 401
    assert "Identifiant ou mot de passe incorrect." in _tenter(client, "agent", "x")[1]
    assert "Identifiant ou mot de passe incorrect." in _tenter(client, "personne", "x")[1]


def test_cinq_echecs_verrouillent_le_compte_meme_pour_le_bon_mot_de_passe(client: TestClient,
                                                                          app: Application) -> None:
    for _ in range(auth.ECHECS_MAX - 1):
        assert "incorrect" in _tenter(client, "agent", "mauvais")[1]
    code, html = _tenter(client, "agent", "mauvais")
    assert code == 401 and "Compte verrouillé après 5 échecs" in html
    code, html = _tenter(client, "agent", MDP)
    assert code == 401 and "Compte verrouillé" in html
    # Le verrou levé (quart d'heure écoulé), le bon mot de passe passe et remet le compteur à zéro.
    with app.sessions() as s, s.begin():
        s.execute(update(Utilisateur).where(Utilisateur.identifiant == "agent")
                  .values(verrouille_jusqu_a=maintenant() - timedelta(seconds=1)))
    assert _tenter(client, "agent", MDP)[0] == 303
    with app.sessions() as s:
        assert s.scalar(select(Utilisateur.echecs).where(Utilisateur.identifiant == "agent")) == 0


def test_une_reussite_remet_le_compteur_d_echecs_a_zero(client: TestClient, app: Application) -> None:
    for _ in range(auth.ECHECS_MAX - 1):
        _tenter(client, "agent", "mauvais")
    assert _tenter(client, "agent", MDP)[0] == 303
    assert "incorrect" in _tenter(client, "agent", "mauvais")[1]  # pas encore verrouillé


def test_la_session_expire_apres_trente_minutes_sans_activite(client: TestClient, app: Application) -> None:
    connecter(client, "agent")
    assert client.get("/", follow_redirects=False).status_code == 200
    with app.sessions() as s, s.begin():
        s.execute(update(SessionAgent).values(vue_le=maintenant() - auth.INACTIVITE - timedelta(seconds=1)))
    r = client.get("/", follow_redirects=False)
    assert r.status_code == 303 and "message=expiree" in r.headers["location"]
    with app.sessions() as s:
        assert s.scalars(select(SessionAgent)).all() == []


def test_la_session_expire_apres_dix_heures_meme_active(client: TestClient, app: Application) -> None:
    connecter(client, "agent")
    with app.sessions() as s, s.begin():
        s.execute(update(SessionAgent).values(expire_le=maintenant() - timedelta(seconds=1)))
    assert client.get("/", follow_redirects=False).status_code == 303


def test_la_base_ne_garde_que_l_empreinte_du_jeton_de_session(client: TestClient, app: Application) -> None:
    connecter(client, "agent")
    jeton = client.cookies.get("regie_session")
    assert jeton
    with app.sessions() as s:
        assert s.scalars(select(SessionAgent.empreinte)).all() == [auth.empreinte(jeton)]


def test_la_deconnexion_ferme_la_session_cote_serveur(client: TestClient) -> None:
    csrf = connecter(client, "agent")
    jeton = client.cookies.get("regie_session")
    r = client.post("/deconnexion", data={"csrf": csrf}, follow_redirects=False)
    assert r.status_code == 303
    client.cookies.set("regie_session", jeton or "")  # un cookie volé ne sert plus à rien
    assert client.get("/", follow_redirects=False).status_code == 303


def test_un_compte_desactive_perd_ses_sessions(client: TestClient, app: Application) -> None:
    connecter(client, "agent")
    assert auth.desactiver_utilisateur(app, "agent")
    assert client.get("/", follow_redirects=False).status_code == 303
    assert _tenter(client, "agent", MDP)[0] == 401


def test_la_connexion_sans_le_jeton_du_formulaire_est_refusee(client: TestClient) -> None:
    r = client.post("/connexion", data={"identifiant": "agent", "mot_de_passe": MDP}, follow_redirects=False)
    assert r.status_code == 403 and "regie_session" not in r.headers.get("set-cookie", "")


def test_un_formulaire_forge_sans_jeton_csrf_est_refuse_et_ne_change_rien(client: TestClient, app: Application,
                                                                         tmp_path: Path) -> None:
    sc, pid = virement_ambigu(app, tmp_path)
    csrf = connecter(client, "agent")
    donnees = {"facture_1": "F01-26-05-0000123", "montant_1": "77,00", "confirme": "oui"}
    for forge in ({}, {"csrf": ""}, {"csrf": "devine"}, {"csrf": csrf[:-1]}):
        r = client.post(f"/paiements/{pid}/decisions/affecter", data={**donnees, **forge})
        assert r.status_code == 403
        assert "jeton de sécurité absent ou périmé" in texte(r)
    assert sc.facture("F01-26-05-0000123")["statut"] == "emise"
    assert client.post("/deconnexion", data={}).status_code == 403


def test_le_jeton_csrf_d_une_autre_session_ne_vaut_rien(client: TestClient, app: Application,
                                                        tmp_path: Path) -> None:
    _, pid = virement_ambigu(app, tmp_path)
    csrf_lecteur = connecter(client, "lecteur")
    client.cookies.clear()
    connecter(client, "agent")
    r = client.post(f"/paiements/{pid}/decisions/affecter", data={
        "csrf": csrf_lecteur, "facture_1": "F01-26-05-0000123", "montant_1": "77,00", "confirme": "oui"})
    assert r.status_code == 403


def test_les_comptes_se_creent_en_ligne_de_commande_sans_mot_de_passe_dans_les_arguments(regie_cli,
                                                                                          app: Application) -> None:
    if app.moteur.dialect.name != "sqlite":
        pytest.skip("la commande elle-même : une base suffit (le service est testé sur les deux)")
    r = regie_cli("utilisateurs", "creer", "mdupont", "--role", "agent", "--nom", "Marie Dupont",
                  entree="un-mot-de-passe-long\n")
    assert r.returncode == 0, r.stderr
    assert "créé" in r.stdout
    r = regie_cli("utilisateurs", "creer", "court", "--role", "agent", entree="court\n")
    assert r.returncode == 2 and "trop court" in r.stderr
    assert auth.se_connecter(app, "mdupont", "un-mot-de-passe-long").jeton
    r = regie_cli("utilisateurs", "lister")
    assert r.returncode == 0 and "mdupont\tagent\tMarie Dupont\tactif" in r.stdout
    assert "un-mot-de-passe-long" not in r.stdout
    r = regie_cli("utilisateurs", "desactiver", "mdupont")
    assert r.returncode == 0 and "désactivé" in r.stdout
    assert auth.se_connecter(app, "mdupont", "un-mot-de-passe-long").jeton is None


@pytest.mark.parametrize("identifiant, role, mot_de_passe, raison", [
    ("agent", "agent", MDP, "existe déjà"),
    ("nouveau", "chef", MDP, "rôle « chef » inconnu"),
    ("avec espace", "agent", MDP, "invalide"),
    ("nouveau", "agent", "court", "trop court"),
])
def test_un_compte_mal_forme_ou_en_double_est_refuse(client: TestClient, app: Application, identifiant: str,
                                                     role: str, mot_de_passe: str, raison: str) -> None:
    with pytest.raises(auth.CompteRefuse, match=raison):
        auth.creer_utilisateur(app, identifiant, role, mot_de_passe)
