"""La boîte de réception : relever les fichiers d'un dépôt (SFTP ou dossier local) et les importer.

Pour chaque entrée configurée (dossier distant, canal ou « auto », motif de nom fnmatch) :
le dossier est listé une fois, chaque fichier retenu est téléchargé dans `donnees/recus`,
son canal reconnu à son contenu si l'entrée dit « auto », il est importé par le service de
son canal (une transaction, idempotent par SHA-256), puis déplacé dans le dépôt :

- importé, ou déjà importé (même SHA-256) → `traites/` ;
- refusé (ou de contenu non reconnu) → gardé en quarantaine locale avec ses erreurs par le
  service d'import, et déplacé dans `refuses/` du dépôt. Choix assumé : laissé en place, il
  serait retéléchargé et refusé de nouveau à chaque passage (tous les quarts d'heure) ; pour
  le réessayer après correction, le replacer dans le dossier d'arrivée.

Reprise : un fichier importé dont le déplacement n'a pas eu lieu (coupure) est retéléchargé
au passage suivant, reconnu par son SHA-256 (« déjà importé ») et seulement déplacé. Un
fichier apparu pendant le relevé n'était pas dans la liste : il est pris au passage suivant.
Un fichier en échec n'arrête pas les autres ; une coupure du pair arrête le relevé proprement
(le bilan dit jusqu'où il est allé) ; une clé d'hôte inconnue l'arrête avant tout import.
"""

from __future__ import annotations

import enum
import fnmatch
import importlib
import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Final

import structlog
from sqlalchemy import select

from connecteurs.buralistes.releve import COLONNES as COLONNES_BURALISTE
from connecteurs.cesu.crcesu import COLONNES as COLONNES_CRCESU
from connecteurs.cesu.titres import COLONNES as COLONNES_CESU
from connecteurs.cheques.remises import COLONNES as COLONNES_CHEQUE
from connecteurs.sftp import (
    Depot,
    DepotLocal,
    DepotSftp,
    DossierIntrouvable,
    ErreurDepot,
    FichierAbsent,
    FichierInstable,
    PairInjoignable,
)
from regie import points_de_crash
from regie.application import Application
from regie.erreurs import ErreurLigne, FichierRefuse
from regie.registre.modeles import FichierRecu
from regie.services.fichiers import RapportImport, enregistrer_refus

log = structlog.get_logger()

AUTO: Final = "auto"
# Canaux qu'une entrée peut nommer (noms de la ligne de commande) ; « auto » : reconnu au contenu.
CANAUX_PAIEMENTS: Final = ("buraliste", "cesu", "crcesu", "cheque", "cfonb", "pes-retour")
CANAUX: Final = ("factures", *CANAUX_PAIEMENTS, "acquit")
CANAL_INCONNU: Final = "inconnu"  # canal d'enregistrement d'un fichier non reconnu (quarantaine/inconnu/)
VERS_TRAITES: Final = "traites"
VERS_REFUSES: Final = "refuses"
TAILLE_EXAMEN: Final = 1 << 20  # le début du fichier suffit à reconnaître son canal
MODULE_ACQUITS: Final = "exports.service_acquits"

BOM_UTF8: Final = b"\xef\xbb\xbf"
ENTETES_CSV: Final[dict[bytes, str]] = {
    ";".join(COLONNES_BURALISTE).encode(): "buraliste",
    ";".join(COLONNES_CESU).encode(): "cesu",
    ";".join(COLONNES_CRCESU).encode(): "crcesu",
    ";".join(COLONNES_CHEQUE).encode(): "cheque",
}
RACINES_XML: Final[dict[bytes, str]] = {b"PES_Retour": "pes-retour", b"PES_ACQUIT": "acquit"}
CODES_CFONB: Final = frozenset({b"01", b"04", b"05", b"07"})
LONGUEUR_CFONB: Final = 120
_NOM_RACINE: Final = re.compile(rb"<(?:[A-Za-z_][\w.-]*:)?([A-Za-z_][\w.-]*)")


# --- Valeurs -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class EntreeBoite:
    """Un dossier du dépôt à relever : son canal (ou « auto ») et le motif des noms retenus."""

    dossier: str
    canal: str = AUTO
    motif: str = "*"

    def __post_init__(self) -> None:
        if self.canal not in (AUTO, *CANAUX):
            raise ValueError(f"canal « {self.canal} » inconnu pour le dossier « {self.dossier} » "
                             f"(attendu : {AUTO}, {', '.join(CANAUX)})")
        if not self.motif:
            raise ValueError(f"motif vide pour le dossier « {self.dossier} »")


class Issue(enum.StrEnum):
    IMPORTE = "importe"
    DEJA_IMPORTE = "deja_importe"
    REFUSE = "refuse"  # quarantaine locale, `refuses/` dans le dépôt (contenu non reconnu compris)
    REPORTE = "reporte"  # laissé en place : repris au passage suivant (fichier en cours d'écriture...)
    ERREUR = "erreur"  # laissé en place : erreur inattendue, journalisée ; les autres fichiers continuent


@dataclass(slots=True)
class ResultatFichier:
    """Ce qui est arrivé à un fichier du dépôt."""

    dossier: str
    nom: str
    issue: Issue
    message: str
    canal: str | None = None
    sha256: str | None = None
    taille: int | None = None
    deplace_vers: str | None = None  # chemin retenu dans le dépôt (`traites/NOM`), None s'il est resté
    erreurs: list[str] = field(default_factory=list)
    quarantaine: str | None = None

    @property
    def chemin(self) -> str:
        return f"{self.dossier.rstrip('/')}/{self.nom}" if self.dossier not in {"", "."} else self.nom

    def ligne(self) -> str:
        canal = f" [{self.canal}]" if self.canal else ""
        deplace = f" → {self.deplace_vers}" if self.deplace_vers else ""
        return f"{self.chemin}{canal} : {self.message}{deplace}"


@dataclass(slots=True)
class BilanReleve:
    """Chaque fichier vu et son sort ; les entrées en erreur ; l'interruption éventuelle."""

    fichiers: list[ResultatFichier] = field(default_factory=list)
    erreurs_entrees: list[str] = field(default_factory=list)  # dossier introuvable : configuration
    interruption: str | None = None  # le pair a cessé de répondre : relevé arrêté là
    rapprochement: str | None = None

    def compter(self, issue: Issue) -> int:
        return sum(1 for f in self.fichiers if f.issue is issue)

    @property
    def complet(self) -> bool:
        """Rien à signaler à l'exploitant : ni refus, ni erreur, ni interruption."""
        return (self.interruption is None and not self.erreurs_entrees
                and not any(f.issue in (Issue.REFUSE, Issue.ERREUR) for f in self.fichiers))

    def message(self) -> str:
        if not self.fichiers and self.interruption is None:
            return "Boîte de réception : aucun fichier nouveau"
        parties = [f"{n} {libelle}" for issue, libelle in (
            (Issue.IMPORTE, "importé(s)"), (Issue.DEJA_IMPORTE, "déjà importé(s)"), (Issue.REFUSE, "refusé(s)"),
            (Issue.REPORTE, "reporté(s)"), (Issue.ERREUR, "en erreur")) if (n := self.compter(issue))]
        texte = f"Boîte de réception : {len(self.fichiers)} fichier(s)"
        if parties:
            texte += " : " + ", ".join(parties)
        if self.interruption:
            texte += f" ; relevé interrompu : {self.interruption}"
        return texte


@dataclass(frozen=True, slots=True)
class Detection:
    canal: str | None
    raison: str  # pourquoi ce canal, ou pourquoi aucun (en français, pour la quarantaine)


# --- Reconnaissance du canal (pure) -----------------------------------------------------------


def detecter_canal(debut: bytes) -> Detection:
    """Le canal d'un fichier d'après ses premiers octets (voir TAILLE_EXAMEN), sans lever."""
    corps = debut.removeprefix(BOM_UTF8)
    tete = corps.lstrip()
    if tete.startswith(b"<"):
        m = _racine_xml(corps)
        if m is None:
            return Detection(None, "XML dont l'élément racine est illisible : ni PES_Retour ni PES_ACQUIT")
        racine = m.group(1)
        canal = RACINES_XML.get(racine)
        if canal is None:
            nom = racine[:60].decode("ascii", "replace")
            return Detection(None, f"XML de racine « {nom} » : ni PES_Retour ni PES_ACQUIT")
        return Detection(canal, f"XML de racine {racine.decode()}")
    if tete.startswith(b"{"):
        premiere = tete.split(b"\n", 1)[0]
        try:
            objet = json.loads(premiere)
        except (ValueError, RecursionError):
            objet = None
        if isinstance(objet, dict) and "type" in objet:
            return Detection("factures", "JSON Lines d'objets à « type » (factures et avoirs)")
        return Detection(None, "JSON dont la première ligne n'est pas un objet à « type » (factures du portail)")
    ligne = corps.split(b"\n", 1)[0].removesuffix(b"\r")
    canal = ENTETES_CSV.get(ligne)
    if canal is not None:
        return Detection(canal, "en-tête CSV du canal")
    if _ressemble_cfonb(debut):
        return Detection("cfonb", "enregistrements CFONB de 120 caractères ouverts par un 01")
    return Detection(None, "contenu non reconnu : ni factures JSON Lines, ni en-tête CSV connu (relevé de "
                           "proximité, titres CESU, remboursements CRCESU, remise de chèques), ni CFONB 120, "
                           "ni XML PES_Retour ou PES_ACQUIT ; précisez le canal du dossier s'il est attendu")


def _racine_xml(corps: bytes) -> re.Match[bytes] | None:
    """Le nom de l'élément racine après le prologue (déclaration, instructions, commentaires, DOCTYPE).

    Un parcours linéaire, pas une expression rationnelle à retours arrière : un fichier hostile ne
    doit pas bloquer le relevé."""
    position = 0
    while True:
        while position < len(corps) and corps[position:position + 1].isspace():
            position += 1
        if corps.startswith(b"<?", position):
            fin, longueur = corps.find(b"?>", position + 2), 2
        elif corps.startswith(b"<!--", position):
            fin, longueur = corps.find(b"-->", position + 4), 3
        elif corps.startswith(b"<!DOCTYPE", position):
            crochet, chevron = corps.find(b"[", position), corps.find(b">", position)
            if 0 <= crochet < chevron:  # sous-ensemble interne : jusqu'à « ]> »
                fin, longueur = corps.find(b"]", crochet), 1
                fin = corps.find(b">", fin) if fin >= 0 else -1
            else:
                fin, longueur = chevron, 1
        else:
            return _NOM_RACINE.match(corps, position)
        if fin < 0:
            return None
        position = fin + longueur


def _ressemble_cfonb(debut: bytes) -> bool:
    if not debut.startswith(b"01"):
        return False
    fin = debut.find(b"\n")
    if 0 <= fin <= LONGUEUR_CFONB + 1:
        return len(debut[:fin].removesuffix(b"\r")) == LONGUEUR_CFONB
    # Sans fins de ligne : un enregistrement tous les 120 caractères.
    if len(debut) < LONGUEUR_CFONB:
        return False
    suite = debut[LONGUEUR_CFONB:LONGUEUR_CFONB + 2]
    return not suite or suite in CODES_CFONB


# --- Le dépôt ----------------------------------------------------------------------------------


def depot_depuis_configuration(*, racine_locale: Path | None = None, hote: str | None = None, port: int = 22,
                               utilisateur: str | None = None, cle_privee: Path | None = None,
                               known_hosts: Path | None = None, racine_distante: str | None = None,
                               delai_s: float = 15, tentatives: int = 3,
                               attente_initiale_s: float = 1.0) -> Depot:
    """Un DepotSftp si `hote` est donné (utilisateur, clé et known_hosts exigés), sinon un DepotLocal.

    En attendant la section [depot] de regie.toml, les paramètres viennent de l'appelant."""
    if hote:
        manquants = [nom for nom, valeur in (("utilisateur", utilisateur), ("clé privée", cle_privee),
                                            ("known_hosts", known_hosts)) if not valeur]
        if manquants:
            raise ValueError(f"dépôt SFTP {hote} : {', '.join(manquants)} manquant(s) (clé d'hôte épinglée "
                             "et authentification par clé obligatoires)")
        assert utilisateur and cle_privee and known_hosts  # pour mypy : vérifiés ci-dessus
        return DepotSftp(hote, port, utilisateur, cle_privee, known_hosts, delai_s=delai_s,
                         tentatives=tentatives, attente_initiale_s=attente_initiale_s, racine=racine_distante)
    if racine_locale is None:
        raise ValueError("dépôt local : dossier racine manquant")
    return DepotLocal(racine_locale)


def decrire_depot(depot: Depot) -> str:
    if isinstance(depot, DepotSftp):
        return f"sftp://{depot.utilisateur}@{depot.hote}:{depot.port}"
    if isinstance(depot, DepotLocal):
        return f"local:{depot.racine}"
    return type(depot).__name__


# --- Le relevé ---------------------------------------------------------------------------------


class _Coupure(Exception):
    """Le pair a cessé de répondre en plein traitement d'un fichier (résultat partiel joint)."""

    def __init__(self, resultat: ResultatFichier | None, cause: PairInjoignable) -> None:
        super().__init__(str(cause))
        self.resultat = resultat
        self.cause = cause


Importeur = Callable[[Application, str, Path, str, date | None], RapportImport]


def relever(app: Application, depot: Depot, entrees: Sequence[EntreeBoite], *,
            aujourd_hui: date | None = None) -> BilanReleve:
    """Relève chaque entrée, importe et range chaque fichier ; rend le bilan fichier par fichier.

    Lève CleHoteInconnue / AuthentificationRefusee (arrêt avant tout import : à corriger dans la
    configuration) ; une coupure du pair (PairInjoignable) arrête le relevé et figure au bilan."""
    bilan = BilanReleve()
    releve = _Releve(app, depot, aujourd_hui, bilan)
    try:
        for dossier, entrees_dossier in _par_dossier(entrees).items():
            releve.dossier(dossier, entrees_dossier)
    except _Coupure as coupure:
        if coupure.resultat is not None:
            bilan.fichiers.append(coupure.resultat)
        bilan.interruption = str(coupure.cause)
        log.error("boite_releve_interrompu", depot=decrire_depot(depot), cause=str(coupure.cause))
    releve.rapprocher()
    log.info("boite_releve_termine", depot=decrire_depot(depot), fichiers=len(bilan.fichiers),
             **{issue.value: n for issue in Issue if (n := bilan.compter(issue))},
             interrompu=bilan.interruption is not None)
    return bilan


def _par_dossier(entrees: Sequence[EntreeBoite]) -> dict[str, list[EntreeBoite]]:
    # Un dossier n'est listé qu'une fois ; un fichier va à la première entrée dont le motif le retient.
    groupes: dict[str, list[EntreeBoite]] = {}
    for entree in entrees:
        groupes.setdefault(entree.dossier, []).append(entree)
    return groupes


class _Releve:
    def __init__(self, app: Application, depot: Depot, aujourd_hui: date | None, bilan: BilanReleve) -> None:
        self.app = app
        self.depot = depot
        self.aujourd_hui = aujourd_hui
        self.bilan = bilan
        self.source = decrire_depot(depot)
        self.referentiel_synchronise = False
        self.a_rapprocher = False

    def dossier(self, dossier: str, entrees: list[EntreeBoite]) -> None:
        try:
            fichiers = self.depot.lister(dossier)
        except PairInjoignable as exc:
            raise _Coupure(None, exc) from exc
        except DossierIntrouvable as exc:
            self.bilan.erreurs_entrees.append(str(exc))
            log.error("boite_dossier_introuvable", depot=self.source, dossier=dossier)
            return
        travail = self.app.dossier_donnees("recus", _nom_local(dossier))
        for fichier in fichiers:
            entree = next((e for e in entrees if fnmatch.fnmatchcase(fichier.nom, e.motif)), None)
            if entree is not None:
                self.bilan.fichiers.append(self.fichier(entree, fichier.nom, travail))

    def fichier(self, entree: EntreeBoite, nom: str, travail: Path) -> ResultatFichier:
        dossier = entree.dossier
        local = travail / nom
        try:
            try:
                recu = self.depot.telecharger(dossier, nom, local)
            except PairInjoignable as exc:
                raise _Coupure(None, exc) from exc
            except FichierInstable as exc:
                return self._fin(ResultatFichier(dossier, nom, Issue.REPORTE, str(exc)))
            except FichierAbsent:
                return self._fin(ResultatFichier(dossier, nom, Issue.REPORTE,
                                                 "disparu entre la liste et le téléchargement (déplacé par un "
                                                 "autre relevé ?)"))
            except ErreurDepot as exc:
                return self._fin(ResultatFichier(dossier, nom, Issue.ERREUR, f"téléchargement impossible : {exc}"))
            resultat = self._importer(entree, recu.chemin, recu.sha256, recu.taille)
            points_de_crash.point("boite_apres_import")
            if resultat.issue in (Issue.IMPORTE, Issue.DEJA_IMPORTE, Issue.REFUSE):
                vers = VERS_REFUSES if resultat.issue is Issue.REFUSE else VERS_TRAITES
                try:
                    retenu = self.depot.deplacer(dossier, nom, vers)
                    resultat.deplace_vers = f"{vers}/{retenu}"
                except PairInjoignable as exc:
                    # Importé mais resté en place : reconnu par son SHA-256 au passage suivant.
                    resultat.message += " ; non déplacé (pair injoignable), sera rangé au passage suivant"
                    self._journaliser(resultat)
                    raise _Coupure(resultat, exc) from exc
                except FichierAbsent:
                    resultat.message += " ; déjà déplacé par ailleurs"
                except ErreurDepot as exc:
                    resultat.message += f" ; non déplacé ({exc}), sera rangé au passage suivant"
            return self._fin(resultat)
        finally:
            local.unlink(missing_ok=True)  # la copie de travail ; la quarantaine a la sienne

    def _importer(self, entree: EntreeBoite, chemin: Path, sha256: str, taille: int) -> ResultatFichier:
        nom = chemin.name
        dossier = entree.dossier.strip("/")
        origine = f"{self.source}/{dossier + '/' if dossier else ''}{nom}"[-255:]  # la fin dit le fichier
        canal = entree.canal
        detection: Detection | None = None
        if canal == AUTO:
            with chemin.open("rb") as flux:
                detection = detecter_canal(flux.read(TAILLE_EXAMEN))
            canal = detection.canal or CANAL_INCONNU

        def resultat(issue: Issue, message: str, erreurs: list[str] | None = None,
                     quarantaine: str | None = None) -> ResultatFichier:
            return ResultatFichier(entree.dossier, nom, issue, message, canal=canal, sha256=sha256, taille=taille,
                                   erreurs=erreurs or [], quarantaine=quarantaine)

        try:
            if detection is not None and detection.canal is None:
                refus = FichierRefuse(nom, [ErreurLigne(nom, None, None, detection.raison)])
                copie = enregistrer_refus(self.app, chemin, sha256, taille, CANAL_INCONNU, refus, origine)
                return resultat(Issue.REFUSE, "canal non reconnu, gardé en quarantaine",
                                [str(e) for e in refus.erreurs], str(copie))
            self._synchroniser_referentiel()
            rapport = _importeur(canal)(self.app, canal, chemin, origine, self.aujourd_hui)
        except FichierRefuse as refus:
            return resultat(Issue.REFUSE, f"refusé en entier ({len(refus.erreurs)} erreur(s)), gardé en quarantaine",
                            [str(e) for e in refus.erreurs], self._quarantaine(sha256))
        except Exception as exc:  # un fichier en échec n'arrête pas les autres
            log.exception("boite_import_en_erreur", depot=self.source, dossier=entree.dossier, fichier=nom,
                          canal=canal, sha256=sha256)
            return resultat(Issue.ERREUR, f"import en erreur, laissé en place ({_resume(exc)})")
        if rapport.deja_importe:
            return resultat(Issue.DEJA_IMPORTE, "déjà importé (même contenu), rien n'a changé")
        if canal != "acquit":
            self.a_rapprocher = True
        return resultat(Issue.IMPORTE, rapport.message())

    def _synchroniser_referentiel(self) -> None:
        # Comme la ligne de commande avant un import : régies et prestations de la configuration.
        if not self.referentiel_synchronise:
            self.app.synchroniser_referentiel()
            self.referentiel_synchronise = True

    def _quarantaine(self, sha256: str) -> str | None:
        with self.app.moteur.connect() as conn:
            chemin: str | None = conn.execute(
                select(FichierRecu.chemin_quarantaine)
                .where(FichierRecu.sha256 == sha256, FichierRecu.statut == "refuse")
                .order_by(FichierRecu.id.desc()).limit(1)).scalar_one_or_none()
        return chemin

    def _fin(self, resultat: ResultatFichier) -> ResultatFichier:
        self._journaliser(resultat)
        return resultat

    def _journaliser(self, resultat: ResultatFichier) -> None:
        evenement = {"depot": self.source, "dossier": resultat.dossier, "fichier": resultat.nom,
                     "canal": resultat.canal, "sha256": resultat.sha256, "taille": resultat.taille,
                     "issue": resultat.issue.value, "deplace_vers": resultat.deplace_vers,
                     "detail": resultat.message}
        if resultat.issue in (Issue.REFUSE, Issue.ERREUR):
            log.warning("boite_fichier", erreurs=len(resultat.erreurs), quarantaine=resultat.quarantaine,
                        **evenement)
        else:
            log.info("boite_fichier", **evenement)

    def rapprocher(self) -> None:
        if not self.a_rapprocher:
            return
        try:
            from rapprochement.moteur import rapprocher

            self.bilan.rapprochement = rapprocher(self.app, aujourd_hui=self.aujourd_hui).message()
        except Exception as exc:  # les imports sont faits ; le rapprochement se relancera seul
            log.exception("boite_rapprochement_en_erreur")
            self.bilan.rapprochement = f"rapprochement en erreur ({_resume(exc)})"


def _resume(exc: BaseException) -> str:
    """Première ligne de l'erreur (le détail complet est au journal)."""
    lignes = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lignes[0][:300] if lignes else ''}"


def _nom_local(dossier: str) -> str:
    """Un sous-dossier de travail par dossier distant : deux dossiers peuvent avoir des noms communs."""
    propre = re.sub(r"[^A-Za-z0-9._-]+", "_", dossier.strip("/")).strip("._")
    return propre or "_racine"


# --- Les importeurs par canal -------------------------------------------------------------------


def _importer_factures(app: Application, _canal: str, chemin: Path, origine: str,
                       _aujourd_hui: date | None) -> RapportImport:
    from regie.services.factures import importer_fichier_factures

    return importer_fichier_factures(app, chemin, origine=origine)


def _importer_paiements(app: Application, canal: str, chemin: Path, origine: str,
                        aujourd_hui: date | None) -> RapportImport:
    from regie.services.paiements import importer_fichier_paiements

    # Le rapprochement se fait une fois, après tous les fichiers du relevé.
    return importer_fichier_paiements(app, canal, chemin, origine=origine, rapprocher_ensuite=False,
                                      aujourd_hui=aujourd_hui)


def _importer_acquit(app: Application, _canal: str, chemin: Path, origine: str,
                     _aujourd_hui: date | None) -> RapportImport:
    # Import par nom : le service des acquits appartient aux exports (écrit à part).
    service = importlib.import_module(MODULE_ACQUITS)
    rapport: RapportImport = service.importer_acquit(app, chemin, origine=origine)
    return rapport


def _importeur(canal: str) -> Importeur:
    if canal == "factures":
        return _importer_factures
    if canal == "acquit":
        return _importer_acquit
    if canal in CANAUX_PAIEMENTS:
        return _importer_paiements
    raise ValueError(f"canal inconnu : {canal}")


__all__ = [
    "AUTO",
    "CANAUX",
    "BilanReleve",
    "Detection",
    "EntreeBoite",
    "Issue",
    "ResultatFichier",
    "decrire_depot",
    "depot_depuis_configuration",
    "detecter_canal",
    "relever",
]
