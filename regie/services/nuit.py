"""La nuit : relever chaque source, importer, rapprocher, émettre les titres, écrire les journaux, déposer.

Chaque étape est idempotente et travaille par transactions courtes : tuée à n'importe quel
moment et relancée, la nuit finit dans l'état d'une seule exécution propre. Une source en
panne n'arrête pas les autres ; le bilan dit ce qui a échoué.
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import structlog
from sqlalchemy import insert, select, update

from regie import points_de_crash
from regie.application import Application
from regie.registre.modeles import Execution
from regie.registre.types import maintenant
from regie.services.verrou import _detenteur_mort, identite, tache_exclusive

log = structlog.get_logger()
PARIS = ZoneInfo("Europe/Paris")


@dataclass
class Etape:
    nom: str
    libelle: str
    statut: str = "a_faire"  # ok | echec | injoignable | ignore
    comptes: dict[str, Any] = field(default_factory=dict)
    erreur: str | None = None
    duree_s: float = 0.0
    fichiers: list[str] = field(default_factory=list)

    def en_dict(self) -> dict[str, Any]:
        return {"nom": self.nom, "libelle": self.libelle, "statut": self.statut, "comptes": self.comptes,
                "erreur": self.erreur, "duree_s": round(self.duree_s, 3), "fichiers": self.fichiers}


@dataclass
class RapportNuit:
    date_metier: date
    execution_id: int | None = None
    ignoree: bool = False
    etapes: list[Etape] = field(default_factory=list)

    @property
    def code_sortie(self) -> int:
        """0 tout va bien ; 3 un pair injoignable ; 1 une étape en échec (fichier refusé compris)."""
        if any(e.statut == "injoignable" for e in self.etapes):
            return 3
        if any(e.statut == "echec" for e in self.etapes):
            return 1
        return 0

    def resume(self) -> str:
        if self.ignoree:
            return "Nuit ignorée : un autre processus l'exécute déjà (verrou tenu)."
        lignes = [f"Nuit du {self.date_metier:%d/%m/%Y} (exécution {self.execution_id})"]
        symboles = {"ok": "ok ", "echec": "ÉCHEC", "injoignable": "INJOIGNABLE", "ignore": "—"}
        for e in self.etapes:
            detail = ", ".join(f"{k} {v}" for k, v in e.comptes.items() if v not in (0, None, "", []))
            lignes.append(f"  [{symboles.get(e.statut, e.statut)}] {e.libelle}" + (f" : {detail}" if detail else "")
                          + (f" — {e.erreur}" if e.erreur else ""))
            lignes.extend(f"        {f}" for f in e.fichiers)
        return "\n".join(lignes)


def _depot(app: Application) -> Any:
    """Le pair d'échange de fichiers de la configuration : SFTP, ou un dossier local par défaut."""
    from connecteurs.sftp import DepotLocal, DepotSftp

    d = app.config.depot
    if d.type == "local":
        # Le dossier local par défaut : ses sous-dossiers sont créés (un serveur SFTP les a déjà).
        racine = app.dossier_donnees(d.dossier_local)
        for sous in {d.dossier_depot, *(x.dossier for x in d.entree)}:
            (racine / sous).mkdir(parents=True, exist_ok=True)
        return DepotLocal(racine)
    cle = app.env.sftp_cle_privee or d.cle_privee
    known_hosts = app.env.sftp_known_hosts or d.known_hosts
    if not cle or not known_hosts:
        raise ValueError("dépôt SFTP : clé privée et known_hosts requis "
                         "(REGIE_SFTP_CLE_PRIVEE, REGIE_SFTP_KNOWN_HOSTS)")
    assert d.hote is not None and d.utilisateur is not None
    return DepotSftp(d.hote, d.port, d.utilisateur, Path(cle), Path(known_hosts), tentatives=d.tentatives)


def _est_injoignable(exc: BaseException) -> bool:
    from connecteurs.payfip import PayfipInjoignable
    from connecteurs.sftp import PairInjoignable

    return isinstance(exc, (PairInjoignable, PayfipInjoignable))


# --- Les étapes -----------------------------------------------------------------------------------------

def _relever(app: Application, jour: date, e: Etape) -> None:
    from regie.services.boite_reception import EntreeBoite, Issue, relever

    entrees = [EntreeBoite(dossier=x.dossier, canal=x.canal, motif=x.motif) for x in app.config.depot.entree]
    with _depot(app) as depot:
        bilan = relever(app, depot, entrees, aujourd_hui=jour)
    e.comptes = {"importés": bilan.compter(Issue.IMPORTE), "déjà importés": bilan.compter(Issue.DEJA_IMPORTE),
                 "refusés": bilan.compter(Issue.REFUSE), "reportés": bilan.compter(Issue.REPORTE),
                 "en erreur": bilan.compter(Issue.ERREUR)}
    e.fichiers = [f.ligne() for f in bilan.fichiers]
    if bilan.interruption:
        e.statut, e.erreur = "injoignable", bilan.interruption
    elif not bilan.complet:
        e.statut = "echec"
        e.erreur = "; ".join([*bilan.erreurs_entrees, *(f"{f.nom} : {f.message}" for f in bilan.fichiers
                                                       if f.issue in (Issue.REFUSE, Issue.ERREUR))])[:500]


def _payfip(app: Application, _jour: date, e: Etape) -> None:
    from sqlalchemy import func

    from regie.registre.modeles import OperationPayfip
    from regie.services.payfip import PasserellePayfip, consulter_operations_en_attente

    with app.moteur.connect() as c:
        en_attente = c.execute(select(func.count()).select_from(OperationPayfip).where(
            OperationPayfip.statut.in_(("creee", "en_attente")))).scalar_one()
    if not en_attente:
        e.statut, e.comptes = "ignore", {"opérations en attente": 0}
        return
    passerelle = PasserellePayfip(app)
    try:
        bilan = consulter_operations_en_attente(app, passerelle)
    finally:
        passerelle.close()
    e.comptes = {"consultées": bilan.consultees, **bilan.issues}
    if bilan.injoignable:
        e.statut, e.erreur = "injoignable", "PayFiP injoignable après les nouvelles tentatives"


def _rapprocher(app: Application, jour: date, e: Etape) -> None:
    from rapprochement.moteur import rapprocher

    b = rapprocher(app, aujourd_hui=jour)
    e.comptes = {"examinés": b.examines, "affectés": b.affectes, "confirmés": b.confirmes,
                 "en anomalie": sum(b.anomalies.values())}


def _titres(app: Application, jour: date, e: Etape) -> None:
    from exports.titres import emettre

    bilan = emettre(app, jour)
    e.fichiers = [str(f) for f in bilan.fichiers]
    e.comptes = {"fichiers PES": len(bilan.fichiers), "titres": bilan.titres, "impossibles": bilan.impossibles}


def _journaux(app: Application, jour: date, e: Etape) -> None:
    from exports.journaux import Periode, ecrire_journaux

    fichiers = ecrire_journaux(app, Periode.jour(jour))
    e.fichiers = [str(f) for f in fichiers]
    e.comptes = {"fichiers": len(fichiers)}


def _deposer(app: Application, _jour: date, e: Etape) -> None:
    from exports.envoi import envoyer_fichiers

    d = app.config.depot
    with _depot(app) as depot:
        bilan = envoyer_fichiers(app, depot, dossier_distant=d.dossier_depot, motif=d.motif_nom)
    e.comptes = {"déposés": len(bilan.deposes), "déjà déposés": len(bilan.deja_deposes)}
    e.fichiers = list(bilan.deposes)
    if bilan.en_conflit:
        e.statut, e.erreur = "echec", "; ".join(bilan.en_conflit)[:500]


ETAPES: list[tuple[str, str, Callable[[Application, date, Etape], None]]] = [
    ("releve", "Relevé des fichiers reçus (portail, canaux, acquits, retours)", _relever),
    ("payfip", "Résultats PayFiP en attente", _payfip),
    ("rapprochement", "Rapprochement", _rapprocher),
    ("titres", "Émission des titres (PES_Aller)", _titres),
    ("journaux", "Journaux et état de rapprochement", _journaux),
    ("depot", "Dépôt au Trésor", _deposer),
]


def _clore_interrompues(app: Application) -> None:
    """Une exécution « en cours » dont le processus est mort a été interrompue (tuée, machine arrêtée)."""
    with app.moteur.begin() as c:
        for eid, proc in c.execute(select(Execution.id, Execution.processus).where(Execution.statut == "en_cours")):
            if proc != identite() and _detenteur_mort(proc):
                c.execute(update(Execution).where(Execution.id == eid).values(statut="interrompu", fin=maintenant()))


def executer_nuit(app: Application, *, aujourd_hui: date | None = None,
                  progression: Callable[[str], None] | None = None) -> RapportNuit:
    """`regie nuit` : une seule exécution à la fois (verrou en base) ; sûre à relancer."""
    jour = aujourd_hui or datetime.now(PARIS).date()
    rapport = RapportNuit(jour)
    with tache_exclusive(app, "nuit") as obtenu:
        if not obtenu:
            rapport.ignoree = True
            log.warning("nuit_ignoree", raison="verrou tenu par un autre processus")
            return rapport
        _clore_interrompues(app)
        with app.moteur.begin() as c:
            rapport.execution_id = c.execute(insert(Execution).returning(Execution.id), {
                "tache": "nuit", "date_metier": jour, "debut": maintenant(), "statut": "en_cours",
                "processus": identite(), "etapes": []}).scalar_one()
        log.info("nuit_commencee", execution_id=rapport.execution_id, date_metier=jour.isoformat())
        for nom, libelle, faire in ETAPES:
            e = Etape(nom, libelle)
            rapport.etapes.append(e)
            if progression:
                progression(libelle)
            debut = time.perf_counter()
            points_de_crash.point(f"avant_{nom}")
            try:
                faire(app, jour, e)
                if e.statut == "a_faire":
                    e.statut = "ok"
            except Exception as exc:
                e.statut = "injoignable" if _est_injoignable(exc) else "echec"
                e.erreur = str(exc) or type(exc).__name__
                log.error("nuit_etape_en_echec", etape=nom, erreur=e.erreur,
                          trace=traceback.format_exc(limit=5))
            e.duree_s = time.perf_counter() - debut
            log.info("nuit_etape", etape=nom, statut=e.statut, duree_s=round(e.duree_s, 3), comptes=e.comptes)
            with app.moteur.begin() as c:
                c.execute(update(Execution).where(Execution.id == rapport.execution_id).values(
                    etapes=[x.en_dict() for x in rapport.etapes]))
        statut = "termine" if rapport.code_sortie == 0 else "termine_avec_erreurs"
        with app.moteur.begin() as c:
            c.execute(update(Execution).where(Execution.id == rapport.execution_id).values(
                statut=statut, fin=maintenant(), etapes=[x.en_dict() for x in rapport.etapes]))
        log.info("nuit_terminee", execution_id=rapport.execution_id, statut=statut)
    return rapport
