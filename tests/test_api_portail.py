"""L'API du portail : chaque route, chaque erreur (codes stables, messages en français)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import TypeAdapter
from sqlalchemy import select, update

from connecteurs.payfip.simulateur import Scenario, SimulateurPayfip
from regie.api import lectures
from regie.api.app import creer_app
from regie.api.rapide import StatutRapide
from regie.api.schemas import FactureDetail
from regie.api.securite import creer_cle, empreinte_cle, lister_cles, revoquer_cle
from regie.application import Application
from regie.registre.modeles import CleApi, EtatFacture, Facture
from regie.services.factures import pousser_objets
from regie.services.payfip import PasserellePayfip, aujourd_hui_paris, consulter_operations_en_attente
from tests.test_payfip_parcours import facture_json, trois_factures

pytest_plugins: list[str] = []


@pytest.fixture
def simulateur() -> Iterator[SimulateurPayfip]:
    with SimulateurPayfip(graine=9) as sim:
        yield sim


@pytest.fixture
def passerelle(app: Application, simulateur: SimulateurPayfip) -> Iterator[PasserellePayfip]:
    from connecteurs.payfip import TransportPayfip

    p = PasserellePayfip(app, TransportPayfip(simulateur.endpoint, delai_s=1.0, tentatives=2,
                                              attente_initiale_s=0.01), base_page=simulateur.url_page)
    yield p
    p.close()


@pytest.fixture
def anonyme(app: Application, passerelle: PasserellePayfip) -> Iterator[TestClient]:
    with TestClient(creer_app(app, passerelle)) as c:
        yield c


@pytest.fixture
def cle(app: Application) -> str:
    return creer_cle(app, "portail").cle


@pytest.fixture
def client(app: Application, passerelle: PasserellePayfip, cle: str) -> Iterator[TestClient]:
    with TestClient(creer_app(app, passerelle), headers={"X-Api-Key": cle}) as c:
        yield c


def erreur(r: Any, statut: int, code: str) -> dict[str, Any]:
    assert r.status_code == statut, r.text
    corps: dict[str, Any] = r.json()
    assert corps["code"] == code
    assert isinstance(corps["message"], str) and corps["message"]
    return corps


# --- Clés d'API -------------------------------------------------------------------------------


def test_sans_cle_le_portail_recoit_401_cle_manquante(app: Application, anonyme: TestClient) -> None:
    trois_factures(app)
    r = anonyme.get("/api/v1/dossiers/D000001/factures")
    erreur(r, 401, "CLE_MANQUANTE")
    assert r.headers["www-authenticate"].startswith("Bearer")


@pytest.mark.parametrize("valeur", ["n-importe-quoi", "rgk_" + "A" * 43, ""])
def test_une_cle_inconnue_recoit_401(anonyme: TestClient, cle: str, valeur: str) -> None:
    r = anonyme.get("/api/v1/dossiers/D000001/factures", headers={"X-Api-Key": valeur})
    erreur(r, 401, "CLE_INVALIDE" if valeur else "CLE_MANQUANTE")


def test_une_cle_au_bon_prefixe_mais_fausse_est_refusee(anonyme: TestClient, cle: str) -> None:
    fausse = cle[:-4] + ("AAAA" if not cle.endswith("AAAA") else "BBBB")
    erreur(anonyme.get("/api/v1/dossiers/D000001/factures", headers={"X-Api-Key": fausse}), 401, "CLE_INVALIDE")


def test_la_cle_passe_aussi_en_bearer(app: Application, anonyme: TestClient, cle: str) -> None:
    trois_factures(app)
    r = anonyme.get("/api/v1/dossiers/D000001/factures", headers={"Authorization": f"Bearer {cle}"})
    assert r.status_code == 200


def test_une_cle_revoquee_recoit_401_et_les_autres_cles_marchent(app: Application, anonyme: TestClient,
                                                                 cle: str) -> None:
    trois_factures(app)
    autre = creer_cle(app, "second portail").cle
    assert anonyme.get("/api/v1/dossiers/D000001/factures", headers={"X-Api-Key": cle}).status_code == 200
    assert revoquer_cle(app, cle[4:16])
    erreur(anonyme.get("/api/v1/dossiers/D000001/factures", headers={"X-Api-Key": cle}), 401, "CLE_INVALIDE")
    assert anonyme.get("/api/v1/dossiers/D000001/factures", headers={"X-Api-Key": autre}).status_code == 200
    assert not revoquer_cle(app, cle[4:16])


def test_seule_l_empreinte_de_la_cle_est_gardee(app: Application, cle: str) -> None:
    with app.moteur.connect() as conn:
        (ligne,) = conn.execute(select(CleApi.prefixe, CleApi.empreinte)).all()
    assert ligne.empreinte == empreinte_cle(cle) and cle not in ligne.empreinte
    assert cle.startswith("rgk_" + ligne.prefixe) and len(cle) == 4 + 43
    assert [c.nom for c in lister_cles(app)] == ["portail"]


def test_les_commandes_cles_api_creent_listent_et_revoquent(app: Application, regie_cli: Any) -> None:
    r = regie_cli("cles-api", "creer", "portail familles")
    assert r.returncode == 0, r.stderr
    cle = r.stdout.strip()
    assert cle.startswith("rgk_") and "une fois" in r.stderr
    liste = regie_cli("cles-api", "lister")
    assert cle[4:16] in liste.stdout and "active" in liste.stdout and cle not in liste.stdout
    assert regie_cli("cles-api", "revoquer", cle[4:16]).returncode == 0
    assert "révoquée" in regie_cli("cles-api", "lister").stdout
    assert regie_cli("cles-api", "revoquer", "inconnu").returncode == 2


# --- Lectures ---------------------------------------------------------------------------------


def test_les_factures_d_un_dossier_disent_si_elles_sont_payables_et_pourquoi(app: Application,
                                                                           client: TestClient) -> None:
    aujourd_hui = datetime.now(UTC).date()
    pousser_objets(app, [
        facture_json("F2611-0000001"),
        facture_json("F2611-0000002"),  # titrée
        facture_json("F2611-0000003", echeance_dans=-40),  # échéance + 30 jours dépassés
        facture_json("F2611-0000004", regie="LOISIRS", prix="12.50", quantite="2"),  # régie en mode titre
        facture_json("F2611-0000005", quantite="4"),  # annulée par un avoir
        facture_json("F2611-0000006", echeance_dans=-10),  # échue, titre pas encore dû : payable
        {"type": "avoir", "numero": "A2611-0000001", "facture": "F2611-0000005",
         "emise_le": aujourd_hui.isoformat(), "montant": "14.00", "motif": "Absence"}])
    with app.moteur.begin() as conn:
        conn.execute(update(EtatFacture).where(EtatFacture.facture_id == select(Facture.id).where(
            Facture.numero == "F2611-0000002").scalar_subquery()).values(statut="titree"))
    r = client.get("/api/v1/dossiers/D000001/factures")
    assert r.status_code == 200
    par_numero = {f["numero"]: f for f in r.json()["factures"]}
    assert {n: (f["payable_en_ligne"], f["raison"]) for n, f in par_numero.items()} == {
        "F2611-0000001": (True, None), "F2611-0000002": (False, "FACTURE_TITREE"),
        "F2611-0000003": (False, "ECHEANCE_DEPASSEE"), "F2611-0000004": (False, "REGIE_MODE_TITRE"),
        "F2611-0000005": (False, "FACTURE_ANNULEE"), "F2611-0000006": (True, None)}
    f1 = par_numero["F2611-0000001"]
    assert (f1["montant"], f1["paye"], f1["reste"], f1["statut"]) == ("42.00", "0.00", "42.00", "emise")
    assert f1["echeance"] == (aujourd_hui + timedelta(days=25)).isoformat()
    assert "Trésor" in par_numero["F2611-0000002"]["raison_libelle"]


def test_un_dossier_ou_une_facture_inconnus_repondent_404(client: TestClient) -> None:
    erreur(client.get("/api/v1/dossiers/D999999/factures"), 404, "DOSSIER_INCONNU")
    erreur(client.get("/api/v1/dossiers/D999999/compte"), 404, "DOSSIER_INCONNU")
    erreur(client.get("/api/v1/factures/F9999"), 404, "FACTURE_INCONNUE")
    erreur(client.get("/api/v1/paiements/payfip/abc"), 404, "OPERATION_INCONNUE")
    erreur(client.get("/api/v1/nulle-part"), 404, "ROUTE_INCONNUE")


def test_une_facture_montre_ses_paiements_et_ses_avoirs(app: Application, client: TestClient,
                                                       simulateur: SimulateurPayfip,
                                                       passerelle: PasserellePayfip) -> None:
    trois_factures(app)
    pousser_objets(app, [{"type": "avoir", "numero": "A2611-0000009", "facture": "F2611-0000002",
                          "emise_le": datetime.now(UTC).date().isoformat(), "montant": "5.00", "motif": "Absence"}])
    simulateur.prevoir_suivant(Scenario(notification_perdue=True))
    id_op = client.post("/api/v1/paiements/payfip", json={
        "dossier": "D000001", "factures": [{"numero": "F2611-0000002", "montant": "30.00"}]}).json()["id_op"]
    en_cours = client.get(f"/api/v1/paiements/payfip/{id_op}").json()
    assert (en_cours["statut"], en_cours["montant"], en_cours["factures"]) == (
        "en_attente", "30.00", [{"numero": "F2611-0000002", "montant": "30.00"}])
    simulateur.payer(id_op)
    consulter_operations_en_attente(app, passerelle)
    f = client.get("/api/v1/factures/F2611-0000002").json()
    assert (f["statut"], f["paye"], f["avoirs"], f["reste"]) == ("payee", "30.00", "5.00", "0.00")
    assert [(p["canal"], p["reference"], p["montant_affecte"]) for p in f["paiements"]] == [("payfip", id_op, "30.00")]
    assert [(a["numero"], a["montant"]) for a in f["avoirs_emis"]] == [("A2611-0000009", "5.00")]
    assert client.get(f"/api/v1/paiements/payfip/{id_op}").json()["statut"] == "payee"


def test_le_compte_famille_donne_les_mouvements_dans_l_ordre_avec_les_soldes(app: Application,
                                                                           client: TestClient) -> None:
    trois_factures(app)
    pousser_objets(app, [{"type": "avoir", "numero": "A2611-0000001", "facture": "F2611-0000003",
                          "emise_le": datetime.now(UTC).date().isoformat(), "montant": "20.00", "motif": "Erreur"}])
    c = client.get("/api/v1/dossiers/D000001/compte").json()
    assert [(m["nature"], m["montant"], m["du"], m["credit"], m["solde"]) for m in c["mouvements"]] == [
        ("facture", "42.00", "42.00", "0.00", "42.00"),
        ("facture", "35.00", "77.00", "0.00", "77.00"),
        ("facture", "17.50", "94.50", "0.00", "94.50"),
        ("avoir", "20.00", "77.00", "2.50", "74.50")]
    assert (c["du"], c["credit"], c["tresor"], c["solde"]) == ("77.00", "2.50", "0.00", "74.50")


# --- Page de statut d'une facture : le chemin court (regie/api/rapide.py) -------------------------


def _portee(chemin: str, *en_tetes: tuple[bytes, bytes], methode: str = "GET") -> dict[str, Any]:
    return {"type": "http", "method": methode, "path": chemin, "root_path": "", "headers": list(en_tetes)}


def _facture_payee_avec_avoir(app: Application, client: TestClient, simulateur: SimulateurPayfip,
                              passerelle: PasserellePayfip) -> str:
    """F2611-0000002 : payée par PayFiP (un instant), un avoir au motif non ASCII ; rend l'idOp."""
    trois_factures(app)
    pousser_objets(app, [{"type": "avoir", "numero": "A2611-0000009", "facture": "F2611-0000002",
                          "emise_le": datetime.now(UTC).date().isoformat(), "montant": "5.00",
                          "motif": 'Absence « Léo » "malade" \\ 😀'}])
    simulateur.prevoir_suivant(Scenario(notification_perdue=True))
    id_op: str = client.post("/api/v1/paiements/payfip", json={
        "dossier": "D000001", "factures": [{"numero": "F2611-0000002", "montant": "30.00"}]}).json()["id_op"]
    simulateur.payer(id_op)
    consulter_operations_en_attente(app, passerelle)
    return id_op


def test_le_chemin_court_rend_les_octets_et_en_tetes_de_la_route_fastapi_et_du_modele(
        app: Application, client: TestClient, anonyme: TestClient, cle: str, simulateur: SimulateurPayfip,
        passerelle: PasserellePayfip) -> None:
    _facture_payee_avec_avoir(app, client, simulateur, passerelle)
    intermediaire = StatutRapide(creer_app(app), app)
    for numero in ("F2611-0000001", "F2611-0000002", "F2611-0000003"):
        chemin = f"/api/v1/factures/{numero}"
        assert intermediaire.repondre(_portee(chemin, (b"x-api-key", cle.encode()))) is not None
        assert intermediaire.repondre(_portee(chemin, (b"authorization", f"Bearer {cle}".encode()))) is None
        court = client.get(chemin)  # X-Api-Key : servie par StatutRapide
        route = anonyme.get(chemin, headers={"Authorization": f"Bearer {cle}"})  # servie par la route FastAPI
        assert court.status_code == route.status_code == 200
        assert court.content == route.content
        assert court.headers.multi_items() == route.headers.multi_items()
        assert court.headers["content-type"] == anonyme.get(  # celui d'une route à modèle de réponse
            "/api/v1/dossiers/D000001/factures", headers={"X-Api-Key": cle}).headers["content-type"]
        # Ce que FastAPI écrivait avec response_model=FactureDetail : validation puis sérialisation pydantic.
        modele = TypeAdapter(FactureDetail)
        attendu = modele.dump_json(modele.validate_python(lectures.facture(app, numero, aujourd_hui_paris())))
        assert court.content == attendu
    detail = client.get("/api/v1/factures/F2611-0000002").json()
    assert detail["avoirs_emis"][0]["motif"] == 'Absence « Léo » "malade" \\ 😀'
    assert detail["paiements"][0]["recu_le"].endswith("Z")


@pytest.mark.parametrize(("chemin", "en_tetes", "statut", "code"), [
    ("/api/v1/factures/F2611-0000001", {}, 401, "CLE_MANQUANTE"),
    ("/api/v1/factures/F2611-0000001", {"X-Api-Key": ""}, 401, "CLE_MANQUANTE"),
    ("/api/v1/factures/F2611-0000001", {"X-Api-Key": "rgk_" + "A" * 43}, 401, "CLE_INVALIDE"),
    ("/api/v1/factures/F2611-0000001", {"X-Api-Key": "n-importe-quoi"}, 401, "CLE_INVALIDE"),
    ("/api/v1/factures/F9999", {"X-Api-Key": "{cle}"}, 404, "FACTURE_INCONNUE"),
    ("/api/v1/factures/" + "F" * 31, {"X-Api-Key": "{cle}"}, 422, "REQUETE_INVALIDE"),
    ("/api/v1/factures/F2611-0000001/", {"X-Api-Key": "{cle}"}, 404, "ROUTE_INCONNUE"),
    ("/api/v1/factures/F2611-0000001/paiements", {"X-Api-Key": "{cle}"}, 404, "ROUTE_INCONNUE"),
])
def test_le_chemin_court_laisse_fastapi_repondre_a_tout_autre_cas(
        app: Application, anonyme: TestClient, cle: str, chemin: str, en_tetes: dict[str, str], statut: int,
        code: str) -> None:
    trois_factures(app)
    en_tetes = {k: v.replace("{cle}", cle) for k, v in en_tetes.items()}
    portee = _portee(chemin, *((k.lower().encode(), v.encode()) for k, v in en_tetes.items()))
    assert StatutRapide(creer_app(app), app).repondre(portee) is None
    r = anonyme.get(chemin, headers=en_tetes, follow_redirects=False)
    if statut == 404 and code == "ROUTE_INCONNUE" and r.status_code in (301, 307, 308):
        return  # redirection de la barre finale par Starlette : inchangée, hors du chemin court
    erreur(r, statut, code)


def test_le_chemin_court_refuse_une_cle_revoquee_et_les_autres_methodes_passent_a_fastapi(
        app: Application, anonyme: TestClient, cle: str) -> None:
    trois_factures(app)
    chemin = "/api/v1/factures/F2611-0000001"
    assert anonyme.get(chemin, headers={"X-Api-Key": cle}).status_code == 200
    assert revoquer_cle(app, cle[4:16])
    erreur(anonyme.get(chemin, headers={"X-Api-Key": cle}), 401, "CLE_INVALIDE")
    autre = creer_cle(app, "autre").cle
    erreur(anonyme.post(chemin, headers={"X-Api-Key": autre}), 405, "METHODE_NON_PERMISE")
    assert anonyme.get(chemin, headers={"X-Api-Key": f"  {autre} "}).json()["numero"] == "F2611-0000001"


def test_une_erreur_de_la_base_sur_le_chemin_court_repond_500_erreur_interne(
        app: Application, cle: str, passerelle: PasserellePayfip) -> None:
    trois_factures(app)
    with TestClient(creer_app(app, passerelle), headers={"X-Api-Key": cle},
                    raise_server_exceptions=False) as client:
        assert client.get("/api/v1/factures/F2611-0000001").status_code == 200  # clé en cache
        with app.moteur.begin() as conn:
            conn.exec_driver_sql("ALTER TABLE facture RENAME TO facture_cachee")
        try:
            erreur(client.get("/api/v1/factures/F2611-0000001"), 500, "ERREUR_INTERNE")
        finally:
            with app.moteur.begin() as conn:
                conn.exec_driver_sql("ALTER TABLE facture_cachee RENAME TO facture")


# --- Factures poussées ------------------------------------------------------------------------


def test_pousser_des_factures_les_importe_et_le_meme_envoi_est_ignore(app: Application, client: TestClient) -> None:
    objets = [facture_json("F2611-0000001"), facture_json("F2611-0000002", dossier="D000002")]
    r = client.post("/api/v1/factures", json=objets)
    assert r.status_code == 200, r.text
    assert (r.json()["importes"], r.json()["factures"]) == (2, 2)
    again = client.post("/api/v1/factures", json=objets).json()
    assert (again["importes"], again["deja_importes"]) == (0, 2)
    assert client.get("/api/v1/dossiers/D000002/factures").json()["factures"][0]["numero"] == "F2611-0000002"


def test_un_envoi_invalide_est_refuse_en_entier_avec_toutes_les_erreurs(app: Application, client: TestClient) -> None:
    bonne = facture_json("F2611-0000001")
    mauvaise_regie = facture_json("F2611-0000002") | {"regie": "PISCINE"}
    mauvais_montant = facture_json("F2611-0000003") | {"montant": "3,50"}
    corps = erreur(client.post("/api/v1/factures", json=[bonne, mauvaise_regie, mauvais_montant]),
                   422, "FACTURES_REFUSEES")
    lignes = {(e["ligne"], e["champ"]) for e in corps["erreurs"]}
    assert (2, "regie") in lignes and any(ligne == 3 for ligne, _ in lignes)
    assert all(e["raison"] for e in corps["erreurs"])
    erreur(client.get("/api/v1/dossiers/D000001/factures"), 404, "DOSSIER_INCONNU")  # rien d'appliqué


@pytest.mark.parametrize("corps", [{"pas": "un tableau"}, [], "texte", [1, 2]])
def test_un_envoi_qui_n_est_pas_un_tableau_d_objets_est_refuse(client: TestClient, corps: Any) -> None:
    erreur(client.post("/api/v1/factures", json=corps), 422, "REQUETE_INVALIDE")


# --- Démarrer un paiement : chaque refus ------------------------------------------------------


def demarrer(client: TestClient, *factures: Any, dossier: str = "D000001", **extra: Any) -> Any:
    lignes = [f if isinstance(f, dict) else {"numero": f} for f in factures]
    return client.post("/api/v1/paiements/payfip", json={"dossier": dossier, "factures": lignes, **extra})


@pytest.fixture
def registre(app: Application) -> None:
    pousser_objets(app, [
        facture_json("F2611-0000001"), facture_json("F2611-0000002"),
        facture_json("F2611-0000003", regie="LOISIRS", prix="12.50", quantite="2"),
        facture_json("F2611-0000004", quantite="4"),
        facture_json("F2611-0000005", dossier="D000002"),
        facture_json("F2611-0000006", quantite="1", prix="0.50"),
        facture_json("F2611-0000007", email=None),
        {"type": "avoir", "numero": "A2611-0000001", "facture": "F2611-0000004",
         "emise_le": datetime.now(UTC).date().isoformat(), "montant": "14.00", "motif": "Absence"}])
    with app.moteur.begin() as conn:
        conn.execute(update(EtatFacture).where(EtatFacture.facture_id == select(Facture.id).where(
            Facture.numero == "F2611-0000002").scalar_subquery()).values(statut="titree"))


@pytest.mark.parametrize(("factures", "extra", "statut", "code"), [
    (["F2611-0000001", "F2611-0000003"], {}, 422, "REGIES_MELEES"),
    (["F2611-0000002"], {}, 422, "FACTURE_TITREE"),
    (["F2611-0000004"], {}, 422, "FACTURE_ANNULEE"),
    (["F2611-0000003"], {}, 422, "REGIE_MODE_TITRE"),
    (["F2611-0000005"], {}, 422, "FACTURE_AUTRE_DOSSIER"),
    (["F2611-9999999"], {}, 404, "FACTURE_INCONNUE"),
    (["F2611-0000001"], {"dossier": "D999999"}, 404, "DOSSIER_INCONNU"),
    ([{"numero": "F2611-0000001", "montant": "41.00"}], {}, 422, "MONTANT_DIFFERENT"),
    (["F2611-0000001"], {"montant": "40.00"}, 422, "MONTANT_DIFFERENT"),
    (["F2611-0000006"], {}, 422, "MONTANT_TROP_FAIBLE"),
    (["F2611-0000001", "F2611-0000001"], {}, 422, "FACTURE_EN_DOUBLE"),
    (["F2611-0000007"], {}, 422, "MEL_MANQUANT"),
    (["F2611-0000001"], {"mel": "pas-une-adresse"}, 422, "MEL_INVALIDE"),
    ([{"numero": "F2611-0000001", "montant": "42,00"}], {}, 422, "REQUETE_INVALIDE"),
    ([], {}, 422, "REQUETE_INVALIDE"),
])
def test_chaque_demande_de_paiement_irrecevable_est_refusee_avec_sa_raison(
        app: Application, client: TestClient, simulateur: SimulateurPayfip, registre: None,
        factures: list[Any], extra: dict[str, Any], statut: int, code: str) -> None:
    erreur(demarrer(client, *factures, **extra), statut, code)
    assert simulateur.requetes == []  # rien n'est parti chez PayFiP


def test_une_facture_deja_payee_est_refusee(app: Application, client: TestClient, simulateur: SimulateurPayfip,
                                           passerelle: PasserellePayfip, registre: None) -> None:
    simulateur.prevoir("F26110000001", Scenario(resultat="P", notification_perdue=True))
    assert demarrer(client, "F2611-0000001").status_code == 201
    consulter_operations_en_attente(app, passerelle)
    corps = erreur(demarrer(client, "F2611-0000001"), 422, "FACTURE_PAYEE")
    assert corps["factures"] == ["F2611-0000001"]


def test_une_seconde_tentative_pendant_la_premiere_dit_qu_un_paiement_est_deja_en_cours(
        client: TestClient, registre: None) -> None:
    assert demarrer(client, "F2611-0000001").status_code == 201
    corps = erreur(demarrer(client, "F2611-0000001"), 422, "PAIEMENT_EN_COURS")
    assert "déjà en cours" in corps["message"]
    listee = client.get("/api/v1/factures/F2611-0000001").json()
    assert (listee["payable_en_ligne"], listee["raison"]) == (False, "PAIEMENT_EN_COURS")


def test_sans_cle_on_ne_demarre_pas_de_paiement(anonyme: TestClient, registre: None) -> None:
    erreur(demarrer(anonyme, "F2611-0000001"), 401, "CLE_MANQUANTE")


# --- Notification, retour, santé, OpenAPI -------------------------------------------------------


@pytest.mark.parametrize("requete", [
    {"method": "GET", "url": "/payfip/notification"},
    {"method": "POST", "url": "/payfip/notification", "data": {"autre": "x"}},
    {"method": "POST", "url": "/payfip/notification", "data": {"idOp": "inconnu-1234"}},
    {"method": "GET", "url": "/payfip/notification?idop=%3Cscript%3E"},
    {"method": "POST", "url": "/payfip/notification", "content": b"\xff\xfe", "headers": {
        "content-type": "application/x-www-form-urlencoded"}},
])
def test_la_notification_repond_toujours_200_sans_cle_et_sans_rien_croire(anonyme: TestClient,
                                                                         requete: dict[str, Any]) -> None:
    r = anonyme.request(**requete)
    assert r.status_code == 200 and r.json() == {"statut": "recu"}


def test_la_page_de_retour_est_en_francais(anonyme: TestClient) -> None:
    r = anonyme.get("/payfip/retour", params={"idop": "abc-123"})
    assert r.status_code == 200 and "paiement" in r.text.lower() and 'lang="fr"' in r.text


def test_l_openapi_est_publie_avec_la_securite_par_cle(anonyme: TestClient) -> None:
    schema = anonyme.get("/openapi.json").json()
    assert {"/api/v1/dossiers/{dossier}/factures", "/api/v1/factures/{numero}", "/api/v1/dossiers/{dossier}/compte",
            "/api/v1/factures", "/api/v1/paiements/payfip", "/payfip/notification"} <= set(schema["paths"])
    assert {"APIKeyHeader", "HTTPBearer"} <= set(schema["components"]["securitySchemes"])
    assert anonyme.get("/docs").status_code == 200
    assert anonyme.get("/sante").json() == {"statut": "ok", "base": True}
