"""Le paiement en ligne de bout en bout : API du portail, vrai client PayFiP, simulateur, registre, moteur.

Rien de notre code n'est simulé : le simulateur parle SOAP sur la boucle locale, l'API est appelée par
HTTP (TestClient, ou un vrai uvicorn pour recevoir la notification du simulateur).
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import uvicorn
from fastapi.testclient import TestClient
from sqlalchemy import func, insert, select

from connecteurs.payfip import TransportPayfip
from connecteurs.payfip.simulateur import Scenario, SimulateurPayfip
from regie.api.app import creer_app
from regie.api.securite import creer_cle
from regie.application import Application
from regie.parametres import PayfipConfig
from regie.registre.modeles import Dossier, LignePanierPayfip, OperationPayfip, Paiement
from regie.services.compte import historique
from regie.services.etat import etat
from regie.services.factures import pousser_objets
from regie.services.payfip import (
    IssueTraitement,
    PasserellePayfip,
    consulter_operations_en_attente,
    traiter_notification,
)

MEL = "claire.martin@example.fr"


def facture_json(numero: str, *, dossier: str = "D000001", regie: str = "ENFANCE", quantite: str = "12",
                 prix: str = "3.50", echeance_dans: int = 25, email: str | None = MEL) -> dict[str, Any]:
    """Une facture du portail (specs/factures.md) : une ligne de cantine ou de centre de loisirs."""
    aujourd_hui = datetime.now(UTC).date()
    prestation = "LOISIRS" if regie == "LOISIRS" else "CANTINE"
    montant = f"{int(quantite) * int(prix.replace('.', '')) / 100:.2f}"
    return {"type": "facture", "numero": numero, "regie": regie, "dossier": dossier,
            "payeur": {"civilite": "MME", "nom": "MARTIN", "prenom": "Claire", "email": email,
                       "adresse": {"ligne1": "12 rue des Écoles", "ligne2": None, "code_postal": "94250",
                                   "ville": "GENTILLY"}},
            "emise_le": (aujourd_hui - timedelta(days=max(5, 30 - echeance_dans))).isoformat(),
            "echeance": (aujourd_hui + timedelta(days=echeance_dans)).isoformat(), "periode": "2026-11",
            "lignes": [{"prestation": prestation, "libelle": "Repas", "enfant": "Léo MARTIN",
                        "naissance": "2019-03-02", "quantite": quantite, "prix_unitaire": prix, "montant": montant}],
            "montant": montant}


def trois_factures(app: Application) -> None:
    """D000001 : 42.00 + 35.00 + 17.50 ; D000002 : 7.00."""
    pousser_objets(app, [facture_json("F2611-0000001"), facture_json("F2611-0000002", quantite="10"),
                         facture_json("F2611-0000003", quantite="5"),
                         facture_json("F2611-0000004", dossier="D000002", quantite="2")])


@pytest.fixture
def simulateur() -> Iterator[SimulateurPayfip]:
    with SimulateurPayfip(graine=5) as sim:
        yield sim


@pytest.fixture
def passerelle(app: Application, simulateur: SimulateurPayfip) -> Iterator[PasserellePayfip]:
    transport = TransportPayfip(simulateur.endpoint, delai_s=1.0, tentatives=2, attente_initiale_s=0.01)
    p = PasserellePayfip(app, transport, base_page=simulateur.url_page)
    yield p
    p.close()


@pytest.fixture
def cle(app: Application) -> str:
    return creer_cle(app, "portail de test").cle


@pytest.fixture
def client(app: Application, passerelle: PasserellePayfip, cle: str) -> Iterator[TestClient]:
    with TestClient(creer_app(app, passerelle), headers={"X-Api-Key": cle}) as c:
        yield c


def demarrer(client: TestClient, *numeros: str, dossier: str = "D000001", **extra: Any) -> Any:
    return client.post("/api/v1/paiements/payfip",
                       json={"dossier": dossier, "factures": [{"numero": n} for n in numeros], **extra})


def operation(app: Application, id_op: str) -> Any:
    with app.moteur.connect() as conn:
        return conn.execute(select(OperationPayfip).where(OperationPayfip.id_op == id_op)).one()


def factures_par_numero(app: Application) -> dict[str, dict[str, Any]]:
    return {f["numero"]: f for f in etat(app)["factures"]}


def compter(app: Application, modele: Any) -> int:
    with app.moteur.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(modele)).scalar_one())


def plus_tard(minutes: int) -> datetime:
    return datetime.now(UTC) + timedelta(minutes=minutes)


# --------------------------------------------------------------------------------------------


def test_panier_paye_notification_perdue_la_consultation_periodique_le_rattrape(
        app: Application, client: TestClient, simulateur: SimulateurPayfip, passerelle: PasserellePayfip) -> None:
    trois_factures(app)
    simulateur.prevoir_suivant(Scenario(notification_perdue=True))
    r = demarrer(client, "F2611-0000001", "F2611-0000002", montant="77.00")
    assert r.status_code == 201, r.text
    corps = r.json()
    assert corps["montant"] == "77.00"
    assert corps["refdet"].startswith("PANIER") and 6 <= len(corps["refdet"]) <= 30
    assert corps["url"] == f"{simulateur.url_page}?idop={corps['id_op']}"
    sim_op = simulateur.operation(corps["id_op"])
    assert sim_op.champs["montant"] == "7700" and sim_op.champs["refdet"] == corps["refdet"]
    assert operation(app, corps["id_op"]).statut == "en_attente"

    simulateur.payer(corps["id_op"], "P")  # la famille paie ; la notification se perd
    assert simulateur.notifications == []
    assert operation(app, corps["id_op"]).statut == "en_attente"
    assert client.get("/api/v1/factures/F2611-0000001").json()["raison"] == "PAIEMENT_EN_COURS"

    bilan = consulter_operations_en_attente(app, passerelle)
    assert bilan.issues == {"payee": 1}
    op = operation(app, corps["id_op"])
    assert (op.statut, op.resultat, op.consultations) == ("payee", "P", 1)

    factures = factures_par_numero(app)
    assert [factures[n]["statut"] for n in ("F2611-0000001", "F2611-0000002", "F2611-0000003")] == [
        "payee", "payee", "emise"]
    (paiement,) = [p for p in etat(app)["paiements"] if p["canal"] == "payfip"]
    assert paiement["reference"] == corps["id_op"] and paiement["montant"] == "77.00"
    assert paiement["statut"] == "affecte"
    assert sorted((a["facture"], a["montant"]) for a in paiement["affectations"]) == [
        ("F2611-0000001", "42.00"), ("F2611-0000002", "35.00")]

    compte = client.get("/api/v1/dossiers/D000001/compte").json()
    assert compte["du"] == "17.50" and compte["credit"] == "0.00"
    assert compte["mouvements"][-1]["du"] == "17.50"
    assert [m["nature"] for m in compte["mouvements"]].count("facture") == 3

    # Rejouer : la consultation et une notification tardive ne comptent rien deux fois.
    assert consulter_operations_en_attente(app, passerelle).consultees == 0
    assert traiter_notification(app, passerelle, corps["id_op"]) is IssueTraitement.DEJA_TERMINEE
    assert compter(app, Paiement) == 1
    assert client.get("/api/v1/dossiers/D000001/compte").json()["du"] == "17.50"
    detail = client.get("/api/v1/factures/F2611-0000001").json()
    assert detail["paiements"] == [{"canal": "payfip", "reference": corps["id_op"], "recu_le": detail[
        "paiements"][0]["recu_le"], "montant_paiement": "77.00", "montant_affecte": "42.00"}]
    assert (detail["payable_en_ligne"], detail["raison"]) == (False, "FACTURE_PAYEE")


def test_une_facture_seule_part_avec_sa_propre_refdet(app: Application, client: TestClient,
                                                     simulateur: SimulateurPayfip) -> None:
    trois_factures(app)
    corps = demarrer(client, "F2611-0000003").json()
    assert corps["refdet"] == "F26110000003" and corps["montant"] == "17.50"
    champs = simulateur.operation(corps["id_op"]).champs
    assert champs["mel"] == MEL and champs["numcli"] == "012345" and champs["saisie"] == "T"
    assert champs["objet"] == "Facture F2611 0000003 periode 2026 11"


def _port_libre() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def serveur(app: Application, passerelle: PasserellePayfip) -> Iterator[str]:
    """Un vrai uvicorn sur la boucle locale : le simulateur y envoie sa notification."""
    port = _port_libre()
    base = f"http://127.0.0.1:{port}"
    app.config = app.config.model_copy(update={"payfip": PayfipConfig(
        saisie="T", url_notification=f"{base}/payfip/notification", url_retour=f"{base}/payfip/retour")})
    passerelle._regies.clear()
    serveur = uvicorn.Server(uvicorn.Config(creer_app(app, passerelle), host="127.0.0.1", port=port,
                                            log_level="warning", access_log=False))
    fil = threading.Thread(target=serveur.run, daemon=True)
    fil.start()
    limite = time.monotonic() + 10
    while not serveur.started:
        assert time.monotonic() < limite, "uvicorn n'a pas démarré"
        time.sleep(0.02)
    yield base
    serveur.should_exit = True
    fil.join(timeout=10)


def attendre(condition: Any, delai: float = 10.0) -> None:
    limite = time.monotonic() + delai
    while not condition():
        assert time.monotonic() < limite, "délai dépassé"
        time.sleep(0.05)


@pytest.mark.parametrize(("methode", "cle_notif"), [("POST", "idOp"), ("GET", "idop")])
def test_la_notification_du_simulateur_suffit_a_enregistrer_le_paiement(
        app: Application, serveur: str, simulateur: SimulateurPayfip, cle: str, methode: str, cle_notif: str) -> None:
    import httpx

    trois_factures(app)
    simulateur.methode_notification = methode  # type: ignore[assignment]
    simulateur.cle_notification = cle_notif  # type: ignore[assignment]
    r = httpx.post(f"{serveur}/api/v1/paiements/payfip", headers={"Authorization": f"Bearer {cle}"},
                   json={"dossier": "D000001", "factures": [{"numero": "F2611-0000002", "montant": "35.00"}]})
    assert r.status_code == 201, r.text
    id_op = r.json()["id_op"]
    assert simulateur.operation(id_op).champs["urlnotif"] == f"{serveur}/payfip/notification"
    simulateur.payer(id_op, "V")
    assert simulateur.notifications[-1].statut == 200
    attendre(lambda: operation(app, id_op).statut == "payee")
    attendre(lambda: factures_par_numero(app)["F2611-0000002"]["statut"] == "payee")
    assert compter(app, Paiement) == 1
    # Le navigateur revient : petite page, et rien de plus n'est compté.
    page = httpx.get(f"{serveur}/payfip/retour", params={"idop": id_op})
    assert page.status_code == 200 and "vérification" in page.text
    assert compter(app, Paiement) == 1


def test_p5_puis_p_reste_en_attente_puis_devient_paye(app: Application, client: TestClient,
                                                     simulateur: SimulateurPayfip,
                                                     passerelle: PasserellePayfip) -> None:
    trois_factures(app)
    simulateur.prevoir_suivant(Scenario(resultat="P", p5_avant=2, notification_perdue=True))
    id_op = demarrer(client, "F2611-0000001").json()["id_op"]
    assert consulter_operations_en_attente(app, passerelle).issues == {"en_cours": 1}
    op = operation(app, id_op)
    assert (op.statut, op.resultat, op.consultations) == ("en_attente", "P5", 1)
    assert consulter_operations_en_attente(app, passerelle).issues == {"en_cours": 1}
    # Toujours P5 après la validité de l'idOp : une nouvelle tentative est refusée, l'argent peut arriver.
    r = client.post("/api/v1/paiements/payfip", json={"dossier": "D000001", "factures": [{"numero": "F2611-0000001"}]})
    assert r.status_code == 422 and r.json()["code"] == "PAIEMENT_EN_COURS"
    assert consulter_operations_en_attente(app, passerelle).issues == {"payee": 1}
    assert factures_par_numero(app)["F2611-0000001"]["statut"] == "payee"


def test_p5_au_dela_de_deux_heures_n_est_plus_consulte_qu_une_fois_par_heure(
        app: Application, client: TestClient, simulateur: SimulateurPayfip, passerelle: PasserellePayfip) -> None:
    trois_factures(app)
    simulateur.prevoir_suivant(Scenario(p5_avant=100))
    id_op = demarrer(client, "F2611-0000001").json()["id_op"]
    t = plus_tard(150)
    assert consulter_operations_en_attente(app, passerelle, maintenant=t).consultees == 1
    assert consulter_operations_en_attente(app, passerelle, maintenant=t + timedelta(minutes=30)).consultees == 0
    assert consulter_operations_en_attente(app, passerelle, maintenant=t + timedelta(minutes=61)).consultees == 1
    assert operation(app, id_op).statut == "en_attente"


def test_p1_juste_apres_la_creation_n_est_pas_une_purge_plus_tard_l_operation_expire(
        app: Application, client: TestClient, simulateur: SimulateurPayfip, passerelle: PasserellePayfip) -> None:
    trois_factures(app)
    simulateur.prevoir_suivant(Scenario(purge=True))
    id_op = demarrer(client, "F2611-0000001").json()["id_op"]
    assert consulter_operations_en_attente(app, passerelle).issues == {"en_cours": 1}
    assert operation(app, id_op).statut == "en_attente"
    assert consulter_operations_en_attente(app, passerelle, maintenant=plus_tard(30)).issues == {"expiree": 1}
    op = operation(app, id_op)
    assert (op.statut, op.resultat) == ("expiree", "P1")
    # Les factures sont libres : une nouvelle tentative a un nouvel idOp.
    nouveau = demarrer(client, "F2611-0000001").json()
    assert nouveau["id_op"] != id_op


@pytest.mark.parametrize(("resultat", "statut"), [("R", "refusee"), ("Z", "refusee")])
def test_un_refus_libere_les_factures(app: Application, client: TestClient, simulateur: SimulateurPayfip,
                                     passerelle: PasserellePayfip, resultat: str, statut: str) -> None:
    trois_factures(app)
    id_op = demarrer(client, "F2611-0000001", "F2611-0000003").json()["id_op"]
    simulateur.payer(id_op, resultat)  # type: ignore[arg-type]
    assert traiter_notification(app, passerelle, id_op) is IssueTraitement.REFUSEE
    assert (operation(app, id_op).statut, operation(app, id_op).resultat) == (statut, resultat)
    assert compter(app, Paiement) == 0
    assert factures_par_numero(app)["F2611-0000001"]["statut"] == "emise"
    assert demarrer(client, "F2611-0000001").status_code == 201


def test_un_abandon_recent_reste_en_cours_puis_libere_les_factures(
        app: Application, client: TestClient, simulateur: SimulateurPayfip, passerelle: PasserellePayfip) -> None:
    trois_factures(app)
    id_op = demarrer(client, "F2611-0000001").json()["id_op"]
    simulateur.payer(id_op, "A")
    # La famille peut encore revenir sur la page (idOp valable 15 minutes) : toujours en cours.
    assert traiter_notification(app, passerelle, id_op) is IssueTraitement.EN_COURS
    assert demarrer(client, "F2611-0000001").json()["code"] == "PAIEMENT_EN_COURS"
    assert consulter_operations_en_attente(app, passerelle, maintenant=plus_tard(25)).issues == {"abandonnee": 1}
    assert operation(app, id_op).statut == "abandonnee"
    assert demarrer(client, "F2611-0000001").status_code == 201


def test_une_tentative_ancienne_est_consultee_avant_d_en_ouvrir_une_autre(
        app: Application, client: TestClient, simulateur: SimulateurPayfip, passerelle: PasserellePayfip) -> None:
    trois_factures(app)
    simulateur.prevoir("F26110000001", Scenario(notification_perdue=True))
    premier = demarrer(client, "F2611-0000001").json()["id_op"]
    simulateur.payer(premier, "P")
    from regie.services.payfip import DemandePaiement, FactureDemandee, RefusPaiement, demarrer_paiement

    with pytest.raises(RefusPaiement) as refus:
        demarrer_paiement(app, passerelle, DemandePaiement("D000001", (FactureDemandee("F2611-0000001"),)),
                          maintenant=plus_tard(25))
    assert refus.value.code == "FACTURE_PAYEE"  # la consultation a trouvé le paiement : pas de second
    assert operation(app, premier).statut == "payee"
    assert compter(app, Paiement) == 1


def _rien_d_ouvert(app: Application) -> None:
    with app.moteur.connect() as conn:
        statuts = conn.execute(select(OperationPayfip.statut, OperationPayfip.id_op)).all()
    assert statuts == [("echec_creation", None)]
    assert compter(app, Paiement) == 0


def test_une_panne_a_la_creation_ne_laisse_rien_a_moitie_enregistre(
        app: Application, client: TestClient, simulateur: SimulateurPayfip) -> None:
    trois_factures(app)
    simulateur.faute_technique("TechIndisponibiliteErreur", appels=2)
    r = demarrer(client, "F2611-0000001")
    assert r.status_code == 503 and r.json()["code"] == "PAYFIP_INDISPONIBLE"
    _rien_d_ouvert(app)
    assert client.get("/api/v1/factures/F2611-0000001").json()["payable_en_ligne"] is True
    assert demarrer(client, "F2611-0000001").status_code == 201


def test_un_delai_depasse_a_la_creation_ne_laisse_rien_a_moitie_enregistre(
        app: Application, client: TestClient, simulateur: SimulateurPayfip) -> None:
    trois_factures(app)
    simulateur.ralentir(3.0, appels=2)
    r = demarrer(client, "F2611-0000001", "F2611-0000002")
    assert r.status_code == 503
    _rien_d_ouvert(app)
    with app.moteur.connect() as conn:
        assert conn.execute(select(func.count()).select_from(LignePanierPayfip)).scalar_one() == 2  # trace gardée


def test_une_faute_fonctionnelle_a_la_creation_est_un_refus_explique(
        app: Application, client: TestClient, simulateur: SimulateurPayfip) -> None:
    trois_factures(app)
    simulateur.prevoir("F26110000001", Scenario(faute_creation="A2"))
    r = demarrer(client, "F2611-0000001")
    assert r.status_code == 422 and r.json()["code"] == "MEL_INVALIDE"
    _rien_d_ouvert(app)


def test_une_creation_interrompue_est_close_par_la_consultation_periodique(
        app: Application, passerelle: PasserellePayfip) -> None:
    trois_factures(app)
    with app.moteur.begin() as conn:
        dossier_id = conn.execute(select(Dossier.id).where(Dossier.numero == "D000001")).scalar_one()
        conn.execute(insert(OperationPayfip), {"refdet": "F26110000001", "numcli": "012345", "regie_code": "ENFANCE",
                                               "dossier_id": dossier_id, "montant": 4200, "statut": "creee",
                                               "consultations": 0, "cree_le": plus_tard(-10)})
    bilan = consulter_operations_en_attente(app, passerelle)
    assert bilan.orphelines == 1
    _rien_d_ouvert(app)


def test_payfip_injoignable_laisse_les_operations_en_attente(app: Application, client: TestClient,
                                                            simulateur: SimulateurPayfip,
                                                            passerelle: PasserellePayfip) -> None:
    trois_factures(app)
    id_op = demarrer(client, "F2611-0000001").json()["id_op"]
    simulateur.panne_http(503, appels=2)
    bilan = consulter_operations_en_attente(app, passerelle)
    assert bilan.injoignable and bilan.issues == {"injoignable": 1}
    op = operation(app, id_op)
    assert (op.statut, op.consultations) == ("en_attente", 1)


def test_la_commande_payfip_consulter_sort_en_3_si_payfip_est_injoignable(
        app: Application, client: TestClient, regie_cli: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    trois_factures(app)
    demarrer(client, "F2611-0000001")
    monkeypatch.setenv("REGIE_PAYFIP_ENDPOINT", f"http://127.0.0.1:{_port_libre()}/tpa/services/securite")
    r = regie_cli("payfip", "consulter")
    assert r.returncode == 3, r.stderr
    assert "injoignable" in r.stderr


def test_la_commande_payfip_consulter_enregistre_le_paiement(
        app: Application, client: TestClient, simulateur: SimulateurPayfip, regie_cli: Any,
        monkeypatch: pytest.MonkeyPatch) -> None:
    trois_factures(app)
    simulateur.prevoir("F26110000001", Scenario(notification_perdue=True))
    id_op = demarrer(client, "F2611-0000001").json()["id_op"]
    simulateur.payer(id_op)
    monkeypatch.setenv("REGIE_PAYFIP_ENDPOINT", simulateur.endpoint)
    r = regie_cli("payfip", "consulter")
    assert r.returncode == 0, r.stderr
    assert "1 opération(s) PayFiP consultée(s) : 1 payee" in r.stdout
    assert factures_par_numero(app)["F2611-0000001"]["statut"] == "payee"
    (dossier,) = {f["dossier"] for f in etat(app)["factures"] if f["numero"] == "F2611-0000001"}
    assert [x.libelle for x in historique(app, dossier) if x.nature == "paiement"] == [
        f"Paiement payfip {id_op} affecté à la facture F2611-0000001"]
