"""Le moteur : charge les paiements ouverts par lots, applique les règles, écrit les décisions.

Déterministe (ordre des paiements par date de réception, canal, référence), idempotent (un
second passage ne change rien) et sûr à plusieurs : un verrou consultatif PostgreSQL (SQLite
sérialise déjà les écrivains) entoure chaque lot, relu sous le verrou.
"""

from __future__ import annotations

import functools
import os
import re
import unicodedata
from collections import defaultdict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

import structlog
from sqlalchemy import Connection, and_, bindparam, func, or_, select, text, update

from rapprochement import regles
from rapprochement.ecritures import mettre_a_jour
from rapprochement.regles import (
    CODES_REESSAYES,
    Decision,
    PaiementVue,
    RemiseVue,
)
from regie import points_de_crash
from regie.application import Application
from regie.domaine import FactureEtat, LigneEtat, statut_facture, statut_paiement
from regie.progression import Progression
from regie.registre.etats import completer
from regie.registre.masse import inserer, inserer_tuples, sans_ramasse_miettes, table_de
from regie.registre.modeles import (
    Affectation,
    Anomalie,
    Bordereau,
    Dossier,
    EtatFacture,
    Facture,
    LignePanierPayfip,
    LigneTitre,
    MouvementCompte,
    OperationPayfip,
    Paiement,
    Remise,
    Titre,
)
from regie.registre.statistiques import rafraichir_statistiques
from regie.registre.types import maintenant

log = structlog.get_logger()
VERROU_RAPPROCHEMENT = 72_630_001
TAILLE_LOT = 1000
LOTS_PAR_TRANSACTION = 5
# Pages du journal WAL (4 Kio) avant un point de contrôle pendant le rapprochement (1000 par défaut) :
# une page d'index réécrite par plusieurs transactions n'est recopiée dans la base qu'une fois.
PAGES_AVANT_POINT_DE_CONTROLE = 20_000
COLONNES_AFFECTATION = ("paiement_id", "facture_id", "montant", "parts", "regle", "preuve", "auteur", "cree_le")
COLONNES_MOUVEMENT = ("dossier_id", "quand", "nature", "libelle", "montant", "delta_du", "delta_credit", "delta_tresor",
                      "facture_id", "paiement_id", "cree_le")
_JETON = re.compile(r"[A-Za-z0-9][A-Za-z0-9/-]{4,29}")
STATUTS_OUVERTS = ("emise", "partiellement_payee", "titree")
TITRES_ACTIFS = ("emis", "transmis", "accepte")


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


def verrouiller(conn: Connection) -> None:
    """Un seul moteur écrit à la fois (PostgreSQL) ; SQLite a déjà pris son verrou (BEGIN IMMEDIATE)."""
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": VERROU_RAPPROCHEMENT})


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


def _derniere_arrivee(conn: Connection) -> Any:
    """L'instant où est arrivé le dernier élément qui peut résoudre une référence inconnue."""
    instants = [conn.execute(select(func.max(colonne))).scalar() for colonne in (
        Facture.cree_le, Remise.cree_le, Titre.cree_le, OperationPayfip.cree_le)]
    connus = [i for i in instants if i is not None]
    return max(connus) if connus else None


def _ouverts(conn: Connection) -> list[int]:
    condition = Paiement.statut == "a_traiter"
    derniere = _derniere_arrivee(conn)
    if derniere is not None:
        # Une référence inconnue n'est reprise que si une facture, une remise, un titre ou un panier
        # est arrivé depuis qu'elle a été constatée : relancer sans nouveauté ne changerait rien.
        a_reprendre = select(Anomalie.paiement_id).where(
            Anomalie.statut == "ouverte", Anomalie.code.in_(CODES_REESSAYES),
            func.coalesce(Anomalie.reevaluee_le, Anomalie.cree_le) < derniere)
        condition = or_(condition, and_(Paiement.statut == "en_anomalie", Paiement.anomalie.in_(CODES_REESSAYES),
                                        Paiement.decision_manuelle.is_(False), Paiement.id.in_(a_reprendre)))
    req = (select(Paiement.id).where(condition)
           .order_by(Paiement.recu_le, Paiement.canal, Paiement.reference, Paiement.id))
    return list(conn.execute(req).scalars())


def rapprocher(app: Application, *, aujourd_hui: date | None = None, taille_lot: int | None = None,
               ids: Sequence[int] | None = None) -> BilanRapprochement:
    """`regie rapprocher` : chaque paiement ouvert finit affecté, confirmé, ou en revue avec sa raison."""
    taille_lot = taille_lot or int(os.environ.get("REGIE_RAPPROCHEMENT_LOT", TAILLE_LOT))
    bilan = BilanRapprochement()
    with app.moteur.connect() as conn:
        a_voir = list(ids) if ids is not None else _ouverts(conn)
    progression = Progression("rapprochement", "paiements")
    lots = [a_voir[debut:debut + taille_lot] for debut in range(0, len(a_voir), taille_lot)]
    with sans_ramasse_miettes(), _points_de_controle_espaces(app):
        for premier in range(0, len(lots), LOTS_PAR_TRANSACTION):
            groupe = lots[premier:premier + LOTS_PAR_TRANSACTION]
            # Plusieurs lots par transaction : SQLite réécrit à chaque validation toutes les pages d'index
            # touchées (reste dû, statuts), les mêmes d'un lot à l'autre. Chaque lot reprend le verrou et
            # relit ses paiements : il voit les écritures des lots précédents, les décisions sont les mêmes.
            with app.moteur.begin() as conn:
                for rang, ids_lot in enumerate(groupe, 1):
                    verrouiller(conn)
                    lot = _Lot(conn, bilan)
                    lot.traiter(ids_lot)
                    lot.ecrire()
                    if rang < len(groupe):
                        points_de_crash.point("rapprochement_lot")  # un point par lot : ici, avant la validation
            progression.avancer(sum(len(ids_lot) for ids_lot in groupe))
            points_de_crash.point("rapprochement_lot")
    progression.terminer()
    log.info("rapprochement_termine", examines=bilan.examines, affectes=bilan.affectes, confirmes=bilan.confirmes,
             anomalies=bilan.anomalies)
    rafraichir_statistiques(app.moteur, ("affectation", "mouvement_compte", "anomalie"), bilan.examines)
    return bilan


def _sans_accents(texte: str) -> str:
    return "".join(c for c in unicodedata.normalize("NFKD", texte) if not unicodedata.combining(c)).upper()


@functools.lru_cache(maxsize=65536)
def _jetons(texte: str) -> frozenset[str]:
    """Les mots d'un nom, sans accents, en capitales (les noms se répètent d'un chèque à l'autre)."""
    return frozenset(re.findall(r"[A-Z]+", _sans_accents(texte)))


def _jetons_du_tireur(p: PaiementVue) -> frozenset[str]:
    return _jetons(str(p.details.get("tireur") or ""))


_COLONNES_PROCHES = (Facture.id, Facture.numero, Facture.dossier_id, Dossier.numero, Facture.regie_code,
                     EtatFacture.statut, Facture.montant, EtatFacture.paye, EtatFacture.avoirs, Facture.echeance,
                     Facture.nom)
# Construites une fois, par l'index du reste : les factures encore entières (les plus anciennes d'abord)…
_PROCHES_ENTIERES = (select(*_COLONNES_PROCHES).select_from(EtatFacture)
                     .join(Facture, Facture.id == EtatFacture.facture_id)
                     .join(Dossier, Dossier.id == Facture.dossier_id)
                     .where(EtatFacture.reste_du == bindparam("m"), EtatFacture.statut == "emise",
                            EtatFacture.montant == bindparam("m"))
                     .order_by(EtatFacture.facture_id).limit(5))
# … et les entamées, dans l'ordre (montant, id).
_PROCHES_ENTAMEES = (select(*_COLONNES_PROCHES).select_from(EtatFacture)
                     .join(Facture, Facture.id == EtatFacture.facture_id)
                     .join(Dossier, Dossier.id == Facture.dossier_id)
                     .where(EtatFacture.reste_du == bindparam("m"), EtatFacture.statut == "partiellement_payee",
                            EtatFacture.montant > bindparam("m"))
                     .order_by(EtatFacture.montant, EtatFacture.facture_id).limit(5))


class _Lot:
    """L'état en mémoire d'un lot : factures touchées, écritures en attente."""

    def __init__(self, conn: Connection, bilan: BilanRapprochement) -> None:
        self.conn = conn
        self.bilan = bilan
        self.now = maintenant()
        # Lié une fois par lot : le mandataire de `structlog.get_logger()` se relie à chaque appel (2 µs).
        self.journal = log.bind()
        self.factures: dict[int, FactureEtat] = {}
        self.par_numero: dict[str, int] = {}
        self.par_dette: dict[int, int] = {}
        self.par_refdet: dict[str, list[int]] = defaultdict(list)
        self.factures_modifiees: set[int] = set()
        self.affectations: list[tuple[Any, ...]] = []
        self.mouvements: list[tuple[Any, ...]] = []
        self.anomalies: list[dict[str, Any]] = []
        self.anomalies_closes: list[int] = []
        self.paiements: list[dict[str, Any]] = []
        # Valeurs lues des colonnes que l'écriture ne touche que si elles changent (voir `ecrire`).
        self.statut_lu: dict[int, str] = {}
        self.paiement_lu: dict[int, tuple[str | None, int | None, int | None]] = {}
        self.remises: list[dict[str, Any]] = []
        self.suggerer = True
        self.reevaluees: list[int] = []
        # Montant → mot du nom → factures ouvertes de ce reste (rang, id, mots du nom, mots du prénom),
        # lues au début du lot.
        self.candidates_famille: dict[int, dict[str, list[tuple[int, int, frozenset[str], frozenset[str]]]]] = {}

    # --- Chargement ---------------------------------------------------------------------------

    def _charger_factures(self, condition: Any) -> None:
        req = (select(Facture.id, Facture.numero, Facture.dossier_id, Dossier.numero, Facture.regie_code,
                      EtatFacture.statut, Facture.montant, EtatFacture.paye, EtatFacture.avoirs, Facture.echeance,
                      Facture.refdet, Facture.nom, Facture.lignes)
               .join(EtatFacture, EtatFacture.facture_id == Facture.id)
               .join(Dossier, Dossier.id == Facture.dossier_id).where(condition))
        nouvelles: list[FactureEtat] = []
        for (fid, numero, dossier_id, dossier, regie, statut, montant, paye, avoirs, echeance, refdet, nom,
             lignes) in self.conn.execute(req):
            if fid in self.factures:
                continue
            f = FactureEtat(fid, numero, dossier_id, dossier, regie, statut, montant, paye, avoirs, echeance, False,
                            [LigneEtat(rang, lg.montant, eligible_cesu=lg.eligible_cesu)
                             for rang, lg in enumerate(lignes, 1)], nom)
            self.factures[fid] = f
            self.statut_lu[fid] = statut
            self.par_numero[numero] = fid
            self.par_dette[fid] = fid
            self.par_refdet[refdet].append(fid)
            nouvelles.append(f)
        completer(self.conn, nouvelles)

    def _proches(self, montant: int, *, cesu: bool = False, exclure: int | None = None) -> list[FactureEtat]:
        """Suggestions : factures ouvertes dont le reste égale le montant (les plus anciennes d'abord).

        Une relance (paiement déjà en revue pour la même raison) n'en recalcule pas : rien ne sera réécrit.
        Les factures suggérées ne servent qu'à l'affichage : elles n'entrent pas dans l'état du lot.
        """
        if not self.suggerer:
            return []
        lignes = sorted({*self.conn.execute(_PROCHES_ENTIERES, {"m": montant}).all(),
                         *self.conn.execute(_PROCHES_ENTAMEES, {"m": montant}).all()},
                        key=lambda r: (r[9], r[1]))[:5]
        return [FactureEtat(r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8], r[9], r[5] == "titree", [], r[10])
                for r in lignes if r[0] != exclure]

    # --- Traitement -----------------------------------------------------------------------------

    def traiter(self, ids: Sequence[int]) -> None:
        lignes = self.conn.execute(
            select(Paiement.id, Paiement.canal, Paiement.reference, Paiement.montant, Paiement.recu_le,
                   Paiement.reference_facture, Paiement.details, Paiement.statut, Paiement.anomalie,
                   Paiement.decision_manuelle, Paiement.dossier_id, Paiement.confirme_paiement_id)
            .where(Paiement.id.in_(ids))).all()
        ordre = {pid: i for i, pid in enumerate(ids)}
        vues: list[tuple[PaiementVue, str, str | None]] = []
        for (pid, canal, ref, montant, recu_le, ref_fac, details, statut, anomalie, manuelle, dossier_id,
             confirme) in sorted(lignes, key=lambda r: ordre[r[0]]):
            # Relu sous le verrou : un autre moteur (ou un agent) a pu le traiter entre-temps.
            if not (statut == "a_traiter" or (statut == "en_anomalie" and anomalie in CODES_REESSAYES
                                              and not manuelle)):
                continue
            self.paiement_lu[pid] = (anomalie, dossier_id, confirme)
            vues.append((PaiementVue(pid, canal, ref, montant, recu_le, ref_fac, details.get("remise"),
                                     dict(details)), statut, anomalie))
        self._precharger([v for v, _, _ in vues])
        self._precharger_familles([v for v, _, _ in vues])
        for vue, statut, anomalie in vues:
            self.bilan.examines += 1
            self.suggerer = statut != "en_anomalie"
            decision = self._decider(vue)
            if statut == "en_anomalie" and decision.anomalie == anomalie:
                self.bilan.inchanges += 1  # toujours la même raison : on note seulement la relance
                self.reevaluees.append(vue.id)
                continue
            self._appliquer(vue, decision, ancienne=anomalie if statut == "en_anomalie" else None)

    def _precharger(self, vues: list[PaiementVue]) -> None:
        numeros: set[str] = set()
        dettes: set[int] = set()
        refdets: set[str] = set()
        for v in vues:
            if v.canal in ("cesu", "cheque") and v.reference_facture:
                numeros.add(v.reference_facture)
            elif v.canal == "buraliste" and v.reference_facture and v.reference_facture.isdigit():
                dettes.add(int(v.reference_facture))
            elif v.canal == "payfip" and v.reference_facture:
                refdets.add(v.reference_facture)
            elif v.canal == "virement":
                jetons = set(_JETON.findall(str(v.details.get("texte") or "")))
                numeros |= jetons
                refdets |= jetons
        conditions = []
        if numeros:
            conditions.append(Facture.numero.in_(numeros))
        if dettes:
            conditions.append(Facture.id.in_(dettes))
        if refdets:
            conditions.append(Facture.refdet.in_(refdets))
        if conditions:
            self._charger_factures(or_(*conditions))

    def _decider(self, p: PaiementVue) -> Decision:
        if p.canal == "buraliste":
            dette = int(p.reference_facture) if p.reference_facture and p.reference_facture.isdigit() else None
            f = self.factures.get(self.par_dette.get(dette, -1)) if dette is not None else None
            d = regles.decider_buraliste(p, f, [])
            if d.anomalie in ("DATAMATRIX_INVALIDE", "REFERENCE_INCONNUE"):
                d = regles.decider_buraliste(p, f, self._proches(p.montant))
            return d
        if p.canal == "cesu":
            f = self.factures.get(self.par_numero.get(p.reference_facture or "", -1))
            d = regles.decider_cesu(p, f, [])
            return regles.decider_cesu(p, f, self._proches(p.montant)) if d.anomalie == "REFERENCE_INCONNUE" else d
        if p.canal == "cheque":
            f = self.factures.get(self.par_numero.get(p.reference_facture or "", -1))
            famille = [] if f is not None else self._famille_du_tireur(p)
            d = regles.decider_cheque(p, f, famille, [])
            if d.anomalie == "REFERENCE_INCONNUE":
                d = regles.decider_cheque(p, f, famille, self._proches(p.montant))
            return d
        if p.canal == "virement":
            jetons = set(_JETON.findall(str(p.details.get("texte") or "")))
            trouvees = sorted({fid for j in jetons for fid in ([self.par_numero[j]] if j in self.par_numero else [])
                               + self.par_refdet.get(j, [])})
            d = regles.decider_virement(p, [self.factures[i] for i in trouvees], [])
            if d.anomalie == "REFERENCE_INCONNUE":
                d = regles.decider_virement(p, [], self._proches(p.montant))
            return d
        if p.canal == "payfip":
            return regles.decider_payfip(p, self._panier(p.reference), self._par_refdet(p.reference_facture))
        if p.canal == "cfonb":
            return regles.decider_confirmation_dft(p, self._remise(p.remise))
        if p.canal == "crcesu":
            return regles.decider_crcesu(p, self._remise(p.remise or p.reference))
        if p.canal == "pes_retour":
            f, rang = self._titre(p)
            return regles.decider_pes_retour(p, f, self._a_confirmer(p, f) if f else None, rang)
        raise ValueError(f"canal inconnu : {p.canal}")

    def _par_refdet(self, refdet: str | None) -> FactureEtat | None:
        ids = self.par_refdet.get(refdet or "", [])
        return self.factures[ids[0]] if len(ids) == 1 else None

    def _precharger_familles(self, vues: list[PaiementVue]) -> None:
        """Les candidates de `_famille_du_tireur` pour tout le lot, en une lecture par paquet de montants.

        La base ne change pas avant `ecrire` : lire au début du lot voit exactement ce que verrait
        une requête par chèque. Toutes les factures ouvertes du montant, dans l'ordre (échéance, numéro) :
        une limite ferait croire « seule facture de la famille » quand l'autre est au-delà.
        """
        cheques = [v for v in vues if v.canal == "cheque" and self.par_numero.get(v.reference_facture or "") is None
                   and _jetons_du_tireur(v)]
        montants = sorted({v.montant for v in cheques})
        rang = 0
        for i in range(0, len(montants), 900):
            # Par l'index du reste ; le statut est filtré ici pour que le plan ne passe pas par lui.
            req = (select(EtatFacture.reste_du, Facture.id, EtatFacture.statut, Facture.nom, Facture.prenom)
                   .join(Facture, Facture.id == EtatFacture.facture_id)
                   .where(EtatFacture.reste_du.in_(montants[i:i + 900])).order_by(Facture.echeance, Facture.numero))
            for m, fid, statut, nom, prenom in self.conn.execute(req):
                if statut not in ("emise", "partiellement_payee"):
                    continue
                rang += 1
                mots_nom = _jetons(nom)
                par_mot = self.candidates_famille.setdefault(m, {})
                # Sous chaque mot de son nom : un chèque ne regarde que les factures qui portent un de ses
                # mots (sous "" un nom sans lettre, que tout tireur contient).
                for mot in mots_nom or ("",):
                    par_mot.setdefault(mot, []).append((rang, fid, mots_nom, _jetons(prenom)))
        # Les factures retenues pour tout le lot, chargées d'un coup plutôt que chèque par chèque.
        retenues = sorted({fid for v in cheques for fid in self._retenues(v) if fid not in self.factures})
        for i in range(0, len(retenues), 900):
            self._charger_factures(Facture.id.in_(retenues[i:i + 900]))

    def _retenues(self, p: PaiementVue) -> list[int]:
        jetons = _jetons_du_tireur(p)
        par_mot = self.candidates_famille.get(p.montant)
        if not par_mot:
            return []
        retenues = {rang: fid for mot in (*jetons, "") for rang, fid, nom, prenom in par_mot.get(mot, ())
                    if nom <= jetons and prenom <= jetons}
        return [retenues[r] for r in sorted(retenues)]

    def _famille_du_tireur(self, p: PaiementVue) -> list[FactureEtat]:
        """Factures ouvertes d'exactement ce montant dont le payeur porte le nom et le prénom du tireur."""
        if not _jetons_du_tireur(p):
            return []
        retenues = self._retenues(p)
        a_charger = [fid for fid in retenues if fid not in self.factures]
        if a_charger:
            self._charger_factures(Facture.id.in_(a_charger))
        return [self.factures[i] for i in retenues]

    def _panier(self, id_op: str) -> list[tuple[FactureEtat, int]]:
        lignes = self.conn.execute(select(LignePanierPayfip.facture_id, LignePanierPayfip.montant)
                                   .join(OperationPayfip, OperationPayfip.id == LignePanierPayfip.operation_id)
                                   .where(OperationPayfip.id_op == id_op).order_by(LignePanierPayfip.id)).all()
        self._charger_factures(Facture.id.in_([fid for fid, _ in lignes]))
        return [(self.factures[fid], m) for fid, m in lignes]

    def _remise(self, identifiant: str | None) -> RemiseVue | None:
        if not identifiant:
            return None
        r = self.conn.execute(select(Remise.id, Remise.identifiant, Remise.canal, Remise.montant, Remise.nombre,
                                     Remise.statut).where(Remise.identifiant == identifiant)).first()
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
        t = self.conn.execute(select(Titre.id, Titre.facture_id).join(Bordereau, Bordereau.id == Titre.bordereau_id)
                              .where(Titre.exercice == exercice, Bordereau.numero == bordereau,
                                     Titre.piece == piece)).first()
        if t is None:
            return None, None
        self._charger_factures(Facture.id == t.facture_id)
        rang = self.conn.execute(select(LigneTitre.rang).where(
            LigneTitre.titre_id == t.id, LigneTitre.numero == int(p.details.get("id_ligne") or 0))).scalar()
        return self.factures[t.facture_id], rang

    def _a_confirmer(self, p: PaiementVue, f: FactureEtat) -> int | None:
        """Un paiement déjà connu pour cette facture, même montant, à 10 jours près, pas encore confirmé."""
        confirmes = select(Paiement.confirme_paiement_id).where(Paiement.confirme_paiement_id.is_not(None))
        candidats = self.conn.execute(
            select(Paiement.id, Paiement.recu_le).join(Affectation, Affectation.paiement_id == Paiement.id)
            .where(Affectation.facture_id == f.id, Paiement.canal.in_(("buraliste", "payfip")),
                   Paiement.montant == p.montant, Paiement.statut != "annule",
                   Paiement.id.not_in(confirmes))
            .group_by(Paiement.id, Paiement.recu_le).order_by(Paiement.recu_le, Paiement.id)).all()
        en_attente = {m["confirme_paiement_id"] for m in self.paiements if m.get("confirme_paiement_id")}
        for pid, recu_le in candidats:
            if pid not in en_attente and abs(recu_le - p.recu_le) <= timedelta(days=regles.JOURS_CONFIRMATION_PES):
                return int(pid)
        return None

    # --- Application et écriture -----------------------------------------------------------------

    def _appliquer(self, p: PaiementVue, d: Decision, *, ancienne: str | None) -> None:
        par_facture: dict[int, list[list[int]]] = defaultdict(list)
        for part in d.parts:
            f = self.factures[part.facture_id]
            ligne = f.lignes[part.rang - 1]
            ligne.paye += part.montant
            if p.canal == "cesu":
                ligne.cesu += part.montant
            f.paye += part.montant
            par_facture[f.id].append([part.rang, part.montant])
        dossier_id = None
        for fid, parts in par_facture.items():
            f = self.factures[fid]
            montant = sum(m for _, m in parts)
            f.statut = statut_facture(f.montant, f.paye, f.avoirs, f.titree)
            self.factures_modifiees.add(fid)
            dossier_id = dossier_id or f.dossier_id
            # La même preuve (un seul objet) pour chaque facture : encodée une fois (`inserer_tuples`).
            self.affectations.append((p.id, fid, montant, parts, d.regle, d.preuve, "systeme", self.now))
            self.mouvements.append((
                f.dossier_id, p.recu_le, "paiement",
                f"Paiement {p.canal} {p.reference} affecté à la facture {f.numero}"[:300],
                montant, 0 if f.titree else -montant, 0, -montant if f.titree else 0, fid, p.id, self.now))
        affecte = d.affecte
        if d.anomalie:
            statut = "en_anomalie"
            self.bilan.anomalies[d.anomalie] = self.bilan.anomalies.get(d.anomalie, 0) + 1
            self.anomalies.append({
                "paiement_id": p.id, "code": d.anomalie, "statut": "ouverte", "raison": d.raison,
                "preuve": {"regle": d.regle, **d.preuve, "brut": None}, "suggestions": d.suggestions,
                "cree_le": self.now})
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
        self.paiements.append({"p_id": p.id, "p_affecte": affecte, "p_statut": statut, "p_anomalie": d.anomalie,
                               "p_dossier": dossier_id, "confirme_paiement_id": d.confirme_paiement_id})
        self.journal.info("paiement_rapproche", paiement_id=p.id, canal=p.canal, reference=p.reference,
                          regle=d.regle, statut=statut, anomalie=d.anomalie, affecte=affecte)

    def ecrire(self) -> None:
        c = self.conn
        if self.reevaluees:
            c.execute(update(Anomalie).where(Anomalie.paiement_id.in_(self.reevaluees), Anomalie.statut == "ouverte",
                                             Anomalie.code.in_(CODES_REESSAYES)).values(reevaluee_le=self.now))
        if self.anomalies_closes:
            c.execute(update(Anomalie).where(Anomalie.paiement_id.in_(self.anomalies_closes),
                                             Anomalie.statut != "resolue", Anomalie.code.in_(CODES_REESSAYES))
                      .values(statut="resolue", resolue_le=self.now, resolue_par="systeme",
                              resolution="rapprochement_automatique"))
        inserer_tuples(c, table_de(Affectation), COLONNES_AFFECTATION, self.affectations)
        inserer_tuples(c, table_de(MouvementCompte), COLONNES_MOUVEMENT, self.mouvements)
        inserer(c, table_de(Anomalie), self.anomalies)
        # Une colonne indexée n'est écrite que si sa valeur change : sous SQLite, l'écrire coûte la
        # mise à jour de son index même à valeur égale.
        factures = sorted(self.factures_modifiees)
        mettre_a_jour(c, "etat_facture", ["paye = {}", "statut = {}"], "facture_id",
                      [(f.paye, f.statut, f.id) for i in factures
                       if (f := self.factures[i]).statut != self.statut_lu[i]], ("bigint", "text", "bigint"))
        mettre_a_jour(c, "etat_facture", ["paye = {}"], "facture_id",
                      [(f.paye, f.id) for i in factures if (f := self.factures[i]).statut == self.statut_lu[i]],
                      ("bigint", "bigint"))
        par_colonnes: dict[tuple[bool, bool, bool], list[tuple[Any, ...]]] = defaultdict(list)
        for m in self.paiements:
            anomalie, dossier, confirme = self.paiement_lu[m["p_id"]]
            changent = (m["p_anomalie"] != anomalie, m["p_dossier"] is not None and m["p_dossier"] != dossier,
                        m["confirme_paiement_id"] != confirme)
            valeurs = [v for v, change in zip((m["p_anomalie"], m["p_dossier"], m["confirme_paiement_id"]), changent,
                                              strict=True) if change]
            par_colonnes[changent].append((m["p_affecte"], m["p_statut"], *valeurs, m["p_id"]))
        for changent, lignes in sorted(par_colonnes.items()):
            colonnes = [(sql, t) for (sql, t), change in zip(
                (("anomalie = {}", "text"), ("dossier_id = {}", "bigint"), ("confirme_paiement_id = {}", "bigint")),
                changent, strict=True) if change]
            mettre_a_jour(c, "paiement", ["affecte = affecte + {}", "statut = {}", *(sql for sql, _ in colonnes),
                                          "version = version + 1"], "id", lignes,
                          ("bigint", "text", *(t for _, t in colonnes), "bigint"))
        if self.remises:
            t = table_de(Remise)
            c.execute(update(t).where(t.c.id == bindparam("r_id")).values(
                statut=bindparam("r_statut"), confirmee_le=bindparam("r_le")), self.remises)

