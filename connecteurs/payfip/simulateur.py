"""Un faux PayFiP sur la boucle locale, pour la démonstration et les tests.

Un vrai serveur HTTP (127.0.0.1, port libre, un fil par requête) qui répond aux opérations SOAP du
WSDL embarqué, avec des enveloppes et des fautes faites comme celles de la DGFiP, et une petite
page de paiement (GET /tpa/paiementws.web?idop=...) aux boutons Payer / Refuser / Abandonner qui
termine le paiement, appelle urlnotif de serveur à serveur (sauf notification perdue) et renvoie
le navigateur vers urlredirect.

Le déroulé est scripté par refdet (`prevoir`) ou pour la prochaine création (`prevoir_suivant`) ;
les pannes de transport (lenteur, indisponibilité) le sont pour les prochains appels, quels qu'ils
soient (`ralentir`, `faute_technique`). Toutes les requêtes SOAP reçues sont gardées telles quelles
(`requetes`) pour que les tests vérifient ce que le client envoie vraiment.

    python -m connecteurs.payfip.simulateur --port 8089
"""

from __future__ import annotations

import argparse
import html
import json
import random
import re
import threading
import uuid
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib.resources import files
from typing import Final, Literal
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

import requests
import structlog
from lxml import etree

from connecteurs.payfip.client import (
    FUSEAU_DGFIP,
    NS_SERVICE,
    VALIDITE_ID_OP,
    masquer_mel,
)
from regie.montants import centimes_en_euros

__all__ = ["NotificationEnvoyee", "OperationSimulee", "RequeteSoap", "Scenario", "SimulateurPayfip"]

journal = structlog.get_logger()

NS_ENVELOPPE: Final = "http://schemas.xmlsoap.org/soap/envelope/"
PAQUET_EXCEPTIONS: Final = "fr.gouv.finances.cp.tpa.webservice.exceptions."
CHEMIN_SOAP: Final = "/tpa/services/securite"
CHEMIN_PAGE: Final = "/tpa/paiementws.web"

ResultatSimule = Literal["P", "V", "R", "Z", "A"]
MethodeNotification = Literal["GET", "POST"]
CleNotification = Literal["idOp", "idop"]

# Libellés des fautes, à la manière de la DGFiP. « SIM » et « N1 » sont propres au simulateur
# (la DGFiP ne documente pas les codes de ces cas) : ne pas s'y fier ailleurs.
FAUTES: Final[Mapping[str, tuple[str, str]]] = {
    "R3": ("Le format du paramètre REFDET n'est pas conforme", "refdet : 6 à 30 caractères alphanumériques"),
    "A2": ("Adresse mel incorrecte", "mel : 6 à 80 caractères, adresse électronique valide"),
    "P1": ("IdOp incorrect", "opération inconnue ou purgée"),
    "P5": ("Résultat de la transaction non connu", "paiement en cours"),
    "N1": ("Client inconnu", "numcli inconnu du simulateur"),
    "SIM": ("Paramètre incorrect", "contrôle propre au simulateur"),
    "T1": ("Service momentanément indisponible", "réessayer plus tard"),
}

_REFDET = re.compile(r"[A-Za-z0-9]{6,30}")
_MEL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")


@dataclass(frozen=True, slots=True)
class Scenario:
    """Ce qui arrivera à une opération.

    - `resultat` : l'opération se termine d'elle-même juste après sa création (la famille « a payé »),
      avec notification sauf `notification_perdue` ; sans lui, elle attend la page ou `payer()`.
    - `p5_avant` : les N premières consultations répondent P5, quoi qu'il en soit (« P5 puis P »).
    - `purge` : toute consultation répond P1 (opération purgée ou inconnue).
    - `faute_creation` : creerPaiementSecurise répond cette faute fonctionnelle (R3, A2...).
    """

    resultat: ResultatSimule | None = None
    p5_avant: int = 0
    purge: bool = False
    faute_creation: str | None = None
    notification_perdue: bool = False


@dataclass(slots=True)
class OperationSimulee:
    id_op: str
    champs: dict[str, str]
    scenario: Scenario
    cree_le: datetime
    resultat: ResultatSimule | None = None
    paye_le: datetime | None = None
    numauto: str | None = None
    consultations: int = 0
    purgee: bool = False

    @property
    def refdet(self) -> str:
        return self.champs.get("refdet", "")


@dataclass(frozen=True, slots=True)
class RequeteSoap:
    """Une requête SOAP reçue, telle quelle."""

    operation: str
    corps: bytes
    recue_le: datetime


@dataclass(frozen=True, slots=True)
class NotificationEnvoyee:
    id_op: str
    url: str
    methode: str
    cle: str
    statut: int | None
    erreur: str | None = None


@dataclass(slots=True)
class _Pannes:
    lenteurs: deque[float] = field(default_factory=deque)
    fautes_techniques: deque[str] = field(default_factory=deque)
    statuts_http: deque[int] = field(default_factory=deque)


class _FauteSoap(Exception):
    def __init__(self, code: str, classe: str = "FonctionnelleErreur", faultcode: str = "soap:Server") -> None:
        super().__init__(code)
        self.code = code
        self.classe = classe
        self.faultcode = faultcode


def _maintenant() -> datetime:
    return datetime.now(UTC)


class SimulateurPayfip:
    """Le faux PayFiP. `with SimulateurPayfip() as sim:` démarre et arrête le serveur ; `sim.endpoint`
    est l'adresse SOAP à donner au client, `sim.url_page` celle de la page de paiement."""

    def __init__(
        self,
        *,
        hote: str = "127.0.0.1",
        port: int = 0,
        clients: Mapping[str, tuple[str, str, str]] | None = None,
        methode_notification: MethodeNotification = "POST",
        cle_notification: CleNotification = "idOp",
        horloge: Callable[[], datetime] = _maintenant,
        graine: int | None = None,
    ) -> None:
        self.hote = hote
        self.port_demande = port
        self.clients: dict[str, tuple[str, str, str]] = dict(
            clients if clients is not None else {"123456": ("COMMUNE DE DEMONSTRATION", "REGIE ENFANCE", "")}
        )
        self.methode_notification: MethodeNotification = methode_notification
        self.cle_notification: CleNotification = cle_notification
        self.horloge = horloge
        self._hasard = random.Random(graine)
        self._verrou = threading.RLock()
        self._arret = threading.Event()
        self._operations: dict[str, OperationSimulee] = {}
        self._scenarios_refdet: dict[str, Scenario] = {}
        self._scenarios_suivants: deque[Scenario] = deque()
        self._pannes = _Pannes()
        self._fils_notification: list[threading.Thread] = []
        self.requetes: list[RequeteSoap] = []
        self.notifications: list[NotificationEnvoyee] = []
        self._serveur: ThreadingHTTPServer | None = None
        self._fil: threading.Thread | None = None

    # -- cycle de vie -----------------------------------------------------------------------------

    def start(self) -> SimulateurPayfip:
        if self._serveur is not None:
            return self
        self._arret.clear()
        serveur = ThreadingHTTPServer((self.hote, self.port_demande), _fabriquer_gestionnaire(self))
        serveur.daemon_threads = True
        self._serveur = serveur
        # Sondage court : stop() rend la main vite (les tests démarrent un simulateur chacun).
        self._fil = threading.Thread(target=serveur.serve_forever, kwargs={"poll_interval": 0.05},
                                     name="simulateur-payfip", daemon=True)
        self._fil.start()
        journal.info("simulateur_payfip.demarre", endpoint=self.endpoint)
        return self

    def stop(self) -> None:
        self._arret.set()  # réveille les réponses volontairement lentes
        if self._serveur is not None:
            self._serveur.shutdown()
            self._serveur.server_close()
            self._serveur = None
        if self._fil is not None:
            self._fil.join(timeout=5)
            self._fil = None
        for fil in list(self._fils_notification):
            fil.join(timeout=5)

    def __enter__(self) -> SimulateurPayfip:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._serveur is None:
            raise RuntimeError("simulateur arrêté")
        return int(self._serveur.server_address[1])

    @property
    def base(self) -> str:
        return f"http://{self.hote}:{self.port}"

    @property
    def endpoint(self) -> str:
        return self.base + CHEMIN_SOAP

    @property
    def url_page(self) -> str:
        return self.base + CHEMIN_PAGE

    # -- script ----------------------------------------------------------------------------------

    def prevoir(self, refdet: str, scenario: Scenario) -> None:
        """Toute création avec ce refdet suivra ce scénario."""
        with self._verrou:
            self._scenarios_refdet[refdet] = scenario

    def prevoir_suivant(self, scenario: Scenario) -> None:
        """La prochaine création sans scénario de refdet suivra celui-ci (file d'attente)."""
        with self._verrou:
            self._scenarios_suivants.append(scenario)

    def ralentir(self, duree_s: float, appels: int = 1) -> None:
        """Les `appels` prochains appels SOAP attendront `duree_s` avant de répondre (délai dépassé)."""
        with self._verrou:
            self._pannes.lenteurs.extend([duree_s] * appels)

    def panne_http(self, statut: int = 503, appels: int = 1) -> None:
        """Les `appels` prochains appels SOAP répondront ce statut sans enveloppe (mandataire en panne)."""
        with self._verrou:
            self._pannes.statuts_http.extend([statut] * appels)

    def faute_technique(self, classe: str = "TechIndisponibiliteErreur", appels: int = 1) -> None:
        """Les `appels` prochains appels SOAP répondront cette faute technique."""
        with self._verrou:
            self._pannes.fautes_techniques.extend([classe] * appels)

    def operation(self, id_op: str) -> OperationSimulee:
        with self._verrou:
            return self._operations[id_op]

    def operations(self) -> list[OperationSimulee]:
        with self._verrou:
            return list(self._operations.values())

    def purger(self, id_op: str) -> None:
        """Comme la purge de nuit : l'opération répond P1 désormais."""
        with self._verrou:
            self._operations[id_op].purgee = True

    def payer(self, id_op: str, resultat: ResultatSimule = "P", *, le: datetime | None = None) -> OperationSimulee:
        """Termine l'opération comme si la famille l'avait fait sur la page, puis notifie (sauf perte).

        `le` (avec fuseau) fixe l'instant de la transaction ; dattrans/heurtrans en sont tirés en heure de Paris.
        """
        with self._verrou:
            operation = self._operations.get(id_op)
            if operation is None:
                raise KeyError(f"opération inconnue : {id_op}")
            if operation.resultat is not None:
                raise ValueError(f"opération déjà terminée ({operation.resultat}) : {id_op}")
            self._terminer(operation, resultat, le)
        self._notifier(operation)
        return operation

    # -- mécanique -------------------------------------------------------------------------------

    def _terminer(self, operation: OperationSimulee, resultat: ResultatSimule, le: datetime | None) -> None:
        instant = le if le is not None else self.horloge()
        if instant.tzinfo is None:
            raise ValueError("l'instant de la transaction doit porter un fuseau")
        operation.resultat = resultat
        operation.paye_le = instant
        operation.numauto = f"{self._hasard.randrange(1_000_000):06d}" if resultat in ("P", "V") else None
        journal.info("simulateur_payfip.termine", id_op=operation.id_op, resultat=resultat)

    def _notifier(self, operation: OperationSimulee) -> None:
        url = operation.champs.get("urlnotif", "")
        if operation.scenario.notification_perdue or not url:
            journal.info("simulateur_payfip.notification_perdue", id_op=operation.id_op)
            return
        methode, cle = self.methode_notification, self.cle_notification
        try:
            if methode == "GET":
                reponse = requests.get(url, params={cle: operation.id_op}, timeout=5)
            else:
                reponse = requests.post(url, data={cle: operation.id_op}, timeout=5)
            trace = NotificationEnvoyee(operation.id_op, url, methode, cle, reponse.status_code)
        except requests.RequestException as exc:
            # La DGFiP ne réessaie pas : une notification qui échoue est perdue.
            trace = NotificationEnvoyee(operation.id_op, url, methode, cle, None, str(exc))
        with self._verrou:
            self.notifications.append(trace)
        journal.info("simulateur_payfip.notification", id_op=operation.id_op, methode=methode, statut=trace.statut)

    def _notifier_plus_tard(self, operation: OperationSimulee) -> None:
        # Après la réponse de création, pour que l'appelant ait déjà l'idOp (comme chez la DGFiP).
        def differe() -> None:
            if not self._arret.wait(0.05):
                self._notifier(operation)

        fil = threading.Thread(target=differe, name="notification-payfip", daemon=True)
        with self._verrou:
            self._fils_notification.append(fil)
        fil.start()

    def traiter_soap(self, corps: bytes) -> tuple[int, bytes, str]:
        """Répond à une requête SOAP : (statut HTTP, enveloppe, type de contenu)."""
        statut, reponse = self._repondre_soap(corps)
        with self._verrou:
            panne = self._pannes.statuts_http.popleft() if self._pannes.statuts_http else None
        if panne is not None:
            return panne, b"Service Unavailable", "text/plain; charset=utf-8"
        return statut, reponse, "text/xml; charset=utf-8"

    def _repondre_soap(self, corps: bytes) -> tuple[int, bytes]:
        try:
            operation, champs = self._lire_requete(corps)
        except _FauteSoap as faute:
            with self._verrou:
                self.requetes.append(RequeteSoap("illisible", corps, self.horloge()))
            return 500, _enveloppe_faute(faute)
        with self._verrou:
            self.requetes.append(RequeteSoap(operation, corps, self.horloge()))
            lenteur = self._pannes.lenteurs.popleft() if self._pannes.lenteurs else 0.0
            technique = self._pannes.fautes_techniques.popleft() if self._pannes.fautes_techniques else None
        if lenteur:
            self._arret.wait(lenteur)
        try:
            if technique is not None:
                raise _FauteSoap("T1", technique)
            if operation == "creerPaiementSecurise":
                return 200, self._creer(champs)
            if operation == "recupererDetailPaiementSecurise":
                return 200, self._detail_paiement(champs)
            return 200, self._detail_client(champs)
        except _FauteSoap as faute:
            journal.info("simulateur_payfip.faute", operation=operation, code=faute.code, classe=faute.classe)
            return 500, _enveloppe_faute(faute)

    def _lire_requete(self, corps: bytes) -> tuple[str, dict[str, str]]:
        analyseur = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False)
        try:
            racine = etree.fromstring(corps, parser=analyseur)
        except etree.XMLSyntaxError as exc:
            raise _FauteSoap("SIM", "TechProtocolaireErreur", "soap:Client") from exc
        corps_soap = racine.find(f"{{{NS_ENVELOPPE}}}Body")
        if racine.tag != f"{{{NS_ENVELOPPE}}}Envelope" or corps_soap is None or len(corps_soap) == 0:
            raise _FauteSoap("SIM", "TechProtocolaireErreur", "soap:Client")
        enveloppe_op = corps_soap[0]
        nom = etree.QName(enveloppe_op)
        if nom.namespace != NS_SERVICE or nom.localname not in _OPERATIONS:
            raise _FauteSoap("SIM", "TechProtocolaireErreur", "soap:Client")
        # Comme un service JAXB : les champs de arg0 sont non qualifiés, un nom inconnu est ignoré
        # (d'où `idop` en minuscules → idOp absent → P1).
        arg0 = enveloppe_op.find("arg0")
        champs: dict[str, str] = {}
        if arg0 is not None:
            for enfant in arg0:
                if isinstance(enfant.tag, str) and etree.QName(enfant).namespace is None:
                    champs[enfant.tag] = (enfant.text or "").strip()
        return nom.localname, champs

    def _creer(self, champs: dict[str, str]) -> bytes:
        refdet = champs.get("refdet", "")
        with self._verrou:
            scenario = self._scenarios_refdet.get(refdet)
            if scenario is None:
                scenario = self._scenarios_suivants.popleft() if self._scenarios_suivants else Scenario()
        if scenario.faute_creation:
            raise _FauteSoap(scenario.faute_creation)
        if not _REFDET.fullmatch(refdet):
            raise _FauteSoap("R3")
        mel = champs.get("mel", "")
        if not 6 <= len(mel) <= 80 or not _MEL.fullmatch(mel):
            raise _FauteSoap("A2")
        montant = champs.get("montant", "")
        if not (montant.isascii() and montant.isdigit() and int(montant) >= 100):
            raise _FauteSoap("SIM")
        if not re.fullmatch(r"[0-9]{6}", champs.get("numcli", "")) or champs.get("saisie") not in ("T", "X", "W"):
            raise _FauteSoap("SIM")
        if not re.fullmatch(r"[0-9]{4}", champs.get("exer", "")):
            raise _FauteSoap("SIM")
        operation = OperationSimulee(str(uuid.uuid4()), dict(champs), scenario, self.horloge())
        with self._verrou:
            self._operations[operation.id_op] = operation
            if scenario.resultat is not None:
                self._terminer(operation, scenario.resultat, None)
        journal.info("simulateur_payfip.cree", id_op=operation.id_op, refdet=refdet, mel=masquer_mel(mel))
        if scenario.resultat is not None:
            self._notifier_plus_tard(operation)
        return _enveloppe_reponse("creerPaiementSecuriseResponse", {"idOp": operation.id_op})

    def _detail_paiement(self, champs: dict[str, str]) -> bytes:
        with self._verrou:
            operation = self._operations.get(champs.get("idOp", ""))
            if operation is None or operation.purgee or operation.scenario.purge:
                raise _FauteSoap("P1")
            operation.consultations += 1
            if operation.consultations <= operation.scenario.p5_avant or operation.resultat is None:
                raise _FauteSoap("P5")
            assert operation.paye_le is not None
            local = operation.paye_le.astimezone(FUSEAU_DGFIP)
            c = operation.champs
            reponse = {
                "dattrans": local.strftime("%d%m%Y"),
                "exer": c.get("exer"),
                "heurtrans": local.strftime("%H%M"),
                "idOp": operation.id_op,
                "mel": c.get("mel"),
                "montant": c.get("montant"),
                "numauto": operation.numauto,
                "numcli": c.get("numcli"),
                "objet": c.get("objet"),
                "refdet": c.get("refdet"),
                "resultrans": operation.resultat,
                "saisie": c.get("saisie"),
            }
        return _enveloppe_reponse("recupererDetailPaiementSecuriseResponse", reponse)

    def _detail_client(self, champs: dict[str, str]) -> bytes:
        numcli = champs.get("numCli", "")
        libelles = self.clients.get(numcli)
        if libelles is None:
            raise _FauteSoap("N1")
        n1, n2, n3 = libelles
        return _enveloppe_reponse(
            "recupererDetailClientResponse",
            {"libelleN1": n1, "libelleN2": n2, "libelleN3": n3 or None, "numcli": numcli},
        )

    # -- page de paiement ------------------------------------------------------------------------

    def page(self, id_op: str) -> tuple[int, str]:
        with self._verrou:
            operation = self._operations.get(id_op)
            if operation is None or operation.purgee:
                return 404, _page_html("Opération inconnue", "<p>Cette opération n'existe pas.</p>")
            if operation.resultat is not None:
                fin = f"<p>Cette opération est terminée ({operation.resultat}).</p>"
                return 409, _page_html("Paiement terminé", fin)
            if self.horloge() - operation.cree_le > VALIDITE_ID_OP:
                return 410, _page_html("Opération expirée", "<p>Le délai de 15 minutes est dépassé.</p>")
            c = operation.champs
        montant = c.get("montant", "0")
        euros = centimes_en_euros(int(montant)) if montant.isdigit() else montant
        corps = (
            f"<p>Référence : <strong>{html.escape(c.get('refdet', ''))}</strong></p>"
            f"<p>Objet : {html.escape(c.get('objet', ''))}</p>"
            f"<p>Montant : <strong>{html.escape(euros)} €</strong></p>"
            f'<form method="post" action="{CHEMIN_PAGE}">'
            f'<input type="hidden" name="idop" value="{html.escape(id_op)}">'
            '<button type="submit" name="action" value="payer">Payer</button> '
            '<button type="submit" name="action" value="refuser">Refuser</button> '
            '<button type="submit" name="action" value="abandonner">Abandonner</button>'
            "</form>"
        )
        return 200, _page_html("Paiement PayFiP (simulateur)", corps)

    def action_page(self, id_op: str, action: str) -> tuple[int, str, str | None]:
        """Bouton de la page : (statut, page, adresse de redirection)."""
        resultat: ResultatSimule | None = {"payer": "P", "refuser": "R", "abandonner": "A"}.get(action)  # type: ignore[assignment]
        statut, contenu = self.page(id_op)
        if statut != 200:
            return statut, contenu, None
        if resultat is None:
            return 400, _page_html("Action inconnue", "<p>Payer, Refuser ou Abandonner.</p>"), None
        try:
            operation = self.payer(id_op, resultat)
        except (KeyError, ValueError) as exc:
            return 409, _page_html("Paiement impossible", f"<p>{html.escape(str(exc))}</p>"), None
        retour = operation.champs.get("urlredirect", "")
        if not retour:
            return 200, _page_html("Paiement terminé", f"<p>Résultat : {resultat}</p>"), None
        return 303, "", _ajouter_parametre(retour, self.cle_notification, id_op)

    def etat(self) -> dict[str, object]:
        """État lisible (JSON), pour la démonstration et le débogage."""
        with self._verrou:
            return {
                "operations": [
                    {
                        "id_op": o.id_op, "refdet": o.refdet, "montant": o.champs.get("montant"),
                        "resultat": o.resultat, "consultations": o.consultations, "purgee": o.purgee,
                        "scenario": asdict(o.scenario),
                    }
                    for o in self._operations.values()
                ],
                "requetes": len(self.requetes),
                "notifications": [asdict(n) for n in self.notifications],
            }


_OPERATIONS: Final = frozenset({"creerPaiementSecurise", "recupererDetailPaiementSecurise", "recupererDetailClient"})


def _enveloppe(contenu: etree._Element) -> bytes:
    enveloppe = etree.Element(f"{{{NS_ENVELOPPE}}}Envelope", nsmap={"soap": NS_ENVELOPPE})
    corps = etree.SubElement(enveloppe, f"{{{NS_ENVELOPPE}}}Body")
    corps.append(contenu)
    return bytes(etree.tostring(enveloppe, xml_declaration=True, encoding="UTF-8"))


def _enveloppe_reponse(element: str, champs: Mapping[str, str | None]) -> bytes:
    reponse = etree.Element(f"{{{NS_SERVICE}}}{element}", nsmap={"ns2": NS_SERVICE})
    retour = etree.SubElement(reponse, "return")
    for nom, valeur in champs.items():
        if valeur is not None:
            etree.SubElement(retour, nom).text = valeur
    return _enveloppe(reponse)


def _enveloppe_faute(faute: _FauteSoap) -> bytes:
    libelle, descriptif = FAUTES.get(faute.code, FAUTES["SIM"])
    element = etree.Element(f"{{{NS_ENVELOPPE}}}Fault")
    etree.SubElement(element, "faultcode").text = faute.faultcode
    etree.SubElement(element, "faultstring").text = PAQUET_EXCEPTIONS + faute.classe
    detail = etree.SubElement(element, "detail")
    erreur = etree.SubElement(detail, f"{{{NS_SERVICE}}}{faute.classe}", nsmap={"ns2": NS_SERVICE})
    for nom, valeur in (("code", faute.code), ("descriptif", descriptif), ("libelle", libelle), ("severite", "2")):
        etree.SubElement(erreur, nom).text = valeur
    return _enveloppe(element)


def _page_html(titre: str, corps: str) -> str:
    return (
        '<!doctype html><html lang="fr"><head><meta charset="utf-8">'
        f"<title>{html.escape(titre)}</title></head><body>"
        f"<h1>{html.escape(titre)}</h1>{corps}"
        "<p><small>Simulateur PayFiP : aucun paiement réel.</small></p></body></html>"
    )


def _ajouter_parametre(url: str, cle: str, valeur: str) -> str:
    morceaux = urlsplit(url)
    requete = f"{morceaux.query}&" if morceaux.query else ""
    return urlunsplit(morceaux._replace(query=requete + urlencode({cle: valeur})))


def _fabriquer_gestionnaire(simulateur: SimulateurPayfip) -> type[BaseHTTPRequestHandler]:
    dossier_wsdl = files("connecteurs.payfip") / "wsdl"

    class Gestionnaire(BaseHTTPRequestHandler):
        server_version = "SimulateurPayfip/1.0"

        def log_message(self, format: str, *args: object) -> None:
            journal.debug("simulateur_payfip.http", ligne=format % args)

        def _repondre(
            self, statut: int, contenu: bytes, type_contenu: str, entetes: Mapping[str, str] | None = None
        ) -> None:
            try:
                self.send_response(statut)
                self.send_header("Content-Type", type_contenu)
                self.send_header("Content-Length", str(len(contenu)))
                for nom, valeur in (entetes or {}).items():
                    self.send_header(nom, valeur)
                self.end_headers()
                self.wfile.write(contenu)
            except (BrokenPipeError, ConnectionResetError):
                # Le client est parti (délai dépassé de son côté) : c'est le scénario voulu.
                journal.debug("simulateur_payfip.client_parti")

        def _lire_corps(self) -> bytes:
            longueur = int(self.headers.get("Content-Length") or 0)
            return self.rfile.read(longueur) if longueur > 0 else b""

        def do_GET(self) -> None:
            morceaux = urlsplit(self.path)
            parametres = parse_qs(morceaux.query, keep_blank_values=True)
            if morceaux.path == CHEMIN_PAGE:
                id_op = (parametres.get("idop") or parametres.get("idOp") or [""])[0]
                statut, page = simulateur.page(id_op)
                self._repondre(statut, page.encode(), "text/html; charset=utf-8")
            elif morceaux.path == CHEMIN_SOAP and "wsdl" in {k.lower() for k in parametres}:
                contenu = (dossier_wsdl / "PaiementSecuriseService.wsdl").read_bytes()
                self._repondre(200, contenu, "text/xml; charset=utf-8")
            elif morceaux.path.startswith("/tpa/services/") and morceaux.path.endswith(".xsd"):
                fichier = dossier_wsdl / morceaux.path.rsplit("/", 1)[-1]
                if fichier.is_file():
                    self._repondre(200, fichier.read_bytes(), "text/xml; charset=utf-8")
                else:
                    self._repondre(404, b"", "text/plain")
            elif morceaux.path == "/simulateur/etat":
                self._repondre(200, json.dumps(simulateur.etat()).encode(), "application/json")
            else:
                self._repondre(404, b"Introuvable", "text/plain; charset=utf-8")

        def do_POST(self) -> None:
            morceaux = urlsplit(self.path)
            corps = self._lire_corps()
            if morceaux.path == CHEMIN_SOAP:
                self._repondre(*simulateur.traiter_soap(corps))
            elif morceaux.path == CHEMIN_PAGE:
                formulaire = parse_qs(corps.decode("utf-8", "replace"))
                id_op = (formulaire.get("idop") or formulaire.get("idOp") or [""])[0]
                action = (formulaire.get("action") or [""])[0]
                statut, page, retour = simulateur.action_page(id_op, action)
                entetes = {"Location": retour} if retour else None
                self._repondre(statut, page.encode(), "text/html; charset=utf-8", entetes)
            elif morceaux.path == "/simulateur/scenarios":
                self._prevoir(corps)
            else:
                self._repondre(404, b"Introuvable", "text/plain; charset=utf-8")

        def _prevoir(self, corps: bytes) -> None:
            # Pour la démonstration hors processus : {"refdet": "...", "resultat": "P", "p5_avant": 2, ...}
            try:
                donnees = json.loads(corps)
                refdet = donnees.pop("refdet", None)
                scenario = Scenario(**donnees)
            except (ValueError, TypeError) as exc:
                self._repondre(400, str(exc).encode(), "text/plain; charset=utf-8")
                return
            if refdet:
                simulateur.prevoir(str(refdet), scenario)
            else:
                simulateur.prevoir_suivant(scenario)
            self._repondre(204, b"", "text/plain")

    return Gestionnaire


def main(argv: list[str] | None = None) -> int:
    parseur = argparse.ArgumentParser(
        prog="python -m connecteurs.payfip.simulateur",
        description="Simulateur PayFiP sur la boucle locale (démonstration, tests).",
    )
    parseur.add_argument("--hote", default="127.0.0.1")
    parseur.add_argument("--port", type=int, default=8089)
    parseur.add_argument("--notification", choices=["GET", "POST"], default="POST",
                         help="méthode de l'appel à urlnotif")
    parseur.add_argument("--cle", choices=["idOp", "idop"], default="idOp", help="nom du paramètre de notification")
    parseur.add_argument("--numcli", action="append", default=[],
                         help="numcli connu, forme NUMCLI=LIBELLE1[,LIBELLE2[,LIBELLE3]] (répétable)")
    options = parseur.parse_args(argv)
    clients: dict[str, tuple[str, str, str]] | None = None
    if options.numcli:
        clients = {}
        for entree in options.numcli:
            numcli, _, libelles = entree.partition("=")
            morceaux = ([*libelles.split(","), "", "", ""])[:3]
            clients[numcli] = (morceaux[0], morceaux[1], morceaux[2])
    simulateur = SimulateurPayfip(
        hote=options.hote, port=options.port, clients=clients,
        methode_notification=options.notification, cle_notification=options.cle,
    )
    with simulateur:
        print(f"Simulateur PayFiP : service SOAP {simulateur.endpoint}")
        print(f"                    page de paiement {simulateur.url_page}?idop=...")
        print("Ctrl-C pour arrêter.", flush=True)
        try:
            threading.Event().wait()
        except KeyboardInterrupt:
            print("Arrêt.")
    return 0


if __name__ == "__main__":
    import logging

    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.INFO))
    raise SystemExit(main())
