"""Le simulateur PayFiP : ses enveloppes et ses fautes, sa page de paiement, ses notifications."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib.resources import files
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from lxml import etree

from connecteurs.payfip import EtatPayfip, PayfipRegie, TransportPayfip, extraire_id_op
from connecteurs.payfip.client import NS_SERVICE
from connecteurs.payfip.simulateur import Scenario, SimulateurPayfip

SOAP = "http://schemas.xmlsoap.org/soap/envelope/"
MEL = "jeanne.dupont@example.org"


class Recepteur:
    """Un petit serveur HTTP qui reçoit les notifications PayFiP comme le ferait le portail."""

    def __init__(self) -> None:
        self.recues: list[dict[str, Any]] = []
        self.arrivee = threading.Event()
        recepteur = self

        class Gestionnaire(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _noter(self, methode: str) -> None:
                morceaux = urlsplit(self.path)
                longueur = int(self.headers.get("Content-Length") or 0)
                corps = self.rfile.read(longueur).decode() if longueur else ""
                recepteur.recues.append({
                    "methode": methode, "chemin": morceaux.path,
                    "requete": {k: v[0] for k, v in parse_qs(morceaux.query).items()},
                    "formulaire": {k: v[0] for k, v in parse_qs(corps).items()},
                    "type": self.headers.get("Content-Type"),
                })
                recepteur.arrivee.set()
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"OK")

            def do_GET(self):
                self._noter("GET")

            def do_POST(self):
                self._noter("POST")

        self.serveur = ThreadingHTTPServer(("127.0.0.1", 0), Gestionnaire)
        self.fil = threading.Thread(target=self.serveur.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.fil.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.serveur.server_address[1]}/payfip/notification"

    def fermer(self) -> None:
        self.serveur.shutdown()
        self.serveur.server_close()


@pytest.fixture
def recepteur():
    r = Recepteur()
    yield r
    r.fermer()


@pytest.fixture
def simulateur():
    with SimulateurPayfip(graine=3) as sim:
        yield sim


@pytest.fixture
def regie(simulateur, recepteur):
    with TransportPayfip(simulateur.endpoint, delai_s=2.0, attente_initiale_s=0.01) as transport:
        yield PayfipRegie(transport, numcli="123456", saisie="T", urlnotif=recepteur.url,
                          urlredirect="http://portail.invalid/paiement/retour?panier=12",
                          base_page=simulateur.url_page)


def enveloppe(operation: str, champs: dict[str, str]) -> bytes:
    arg0 = "".join(f"<{nom}>{valeur}</{nom}>" for nom, valeur in champs.items())
    return (
        f'<soapenv:Envelope xmlns:soapenv="{SOAP}" xmlns:pai="{NS_SERVICE}"><soapenv:Header/><soapenv:Body>'
        f"<pai:{operation}><arg0>{arg0}</arg0></pai:{operation}></soapenv:Body></soapenv:Envelope>"
    ).encode()


def creation(**valeurs: str) -> dict[str, str]:
    return {
        "exer": "2026", "mel": MEL, "montant": "4200", "numcli": "123456", "objet": "Cantine",
        "refdet": "FACT2026000123", "saisie": "T", "urlnotif": "http://127.0.0.1:9/n",
        "urlredirect": "http://127.0.0.1:9/r",
    } | valeurs


def poster(simulateur, corps: bytes) -> requests.Response:
    return requests.post(simulateur.endpoint, data=corps, headers={"Content-Type": "text/xml; charset=utf-8"},
                         timeout=5)


def faute(reponse: requests.Response) -> dict[str, str | None]:
    racine = etree.fromstring(reponse.content)
    element = racine.find(f"{{{SOAP}}}Body/{{{SOAP}}}Fault")
    assert element is not None
    detail = element.find("detail")
    assert detail is not None
    erreur = detail[0]
    return {
        "faultstring": element.findtext("faultstring"),
        "classe": etree.QName(erreur).localname,
        "espace": etree.QName(erreur).namespace,
        **{enfant.tag: enfant.text for enfant in erreur},
    }


def schema_service() -> etree.XMLSchema:
    return etree.XMLSchema(etree.parse(str(files("connecteurs.payfip") / "wsdl" / "PaiementSecuriseService.xsd")))


def contenu_du_corps(reponse: requests.Response) -> etree._Element:
    body = etree.fromstring(reponse.content).find(f"{{{SOAP}}}Body")
    assert body is not None
    return body[0]


# -- le service SOAP ------------------------------------------------------------------------------


def test_un_refdet_de_moins_de_six_caracteres_vaut_une_faute_r3_faite_comme_celle_de_la_dgfip(simulateur):
    reponse = poster(simulateur, enveloppe("creerPaiementSecurise", creation(refdet="F123")))

    assert reponse.status_code == 500
    detail = faute(reponse)
    assert detail["faultstring"] == "fr.gouv.finances.cp.tpa.webservice.exceptions.FonctionnelleErreur"
    assert detail["classe"] == "FonctionnelleErreur"
    assert detail["espace"] == NS_SERVICE
    assert detail["code"] == "R3"
    assert detail["libelle"] and detail["descriptif"] and detail["severite"]
    assert simulateur.operations() == []


@pytest.mark.parametrize("mel", ["a@b", "sans-arobase.example.org", "x" * 75 + "@example.org"])
def test_un_courriel_malforme_vaut_une_faute_a2(simulateur, mel):
    reponse = poster(simulateur, enveloppe("creerPaiementSecurise", creation(mel=mel)))

    assert faute(reponse)["code"] == "A2"


def test_la_creation_rend_un_uuid_dans_return_conforme_au_schema_embarque(simulateur):
    reponse = poster(simulateur, enveloppe("creerPaiementSecurise", creation()))

    assert reponse.status_code == 200
    corps = contenu_du_corps(reponse)
    schema_service().assertValid(etree.ElementTree(corps))
    id_op = corps.findtext("return/idOp")
    assert str(uuid.UUID(id_op)) == id_op
    assert simulateur.operation(id_op).refdet == "FACT2026000123"


def test_idop_en_minuscules_est_repondu_par_une_faute_p1(simulateur):
    creee = poster(simulateur, enveloppe("creerPaiementSecurise", creation()))
    id_op = contenu_du_corps(creee).findtext("return/idOp", "")
    simulateur.payer(id_op)

    minuscule = poster(simulateur, enveloppe("recupererDetailPaiementSecurise", {"idop": id_op}))
    majuscule = poster(simulateur, enveloppe("recupererDetailPaiementSecurise", {"idOp": id_op}))

    assert faute(minuscule)["code"] == "P1"
    assert majuscule.status_code == 200
    corps = contenu_du_corps(majuscule)
    schema_service().assertValid(etree.ElementTree(corps))
    assert corps.findtext("return/resultrans") == "P"
    assert corps.findtext("return/montant") == "4200"
    assert len(corps.findtext("return/dattrans", "")) == 8
    assert len(corps.findtext("return/heurtrans", "")) == 4


def test_les_libelles_d_un_client_connu_sont_conformes_au_schema(simulateur):
    reponse = poster(simulateur, enveloppe("recupererDetailClient", {"numCli": "123456"}))

    corps = contenu_du_corps(reponse)
    schema_service().assertValid(etree.ElementTree(corps))
    assert corps.findtext("return/libelleN1") == "COMMUNE DE DEMONSTRATION"


def test_une_enveloppe_illisible_vaut_une_faute_protocolaire(simulateur):
    reponse = poster(simulateur, b"<pas-du-soap/>")

    assert reponse.status_code == 500
    assert faute(reponse)["classe"] == "TechProtocolaireErreur"


def test_le_wsdl_embarque_est_servi_sur_wsdl(simulateur):
    reponse = requests.get(simulateur.endpoint + "?wsdl", timeout=5)

    assert reponse.status_code == 200
    assert b"PaiementSecuriseServiceSoapBinding" in reponse.content
    assert requests.get(simulateur.base + "/tpa/services/requete.xsd", timeout=5).status_code == 200


def test_arreter_le_simulateur_n_attend_pas_la_fin_d_une_reponse_volontairement_lente():
    sim = SimulateurPayfip().start()
    sim.ralentir(duree_s=30)
    fil = threading.Thread(target=lambda: poster_sans_erreur(sim), daemon=True)
    fil.start()
    time.sleep(0.1)
    debut = time.monotonic()

    sim.stop()

    assert time.monotonic() - debut < 2


def poster_sans_erreur(sim: SimulateurPayfip) -> None:
    with contextlib.suppress(requests.RequestException):
        poster(sim, enveloppe("recupererDetailClient", {"numCli": "123456"}))


# -- la page de paiement et la notification -------------------------------------------------------


@pytest.mark.parametrize("methode", ["GET", "POST"])
@pytest.mark.parametrize("cle", ["idOp", "idop"])
def test_payer_sur_la_page_notifie_urlnotif_puis_renvoie_vers_urlredirect(simulateur, recepteur, regie, methode, cle):
    simulateur.methode_notification = methode
    simulateur.cle_notification = cle
    id_op = regie.creer_paiement("FACT2026000123", 4200, MEL, "Cantine d'octobre", 2026)
    navigateur = requests.Session()

    page = navigateur.get(regie.url_paiement(id_op), timeout=5)
    assert page.status_code == 200
    for bouton in ("Payer", "Refuser", "Abandonner"):
        assert f">{bouton}</button>" in page.text
    assert "42.00 €" in page.text
    retour = navigateur.post(simulateur.url_page, data={"idop": id_op, "action": "payer"},
                             allow_redirects=False, timeout=5)

    assert retour.status_code == 303
    assert retour.headers["Location"].startswith("http://portail.invalid/paiement/retour?panier=12&")
    assert len(recepteur.recues) == 1
    notification = recepteur.recues[0]
    assert notification["methode"] == methode
    assert notification["chemin"] == "/payfip/notification"
    porteur = notification["requete"] if methode == "GET" else notification["formulaire"]
    assert porteur == {cle: id_op}
    # Ce que fera le point de notification du portail : lire l'idOp, puis demander à la DGFiP.
    recu = extraire_id_op(notification["requete"], notification["formulaire"])
    assert recu == id_op
    resultat = regie.resultat(recu)
    assert resultat.etat is EtatPayfip.PAYE
    assert resultat.detail.numauto


@pytest.mark.parametrize(("action", "etat", "resultrans"), [
    ("refuser", EtatPayfip.REFUSE, "R"),
    ("abandonner", EtatPayfip.ABANDONNE, "A"),
])
def test_refuser_ou_abandonner_sur_la_page_termine_l_operation_sans_paiement(
        simulateur, recepteur, regie, action, etat, resultrans):
    id_op = regie.creer_paiement("FACT2026000123", 4200, MEL, "", 2026)

    requests.post(simulateur.url_page, data={"idop": id_op, "action": action}, allow_redirects=False, timeout=5)

    assert len(recepteur.recues) == 1
    resultat = regie.resultat(id_op)
    assert resultat.etat is etat
    assert resultat.detail.resultat == resultrans
    assert resultat.detail.numauto is None


def test_une_notification_perdue_n_arrive_pas_mais_la_consultation_trouve_le_paiement(simulateur, recepteur, regie):
    simulateur.prevoir("FACT2026000123", Scenario(notification_perdue=True))
    id_op = regie.creer_paiement("FACT2026000123", 4200, MEL, "", 2026)

    retour = requests.post(simulateur.url_page, data={"idop": id_op, "action": "payer"},
                           allow_redirects=False, timeout=5)

    assert retour.status_code == 303
    assert recepteur.recues == []
    assert regie.resultat(id_op).etat is EtatPayfip.PAYE


def test_un_paiement_termine_seul_est_notifie_apres_la_reponse_de_creation(simulateur, recepteur, regie):
    simulateur.prevoir("FACT2026000123", Scenario(resultat="V"))

    id_op = regie.creer_paiement("FACT2026000123", 4200, MEL, "", 2026)

    assert recepteur.arrivee.wait(3)
    assert recepteur.recues[0]["formulaire"] == {"idOp": id_op}
    limite = time.monotonic() + 3
    while not simulateur.notifications and time.monotonic() < limite:  # la trace suit la réponse du portail
        time.sleep(0.01)
    assert simulateur.notifications[0].statut == 200


def test_la_page_d_une_operation_inconnue_ou_terminee_ne_propose_plus_de_payer(simulateur, regie):
    id_op = regie.creer_paiement("FACT2026000123", 4200, MEL, "", 2026)
    simulateur.payer(id_op, "P")

    inconnue = requests.get(simulateur.url_page, params={"idop": str(uuid.uuid4())}, timeout=5)
    terminee = requests.get(simulateur.url_page, params={"idop": id_op}, timeout=5)
    rejouee = requests.post(simulateur.url_page, data={"idop": id_op, "action": "payer"},
                            allow_redirects=False, timeout=5)

    assert inconnue.status_code == 404
    assert terminee.status_code == 409 and "Payer</button>" not in terminee.text
    assert rejouee.status_code == 409


def test_payer_par_programme_deux_fois_est_refuse(simulateur, regie):
    id_op = regie.creer_paiement("FACT2026000123", 4200, MEL, "", 2026)
    simulateur.payer(id_op, "P")

    with pytest.raises(ValueError, match="déjà terminée"):
        simulateur.payer(id_op, "R")


def test_un_scenario_se_prevoit_aussi_par_http_pour_la_demonstration(simulateur, regie):
    reponse = requests.post(simulateur.base + "/simulateur/scenarios",
                            data=json.dumps({"refdet": "FACT2026000999", "resultat": "P", "p5_avant": 1}), timeout=5)
    assert reponse.status_code == 204
    id_op = regie.creer_paiement("FACT2026000999", 1500, MEL, "", 2026)

    assert regie.resultat(id_op).etat is EtatPayfip.EN_COURS
    assert regie.resultat(id_op).etat is EtatPayfip.PAYE
    etat = requests.get(simulateur.base + "/simulateur/etat", timeout=5).json()
    assert etat["operations"][0]["consultations"] == 2


def test_le_simulateur_se_lance_seul_en_ligne_de_commande():
    processus = subprocess.Popen(
        [sys.executable, "-m", "connecteurs.payfip.simulateur", "--port", "0", "--numcli", "654321=VILLE,CANTINE"],
        stdout=subprocess.PIPE, text=True,
    )
    assert processus.stdout is not None
    try:
        ligne = ""
        while not ligne.startswith("Simulateur PayFiP"):  # le journal structlog écrit aussi sur stdout
            ligne = processus.stdout.readline()
            assert ligne, "le simulateur s'est arrêté sans annoncer son adresse"
        endpoint = ligne.split()[-1]
        assert endpoint.startswith("http://127.0.0.1:")
        with TransportPayfip(endpoint, delai_s=2.0) as transport:
            detail = transport.recuperer_detail_client("654321")
        assert (detail.libelle_n1, detail.libelle_n2) == ("VILLE", "CANTINE")
    finally:
        processus.terminate()
        processus.wait(timeout=5)
        processus.stdout.close()
