"""Client du web service PayFiP Régie (SOAP 1.1, document/literal).

Trois étages, du bas vers le haut :

- les règles des champs, fonctions pures vérifiées AVANT tout appel (`DemandeInvalide`) ;
- `TransportPayfip` : une méthode par opération SOAP, délais, nouvelles tentatives pour les seules
  pannes passagères, fautes DGFiP changées en `ErreurPayfip` (code conservé) ;
- `PayfipRegie` : l'adaptateur métier d'une régie (numcli, saisie, URL de retour) qui crée un
  paiement et dit où il en est (`ResultatPayfip`).

Aucune base de données ici : l'enregistrement du panier, l'interrogation périodique et le point
de notification appartiennent à l'application, qui appelle ces fonctions.
"""

from __future__ import annotations

import re
import time
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from importlib.resources import as_file, files
from typing import Any, Final, Literal
from urllib.parse import quote
from zoneinfo import ZoneInfo

import requests
import structlog
import zeep
import zeep.exceptions
from lxml import etree
from zeep.transports import Transport

from connecteurs.modeles import Detail, PaiementRecu

__all__ = [
    "ENDPOINT_PRODUCTION",
    "URL_PAGE_PAIEMENT",
    "DemandeInvalide",
    "DetailClient",
    "DetailPaiement",
    "ErreurConnecteurPayfip",
    "ErreurPayfip",
    "EtatPayfip",
    "PayfipInjoignable",
    "PayfipRegie",
    "ReponseInvalide",
    "ResultatPayfip",
    "TransportPayfip",
    "date_transaction",
    "extraire_id_op",
    "masquer_mel",
    "nettoyer_objet",
    "preparer_creation",
    "url_paiement",
]

journal = structlog.get_logger()

ENDPOINT_PRODUCTION: Final = "https://www.payfip.gouv.fr/tpa/services/securite"
URL_PAGE_PAIEMENT: Final = "https://www.payfip.gouv.fr/tpa/paiementws.web"

NS_SERVICE: Final = (
    "http://securite.service.tpa.cp.finances.gouv.fr/services/mas_securite/"
    "contrat_paiement_securise/PaiementSecuriseService"
)
NS_REQUETE: Final = "http://securite.service.tpa.cp.finances.gouv.fr/requete"
NS_REPONSE: Final = "http://securite.service.tpa.cp.finances.gouv.fr/reponse"
BINDING: Final = f"{{{NS_SERVICE}}}PaiementSecuriseServiceSoapBinding"
FICHIER_WSDL: Final = "PaiementSecuriseService.wsdl"

FUSEAU_DGFIP: Final = ZoneInfo("Europe/Paris")

# Un idOp sert 15 minutes au paiement ; un « A » lu avant ce délai (plus une marge) peut encore
# devenir un paiement si la famille revient sur la page : on le tient pour « en cours ».
VALIDITE_ID_OP: Final = timedelta(minutes=15)
DELAI_ABANDON_DEFINITIF: Final = timedelta(minutes=20)

Resultat = Literal["P", "V", "R", "Z", "A"]
RESULTATS: Final[frozenset[str]] = frozenset({"P", "V", "R", "Z", "A"})
LIBELLES_RESULTAT: Final[Mapping[str, str]] = {
    "P": "payé par carte",
    "V": "payé par prélèvement",
    "R": "carte refusée",
    "Z": "prélèvement refusé",
    "A": "abandonné par le payeur",
}
SAISIES: Final[frozenset[str]] = frozenset({"T", "X", "W"})

# Fautes « techniques » que la DGFiP lève quand son service est passagèrement en difficulté :
# les seules que l'on retente. Une faute fonctionnelle (R3, A2, P1, P5...) ne change pas en
# réessayant, et TechProtocolaireErreur dit que notre message est mal formé.
CLASSES_TRANSITOIRES: Final[frozenset[str]] = frozenset({"TechIndisponibiliteErreur", "TechDysfonctionnementErreur"})
STATUTS_HTTP_TRANSITOIRES: Final[frozenset[int]] = frozenset({502, 503, 504})


# --------------------------------------------------------------------------------------------
# Erreurs
# --------------------------------------------------------------------------------------------


class DemandeInvalide(ValueError):
    """Un champ refusé avant tout appel : rien n'est parti chez la DGFiP."""

    def __init__(self, champ: str, raison: str) -> None:
        super().__init__(f"{champ} : {raison}")
        self.champ = champ
        self.raison = raison


class ErreurConnecteurPayfip(Exception):
    """Base des échecs d'un échange avec PayFiP (faute, réponse illisible, pair injoignable)."""


class ErreurPayfip(ErreurConnecteurPayfip):
    """Faute SOAP de la DGFiP, avec son code (R3, A2, P1, P5...) et sa classe d'exception."""

    def __init__(self, code: str, libelle: str, descriptif: str = "", severite: str = "", classe: str = "") -> None:
        self.code = code
        self.libelle = libelle
        self.descriptif = descriptif
        self.severite = severite
        self.classe = classe
        texte = f"PayFiP {classe or 'erreur'} {code} : {libelle}"
        if descriptif and descriptif != libelle:
            texte += f" ({descriptif})"
        super().__init__(texte)

    @property
    def transitoire(self) -> bool:
        """Vrai pour une indisponibilité passagère de la DGFiP : réessayer plus tard a un sens."""
        return self.classe in CLASSES_TRANSITOIRES


class ReponseInvalide(ErreurConnecteurPayfip):
    """La DGFiP (ou ce qui répond à sa place) a renvoyé une réponse que l'on ne sait pas lire."""

    def __init__(self, champ: str, raison: str) -> None:
        super().__init__(f"réponse PayFiP illisible, {champ} : {raison}")
        self.champ = champ
        self.raison = raison


class PayfipInjoignable(ErreurConnecteurPayfip):
    """Le service n'a pas répondu (connexion refusée, délai dépassé, 502/503/504) après toutes les tentatives."""

    def __init__(self, endpoint: str, tentatives: int, cause: str) -> None:
        super().__init__(f"PayFiP injoignable à {endpoint} après {tentatives} tentative(s) : {cause}")
        self.endpoint = endpoint
        self.tentatives = tentatives
        self.cause = cause


# --------------------------------------------------------------------------------------------
# Règles des champs (pures)
# --------------------------------------------------------------------------------------------

_REFDET = re.compile(r"[A-Za-z0-9]{6,30}")
_NUMCLI = re.compile(r"[0-9]{6}")
_EXER = re.compile(r"[0-9]{4}")
# Plausible, pas RFC 5322 : la DGFiP juge en dernier (faute A2).
_ETIQUETTE = r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
_MEL = re.compile(rf"[A-Za-z0-9.!#$%&'*+/=?^_`{{|}}~-]+@{_ETIQUETTE}(?:\.{_ETIQUETTE})+")
_ID_OP = re.compile(r"[A-Za-z0-9-]{1,64}")
_URL = re.compile(r"https?://[^\s]+")
_LIGATURES = str.maketrans({"œ": "oe", "Œ": "OE", "æ": "ae", "Æ": "AE", "ß": "ss"})
MONTANT_MINIMUM: Final = 100
OBJET_LONGUEUR_MAX: Final = 100


def verifier_refdet(refdet: str) -> str:
    if not isinstance(refdet, str) or not _REFDET.fullmatch(refdet):
        raise DemandeInvalide("refdet", "de 6 à 30 lettres sans accent ou chiffres attendus")
    return refdet


def verifier_montant(montant_centimes: int) -> str:
    """Renvoie le montant tel que PayFiP l'attend : des centimes en chaîne d'entier."""
    if isinstance(montant_centimes, bool) or not isinstance(montant_centimes, int):
        raise DemandeInvalide("montant", "un nombre entier de centimes est attendu")
    if montant_centimes < MONTANT_MINIMUM:
        raise DemandeInvalide("montant", "PayFiP refuse un paiement de moins de 1.00 €")
    return str(montant_centimes)


def verifier_mel(mel: str) -> str:
    if not isinstance(mel, str) or not 6 <= len(mel) <= 80:
        raise DemandeInvalide("mel", "l'adresse électronique doit compter de 6 à 80 caractères")
    if not _MEL.fullmatch(mel):
        raise DemandeInvalide("mel", "l'adresse électronique n'est pas plausible")
    return mel


def verifier_numcli(numcli: str) -> str:
    if not isinstance(numcli, str) or not _NUMCLI.fullmatch(numcli):
        raise DemandeInvalide("numcli", "le numéro client PayFiP compte 6 chiffres")
    return numcli


def verifier_exer(exer: str | int) -> str:
    texte = str(exer) if isinstance(exer, int) and not isinstance(exer, bool) else exer
    if not isinstance(texte, str) or not _EXER.fullmatch(texte):
        raise DemandeInvalide("exer", "l'exercice est une année sur 4 chiffres")
    return texte


def verifier_saisie(saisie: str) -> str:
    if saisie not in SAISIES:
        raise DemandeInvalide("saisie", "T (test), X (activation) ou W (production) attendu")
    return saisie


def verifier_url(champ: str, url: str) -> str:
    if not isinstance(url, str) or not _URL.fullmatch(url):
        raise DemandeInvalide(champ, "une adresse http:// ou https:// est attendue")
    return url


def verifier_id_op(id_op: str) -> str:
    if not isinstance(id_op, str) or not _ID_OP.fullmatch(id_op):
        raise DemandeInvalide("idOp", "identifiant d'opération vide ou malformé")
    return id_op


def nettoyer_objet(texte: str) -> str:
    """Rend un objet sûr pour PayFiP : sans accents, lettres, chiffres et espaces, 100 caractères au plus.

    « Cantine d'octobre – Léa & Noé » → « Cantine d octobre Lea Noe ».
    """
    decompose = unicodedata.normalize("NFKD", texte.translate(_LIGATURES))
    sans_accents = "".join(c for c in decompose if not unicodedata.combining(c))
    # Toute autre marque (apostrophe, tiret, ponctuation, caractère non latin) sépare des mots.
    propre = re.sub(r"[^A-Za-z0-9]+", " ", sans_accents)
    return " ".join(propre.split())[:OBJET_LONGUEUR_MAX].rstrip()


def masquer_mel(mel: str | None) -> str:
    """« jeanne.dupont@example.org » → « j***@e***.org » : assez pour reconnaître, pas pour écrire."""
    if not mel:
        return ""
    local, arobase, domaine = mel.partition("@")
    if not arobase:
        return "***"
    nom, point, tld = domaine.rpartition(".")
    domaine_masque = f"{nom[:1]}***.{tld}" if point else f"{domaine[:1]}***"
    return f"{local[:1]}***@{domaine_masque}"


def preparer_creation(
    *,
    numcli: str,
    exer: str | int,
    refdet: str,
    montant: int,
    mel: str,
    saisie: str,
    urlnotif: str,
    urlredirect: str,
    objet: str | None = None,
) -> dict[str, str]:
    """Vérifie et met en forme les champs de `arg0` de creerPaiementSecurise (lève `DemandeInvalide`)."""
    champs = {
        "numcli": verifier_numcli(numcli),
        "exer": verifier_exer(exer),
        "refdet": verifier_refdet(refdet),
        "montant": verifier_montant(montant),
        "mel": verifier_mel(mel),
        "saisie": verifier_saisie(saisie),
        "urlnotif": verifier_url("urlnotif", urlnotif),
        "urlredirect": verifier_url("urlredirect", urlredirect),
    }
    objet_propre = nettoyer_objet(objet) if objet else ""
    if objet_propre:
        champs["objet"] = objet_propre
    return champs


def date_transaction(dattrans: str, heurtrans: str) -> datetime:
    """`JJMMAAAA` + `HHMM` en heure de Paris → datetime UTC avec fuseau.

    Heure inexistante (passage à l'heure d'été) ou ambiguë (retour à l'heure d'hiver) : zoneinfo
    prend le décalage d'avant le changement (fold=0), ce qui reste à une heure près du vrai instant.
    """
    if not re.fullmatch(r"[0-9]{8}", dattrans or ""):
        raise ReponseInvalide("dattrans", f"« {dattrans} » n'est pas une date JJMMAAAA")
    if not re.fullmatch(r"[0-9]{4}", heurtrans or ""):
        raise ReponseInvalide("heurtrans", f"« {heurtrans} » n'est pas une heure HHMM")
    try:
        local = datetime(
            int(dattrans[4:8]), int(dattrans[2:4]), int(dattrans[0:2]),
            int(heurtrans[0:2]), int(heurtrans[2:4]), tzinfo=FUSEAU_DGFIP,
        )
    except ValueError as exc:
        raise ReponseInvalide("dattrans", f"date ou heure impossible : {dattrans} {heurtrans}") from exc
    return local.astimezone(UTC)


def extraire_id_op(*sources: Mapping[str, str]) -> str | None:
    """L'idOp d'une notification PayFiP, quelle que soit sa forme (GET ou POST, `idOp` ou `idop`).

    Passer la chaîne de requête puis le formulaire ; la notification ne porte rien d'autre et
    n'est pas signée : seule la consultation (`PayfipRegie.resultat`) fait foi.
    """
    for source in sources:
        for cle in ("idOp", "idop", "IDOP", "idOP"):
            valeur = source.get(cle)
            if valeur and _ID_OP.fullmatch(valeur.strip()):
                return valeur.strip()
    return None


def url_paiement(id_op: str, base: str = URL_PAGE_PAIEMENT) -> str:
    """L'adresse de la page de paiement où envoyer le navigateur de la famille."""
    return f"{base}?idop={quote(verifier_id_op(id_op), safe='')}"


# --------------------------------------------------------------------------------------------
# Réponses
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DetailPaiement:
    """Réponse de recupererDetailPaiementSecurise, typée.

    `paye_le` est l'instant de la transaction (dattrans/heurtrans, Paris) en UTC ; toujours présent
    pour un paiement (P ou V), `None` seulement si la DGFiP ne l'a pas donné pour un refus ou un abandon.
    """

    id_op: str
    resultat: Resultat
    montant_centimes: int
    refdet: str
    numcli: str
    numauto: str | None
    mel: str | None
    objet: str | None
    exer: str | None  # l'écho de la DGFiP n'est pas fiable : ne pas s'en servir pour rapprocher
    saisie: str | None
    paye_le: datetime | None

    @property
    def est_paye(self) -> bool:
        return self.resultat in ("P", "V")

    @property
    def est_final(self) -> bool:
        """Tout résultat rendu par la DGFiP est définitif (voir `PayfipRegie.resultat` pour « A » récent)."""
        return self.resultat in RESULTATS

    @property
    def libelle_resultat(self) -> str:
        return LIBELLES_RESULTAT[self.resultat]

    def vers_paiement_recu(self) -> PaiementRecu:
        """Le paiement normalisé (canal `payfip`, clé naturelle idOp) ; seulement si `est_paye`."""
        if not self.est_paye or self.paye_le is None:
            raise ValueError(f"l'opération {self.id_op} n'est pas payée ({self.libelle_resultat})")
        details: dict[str, Detail] = {
            "resultrans": self.resultat,
            "numauto": self.numauto,
            "numcli": self.numcli,
            "saisie": self.saisie,
            "objet": self.objet,
        }
        return PaiementRecu(
            canal="payfip",
            reference=self.id_op,
            montant=self.montant_centimes,
            recu_le=self.paye_le,
            reference_facture=self.refdet,
            details=details,
        )


@dataclass(frozen=True, slots=True)
class DetailClient:
    """Réponse de recupererDetailClient : les libellés que la DGFiP connaît pour ce numcli."""

    numcli: str
    libelle_n1: str | None
    libelle_n2: str | None
    libelle_n3: str | None


def _texte(valeur: object) -> str | None:
    if valeur is None:
        return None
    texte = str(valeur).strip()
    return texte or None


def detail_depuis_champs(champs: Mapping[str, object]) -> DetailPaiement:
    """Construit un `DetailPaiement` depuis les champs de `return` (lève `ReponseInvalide`)."""
    id_op = _texte(champs.get("idOp"))
    if id_op is None:
        raise ReponseInvalide("idOp", "absent")
    resultat = _texte(champs.get("resultrans"))
    if resultat not in RESULTATS:
        raise ReponseInvalide("resultrans", f"« {resultat} » n'est pas un résultat connu (P, V, R, Z, A)")
    montant = _texte(champs.get("montant"))
    if montant is None or not montant.isascii() or not montant.isdigit():
        raise ReponseInvalide("montant", f"« {montant} » n'est pas un nombre entier de centimes")
    dattrans, heurtrans = _texte(champs.get("dattrans")), _texte(champs.get("heurtrans"))
    if dattrans and heurtrans:
        paye_le: datetime | None = date_transaction(dattrans, heurtrans)
    elif resultat in ("P", "V"):
        raise ReponseInvalide("dattrans", "absente pour un paiement effectué")
    else:
        paye_le = None
    return DetailPaiement(
        id_op=id_op,
        resultat=resultat,  # type: ignore[arg-type]  # vérifié ci-dessus
        montant_centimes=int(montant),
        refdet=_texte(champs.get("refdet")) or "",
        numcli=_texte(champs.get("numcli")) or "",
        numauto=_texte(champs.get("numauto")),
        mel=_texte(champs.get("mel")),
        objet=_texte(champs.get("objet")),
        exer=_texte(champs.get("exer")),
        saisie=_texte(champs.get("saisie")),
        paye_le=paye_le,
    )


# --------------------------------------------------------------------------------------------
# Transport SOAP
# --------------------------------------------------------------------------------------------


def _local(tag: object) -> str:
    return etree.QName(tag).localname if isinstance(tag, str) else ""


def erreur_depuis_faute(faute: zeep.exceptions.Fault) -> ErreurPayfip:
    """Faute SOAP → `ErreurPayfip` : classe lue dans le detail (ou le faultstring), code conservé."""
    message = str(faute.message or "")
    classe = message.rsplit(".", 1)[-1].strip()
    champs: dict[str, str] = {}
    detail = faute.detail
    if detail is not None:
        for enfant in detail.iter():
            nom = _local(enfant.tag)
            if nom.endswith("Erreur"):
                classe = nom
            elif nom in ("code", "libelle", "descriptif", "severite") and enfant.text:
                champs[nom] = enfant.text.strip()
    return ErreurPayfip(
        code=champs.get("code", "inconnu"),
        libelle=champs.get("libelle", message),
        descriptif=champs.get("descriptif", ""),
        severite=champs.get("severite", ""),
        classe=classe,
    )


def _chemin_wsdl_local() -> Any:
    return files(__package__ or "connecteurs.payfip") / "wsdl" / FICHIER_WSDL


class TransportPayfip:
    """Le web service PayFiP, une méthode par opération.

    Nouvelles tentatives (attente exponentielle : `attente_initiale_s`, puis ×2) seulement pour les
    erreurs de réseau, les délais dépassés, les 502/503/504 et les fautes techniques passagères.
    Une création retentée après un délai dépassé peut laisser un idOp orphelin chez la DGFiP :
    jamais montré à la famille, il est purgé la nuit suivante (P1).

    Lève `DemandeInvalide` (rien n'est envoyé), `ErreurPayfip` (faute DGFiP), `ReponseInvalide`,
    `PayfipInjoignable`.
    """

    def __init__(
        self,
        endpoint: str = ENDPOINT_PRODUCTION,
        *,
        delai_s: float = 10.0,
        tentatives: int = 3,
        attente_initiale_s: float = 0.5,
        session: requests.Session | None = None,
    ) -> None:
        if tentatives < 1:
            raise ValueError("au moins une tentative")
        self.endpoint = endpoint
        self.delai_s = delai_s
        self.tentatives = tentatives
        self.attente_initiale_s = attente_initiale_s
        self._session = session if session is not None else requests.Session()
        transport = Transport(  # type: ignore[no-untyped-call]
            session=self._session, timeout=delai_s, operation_timeout=delai_s
        )
        # Le WSDL publié importe des XSD introuvables : on charge notre copie, depuis le paquet.
        with as_file(_chemin_wsdl_local()) as chemin:
            self._client = zeep.Client(str(chemin), transport=transport)  # type: ignore[no-untyped-call]
        self._service = self._client.create_service(BINDING, endpoint)  # type: ignore[no-untyped-call]

    def close(self) -> None:
        self._session.close()

    def __enter__(self) -> TransportPayfip:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- opérations ---------------------------------------------------------------------------

    def creer_paiement_securise(
        self,
        *,
        numcli: str,
        exer: str | int,
        refdet: str,
        montant: int,
        mel: str,
        saisie: str,
        urlnotif: str,
        urlredirect: str,
        objet: str | None = None,
    ) -> str:
        """creerPaiementSecurise : renvoie l'idOp (36 caractères, valable 15 minutes pour payer).

        `montant` en centimes entiers ; `objet` est nettoyé par `nettoyer_objet`.
        """
        arg0 = preparer_creation(
            numcli=numcli, exer=exer, refdet=refdet, montant=montant, mel=mel,
            saisie=saisie, urlnotif=urlnotif, urlredirect=urlredirect, objet=objet,
        )
        reponse = self._appeler(
            "creerPaiementSecurise", arg0,
            contexte={"refdet": refdet, "montant": arg0["montant"], "mel": masquer_mel(mel), "saisie": saisie},
        )
        # zeep déballe une réponse à un seul champ : on reçoit la chaîne elle-même.
        id_op = _texte(reponse if isinstance(reponse, str) else getattr(reponse, "idOp", None))
        if id_op is None:
            raise ReponseInvalide("idOp", "absent de la réponse de creerPaiementSecurise")
        journal.info("payfip.paiement_cree", id_op=id_op, refdet=refdet, montant=arg0["montant"])
        return id_op

    def recuperer_detail_paiement(self, id_op: str) -> DetailPaiement:
        """recupererDetailPaiementSecurise. Fautes usuelles : P5 (pas encore de résultat), P1 (inconnu ou purgé)."""
        # `idOp` avec un O majuscule : `idop` vaut une faute P1.
        reponse = self._appeler("recupererDetailPaiementSecurise", {"idOp": verifier_id_op(id_op)},
                                contexte={"id_op": id_op})
        if reponse is None:
            raise ReponseInvalide("return", "absent de la réponse de recupererDetailPaiementSecurise")
        champs = {nom: getattr(reponse, nom, None) for nom in _CHAMPS_DETAIL}
        return detail_depuis_champs(champs)

    def recuperer_detail_client(self, numcli: str) -> DetailClient:
        """recupererDetailClient : les libellés de la régie connus de la DGFiP."""
        reponse = self._appeler("recupererDetailClient", {"numCli": verifier_numcli(numcli)},
                                contexte={"numcli": numcli})
        if reponse is None:
            raise ReponseInvalide("return", "absent de la réponse de recupererDetailClient")
        return DetailClient(
            numcli=_texte(getattr(reponse, "numcli", None)) or numcli,
            libelle_n1=_texte(getattr(reponse, "libelleN1", None)),
            libelle_n2=_texte(getattr(reponse, "libelleN2", None)),
            libelle_n3=_texte(getattr(reponse, "libelleN3", None)),
        )

    # -- mécanique ----------------------------------------------------------------------------

    def _appeler(self, operation: str, arg0: dict[str, str], *, contexte: dict[str, str]) -> Any:
        attente = self.attente_initiale_s
        for essai in range(1, self.tentatives + 1):
            journal.debug("payfip.appel", operation=operation, endpoint=self.endpoint, essai=essai, **contexte)
            try:
                return getattr(self._service, operation)(arg0=arg0)
            except zeep.exceptions.Fault as faute:
                erreur = erreur_depuis_faute(faute)
                journal.info("payfip.faute", operation=operation, code=erreur.code, classe=erreur.classe,
                             essai=essai, **contexte)
                if not erreur.transitoire or essai == self.tentatives:
                    raise erreur from None
                cause = f"{erreur.classe} {erreur.code}"
            except (requests.ConnectionError, requests.Timeout) as exc:
                cause = f"{type(exc).__name__} : {exc}"
                if essai == self.tentatives:
                    journal.warning("payfip.injoignable", operation=operation, endpoint=self.endpoint,
                                    tentatives=essai, cause=cause)
                    raise PayfipInjoignable(self.endpoint, essai, cause) from exc
            except zeep.exceptions.TransportError as exc:
                cause = f"HTTP {exc.status_code}"
                if exc.status_code not in STATUTS_HTTP_TRANSITOIRES:
                    raise ReponseInvalide("HTTP", f"statut {exc.status_code} sans enveloppe SOAP") from exc
                if essai == self.tentatives:
                    journal.warning("payfip.injoignable", operation=operation, endpoint=self.endpoint,
                                    tentatives=essai, cause=cause)
                    raise PayfipInjoignable(self.endpoint, essai, cause) from exc
            except (zeep.exceptions.Error, etree.XMLSyntaxError) as exc:
                raise ReponseInvalide("enveloppe", f"{type(exc).__name__} : {exc}") from exc
            journal.info("payfip.nouvel_essai", operation=operation, essai=essai, attente_s=attente, cause=cause)
            time.sleep(attente)
            attente *= 2
        raise AssertionError("inatteignable")  # la boucle lève ou renvoie toujours


_CHAMPS_DETAIL: Final = (
    "dattrans", "exer", "heurtrans", "idOp", "mel", "montant",
    "numauto", "numcli", "objet", "refdet", "resultrans", "saisie",
)


# --------------------------------------------------------------------------------------------
# Adaptateur métier
# --------------------------------------------------------------------------------------------


class EtatPayfip(StrEnum):
    PAYE = "paye"
    REFUSE = "refuse"
    ABANDONNE = "abandonne"
    EN_COURS = "en_cours"  # P5, ou « A » encore récent
    PURGE_OU_INCONNU = "purge_ou_inconnu"  # P1 : jamais payé, c'est fini

    @property
    def est_final(self) -> bool:
        return self is not EtatPayfip.EN_COURS


@dataclass(frozen=True, slots=True)
class ResultatPayfip:
    """Où en est une opération. `detail` est présent quand la DGFiP a donné un résultat (toujours pour PAYE)."""

    etat: EtatPayfip
    id_op: str
    detail: DetailPaiement | None = None
    code: str | None = None  # code de faute DGFiP à l'origine de l'état (P5, P1), pour la trace

    @property
    def est_final(self) -> bool:
        return self.etat.est_final

    @property
    def est_paye(self) -> bool:
        return self.etat is EtatPayfip.PAYE


_ETAT_DU_RESULTAT: Final[Mapping[str, EtatPayfip]] = {
    "P": EtatPayfip.PAYE,
    "V": EtatPayfip.PAYE,
    "R": EtatPayfip.REFUSE,
    "Z": EtatPayfip.REFUSE,
    "A": EtatPayfip.ABANDONNE,
}


class PayfipRegie:
    """Une régie chez PayFiP : crée les paiements et dit où ils en sont."""

    def __init__(
        self,
        transport: TransportPayfip,
        *,
        numcli: str,
        saisie: str,
        urlnotif: str,
        urlredirect: str,
        base_page: str = URL_PAGE_PAIEMENT,
    ) -> None:
        self.transport = transport
        self.numcli = verifier_numcli(numcli)
        self.saisie = verifier_saisie(saisie)
        self.urlnotif = verifier_url("urlnotif", urlnotif)
        self.urlredirect = verifier_url("urlredirect", urlredirect)
        self.base_page = base_page

    def creer_paiement(self, refdet: str, montant_centimes: int, mel: str, objet: str, exer: str | int) -> str:
        """Crée l'opération et renvoie son idOp ; à enregistrer AVANT d'envoyer la famille sur la page."""
        return self.transport.creer_paiement_securise(
            numcli=self.numcli, exer=exer, refdet=refdet, montant=montant_centimes, mel=mel,
            saisie=self.saisie, urlnotif=self.urlnotif, urlredirect=self.urlredirect, objet=objet,
        )

    def url_paiement(self, id_op: str) -> str:
        return url_paiement(id_op, self.base_page)

    def resultat(
        self, id_op: str, *, cree_le: datetime | None = None, maintenant: datetime | None = None
    ) -> ResultatPayfip:
        """Consulte la DGFiP (seule autorité) et traduit la réponse.

        P5 → EN_COURS (jusqu'à deux heures) ; P1 → PURGE_OU_INCONNU (fini, impayé).
        Si `cree_le` (instant de création de l'idOp, avec fuseau) est donné, un « A » lu moins de
        20 minutes après reste EN_COURS : la famille peut encore revenir payer sur la même page.
        Toute autre faute remonte (`ErreurPayfip`, `PayfipInjoignable`...) : réessayer plus tard.
        """
        try:
            detail = self.transport.recuperer_detail_paiement(id_op)
        except ErreurPayfip as erreur:
            if erreur.code == "P5":
                return ResultatPayfip(EtatPayfip.EN_COURS, id_op, code="P5")
            if erreur.code == "P1":
                return ResultatPayfip(EtatPayfip.PURGE_OU_INCONNU, id_op, code="P1")
            raise
        etat = _ETAT_DU_RESULTAT[detail.resultat]
        if etat is EtatPayfip.ABANDONNE and cree_le is not None:
            instant = maintenant if maintenant is not None else datetime.now(UTC)
            if instant - cree_le < DELAI_ABANDON_DEFINITIF:
                etat = EtatPayfip.EN_COURS
        journal.info("payfip.resultat", id_op=id_op, etat=etat.value, resultrans=detail.resultat)
        return ResultatPayfip(etat, id_op, detail=detail)
