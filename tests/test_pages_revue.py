"""Pages de revue : file, paiement et décisions, compte famille, fichiers, titres, audit (SQLite et PostgreSQL)."""

from __future__ import annotations

import html as html_module
import re
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from argon2 import PasswordHasher
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import insert, select, text

from regie.application import Application
from regie.erreurs import FichierRefuse
from regie.pages import auth, monter_pages
from regie.pages.auth import creer_utilisateur
from regie.registre.modeles import Anomalie, Audit, Paiement
from regie.registre.types import maintenant
from tests.scenarios import FACTURE, Scenario, autre, facture

MDP = "correct-cheval-pile-agrafe"
F1, F2 = FACTURE["numero"], "F01-26-05-0000200"  # 77.00 € et 42.00 €, dossier D004512


# --- Aides partagées avec test_pages_auth et test_navigateur ------------------------------------------

def creer_comptes(app: Application) -> None:
    creer_utilisateur(app, "agent", "agent", MDP, "Camille Agent")
    creer_utilisateur(app, "lecteur", "consultation", MDP, "Louis Lecteur")
    creer_utilisateur(app, "regisseur", "regisseur", MDP, "Rachida Régisseuse")


def fastapi_pages(app: Application) -> FastAPI:
    api = FastAPI()
    monter_pages(api, app)
    return api


def texte(r: Any) -> str:
    """Le HTML de la réponse, entités décodées (Jinja échappe l'apostrophe)."""
    return html_module.unescape(r.text)


def csrf_de(html: str) -> str:
    m = re.search(r'name="csrf" value="([^"]+)"', html)
    assert m, "pas de jeton CSRF dans la page"
    return m.group(1)


def connecter(client: TestClient, identifiant: str, mot_de_passe: str = MDP, suite: str = "/") -> str:
    """Se connecte ; rend le jeton CSRF de la session (celui des formulaires)."""
    r = client.get("/connexion")
    r = client.post("/connexion", data={"csrf": csrf_de(texte(r)), "identifiant": identifiant,
                                        "mot_de_passe": mot_de_passe, "suite": suite}, follow_redirects=False)
    assert r.status_code == 303, r.text
    return csrf_de(texte(client.get("/")))


def virement_ambigu(app: Application, dossier: Path) -> tuple[Scenario, int]:
    """Deux factures de la famille D004512 et un virement de 119.00 € qui cite les deux : AMBIGU."""
    sc = Scenario(app, dossier)
    sc.factures(facture(), autre(F2, "42.00"))
    sc.cfonb(("119.00", "VIR F01-26-05-0000200", F1))
    return sc, paiement_id(app, "virement")


def paiement_id(app: Application, canal: str, reference: str | None = None) -> int:
    with app.moteur.connect() as c:
        req = select(Paiement.id).where(Paiement.canal == canal)
        if reference:
            req = req.where(Paiement.reference == reference)
        return int(c.execute(req.order_by(Paiement.id.desc()).limit(1)).scalar_one())


def version(app: Application, pid: int) -> int:
    with app.moteur.connect() as c:
        return int(c.execute(select(Paiement.version).where(Paiement.id == pid)).scalar_one())


@pytest.fixture(autouse=True)
def hachage_rapide(monkeypatch: pytest.MonkeyPatch) -> None:
    """Argon2 au coût minimal dans les tests (le coût de production est celui d'argon2-cffi)."""
    monkeypatch.setattr(auth, "_HACHEUR", PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))


@pytest.fixture
def client(app: Application) -> Iterator[TestClient]:
    creer_comptes(app)
    with TestClient(fastapi_pages(app), base_url="http://testserver") as c:
        yield c


@pytest.fixture
def sc_pid(app: Application, tmp_path: Path) -> tuple[Scenario, int]:
    return virement_ambigu(app, tmp_path)


# --- File de revue -------------------------------------------------------------------------------------

def test_la_file_montre_chaque_paiement_avec_sa_raison_en_francais(client: TestClient, sc_pid) -> None:
    sc, _ = sc_pid
    sc.cheques(("RC-1", "1", "DUPONT JEAN", "12.00", "F-INCONNUE-9"))
    connecter(client, "lecteur")
    r = client.get("/file")
    assert r.status_code == 200
    assert "2 paiements" in texte(r)
    assert "Plusieurs factures possibles" in texte(r) and "Référence inconnue" in texte(r)
    assert "La facture F-INCONNUE-9 est inconnue." in texte(r)
    assert "Le libellé du virement cite plusieurs factures" in texte(r)


VIREMENT = "00012345678/2026-05-15/0000001/1"


FILTRES = [
    ({}, {VIREMENT, "RC-1/1", "RC-2/2"}),
    ({"code": "AMBIGU"}, {VIREMENT}),
    ({"canal": "cheque"}, {"RC-1/1", "RC-2/2"}),
    ({"montant_min": "100"}, {VIREMENT}),
    ({"montant_max": "12,00"}, {"RC-1/1", "RC-2/2"}),
    ({"montant_min": "6", "montant_max": "12,00"}, {"RC-1/1"}),
    ({"regie": "ENFANCE"}, {"RC-2/2"}),  # la régie de la facture que le paiement cite
    ({"code": "AMBIGU", "canal": "cheque"}, set()),
    ({"age_min": "7"}, set()),
    ({"statut": "resolues"}, set()),
]


def test_la_file_se_filtre_par_code_canal_regie_montant_et_age(client: TestClient, sc_pid) -> None:
    sc, _ = sc_pid
    sc.cheques(("RC-1", "1", "DUPONT JEAN", "12.00", "F-INCONNUE-9"))
    sc.factures(autre("F01-26-05-0000300", "5.00"), {
        "type": "avoir", "numero": "A-300", "facture": "F01-26-05-0000300", "emise_le": "2026-05-10",
        "montant": "5.00", "motif": "Annulation"})
    sc.cheques(("RC-2", "2", "MARTIN CLAIRE", "5.00", "F01-26-05-0000300"))  # FACTURE_ANNULEE, régie ENFANCE
    connecter(client, "agent")
    for criteres, attendus in FILTRES:
        html = texte(client.get("/file", params=criteres))
        vus = set(re.findall(r'href="/paiements/\d+" class="fort">([^<]+)</a>', html))
        assert vus == attendus, criteres


def test_un_montant_mal_saisi_dans_les_filtres_est_signale_sans_erreur_serveur(client: TestClient, sc_pid) -> None:
    connecter(client, "agent")
    r = client.get("/file", params={"montant_min": "douze"})
    assert r.status_code == 200
    assert "« douze » n'est pas un montant en euros" in texte(r)


def test_la_file_se_pagine_par_cle_sans_doublon_ni_trou(client: TestClient, app: Application, tmp_path: Path) -> None:
    sc = Scenario(app, tmp_path)
    sc.cheques(*[("RC-P", str(i), "X", "1.00", f"F-INCONNUE-{i}") for i in range(1, 121)])
    connecter(client, "lecteur")
    vus: list[str] = []
    url: str | None = "/file"
    pages = 0
    while url:
        html = texte(client.get(url))
        vus += re.findall(r">(RC-P/\d+)</a>", html)
        m = re.search(r'<a href="([^"]+)" rel="next">', html)
        url = m.group(1) if m else None
        pages += 1
        if pages == 2:
            # Revenir une page en arrière rend exactement la première.
            m2 = re.search(r'<a href="([^"]+)" rel="prev">', html)
            assert m2
            assert re.findall(r">(RC-P/\d+)</a>", texte(client.get(m2.group(1)))) == vus[:50]
    assert pages == 3
    assert len(vus) == 120 and len(set(vus)) == 120


def test_la_file_de_dix_mille_paiements_se_lit_par_l_index(client: TestClient, app: Application) -> None:
    now = maintenant()
    lignes = [{"canal": "cheque", "reference": f"R/{i}", "montant": 100 + i, "recu_le": now, "details": {},
               "empreinte": "x", "statut": "en_anomalie", "anomalie": "REFERENCE_INCONNUE", "affecte": 0,
               "en_credit": 0, "rembourse": 0, "version": 1, "cree_le": now} for i in range(10_000)]
    with app.moteur.begin() as c:
        c.execute(insert(Paiement), lignes)
        ids = list(c.execute(select(Paiement.id).order_by(Paiement.id)).scalars())
        c.execute(insert(Anomalie), [{"paiement_id": pid, "code": "REFERENCE_INCONNUE", "statut": "ouverte",
                                      "raison": "Référence inconnue", "preuve": {}, "suggestions": [],
                                      "cree_le": now - timedelta(seconds=i)} for i, pid in enumerate(ids)])
        if c.dialect.name == "sqlite":
            plan = " ".join(str(r) for r in c.execute(text(
                "EXPLAIN QUERY PLAN SELECT id FROM anomalie WHERE statut IN ('ouverte', 'en_cours') "
                "ORDER BY cree_le, id LIMIT 51")))
            assert "ix_anomalie_file" in plan
    connecter(client, "lecteur")
    r = client.get("/file")
    assert "10000 paiements" in texte(r)
    assert len(re.findall(r'href="/paiements/\d+"', r.text)) == 50


# --- Paiement et décisions ----------------------------------------------------------------------------------

def test_le_detail_montre_les_suggestions_classees_la_raison_et_la_preuve(client: TestClient, sc_pid) -> None:
    _, pid = sc_pid
    connecter(client, "lecteur")
    html = texte(client.get(f"/paiements/{pid}"))
    assert "Plusieurs factures possibles" in html
    assert html.index(F1) < html.index("Affectations")
    assert "citée dans le libellé" in html
    assert "VIR F01-26-05-0000200" in html  # la preuve : le libellé du virement
    assert "119,00" in html


def test_affecter_a_deux_factures_passe_par_la_confirmation_puis_les_paie(client: TestClient, app: Application,
                                                                          sc_pid) -> None:
    sc, pid = sc_pid
    csrf = connecter(client, "agent")
    form = {"csrf": csrf, "version": str(version(app, pid)), "facture_1": F1, "montant_1": "77,00",
            "facture_2": F2, "montant_2": "42", "motif": "Virement des deux factures de mai"}
    r = client.post(f"/paiements/{pid}/decisions/affecter", data=form)
    assert r.status_code == 200 and "Confirmer" in texte(r) and "119,00" in texte(r)
    assert sc.facture(F1)["statut"] == "emise"  # rien n'est fait avant la confirmation
    r = client.post(f"/paiements/{pid}/decisions/affecter", data={**form, "confirme": "oui"}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == f"/paiements/{pid}?fait=affecter"
    assert (sc.facture(F1)["statut"], sc.facture(F2)["statut"]) == ("payee", "payee")
    p = sc.paiement("virement", sc.etat()["paiements"][0]["reference"])
    assert (p["statut"], p["anomalie"]) == ("affecte", None)
    html = texte(client.get(r.headers["location"]))
    assert "Décision enregistrée" in html and "payée" in html
    journal = texte(client.get("/audit"))
    assert "agent" in journal and "affecter" in journal and "Virement des deux factures de mai" in journal
    assert "0 paiement" in texte(client.get("/file"))


def test_une_repartition_mal_saisie_est_reaffichee_avec_ses_erreurs(client: TestClient, app: Application,
                                                                    sc_pid) -> None:
    sc, pid = sc_pid
    csrf = connecter(client, "agent")
    r = client.post(f"/paiements/{pid}/decisions/affecter", data={
        "csrf": csrf, "facture_1": F1, "montant_1": "77,001", "facture_2": F2, "montant_2": "500"})
    assert r.status_code == 422
    assert "« 77,001 » n'est pas un montant en euros" in texte(r)
    assert "dépasse ce qui reste à placer" in texte(r)
    assert 'value="500"' in texte(r)  # la saisie est gardée
    assert sc.facture(F2)["statut"] == "emise"


def test_une_decision_sur_un_paiement_qui_a_change_depuis_est_refusee(client: TestClient, app: Application,
                                                                      sc_pid) -> None:
    sc, pid = sc_pid
    csrf = connecter(client, "agent")
    vue = version(app, pid)
    with app.sessions() as s, s.begin():  # un collègue décide entre-temps
        p = s.get(Paiement, pid)
        assert p is not None
        p.details = {**p.details, "note": "vu"}
    r = client.post(f"/paiements/{pid}/decisions/affecter", data={
        "csrf": csrf, "version": str(vue), "facture_1": F1, "montant_1": "77,00", "confirme": "oui"})
    assert r.status_code == 409
    assert "a changé depuis que vous" in texte(r)
    assert sc.facture(F1)["statut"] == "emise"


def test_un_compte_consultation_ne_voit_aucun_formulaire_et_ne_peut_pas_decider(client: TestClient,
                                                                                 app: Application, sc_pid) -> None:
    sc, pid = sc_pid
    csrf = connecter(client, "lecteur")
    html = texte(client.get(f"/paiements/{pid}"))
    assert "permet de consulter, pas de décider" in html
    assert "/decisions/" not in html
    r = client.post(f"/paiements/{pid}/decisions/affecter", data={
        "csrf": csrf, "facture_1": F1, "montant_1": "77,00", "confirme": "oui"})
    assert r.status_code == 403 and "ne permet pas" in texte(r)
    assert sc.facture(F1)["statut"] == "emise"


@pytest.mark.parametrize("decision", ["rembourser", "annuler_paiement"])
def test_un_agent_ne_peut_ni_rembourser_ni_annuler_un_paiement(client: TestClient, sc_pid, decision: str) -> None:
    _, pid = sc_pid
    csrf = connecter(client, "agent")
    r = client.post(f"/paiements/{pid}/decisions/{decision}", data={
        "csrf": csrf, "montant": "10,00", "motif": "essai", "confirme": "oui"})
    assert r.status_code == 403


def test_rembourser_exige_un_motif_puis_une_confirmation(client: TestClient, app: Application, sc_pid) -> None:
    _, pid = sc_pid
    csrf = connecter(client, "regisseur")
    r = client.post(f"/paiements/{pid}/decisions/rembourser", data={"csrf": csrf, "montant": "19,00", "motif": ""})
    assert r.status_code == 422 and "Le motif est obligatoire" in texte(r)
    form = {"csrf": csrf, "montant": "19,00", "motif": "Trop versé, demandé par la famille",
            "version": str(version(app, pid))}
    r = client.post(f"/paiements/{pid}/decisions/rembourser", data=form)
    assert r.status_code == 200 and "seront remboursés" in texte(r)
    r = client.post(f"/paiements/{pid}/decisions/rembourser", data={**form, "confirme": "oui"}, follow_redirects=False)
    assert r.status_code == 303
    with app.moteur.connect() as c:
        assert c.execute(select(Paiement.rembourse).where(Paiement.id == pid)).scalar_one() == 1900
        assert c.execute(select(Audit.action, Audit.qui).where(Audit.objet_id == str(pid))).all() == [
            ("rembourser", "regisseur")]


def test_annuler_un_cheque_rejete_rend_la_facture_due(client: TestClient, app: Application, tmp_path: Path) -> None:
    sc = Scenario(app, tmp_path)
    sc.factures(facture())
    sc.cheques(("RC-9", "55", "MARTIN CLAIRE", "77.00", F1))
    assert sc.facture(F1)["statut"] == "payee"
    pid = paiement_id(app, "cheque")
    csrf = connecter(client, "regisseur")
    form = {"csrf": csrf, "motif": "Chèque rejeté : provision insuffisante", "version": str(version(app, pid))}
    assert "sera annulé" in client.post(f"/paiements/{pid}/decisions/annuler_paiement", data=form).text
    r = client.post(f"/paiements/{pid}/decisions/annuler_paiement", data={**form, "confirme": "oui"})
    assert r.status_code == 200 and "Décision enregistrée" in texte(r)
    assert sc.facture(F1)["statut"] == "emise"
    assert sc.paiement("cheque", "RC-9/55")["statut"] == "annule"
    html = texte(client.get("/familles/D004512"))
    assert "77,00" in html and "Chèque" in html


def test_defaire_une_affectation_exige_un_motif_et_rend_la_facture_due(client: TestClient, app: Application,
                                                                       tmp_path: Path) -> None:
    sc = Scenario(app, tmp_path)
    sc.factures(facture())
    sc.cheques(("RC-9", "56", "MARTIN CLAIRE", "77.00", F1))
    pid = paiement_id(app, "cheque")
    csrf = connecter(client, "agent")
    html = texte(client.get(f"/paiements/{pid}"))
    assert "Annuler l&#39;affectation" in html or "Annuler l'affectation" in html
    r = client.post(f"/paiements/{pid}/decisions/annuler_affectation", data={"csrf": csrf, "facture": F1})
    assert r.status_code == 422 and "Le motif est obligatoire" in texte(r)
    r = client.post(f"/paiements/{pid}/decisions/annuler_affectation", data={
        "csrf": csrf, "facture": F1, "motif": "Erreur de facture", "confirme": "oui"})
    assert r.status_code == 200 and "Décision enregistrée" in texte(r)
    assert sc.facture(F1)["statut"] == "emise"


def test_garder_l_excedent_en_credit_puis_l_appliquer_depuis_le_compte_famille(client: TestClient,
                                                                               app: Application,
                                                                               tmp_path: Path) -> None:
    sc = Scenario(app, tmp_path)
    sc.factures(facture())
    sc.cheques(("RC-3", "7", "MARTIN CLAIRE", "80.00", F1))  # TROP_PERCU : 3.00 attendent
    pid = paiement_id(app, "cheque")
    csrf = connecter(client, "agent")
    r = client.post(f"/paiements/{pid}/decisions/garder_en_credit", data={
        "csrf": csrf, "version": str(version(app, pid)), "confirme": "oui"})
    assert r.status_code == 200 and "Décision enregistrée" in texte(r), r.text
    assert sc.famille("D004512")["credit"] == "3.00"
    sc.factures(autre(F2, "42.00"))
    html = texte(client.get("/familles/D004512"))
    assert "Appliquer le crédit" in html
    r = client.post("/familles/D004512/credit", data={"csrf": csrf, "motif": ""})
    assert r.status_code == 422
    r = client.post("/familles/D004512/credit", data={"csrf": csrf, "motif": "Demande de la famille",
                                                      f"f_{F2}": "oui"})
    assert "Confirmer" in texte(r)
    r = client.post("/familles/D004512/credit", data={"csrf": csrf, "motif": "Demande de la famille",
                                                      f"f_{F2}": "oui", "confirme": "oui"})
    assert r.status_code == 200 and "Crédit appliqué : 3,00" in texte(r)
    assert sc.facture(F2)["reste"] == "39.00"


# --- Compte famille, fichiers, titres, audit, tableau de bord ----------------------------------------------

def test_le_compte_famille_montre_factures_paiements_et_historique_avec_solde(client: TestClient,
                                                                             app: Application,
                                                                             tmp_path: Path) -> None:
    sc = Scenario(app, tmp_path)
    sc.factures(facture(), autre(F2, "42.00"))
    sc.cheques(("RC-4", "1", "MARTIN CLAIRE", "30.00", F1))
    connecter(client, "lecteur")
    html = texte(client.get("/familles/D004512"))
    assert F1 in html and F2 in html and "partiellement payée" in html
    assert "RC-4/1" in html
    assert "Dû à la régie : <strong>89,00" in html  # 77 + 42 - 30
    assert client.get("/familles/D999999").status_code == 404
    assert client.get("/recherche", params={"q": F2}, follow_redirects=False).headers["location"] == "/familles/D004512"


def test_les_fichiers_refuses_montrent_chacune_de_leurs_erreurs(client: TestClient, app: Application,
                                                                tmp_path: Path) -> None:
    sc = Scenario(app, tmp_path)
    with pytest.raises(FichierRefuse):
        sc.importer("cheque", b"remise;numero_cheque;tireur;banque;montant;facture;recu_le\r\n"
                              b"RC-1;1;X;CCM;12,00;F1;2026-05-15\r\nRC-1;2;X;CCM;3.00;F1;hier\r\n", "cheques.csv")
    sc.cheques(("RC-2", "1", "X", "12.00", "F-1"))
    connecter(client, "lecteur")
    html = texte(client.get("/fichiers", params={"statut": "refuse"}))
    assert "cheques.csv" in html and "ligne 2" in html and "ligne 3" in html
    assert "2 erreurs" in html
    assert "importé" not in texte(client.get("/fichiers", params={"statut": "refuse"})).split("<tbody>")[1].split(
        "</tbody>")[0]
    assert "importé" in texte(client.get("/fichiers"))


def test_le_tableau_de_bord_compte_la_file_et_les_encaissements(client: TestClient, app: Application,
                                                                 sc_pid) -> None:
    sc, _ = sc_pid
    sc.cheques(("RC-5", "1", "MARTIN CLAIRE", "10.00", F2))
    connecter(client, "lecteur")
    html = texte(client.get("/"))
    assert "1 paiement en attente" in html
    assert "Plusieurs factures possibles" in html
    assert "RC-5" in html  # remise de chèques en attente du relevé DFT
    assert client.get("/titres").status_code == 200


def test_le_tableau_de_bord_montre_les_dernieres_nuits_et_leurs_echecs(client: TestClient, app: Application) -> None:
    from regie.services.nuit import executer_nuit

    boite = app.dossier_donnees("echanges", "entree")
    (boite / "cheques_errone.csv").write_text("remise;numero_cheque\n", encoding="utf-8")
    executer_nuit(app)
    connecter(client, "lecteur")
    html = texte(client.get("/"))
    assert "Dernières nuits" in html
    assert "termine avec erreurs" in html
    assert "Relevé des fichiers reçus" in html and "cheques_errone.csv" in html


def test_le_journal_d_audit_se_filtre_et_se_pagine(client: TestClient, app: Application) -> None:
    with app.moteur.begin() as c:
        c.execute(insert(Audit), [{"quand": maintenant(), "qui": "agent" if i % 2 else "regisseur",
                                   "action": "affecter", "objet": "paiement", "objet_id": str(i),
                                   "motif": f"motif {i}", "avant": {}, "apres": {}} for i in range(70)])
    connecter(client, "lecteur")
    html = texte(client.get("/audit", params={"qui": "regisseur"}))
    assert html.count("<td class=\"fort\">regisseur</td>") == 35 and "agent</td>" not in html
    html = texte(client.get("/audit"))
    assert "motif 69" in html and "motif 19" not in html
    suivant = re.search(r'<a href="([^"]+)" rel="next">', html)
    assert suivant
    assert "motif 19" in texte(client.get(suivant.group(1)))


def test_chaque_page_porte_les_en_tetes_de_securite(client: TestClient) -> None:
    r = client.get("/connexion")
    assert "frame-ancestors 'none'" in r.headers["content-security-policy"]
    assert r.headers["x-frame-options"] == "DENY"


def test_la_base_garde_l_index_de_la_file(app: Application) -> None:
    with app.moteur.connect() as c:
        if c.dialect.name == "sqlite":
            noms = {r[1] for r in c.execute(text("PRAGMA index_list('anomalie')"))}
        else:
            noms = set(c.execute(text("SELECT indexname FROM pg_indexes WHERE tablename = 'anomalie'")).scalars())
    assert "ix_anomalie_file" in noms
