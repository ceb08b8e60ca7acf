"""Le moteur : prend les paiements ouverts dans l'ordre, applique les règles, écrit les décisions.

Déterministe (ordre des paiements par date de réception, canal, référence), idempotent (un
second passage ne change rien) et sûr à plusieurs : un verrou consultatif PostgreSQL (SQLite
sérialise déjà les écrivains) est pris par chaque transaction, qui relit ses paiements sous le verrou.

Pour le débit (un million de paiements par nuit chez les plus grandes collectivités) :
- les factures lues restent en mémoire le temps d'une transaction (sous le verrou, personne d'autre
  ne les change) ; chaque lot ne lit que celles qu'il n'a pas encore vues, par requêtes groupées ;
- les écritures d'un lot partent d'un coup (insertions et mises à jour en masse) ;
- à l'import d'un fichier, les paiements nouveaux sont décidés avant d'être écrits
  (`rapprocher_a_l_import`) : une seule écriture par paiement, dans la transaction de l'import ;
- les écritures d'un lot partent dans un second fil (`_Ecrivain`) pendant que le lot suivant se décide :
  la base les exécute sans le verrou de Python. Le lot suivant ne lit de la base que ce que ces
  écritures ne changent pas (les factures qu'elles touchent restent en mémoire) ; ses suggestions, qui
  lisent les restes dus, attendent qu'elles soient faites ;
- pour un gros fichier, un second processus lit d'avance les factures que désignent les lots à venir
  (`_lire_d_avance`) ; celles que la transaction a déjà changées sont relues par elle.
"""

from __future__ import annotations

import functools
import heapq
import os
import re
import sys
from collections import defaultdict
from collections.abc import Callable, Generator, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any, TypeVar

import msgspec
import structlog
from sqlalchemy import Connection, bindparam, func, select, text, update
from sqlalchemy.exc import DBAPIError

from rapprochement import regles
from rapprochement.ecritures import preparer_mise_a_jour
from rapprochement.regles import (
    CODES_REESSAYES,
    Decision,
    PaiementVue,
    RemiseVue,
)
from regie import points_de_crash
from regie.application import Application
from regie.domaine import FactureEtat, LigneEtat, cles_possibles, mots_du_nom, statut_facture, statut_paiement
from regie.lecture_parallele import LectureSurCommande
from regie.progression import Progression
from regie.registre.etats import TITRES_ACTIFS, completer
from regie.registre.lignes import LigneFacture, encoder_json
from regie.registre.masse import (
    Ecriture,
    curseur_du_pilote,
    executer_au_pilote,
    executer_ecritures,
    inserer_tuples,
    lire_par_cles,
    preparer_insertion,
    sans_ramasse_miettes,
    table_de,
)
from regie.registre.modeles import (
    ANOMALIE_OUVERTE,
    CONDITION_OUVERTES,
    PAIEMENT_OUVERT,
    Affectation,
    Anomalie,
    Bordereau,
    Facture,
    LignePanierPayfip,
    LigneTitre,
    OperationPayfip,
    Paiement,
    Remise,
    Titre,
)
from regie.registre.moteur import creer_moteur
from regie.registre.statistiques import rafraichir_statistiques
from regie.registre.types import maintenant

__all__ = ["TITRES_ACTIFS", "BilanRapprochement", "NouveauPaiement", "inserer_paiements", "rangee_paiement",
           "rapprocher", "rapprocher_a_l_import", "verrouiller"]

log = structlog.get_logger()
VERROU_RAPPROCHEMENT = 72_630_001
TAILLE_LOT = 1000
LOTS_PAR_TRANSACTION = 5
# Pages du journal WAL (4 Kio) avant un point de contrôle pendant le rapprochement (1000 par défaut) :
# une page d'index réécrite par plusieurs transactions n'est recopiée dans la base qu'une fois.
PAGES_AVANT_POINT_DE_CONTROLE = 20_000
COLONNES_AFFECTATION = ("paiement_id", "facture_id", "montant", "parts", "regle", "preuve", "auteur", "cree_le",
                        "imputation")
COLONNES_ANOMALIE = ("paiement_id", "canal", "code", "statut", "raison", "preuve", "suggestions", "cree_le")
_SUGGESTIONS = COLONNES_ANOMALIE.index("suggestions")
COLONNES_PAIEMENT = ("id", "canal", "reference", "montant", "recu_le", "reference_facture", "remise_id", "details",
                     "brut", "ligne", "empreinte", "fichier_id", "affecte", "en_credit", "rembourse", "statut",
                     "anomalie", "dossier_id", "confirme_paiement_id", "decision_manuelle", "version", "cree_le")
_JETON = re.compile(r"[A-Za-z0-9][A-Za-z0-9/-]{4,29}")
STATUTS_OUVERTS = ("emise", "partiellement_payee", "titree")
# Les canaux dont la décision ne lit, en plus des factures, que ce qu'aucune écriture du moteur ne change :
# leur lot se décide pendant que le précédent s'écrit.
CANAUX_SANS_ATTENTE = frozenset({"buraliste", "cheque", "cesu", "virement"})


@dataclass
class BilanRapprochement:
    examines: int = 0
    affectes: int = 0
    confirmes: int = 0
    anomalies: dict[str, int] = field(default_factory=dict)
    inchanges: int = 0

    def message(self) -> str:
        txt = (f"{self.examines} paiement(s) examiné(s) : {self.affectes} affecté(s), {self.confirmes} "
               f"confirmation(s), {sum(self.anomalies.values())} en anomalie")
        if self.anomalies:
            txt += " (" + ", ".join(f"{n} {c}" for c, n in sorted(self.anomalies.items())) + ")"
        if self.inchanges:
            txt += f", {self.inchanges} toujours en attente d'une facture ou d'une remise"
        return txt


@dataclass(slots=True, init=False)  # __init__ écrit, compilé par mypyc : voir regie.domaine.LigneEtat
class NouveauPaiement:
    """Un paiement reçu, pas encore écrit : le moteur le décide puis l'écrit avec sa décision."""

    id: int
    canal: str
    reference: str
    montant: int
    recu_le: datetime
    reference_facture: str | None
    remise: str | None
    remise_id: int | None
    details: str  # le JSON tel qu'écrit dans le registre : décodé seulement quand son lot est décidé
    brut: str | None
    ligne: int | None
    empreinte: str
    fichier_id: int | None
    cree_le: datetime

    def __init__(self, id: int, canal: str, reference: str, montant: int, recu_le: datetime,
                 reference_facture: str | None, remise: str | None, remise_id: int | None, details: str,
                 brut: str | None, ligne: int | None, empreinte: str, fichier_id: int | None,
                 cree_le: datetime) -> None:
        self.id, self.canal, self.reference, self.montant, self.recu_le = id, canal, reference, montant, recu_le
        self.reference_facture, self.remise, self.remise_id = reference_facture, remise, remise_id
        self.details, self.brut, self.ligne, self.empreinte = details, brut, ligne, empreinte
        self.fichier_id, self.cree_le = fichier_id, cree_le


def verrouiller(conn: Connection) -> None:
    """Un seul moteur écrit à la fois (PostgreSQL) ; SQLite a déjà pris son verrou (BEGIN IMMEDIATE)."""
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": VERROU_RAPPROCHEMENT})


class _Ecrivain:
    """Les écritures d'un lot, exécutées dans un second fil pendant que le lot suivant se décide.

    Une écriture à la fois : `soumettre` attend la précédente. Le fil écrit par la connexion du pilote
    de la même transaction (SQLite et psycopg sérialisent les instructions d'une connexion) ; la base
    travaille sans le verrou de Python, le fil principal décide pendant ce temps. `REGIE_ECRITURE_PARALLELE=0`
    écrit dans le fil principal (mêmes écritures, même ordre).
    """

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.pilote = conn.connection.dbapi_connection
        parallele = os.environ.get("REGIE_ECRITURE_PARALLELE", "1") != "0"
        self.fil = ThreadPoolExecutor(1, thread_name_prefix="regie-ecriture") if parallele else None
        self.en_cours: Future[None] | None = None
        self.derniere: Sequence[Ecriture] = ()

    def soumettre(self, ecritures: Sequence[Ecriture]) -> None:
        self.attendre()
        if not ecritures:
            return
        if self.fil is None:
            executer_ecritures(self.conn, ecritures)
            return
        self.derniere = ecritures
        self.en_cours = self.fil.submit(_ecrire_au_pilote, self.pilote, ecritures)

    def attendre(self) -> None:
        """Les écritures soumises sont faites (leur erreur remonte ici, comme l'aurait dit SQLAlchemy)."""
        if self.en_cours is None:
            return
        en_cours, self.en_cours = self.en_cours, None
        try:
            en_cours.result()
        except self.conn.dialect.loaded_dbapi.Error as erreur:
            sql = next((e.sql for e in self.derniere), "")
            raise DBAPIError.instance(sql, None, erreur, self.conn.dialect.loaded_dbapi.Error,
                                      dialect=self.conn.dialect) from erreur

    def fermer(self, *, en_erreur: bool) -> None:
        """Avant la fin de la transaction : plus rien ne s'écrit (même après une erreur du fil principal)."""
        try:
            if en_erreur and self.en_cours is not None:
                self.en_cours.exception()  # attendue, sans masquer l'erreur qui remonte déjà
                self.en_cours = None
            self.attendre()
        finally:
            if self.fil is not None:
                self.fil.shutdown(wait=True)


def _ecrire_au_pilote(pilote: Any, ecritures: Sequence[Ecriture]) -> None:
    points_de_crash.point("ecriture_lot")  # les tests y retardent l'écriture pendant que le lot suivant se décide
    executer_au_pilote(pilote, ecritures)


# Le fil d'écriture reprend le verrou de Python après chaque instruction ; le fil principal, qui décide,
# le rend au bout de cet intervalle (5 ms par défaut : l'écriture d'un lot attendrait plus que sa décision).
INTERVALLE_DE_BASCULE = 0.0001  # secondes


@contextmanager
def _ecrivain(conn: Connection) -> Iterator[_Ecrivain]:
    ecrivain = _Ecrivain(conn)
    intervalle = sys.getswitchinterval()
    if ecrivain.fil is not None:
        sys.setswitchinterval(INTERVALLE_DE_BASCULE)
    try:
        yield ecrivain
    except BaseException:
        ecrivain.fermer(en_erreur=True)
        raise
    finally:
        sys.setswitchinterval(intervalle)
    ecrivain.fermer(en_erreur=False)


@contextmanager
def _points_de_controle_espaces(app: Application) -> Iterator[None]:
    """SQLite : points de contrôle du WAL plus rares le temps du rapprochement, puis le réglage d'avant.

    Réglage de la connexion (celle que le pool rend à chaque lot), posé hors transaction.
    """
    if app.moteur.dialect.name != "sqlite":
        yield
        return
    brute = app.moteur.raw_connection()
    try:
        avant = brute.driver_connection.execute("PRAGMA wal_autocheckpoint").fetchone()[0]  # type: ignore[union-attr]
        brute.driver_connection.execute(f"PRAGMA wal_autocheckpoint={PAGES_AVANT_POINT_DE_CONTROLE}")  # type: ignore[union-attr]
    finally:
        brute.close()
    try:
        yield
    finally:
        brute = app.moteur.raw_connection()
        try:
            brute.driver_connection.execute(f"PRAGMA wal_autocheckpoint={int(avant)}")  # type: ignore[union-attr]
        finally:
            brute.close()



def rangee_paiement(n: NouveauPaiement, affecte: int, statut: str, anomalie: str | None, dossier_id: int | None,
                    confirme_paiement_id: int | None, *, version: int) -> tuple[Any, ...]:
    """La rangée d'un paiement reçu, dans l'ordre de `COLONNES_PAIEMENT` (rien en crédit ni remboursé)."""
    return (n.id, n.canal, n.reference, n.montant, n.recu_le, n.reference_facture, n.remise_id, n.details, n.brut,
            n.ligne, n.empreinte, n.fichier_id, affecte, 0, 0, statut, anomalie, dossier_id, confirme_paiement_id,
            False, version, n.cree_le)


# Les colonnes JSON déjà encodées par le moteur (msgspec) : leur type ne les repasse pas une à une.
_DETAILS_ENCODES = ("details",)
_AFFECTATION_ENCODEE = ("parts", "preuve")


def inserer_paiements(conn: Connection, rangees: Sequence[tuple[Any, ...]]) -> None:
    inserer_tuples(conn, table_de(Paiement), COLONNES_PAIEMENT, rangees, deja_converties=_DETAILS_ENCODES)


# Ce qui peut résoudre la référence inconnue d'un paiement, selon son canal : l'arrivée d'une facture
# (numéro, numéro de dette, refdet), d'un panier PayFiP, d'une remise (relevé DFT, CRCESU), d'un titre.
_RESOLUTIONS = {
    "buraliste": ("facture",), "cheque": ("facture",), "cesu": ("facture",), "virement": ("facture",),
    "payfip": ("facture", "operation_payfip"), "cfonb": ("remise",), "crcesu": ("remise",),
    "pes_retour": ("titre",),
}
_ARRIVEES = {"facture": Facture.cree_le, "remise": Remise.cree_le, "titre": Titre.cree_le,
             "operation_payfip": OperationPayfip.cree_le}


def _dernieres_arrivees(conn: Connection) -> dict[str, Any]:
    """Pour chaque sorte d'élément qui peut résoudre une référence inconnue, l'instant du dernier arrivé."""
    return {nom: conn.execute(select(func.max(colonne))).scalar() for nom, colonne in _ARRIVEES.items()}


def _ouverts(conn: Connection) -> list[tuple[datetime, str, str, int]]:
    """Les paiements à (re)prendre, avec leur clé d'ordre : (reçu le, canal, référence, id), triés.

    Deux lectures par index, sans parcourir les paiements ni toute la file de revue : ceux à traiter
    (index partiel des paiements ouverts, dont la requête répète la condition) et ceux dont l'anomalie
    peut se résoudre (index des anomalies à reprendre).
    """
    colonnes = (Paiement.recu_le, Paiement.canal, Paiement.reference, Paiement.id)
    a_traiter = select(*colonnes).where(text(f"paiement.{PAIEMENT_OUVERT}"), Paiement.statut == "a_traiter")
    # Les rangées de SQLAlchemy (Row) ne sont pas des tuples : lues par un résultat typé Any, que le module
    # compilé (regie.natif) ne vérifie pas comme un tuple.
    rangees: Any = conn.execute(a_traiter)
    trouves: set[tuple[Any, ...]] = {tuple(r) for r in rangees}
    arrivees = _dernieres_arrivees(conn)
    constatee = func.coalesce(Anomalie.reevaluee_le, Anomalie.cree_le)
    for canal, sources in _RESOLUTIONS.items():
        instants = [arrivees[s] for s in sources if arrivees[s] is not None]
        if not instants:
            continue
        # Une référence inconnue n'est reprise que si ce qui peut la résoudre est arrivé depuis qu'elle
        # a été constatée : relancer sans nouveauté ne changerait rien. Un canal à la fois : l'index
        # donne exactement ses anomalies constatées avant cette arrivée ; chacune mène à son paiement
        # (sans la condition de l'index partiel des paiements ouverts, que SQLite parcourrait sinon).
        rangees = conn.execute(
            select(*colonnes).join(Anomalie, Anomalie.paiement_id == Paiement.id)
            .where(text(f"anomalie.{ANOMALIE_OUVERTE}"), Anomalie.code.in_(CODES_REESSAYES), Anomalie.canal == canal,
                   constatee < max(instants), Paiement.statut == "en_anomalie",
                   Paiement.anomalie.in_(CODES_REESSAYES), Paiement.decision_manuelle.is_(False)))
        trouves.update(tuple(r) for r in rangees)
    return sorted((_instant(r), c, ref, i) for r, c, ref, i in trouves)


def rapprocher(app: Application, *, aujourd_hui: date | None = None, taille_lot: int | None = None,
               ids: Sequence[int] | None = None) -> BilanRapprochement:
    """`regie rapprocher` : chaque paiement ouvert finit affecté, confirmé, ou en revue avec sa raison."""
    taille_lot = taille_lot or int(os.environ.get("REGIE_RAPPROCHEMENT_LOT", TAILLE_LOT))
    bilan = BilanRapprochement()
    with app.moteur.connect() as conn:
        a_voir = list(ids) if ids is not None else [i for *_, i in _ouverts(conn)]
    progression = Progression("rapprochement", "paiements")
    lots = [a_voir[debut:debut + taille_lot] for debut in range(0, len(a_voir), taille_lot)]
    with sans_ramasse_miettes(), _points_de_controle_espaces(app):
        for premier in range(0, len(lots), LOTS_PAR_TRANSACTION):
            groupe = lots[premier:premier + LOTS_PAR_TRANSACTION]
            # Plusieurs lots par transaction : SQLite réécrit à chaque validation toutes les pages d'index
            # touchées (reste dû, statuts), les mêmes d'un lot à l'autre. Le verrou est pris avant de relire
            # quoi que ce soit ; chaque lot relit ses paiements et voit les écritures des précédents.
            with app.moteur.begin() as conn, _ecrivain(conn) as ecrivain:
                verrouiller(conn)
                memoire = _Memoire(conn)

                def apres(rang: int, _ids: list[int], dernier: int = len(groupe)) -> None:
                    if rang < dernier:
                        points_de_crash.point("rapprochement_lot")  # un point par lot : ici, avant la validation

                _enchainer(memoire, bilan, ecrivain, groupe, _Lot.relire, apres)
            progression.avancer(sum(len(ids_lot) for ids_lot in groupe))
            points_de_crash.point("rapprochement_lot")
    progression.terminer()
    log.info("rapprochement_termine", examines=bilan.examines, affectes=bilan.affectes, confirmes=bilan.confirmes,
             anomalies=bilan.anomalies)
    rafraichir_statistiques(app.moteur, ("affectation", "anomalie"), bilan.examines)
    return bilan


# Pour chaque lot, les identifiants et numéros des factures que ses paiements désignent.
ClesParLot = list[tuple[list[int], list[str]]]


def lecture_d_avance(conn: Connection) -> LectureSurCommande[ClesParLot, bytes]:
    """Le processus qui lira d'avance les factures des lots d'un gros import (`_lire_d_avance`), créé avant que
    les paiements du fichier ne soient chargés : voir `LectureSurCommande`."""
    return LectureSurCommande(functools.partial(_lire_d_avance, conn.engine.url.render_as_string(hide_password=False)))


def rapprocher_a_l_import(conn: Connection, nouveaux: Sequence[NouveauPaiement], *, taille_lot: int | None = None,
                          lecture: LectureSurCommande[ClesParLot, bytes] | None = None) -> BilanRapprochement:
    """Les paiements d'un fichier, décidés dans la transaction de son import puis écrits une seule fois.

    Exactement ce que ferait `rapprocher` juste après l'import : les paiements déjà ouverts qui sont à
    reprendre passent avec les nouveaux, tous dans l'ordre (reçu le, canal, référence, id).
    `lecture` (un gros fichier, `lecture_d_avance`) : les factures que désignent les lots à venir sont lues par
    ce second processus pendant que celui-ci décide ; il est arrêté au retour.
    """
    bilan = BilanRapprochement()
    taille_lot = taille_lot or TAILLE_LOT  # lu à l'appel : les tests le réduisent pour croiser les lots
    verrouiller(conn)
    anciens = _ouverts(conn)
    memoire = _Memoire(conn)
    progression = Progression("rapprochement", "paiements")
    # Sans ramasse-miettes dès le tri : des centaines de milliers de tuples neufs déclencheraient des
    # passes complètes sur tout le tas (les paiements du fichier ; le profil y comptait 4 % de l'import).
    with sans_ramasse_miettes(), _ecrivain(conn) as ecrivain:
        ordre: list[tuple[Any, ...]] = sorted(
            [(p.recu_le, p.canal, p.reference, p.id, p) for p in nouveaux]
            + [(r, c, ref, i, None) for r, c, ref, i in anciens], key=_cle_d_ordre)

        morceaux = [ordre[debut:debut + taille_lot] for debut in range(0, len(ordre), taille_lot)]
        cles: Iterator[tuple[list[int], list[str]]] | None = None
        prelues: Generator[bytes, None, None] | None = None
        if lecture is not None and len(morceaux) > 1:
            par_lot = [_cles_designees(t[4] for t in morceau if t[4] is not None) for morceau in morceaux]
            prelues = lecture.lancer(par_lot)
            cles = iter(par_lot)
        elif lecture is not None:
            lecture.fermer()

        def elements(lot: _Lot, morceau: list[tuple[Any, ...]]) -> list[Element]:
            if prelues is not None and cles is not None:  # un lot après l'autre, comme la lecture d'avance
                lot.prelues = (_DECODEUR_PRELUES.decode(next(prelues)), *next(cles))
            a_relire = [t[3] for t in morceau if t[4] is None]
            relus = {v.id: (v, s, a) for v, s, a in lot.relire(a_relire)} if a_relire else {}
            resultat: list[Element] = []
            for *_, pid, nouveau in morceau:
                if nouveau is None:
                    if pid in relus:
                        resultat.append(relus[pid])
                else:
                    resultat.append((lot.nouveau(nouveau), "a_traiter", None))
            return resultat

        try:
            _enchainer(memoire, bilan, ecrivain, morceaux, elements,
                       lambda _rang, morceau: progression.avancer(len(morceau)))
        finally:
            if prelues is not None:
                prelues.close()  # arrête le processus de lecture s'il lit encore
    progression.terminer()
    log.info("rapprochement_termine", examines=bilan.examines, affectes=bilan.affectes, confirmes=bilan.confirmes,
             anomalies=bilan.anomalies, a_l_import=True)
    return bilan


def _cle_d_ordre(t: tuple[Any, ...]) -> tuple[Any, ...]:
    return t[:4]


def _facture_designee(canal: str, reference_facture: str | None) -> int | str | None:
    """L'identifiant (buralistes : le numéro de dette) ou le numéro de la facture que désigne un paiement."""
    if not reference_facture:
        return None
    if canal in ("cesu", "cheque"):
        return reference_facture
    if canal == "buraliste" and reference_facture.isdigit():
        return int(reference_facture)  # le numéro de dette est l'identifiant de la facture
    return None


def _cles_designees(paiements: Iterable[NouveauPaiement | PaiementVue]) -> tuple[list[int], list[str]]:
    """Les identifiants et numéros des factures que désignent des paiements (`_facture_designee`)."""
    ids: set[int] = set()
    numeros: set[str] = set()
    for p in paiements:
        cle = _facture_designee(p.canal, p.reference_facture)
        if isinstance(cle, int):
            ids.add(cle)
        elif cle is not None:
            numeros.add(cle)
    return sorted(ids), sorted(numeros)


_ENCODEUR_PRELUES = msgspec.msgpack.Encoder()
_DECODEUR_PRELUES = msgspec.msgpack.Decoder(list[tuple[Any, ...]])


def _lire_d_avance(url: str, cles: ClesParLot) -> Iterator[bytes]:
    """Dans un processus à part, par sa propre connexion : les factures désignées par chaque lot, dans l'ordre.

    Ce processus voit la base telle que validée : sous le verrou du moteur (et, sous SQLite, le verrou
    d'écriture de l'import), seule la transaction de l'import change des factures, et la mémoire du moteur
    écarte celles qu'elle a changées (`_Memoire.modifiees`), relues par la transaction elle-même.
    """
    moteur = creer_moteur(url, lecture=True)
    # Né avant que le parent ne suspende le ramasse-miettes : celui-ci est suspendu ici aussi.
    try:
        with sans_ramasse_miettes(), moteur.connect() as conn:
            for ids, numeros in cles:
                rangees: list[tuple[Any, ...]] = []
                for colonne, valeurs in (("f.id", ids), ("f.numero", numeros)):
                    if valeurs:
                        # Les lignes décodées ici, réduites à ce que lit le moteur : celui-ci n'a plus de JSON à
                        # décoder (le vingtième de son travail), et il en reçoit trois fois moins.
                        rangees += [(*r[:14], _lignes_utiles(r[14])) for r in lire_par_cles(
                            conn, f"SELECT {_COLONNES_FACTURE} {_FROM_FACTURE} WHERE {colonne} {{cles}}", valeurs)]
                yield _ENCODEUR_PRELUES.encode(rangees)
    finally:
        moteur.dispose()  # la connexion fermée proprement (le processus sort sans finaliseurs)


# Un paiement d'un lot : sa vue, son statut, son anomalie ouverte (pour une relance).
Element = tuple[PaiementVue, str, "str | None"]
M = TypeVar("M")  # ce qui désigne les paiements d'un lot : leurs ids, ou des paiements reçus


def _enchainer(memoire: _Memoire, bilan: BilanRapprochement, ecrivain: _Ecrivain, morceaux: Sequence[M],
               lire: Callable[[_Lot, M], list[Element]], apres: Callable[[int, M], None]) -> None:
    """Les lots dans l'ordre : chacun se lit, se décide et prépare ses écritures pendant que le précédent s'écrit.

    `lire(lot, morceau)` donne les paiements d'un lot ; `apres(rang, morceau)` suit chaque décision.
    Pour le lot k, pendant que k-1 s'écrit : lire (paiements, factures, familles ; la base dit l'état après
    k-2, ou déjà k-1 pour ce que k-1 ne change pas, la mémoire ce que k-1 a changé), décider, préparer ses
    écritures, oublier les factures que seul k-1 a changées (plus rien ne se lit avant la fin de son écriture).
    Puis attendre l'écriture de k-1 ; lire les suggestions de k (la base telle qu'au début de k) ; soumettre k.
    Les décisions sont celles d'un lot après l'autre.
    """
    for rang, morceau in enumerate(morceaux, 1):
        lot = _Lot(memoire, bilan, ecrivain)
        lot.preparer(lire(lot, morceau))
        lot.decider()
        lot.preparer_ecritures()
        memoire.oublier(garder=lot.factures_modifiees)
        lot.soumettre()
        apres(rang, morceau)


# --- Petites conversions (valeurs brutes du pilote) --------------------------------------------------

@functools.lru_cache(maxsize=4096)
def _jour_texte(texte: str) -> date:
    return date.fromisoformat(texte)


def _jour(v: Any) -> date:
    return _jour_texte(v) if isinstance(v, str) else v


def _instant(v: Any) -> datetime:
    """Un instant lu de la base : SQLite le rend en texte UTC sans fuseau, PostgreSQL avec."""
    if isinstance(v, str):
        v = datetime.fromisoformat(v)
    assert isinstance(v, datetime)
    return v.replace(tzinfo=UTC) if v.tzinfo is None else v.astimezone(UTC)


def _jetons_du_tireur(p: PaiementVue) -> frozenset[str]:
    return mots_du_nom(str(p.details.get("tireur") or ""))


# --- Lectures groupées, en SQL du pilote (sans compilation ni conversion par rangée) --------------------

_COLONNES_FACTURE = ("f.id, f.numero, f.dossier_id, d.numero, f.regie_code, e.statut, f.montant, e.paye, e.avoirs, "
                     "f.echeance, f.refdet, f.nom, f.prenom, f.payeur_cle, f.lignes")
_FROM_FACTURE = ("FROM facture f JOIN etat_facture e ON e.facture_id = f.id JOIN dossier d ON d.id = f.dossier_id")
# Suggestions : les factures encore entières (les plus anciennes d'abord), puis les entamées (montant, id).
# Chaque requête par le reste dû répète la condition de l'index partiel des restes (`_OUVERTES`).
_OUVERTES = "e." + CONDITION_OUVERTES
_PROCHES_PAR_REQUETE = 5
_PROCHES = (
    "SELECT f.id, f.numero, f.dossier_id, d.numero, f.regie_code, e.statut, f.montant, e.paye, e.avoirs, "
    f"f.echeance, f.nom {_FROM_FACTURE} WHERE {_OUVERTES} AND e.reste_du = {{p}} AND e.statut = 'emise' "
    f"AND e.montant = {{p}} ORDER BY e.facture_id LIMIT {_PROCHES_PAR_REQUETE}",
    "SELECT f.id, f.numero, f.dossier_id, d.numero, f.regie_code, e.statut, f.montant, e.paye, e.avoirs, "
    f"f.echeance, f.nom {_FROM_FACTURE} WHERE {_OUVERTES} AND e.reste_du = {{p}} "
    f"AND e.statut = 'partiellement_payee' AND e.montant > {{p}} ORDER BY e.montant, e.facture_id "
    f"LIMIT {_PROCHES_PAR_REQUETE}",
)


def _executer(conn: Connection, sql: str, parametres: Sequence[Any]) -> list[tuple[Any, ...]]:
    """Une requête par le curseur du pilote."""
    with curseur_du_pilote(conn) as curseur:
        curseur.execute(sql, parametres)
        return curseur.fetchall()  # type: ignore[no-any-return]


# Une facture candidate à la famille d'un tireur : sa place (échéance, numéro) et son id.
Candidate = tuple[tuple[date, str], int]
STATUTS_FAMILLE = ("emise", "partiellement_payee")  # ceux de CONDITION_OUVERTES


def _numero_candidate(c: Candidate) -> str:
    return c[0][1]


class _Memoire:
    """Ce qu'une transaction du moteur sait des factures.

    Les factures d'un lot sont lues une fois et tenues à jour en mémoire jusqu'à l'écriture du lot ;
    celles qu'il a changées restent en mémoire tant que cette écriture n'est pas faite (`en_attente`), les
    autres sont oubliées (la base dit la même chose) : la mémoire ne grandit pas avec le fichier.
    Restent aussi : les clés cherchées sans succès (aucune facture n'arrive pendant un rapprochement) et
    l'index des factures ouvertes par reste dû (famille du tireur), tenu à l'image des lots soumis.
    """

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.marque = "%s" if conn.dialect.name == "postgresql" else "?"
        self.sql_proches = [sql.format(p=self.marque) for sql in _PROCHES]
        self.factures: dict[int, FactureEtat] = {}
        self.par_numero: dict[str, int] = {}
        self.par_refdet: dict[str, list[int]] = defaultdict(list)
        # Ce que dit la base de chaque facture en mémoire : (reste, statut) au dernier lot écrit.
        self.ecrit: dict[int, tuple[int, str]] = {}
        self.ids_absents: set[int] = set()
        self.numeros_absents: set[str] = set()
        self.refdets_absents: set[str] = set()
        # Reste dû → clé du payeur → id → facture ouverte de ce reste (les couples lus, tenus à jour).
        self.familles: dict[int, dict[str, dict[int, Candidate]]] = {}
        self.familles_lues: set[tuple[int, str]] = set()
        # De chaque facture de cet index, ce qu'en montre une suggestion (`_legere`), tenu à jour comme lui :
        # un chèque à la facture inconnue ne fait que suggérer la famille, sans lire ses factures entières.
        self.legeres: dict[int, tuple[Any, ...]] = {}
        # Les retenues de (reste, mots du tireur, ordre par numéro), par reste, tant que cet index ne change pas
        # pour ce reste : les chèques d'une même famille et d'un même tarif reviennent d'un lot à l'autre (les
        # recalculer triait toutes les factures ouvertes de ce reste à chaque chèque).
        self.retenues_lues: dict[int, dict[tuple[frozenset[str], bool], list[int]]] = {}
        # Les suggestions lues pour un montant, gardées d'un lot à l'autre tant qu'aucune écriture ne les change
        # (`revoir_proches`) : les plus anciennes factures ouvertes d'un tarif sont rarement celles qu'on paie.
        self.proches_lus: dict[int, list[FactureEtat]] = {}
        # De chaque montant lu : les factures des deux requêtes, et la dernière place de chacune quand elle en a
        # rendu cinq (une facture qui y entre avant cette place change la réponse ; None : toute entrée la change).
        self.proches_bornes: dict[int, tuple[set[int], int | None, tuple[int, int] | None]] = {}
        # Les factures que change le dernier lot décidé, (id, reste avant, reste, statut, montant) : ses suggestions
        # se lisent avant son écriture, elles ne sont revues qu'à la décision du suivant (`revoir_proches`).
        self.changees_du_lot: list[tuple[int, int, int, str, int]] = []
        self.cle_de: dict[int, str] = {}  # la clé du payeur de chaque facture en mémoire
        self.refdet_de: dict[int, str] = {}
        # Les factures que change le lot précédent, pas encore écrit : la base en dit l'état d'avant.
        self.en_attente: set[int] = set()
        # Toutes celles que la transaction a changées : une lecture d'avance (hors transaction) les écarte.
        self.modifiees: set[int] = set()

    def _charger(self, rangees: Iterable[tuple[Any, ...]]) -> None:
        nouvelles: list[FactureEtat] = []
        for (fid, numero, dossier_id, dossier, regie, statut, montant, paye, avoirs, echeance, refdet, nom, prenom,
             cle, lignes) in rangees:
            if fid in self.factures:
                # Gardée d'un lot précédent, mais sa refdet oubliée (partagée avec une facture oubliée) :
                # la refdet retrouve toutes ses factures.
                if fid not in self.par_refdet[refdet]:
                    self.par_refdet[refdet].append(fid)
                continue
            # Le texte JSON lu de la base, ou ses lignes déjà réduites par la lecture d'avance.
            utiles: list[list[Any]] = lignes if isinstance(lignes, list) else _lignes_utiles(lignes)
            f = FactureEtat(fid, numero, dossier_id, dossier, regie, statut, montant, paye, avoirs, _jour(echeance),
                            False, [LigneEtat(lg[0], lg[1], 0, 0, lg[2]) for lg in utiles], nom, prenom)
            self.factures[fid] = f
            self.cle_de[fid] = cle
            self.refdet_de[fid] = refdet
            self.ecrit[fid] = (f.reste, statut)
            self.par_numero[numero] = fid
            self.par_refdet[refdet].append(fid)
            nouvelles.append(f)
        completer(self.conn, nouvelles)

    def charger(self, *, ids: Iterable[int] = (), numeros: Iterable[str] = (), refdets: Iterable[str] = (),
                prelues: tuple[list[tuple[Any, ...]], list[int], list[str]] | None = None) -> None:
        """Les factures désignées qui ne sont pas encore en mémoire (une requête groupée par sorte de clé).

        `prelues` : les rangées que la lecture d'avance a trouvées (la base validée), avec les identifiants et
        numéros qu'elle cherchait. Celles des factures que la transaction a changées sont écartées et relues
        ici ; une clé cherchée et pas trouvée est absente (aucune facture n'arrive pendant un rapprochement).
        """
        if prelues is not None:
            rangees, ids_cherches, numeros_cherches = prelues
            self._charger(r for r in rangees if r[0] not in self.modifiees)
            self.ids_absents.update(set(ids_cherches).difference(r[0] for r in rangees))
            self.numeros_absents.update(set(numeros_cherches).difference(r[1] for r in rangees))
        ids = sorted({i for i in ids if i not in self.ids_absents and i not in self.factures})
        numeros = sorted({n for n in numeros if n not in self.numeros_absents and n not in self.par_numero})
        refdets = sorted({r for r in refdets if r not in self.refdets_absents and r not in self.par_refdet})
        for colonne, cles in (("f.id", ids), ("f.numero", numeros), ("f.refdet", refdets)):
            if cles:
                self._charger(lire_par_cles(self.conn, f"SELECT {_COLONNES_FACTURE} {_FROM_FACTURE} "
                                                   f"WHERE {colonne} {{cles}}", cles))
        self.ids_absents.update(i for i in ids if i not in self.factures)
        self.numeros_absents.update(n for n in numeros if n not in self.par_numero)
        self.refdets_absents.update(r for r in refdets if r not in self.par_refdet)

    def oublier(self, garder: set[int]) -> None:
        """Un lot décidé, avant qu'il s'écrive : seules restent les factures qu'il a changées ; la base dit le
        reste une fois faite l'écriture en cours (celle du lot d'avant), que rien ne lit avant d'attendre."""
        # Les autres seules sont ôtées (la moitié) : vider puis remplir chaque index coûtait le dixième du lot.
        factures, ecrit, cle_de, refdet_de = self.factures, self.ecrit, self.cle_de, self.refdet_de
        par_numero, par_refdet = self.par_numero, self.par_refdet
        for i in factures.keys() - garder:
            f = factures.pop(i)
            del ecrit[i], cle_de[i]
            par_numero.pop(f.numero, None)
            # Une refdet n'est gardée que si toutes ses factures le sont : sinon la relire les retrouve toutes.
            par_refdet.pop(refdet_de.pop(i), None)
        self.en_attente = set(garder)

    # --- Famille du tireur ----------------------------------------------------------------------

    def charger_familles(self, demandes: Iterable[tuple[int, frozenset[str]]]) -> None:
        """Pour des (reste, mots du tireur) : les factures ouvertes de ce reste dont le payeur peut être ce
        tireur, lues une fois par transaction ; la base ne rend que celles-là (clé du payeur)."""
        couples = {(m, cle) for m, mots in demandes for cle in cles_possibles(mots)} - self.familles_lues
        if not couples:
            return
        montants = sorted({m for m, _ in couples})
        for m in montants:  # l'index change pour ces restes seulement
            self.retenues_lues.pop(m, None)
        cles = sorted({c for _, c in couples})
        # Tous les couples (reste, clé) du produit sont lus : marqués comme tels.
        self.familles_lues.update((m, c) for m in montants for c in cles)
        # La clé du payeur est dans l'index des restes : seules les factures cherchées sont lues.
        rangees = lire_par_cles(self.conn, "SELECT f.echeance, f.numero, e.reste_du, f.id, e.payeur_cle, "
                                       "f.dossier_id, d.numero, f.regie_code, e.statut, f.montant, e.paye, e.avoirs, "
                                       "f.nom, f.prenom FROM etat_facture e JOIN facture f ON f.id = e.facture_id "
                                       "JOIN dossier d ON d.id = f.dossier_id "
                                       f"WHERE e.payeur_cle IN ({', '.join([self.marque] * len(cles))}) "
                                       f"AND {_OUVERTES} AND e.reste_du {{cles}}", montants, avant=cles)
        legeres = self.legeres
        for r in rangees:
            fid = r[3]
            if fid not in self.en_attente:  # lue avant ou après l'écriture en cours : voir plus bas
                jour = _jour(r[0])
                self.familles.setdefault(r[2], {}).setdefault(r[4], {})[fid] = ((jour, r[1]), fid)
                legeres[fid] = (r[1], *r[5:], jour)
        # Les factures du lot pas encore écrit : leur état décidé (celui que la base aura), pas celui lu.
        montants_lus, cles_lues = set(montants), set(cles)
        for fid in self.en_attente:
            reste, statut = self.ecrit[fid]
            cle = self.cle_de[fid]
            if statut in STATUTS_FAMILLE and reste in montants_lus and cle in cles_lues:
                f = self.factures[fid]
                self.familles.setdefault(reste, {}).setdefault(cle, {})[fid] = ((f.echeance, f.numero), fid)
                self.legeres[fid] = _legere(f)

    def retenues(self, montant: int, mots: frozenset[str], *, par_numero: bool) -> list[int]:
        """Les cinq premières factures ouvertes de ce reste (au dernier lot écrit) dont le payeur porte les mots
        du tireur, dans l'ordre (échéance, numéro), ou par numéro."""
        du_reste = self.retenues_lues.get(montant)
        if du_reste is None:
            du_reste = self.retenues_lues[montant] = {}
        cle_memo = (mots, par_numero)
        retenues = du_reste.get(cle_memo)
        if retenues is None:
            par_cle = self.familles.get(montant) or {}
            toutes = (c for cle in cles_possibles(mots) for c in par_cle.get(cle, {}).values())
            # Les cinq premières sans trier toutes les autres (un nom courant en a des centaines à un tarif).
            premieres = heapq.nsmallest(5, toutes, key=_numero_candidate if par_numero else None)
            retenues = du_reste[cle_memo] = [fid for _, fid in premieres]
        return retenues

    def ecrites(self, factures: Iterable[FactureEtat]) -> None:
        """Des factures viennent d'être écrites : l'index des familles suit la base (et les retenues des restes
        où il change sont oubliées)."""
        legeres = self.legeres
        retenues = self.retenues_lues
        self.revoir_proches(self.changees_du_lot)
        changees: list[tuple[int, int, int, str, int]] = []
        self.changees_du_lot = changees
        for f in factures:
            self.modifiees.add(f.id)
            reste_avant, statut_avant = self.ecrit[f.id]
            changees.append((f.id, reste_avant, f.reste, f.statut, f.montant))
            self.ecrit[f.id] = (f.reste, f.statut)
            if (reste_avant, statut_avant) == (f.reste, f.statut):
                continue  # ni l'index ni ce qu'en montre une suggestion (le payé suit le reste) ne changent
            cle = self.cle_de[f.id]
            if statut_avant in STATUTS_FAMILLE and (reste_avant, cle) in self.familles_lues:
                self.familles.get(reste_avant, {}).get(cle, {}).pop(f.id, None)
                retenues.pop(reste_avant, None)
            entre = f.statut in STATUTS_FAMILLE and (f.reste, cle) in self.familles_lues
            if entre:
                self.familles.setdefault(f.reste, {}).setdefault(cle, {})[f.id] = ((f.echeance, f.numero), f.id)
                retenues.pop(f.reste, None)
            if entre or f.id in legeres:
                legeres[f.id] = _legere(f)

    def instantane(self, fid: int) -> FactureEtat:
        """Une facture de l'index des familles telle qu'à cet instant, pour une suggestion : sans ses lignes."""
        f = self.factures.get(fid)
        numero, dossier_id, dossier, regie, statut, montant, paye, avoirs, nom, prenom, echeance = (
            self.legeres[fid] if f is None else _legere(f))
        return FactureEtat(fid, numero, dossier_id, dossier, regie, statut, montant, paye, avoirs, echeance,
                           statut == "titree", [], nom, prenom)

    # --- Suggestions ----------------------------------------------------------------------------

    def revoir_proches(self, changees: list[tuple[int, int, int, str, int]]) -> None:
        """Les suggestions lues que changent ces écritures (celles d'un lot dont les suggestions sont faites) sont
        oubliées : une facture montrée a changé (montrée pour son reste d'avant : lue à ce reste, elle n'a pas
        changé depuis), ou une facture entre dans une requête (son reste égale le montant) avant la dernière place
        rendue (`_PROCHES` : entières par id, entamées par montant puis id)."""
        bornes = self.proches_bornes
        for fid, reste_avant, reste, statut, montant in changees:
            if not bornes:
                break
            montree = bornes.get(reste_avant)
            if montree is not None and fid in montree[0]:
                self._oublier_proches(reste_avant)
            b = bornes.get(reste)
            if b is None:
                continue
            entre_entiere = statut == "emise" and montant == reste and (b[1] is None or fid < b[1])
            entre_entamee = (statut == "partiellement_payee" and montant > reste
                             and (b[2] is None or (montant, fid) < b[2]))
            if entre_entiere or entre_entamee:
                self._oublier_proches(reste)

    def _oublier_proches(self, montant: int) -> None:
        del self.proches_bornes[montant]
        del self.proches_lus[montant]

    def precharger_proches(self, montants: Iterable[int]) -> None:
        """Les suggestions de plusieurs montants : sous PostgreSQL en une requête (un aller-retour)."""
        a_lire = sorted({m for m in montants if m not in self.proches_lus})
        if not a_lire:
            return
        lues: dict[int, tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]] = {m: ([], []) for m in a_lire}
        if self.conn.dialect.name == "postgresql":
            for rang, sql in enumerate(_PROCHES):
                requete = (f"SELECT m.v, x.* FROM unnest(%s::bigint[]) AS m(v) CROSS JOIN LATERAL ("
                           f"{sql.format(p='m.v')}) AS x")
                for m, *r in _executer(self.conn, requete, (a_lire,)):
                    lues[m][rang].append(tuple(r))
        else:
            for m in a_lire:
                for rang, sql in enumerate(self.sql_proches):
                    lues[m][rang].extend(_executer(self.conn, sql, (m, m)))
        for m, (entieres, entamees) in lues.items():
            ids = {r[0] for r in entieres} | {r[0] for r in entamees}
            pleine = _PROCHES_PAR_REQUETE
            self.proches_bornes[m] = (ids, max(r[0] for r in entieres) if len(entieres) == pleine else None,
                                      max((r[6], r[0]) for r in entamees) if len(entamees) == pleine else None)
            lignes = sorted(set(entieres) | set(entamees), key=lambda r: (_jour(r[9]), r[1]))[:5]
            self.proches_lus[m] = [
                FactureEtat(r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8], _jour(r[9]), r[5] == "titree", [],
                            r[10]) for r in lignes]


class _Lot:
    """Un lot de paiements : décisions dans l'ordre, écritures en attente, puis écrites d'un coup."""

    def __init__(self, memoire: _Memoire, bilan: BilanRapprochement, ecrivain: _Ecrivain) -> None:
        self.memoire = memoire
        self.ecrivain = ecrivain
        self.conn = memoire.conn
        self.bilan = bilan
        self.now = maintenant()
        # Lié une fois par lot : le mandataire de `structlog.get_logger()` se relie à chaque appel (2 µs).
        self.journal = log.bind()
        self.factures = memoire.factures
        self.factures_modifiees: set[int] = set()
        self.affectations: list[tuple[Any, ...]] = []
        self.anomalies: list[tuple[Any, ...]] = []
        self.anomalies_closes: list[int] = []
        # Les paiements décidés : (id, affecté, statut, anomalie, dossier, confirmé) ; les nouveaux à insérer.
        self.decides: list[tuple[int, int, str, str | None, int | None, int | None]] = []
        self.nouveaux: dict[int, NouveauPaiement] = {}
        self.confirmes_en_attente: set[int] = set()
        # Valeurs lues des colonnes d'un paiement déjà écrit, réécrites seulement si elles changent.
        self.paiement_lu: dict[int, tuple[str | None, int | None, int | None]] = {}
        self.remises: list[dict[str, Any]] = []
        self.suggerer = True
        self.reevaluees: list[int] = []
        # Les anomalies à compléter de leurs suggestions par le reste dû, lues une fois l'écriture du lot
        # précédent faite : (place dans `anomalies`, montant, la règle à refaire avec ces suggestions).
        self.a_suggerer: list[tuple[int, int, Callable[[list[FactureEtat]], Decision]]] = []
        self.elements: list[Element] = []
        # Les factures du lot lues d'avance, et les identifiants et numéros demandés (ou None).
        self.prelues: tuple[list[tuple[Any, ...]], list[int], list[str]] | None = None
        self.etats_changent: list[tuple[Any, ...]] = []
        self.etats_paye_seul: list[tuple[Any, ...]] = []
        # Les écritures préparées pendant l'écriture du lot d'avant (`preparer_ecritures`).
        self.ecritures: list[Ecriture] = []
        self.ecritures_etats: list[Ecriture] = []

    # --- Les paiements du lot ---------------------------------------------------------------------

    def relire(self, ids: Sequence[int]) -> list[tuple[PaiementVue, str, str | None]]:
        """Les paiements déjà écrits, relus sous le verrou : seuls ceux qui sont encore à traiter restent."""
        lignes = {r[0]: r for r in lire_par_cles(
            self.conn, "SELECT id, canal, reference, montant, recu_le, reference_facture, details, statut, anomalie, "
                       "decision_manuelle, dossier_id, confirme_paiement_id FROM paiement WHERE id {cles}", ids)}
        vues: list[tuple[PaiementVue, str, str | None]] = []
        for pid in ids:
            r = lignes.get(pid)
            if r is None:
                continue
            _, canal, ref, montant, recu_le, ref_fac, details, statut, anomalie, manuelle, dossier_id, confirme = r
            # Un autre moteur (ou un agent) a pu le traiter entre-temps.
            if not (statut == "a_traiter" or (statut == "en_anomalie" and anomalie in CODES_REESSAYES
                                              and not manuelle)):
                continue
            details = _decoder_details(details)
            self.paiement_lu[pid] = (anomalie, dossier_id, confirme)
            vues.append((PaiementVue(pid, canal, ref, montant, _instant(recu_le), ref_fac, details.get("remise"),
                                     details), statut, anomalie))
        return vues

    def nouveau(self, p: NouveauPaiement) -> PaiementVue:
        self.nouveaux[p.id] = p
        return PaiementVue(p.id, p.canal, p.reference, p.montant, p.recu_le, p.reference_facture, p.remise,
                           _decoder_details(p.details))

    def preparer(self, elements: list[Element]) -> None:
        """Les lectures du lot (factures désignées, familles des tireurs), avant ses décisions."""
        self.elements = elements
        vues = [v for v, _, _ in elements]
        self._precharger(vues)
        self._precharger_familles(vues)

    def decider(self) -> None:
        """Les décisions, sans lire la base (le lot précédent s'écrit pendant ce temps), sauf les canaux qui
        lisent remises, paniers ou titres : ils attendent cette écriture."""
        elements = self.elements
        if any(v.canal not in CANAUX_SANS_ATTENTE for v, _, _ in elements):
            self.ecrivain.attendre()
        for vue, statut, anomalie in elements:
            self.bilan.examines += 1
            self.suggerer = statut != "en_anomalie"
            decision, refaire = self._decider(vue)
            if statut == "en_anomalie" and decision.anomalie == anomalie:
                self.bilan.inchanges += 1  # toujours la même raison : on note seulement la relance
                self.reevaluees.append(vue.id)
                continue
            self._appliquer(vue, decision, ancienne=anomalie if statut == "en_anomalie" else None)
            if refaire is not None and decision.anomalie is not None:
                self.a_suggerer.append((len(self.anomalies) - 1, vue.montant, refaire))
        # L'état des factures changées, tel que la base le dira une fois le lot écrit. Une colonne indexée
        # n'est écrite que si sa valeur change : sous SQLite, l'écrire coûte la mise à jour de son index
        # même à valeur égale.
        ecrit = self.memoire.ecrit
        for i in sorted(self.factures_modifiees):
            f = self.factures[i]
            if f.statut != ecrit[i][1]:
                self.etats_changent.append((f.paye, f.statut, i))
            else:
                self.etats_paye_seul.append((f.paye, i))
        self.memoire.ecrites(self.factures[i] for i in self.factures_modifiees)

    def _precharger(self, vues: list[PaiementVue]) -> None:
        dettes, designes = _cles_designees(vues)
        numeros = set(designes)
        refdets: set[str] = set()
        for v in vues:
            if v.canal == "payfip" and v.reference_facture:
                refdets.add(v.reference_facture)
            elif v.canal == "virement":
                jetons = set(_JETON.findall(str(v.details.get("texte") or "")))
                numeros |= jetons
                refdets |= jetons
        self.memoire.charger(ids=dettes, numeros=numeros, refdets=refdets, prelues=self.prelues)

    # --- Décisions ------------------------------------------------------------------------------

    def _decider(self, p: PaiementVue) -> tuple[Decision, Callable[[list[FactureEtat]], Decision] | None]:
        """La décision, et pour une référence introuvable la règle à refaire avec les suggestions par le reste dû.

        Celles-ci se lisent dans la base telle qu'au début du lot, donc après l'écriture du précédent
        (`_suggerer`) ; la règle est refaite sur l'état des factures à l'instant de la décision (copié).
        """
        memoire = self.memoire
        sans: list[FactureEtat] = []
        suggerer = self.suggerer
        if p.canal == "buraliste":
            dette = int(p.reference_facture) if p.reference_facture and p.reference_facture.isdigit() else None
            f = self.factures.get(dette) if dette is not None else None
            d = regles.decider_buraliste(p, f, sans)
            if suggerer and d.anomalie in ("DATAMATRIX_INVALIDE", "REFERENCE_INCONNUE"):
                return d, functools.partial(regles.decider_buraliste, p, None if f is None else _copie(f))
            return d, None
        if p.canal == "cesu":
            f = self.factures.get(memoire.par_numero.get(p.reference_facture or "", -1))
            d = regles.decider_cesu(p, f, sans)
            if suggerer and d.anomalie == "REFERENCE_INCONNUE":
                return d, functools.partial(regles.decider_cesu, p, None if f is None else _copie(f))
            return d, None
        if p.canal == "cheque":
            f = self.factures.get(memoire.par_numero.get(p.reference_facture or "", -1))
            famille = [] if f is not None else self._famille_du_tireur(p)
            # Facture désignée inconnue : la famille ne fait que des suggestions, faites une seule fois, quand
            # la règle est refaite avec celles par le reste dû.
            suggestions_seules = suggerer and f is None and bool(p.reference_facture)
            d = regles.decider_cheque(p, f, [] if suggestions_seules else famille, sans)
            if suggerer and d.anomalie == "REFERENCE_INCONNUE":
                # Des instantanés déjà (facture désignée inconnue), ou les factures du lot, copiées.
                return d, functools.partial(regles.decider_cheque, p, None if f is None else _copie(f),
                                            famille if p.reference_facture else [_copie(x) for x in famille])
            return d, None
        if p.canal == "virement":
            jetons = set(_JETON.findall(str(p.details.get("texte") or "")))
            trouvees = sorted({fid for j in jetons
                               for fid in ([memoire.par_numero[j]] if j in memoire.par_numero else [])
                               + memoire.par_refdet.get(j, [])})
            d = regles.decider_virement(p, [self.factures[i] for i in trouvees], sans)
            if suggerer and d.anomalie == "REFERENCE_INCONNUE":
                return d, functools.partial(regles.decider_virement, p, [])
            return d, None
        if p.canal == "payfip":
            return regles.decider_payfip(p, self._panier(p.reference), self._par_refdet(p.reference_facture)), None
        if p.canal == "cfonb":
            return regles.decider_confirmation_dft(p, self._remise(p.remise)), None
        if p.canal == "crcesu":
            return regles.decider_crcesu(p, self._remise(p.remise or p.reference)), None
        if p.canal == "pes_retour":
            f, rang = self._titre(p)
            return regles.decider_pes_retour(p, f, self._a_confirmer(p, f) if f else None, rang), None
        raise ValueError(f"canal inconnu : {p.canal}")

    def _suggerer(self) -> None:
        """Les suggestions par le reste dû des anomalies du lot : la base est celle du début du lot."""
        if not self.a_suggerer:
            return
        memoire = self.memoire
        memoire.precharger_proches(m for _, m, _ in self.a_suggerer)
        for place, montant, refaire in self.a_suggerer:
            d = refaire(memoire.proches_lus[montant])
            rangee = self.anomalies[place]
            self.anomalies[place] = (*rangee[:_SUGGESTIONS], encoder_json(d.suggestions), *rangee[_SUGGESTIONS + 1:])

    def _par_refdet(self, refdet: str | None) -> FactureEtat | None:
        ids = self.memoire.par_refdet.get(refdet or "", [])
        return self.factures[ids[0]] if len(ids) == 1 else None

    def _precharger_familles(self, vues: list[PaiementVue]) -> None:
        """Les candidates de `_famille_du_tireur` pour tout le lot.

        L'index des familles suit la base au dernier lot écrit : il dit exactement ce que dirait une
        requête au début du lot. Toutes les factures ouvertes du montant, dans l'ordre (échéance, numéro) :
        une limite ferait croire « seule facture de la famille » quand l'autre est au-delà.
        """
        par_numero = self.memoire.par_numero
        cheques = [v for v in vues if v.canal == "cheque" and par_numero.get(v.reference_facture or "") is None
                   and _jetons_du_tireur(v)]
        if not cheques:
            return
        self.memoire.charger_familles((v.montant, _jetons_du_tireur(v)) for v in cheques)
        # Les factures retenues pour tout le lot, chargées d'un coup plutôt que chèque par chèque ; celles
        # d'un chèque à la facture inconnue ne servent qu'à suggérer : l'index suffit (`_Memoire.instantane`).
        self.memoire.charger(ids={fid for v in cheques if not v.reference_facture for fid in self._retenues(v)})

    def _retenues(self, p: PaiementVue) -> list[int]:
        """Les factures de la famille du tireur qui comptent pour la décision, au plus cinq.

        La règle n'en regarde pas plus : une seule, elle est payée ; plusieurs, les cinq premières sont
        suggérées, dans l'ordre (échéance, numéro) ; à côté d'une référence inconnue, les cinq premières
        par numéro (l'ordre des suggestions de même score). Les autres ne sont pas lues.
        """
        return self.memoire.retenues(p.montant, _jetons_du_tireur(p), par_numero=bool(p.reference_facture))

    def _famille_du_tireur(self, p: PaiementVue) -> list[FactureEtat]:
        """Factures ouvertes d'exactement ce montant dont le payeur porte le nom et le prénom du tireur.

        À côté d'une facture désignée inconnue, la famille ne fait que des suggestions : des instantanés sans
        lignes, pris dans l'index des familles, plutôt que les factures entières.
        """
        if not _jetons_du_tireur(p):
            return []
        retenues = self._retenues(p)
        if p.reference_facture:
            return [self.memoire.instantane(i) for i in retenues]
        self.memoire.charger(ids=retenues)
        return [self.factures[i] for i in retenues]

    def _panier(self, id_op: str) -> list[tuple[FactureEtat, int]]:
        lignes: Any = self.conn.execute(select(LignePanierPayfip.facture_id, LignePanierPayfip.montant)
                                   .join(OperationPayfip, OperationPayfip.id == LignePanierPayfip.operation_id)
                                   .where(OperationPayfip.id_op == id_op).order_by(LignePanierPayfip.id)).all()
        self.memoire.charger(ids=[fid for fid, _ in lignes])
        return [(self.factures[fid], m) for fid, m in lignes]

    def _remise(self, identifiant: str | None) -> RemiseVue | None:
        if not identifiant:
            return None
        resultat: Any = self.conn.execute(select(Remise.id, Remise.identifiant, Remise.canal, Remise.montant,
                                                 Remise.nombre, Remise.statut).where(Remise.identifiant == identifiant))
        r = resultat.first()
        if r is None:
            return None
        verse = self.conn.execute(select(Paiement.montant).where(
            Paiement.canal == "crcesu", Paiement.reference == identifiant)).scalar()
        return RemiseVue(r.id, r.identifiant, r.canal, r.montant, r.nombre, r.statut, verse)

    def _titre(self, p: PaiementVue) -> tuple[FactureEtat | None, int | None]:
        """La facture du titre et le rang de la ligne que désigne l'IdLigne de la collecte."""
        try:
            exercice, bordereau, piece = (int(x) for x in (p.reference_facture or "").split("/"))
        except ValueError:
            return None, None
        resultat: Any = self.conn.execute(select(Titre.id, Titre.facture_id)
                                          .join(Bordereau, Bordereau.id == Titre.bordereau_id)
                                          .where(Titre.exercice == exercice, Bordereau.numero == bordereau,
                                                 Titre.piece == piece))
        t = resultat.first()
        if t is None:
            return None, None
        self.memoire.charger(ids=[t.facture_id])
        rang = self.conn.execute(select(LigneTitre.rang).where(
            LigneTitre.titre_id == t.id, LigneTitre.numero == int(p.details.get("id_ligne") or 0))).scalar()
        return self.factures[t.facture_id], rang

    def _a_confirmer(self, p: PaiementVue, f: FactureEtat) -> int | None:
        """Un paiement déjà connu pour cette facture, même montant, à 10 jours près, pas encore confirmé."""
        deja = Paiement.__table__.alias("deja")
        candidats: Any = self.conn.execute(
            select(Paiement.id, Paiement.recu_le).join(Affectation, Affectation.paiement_id == Paiement.id)
            .where(Affectation.facture_id == f.id, Paiement.canal.in_(("buraliste", "payfip")),
                   Paiement.montant == p.montant, Paiement.statut != "annule",
                   ~select(deja.c.id).where(deja.c.confirme_paiement_id == Paiement.id).exists())
            .group_by(Paiement.id, Paiement.recu_le).order_by(Paiement.recu_le, Paiement.id)).all()
        for pid, recu_le in candidats:
            if (pid not in self.confirmes_en_attente
                    and abs(recu_le - p.recu_le) <= timedelta(days=regles.JOURS_CONFIRMATION_PES)):
                return int(pid)
        return None

    # --- Application et écriture -----------------------------------------------------------------

    def _appliquer(self, p: PaiementVue, d: Decision, *, ancienne: str | None) -> None:
        par_facture: dict[int, list[list[int]]] = {}
        for part in d.parts:
            f = self.factures[part.facture_id]
            ligne = f.lignes[part.rang - 1]
            ligne.paye += part.montant
            if p.canal == "cesu":
                ligne.cesu += part.montant
            f.paye += part.montant
            par_facture.setdefault(f.id, []).append([part.rang, part.montant])
        dossier_id = None
        if par_facture:
            preuve = encoder_json(d.preuve)  # la même pour chaque facture : encodée une fois
            for fid, parts in par_facture.items():
                f = self.factures[fid]
                montant = sum(m for _, m in parts)
                f.statut = statut_facture(f.montant, f.paye, f.avoirs, f.titree)
                self.factures_modifiees.add(fid)
                dossier_id = dossier_id or f.dossier_id
                # L'affectation est aussi l'écriture du compte famille (voir `Affectation.imputation`).
                self.affectations.append((p.id, fid, montant, encoder_json(parts), d.regle, preuve, "systeme",
                                          self.now, "tresor" if f.titree else "du"))
        affecte = d.affecte
        if d.anomalie:
            statut = "en_anomalie"
            self.bilan.anomalies[d.anomalie] = self.bilan.anomalies.get(d.anomalie, 0) + 1
            self.anomalies.append((p.id, p.canal, d.anomalie, "ouverte", d.raison,
                                   encoder_json({"regle": d.regle, **d.preuve, "brut": None}),
                                   encoder_json(d.suggestions), self.now))
        elif d.confirme_paiement_id is not None or d.remise_confirmee_id is not None or p.canal in ("crcesu",):
            statut = "confirme"
            self.bilan.confirmes += 1
        else:
            statut = statut_paiement(p.montant, affecte, None)
            self.bilan.affectes += 1
        if ancienne is not None:
            self.anomalies_closes.append(p.id)
        if d.remise_confirmee_id is not None:
            self.remises.append({"r_id": d.remise_confirmee_id, "r_statut": "confirmee", "r_le": self.now})
        if d.confirme_paiement_id is not None:
            self.confirmes_en_attente.add(d.confirme_paiement_id)
        self.decides.append((p.id, affecte, statut, d.anomalie, dossier_id, d.confirme_paiement_id))
        self.journal.info("paiement_rapproche", paiement_id=p.id, canal=p.canal, reference=p.reference,
                          regle=d.regle, statut=statut, anomalie=d.anomalie, affecte=affecte)

    def preparer_ecritures(self) -> None:
        """Les écritures du lot que la base ne change pas (toutes sauf les anomalies, qui attendent leurs
        suggestions), préparées pendant que le lot d'avant s'écrit."""
        dialecte = self.conn.dialect
        self.ecritures = self._ecrire_paiements()
        self.ecritures += preparer_insertion(dialecte, table_de(Affectation), COLONNES_AFFECTATION,
                                             self.affectations, deja_converties=_AFFECTATION_ENCODEE)
        self.ecritures_etats = preparer_mise_a_jour(dialecte, "etat_facture", ["paye = {}", "statut = {}"],
                                                    "facture_id", self.etats_changent, ("bigint", "text", "bigint"))
        self.ecritures_etats += preparer_mise_a_jour(dialecte, "etat_facture", ["paye = {}"], "facture_id",
                                                     self.etats_paye_seul, ("bigint", "bigint"))

    def soumettre(self) -> None:
        """Après l'écriture du lot d'avant : les suggestions, puis les écritures de ce lot, faites pendant que
        le suivant se lit et se décide."""
        self.ecrivain.attendre()
        self._suggerer()
        c = self.conn
        if self.reevaluees:
            c.execute(update(Anomalie).where(Anomalie.paiement_id.in_(self.reevaluees), Anomalie.statut == "ouverte",
                                             Anomalie.code.in_(CODES_REESSAYES)).values(reevaluee_le=self.now))
        if self.anomalies_closes:
            c.execute(update(Anomalie).where(Anomalie.paiement_id.in_(self.anomalies_closes),
                                             Anomalie.statut != "resolue", Anomalie.code.in_(CODES_REESSAYES))
                      .values(statut="resolue", resolue_le=self.now, resolue_par="systeme",
                              resolution="rapprochement_automatique"))
        if self.remises:
            t = table_de(Remise)
            c.execute(update(t).where(t.c.id == bindparam("r_id")).values(
                statut=bindparam("r_statut"), confirmee_le=bindparam("r_le")), self.remises)
        ecritures = self.ecritures
        ecritures += preparer_insertion(c.dialect, table_de(Anomalie), COLONNES_ANOMALIE, self.anomalies,
                                        deja_converties=("preuve", "suggestions"))
        ecritures += self.ecritures_etats
        self.ecrivain.soumettre(ecritures)

    def _ecrire_paiements(self) -> list[Ecriture]:
        """Les nouveaux : insérés avec leur décision ; les anciens : seules les colonnes qui changent."""
        nouveaux = self.nouveaux
        dialecte = self.conn.dialect
        ecritures = preparer_insertion(dialecte, table_de(Paiement), COLONNES_PAIEMENT, [
            # version 2 : reçu, puis décidé (comme en deux temps)
            rangee_paiement(n, affecte, statut, anomalie, dossier, confirme, version=2)
            for pid, affecte, statut, anomalie, dossier, confirme in self.decides if (n := nouveaux.get(pid))],
            deja_converties=_DETAILS_ENCODES)
        # Un nouveau que la décision laisse tel quel (une relance ne le concerne pas) n'existe pas : chaque
        # nouveau est décidé. Les anciens : par combinaison de colonnes qui changent.
        par_colonnes: dict[tuple[bool, bool, bool], list[tuple[Any, ...]]] = defaultdict(list)
        for pid, affecte, statut, anomalie_d, dossier_d, confirme_d in self.decides:
            if pid in nouveaux:
                continue
            anomalie, dossier, confirme = self.paiement_lu[pid]
            changent = (anomalie_d != anomalie, dossier_d is not None and dossier_d != dossier, confirme_d != confirme)
            valeurs = [v for v, change in zip((anomalie_d, dossier_d, confirme_d), changent, strict=True) if change]
            par_colonnes[changent].append((affecte, statut, *valeurs, pid))
        for changent, lignes in sorted(par_colonnes.items()):
            colonnes = [(sql, t) for (sql, t), change in zip(
                (("anomalie = {}", "text"), ("dossier_id = {}", "bigint"), ("confirme_paiement_id = {}", "bigint")),
                changent, strict=True) if change]
            ecritures += preparer_mise_a_jour(dialecte, "paiement", [
                "affecte = affecte + {}", "statut = {}", *(sql for sql, _ in colonnes), "version = version + 1"],
                "id", lignes, ("bigint", "text", *(t for _, t in colonnes), "bigint"))
        return ecritures


_decoder_json = msgspec.json.Decoder().decode
# Les positions, dans le tableau JSON d'une ligne de facture, des seuls champs que le moteur lit.
_RANG, _MONTANT, _ELIGIBLE = (LigneFacture.__struct_fields__.index(n) for n in ("rang", "montant", "eligible_cesu"))


def _lignes_utiles(lignes: str) -> list[list[Any]]:
    """Des lignes d'une facture (texte JSON), ce que lit le moteur : [rang, montant, éligible au CESU] chacune.

    Décodées sans type (tableaux) : la date de naissance n'est pas convertie pour rien.
    """
    return [[lg[_RANG], lg[_MONTANT], lg[_ELIGIBLE]] for lg in _decoder_json(lignes)]


def _copie(f: FactureEtat) -> FactureEtat:
    """L'état d'une facture à cet instant (ses lignes comprises), pour refaire une règle plus tard.

    Par les constructeurs, champ par champ : `dataclasses.replace` coûte cinq fois plus, et un chèque
    sans facture connue en copie jusqu'à cinq.
    """
    return FactureEtat(f.id, f.numero, f.dossier_id, f.dossier, f.regie, f.statut, f.montant, f.paye, f.avoirs,
                       f.echeance, f.titree, [LigneEtat(lg.rang, lg.montant, lg.paye, lg.avoirs, lg.eligible_cesu,
                                                        lg.cesu) for lg in f.lignes], f.nom, f.prenom)


def _legere(f: FactureEtat) -> tuple[Any, ...]:
    """Ce que `_Memoire.legeres` tient d'une facture, dans l'ordre de la requête de `charger_familles`."""
    return (f.numero, f.dossier_id, f.dossier, f.regie, f.statut, f.montant, f.paye, f.avoirs, f.nom, f.prenom,
            f.echeance)


def _decoder_details(valeur: Any) -> dict[str, Any]:
    if isinstance(valeur, dict):
        return valeur
    if valeur is None:
        return {}
    resultat: dict[str, Any] = _decoder_json(valeur)
    return resultat
