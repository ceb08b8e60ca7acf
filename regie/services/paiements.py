"""Import des fichiers de paiements de chaque canal : tout ou rien, idempotent, puis rapprochement.

Le connecteur lit son format ; ici on enregistre par clé naturelle (canal, référence) :
le même enregistrement revu est ignoré, la même clé avec un autre contenu est un DOUBLON.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import re
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime, tzinfo
from pathlib import Path
from typing import NamedTuple

import msgspec
import structlog
from sqlalchemy import Connection, bindparam, func, insert, or_, select, update

from connecteurs.cesu.titres import debut_du_jour
from connecteurs.modeles import PaiementRecu
from rapprochement.moteur import (
    NouveauPaiement,
    inserer_paiements,
    lecture_d_avance,
    rangee_paiement,
    rapprocher,
    rapprocher_a_l_import,
    verrouiller,
)
from regie import points_de_crash
from regie.application import Application
from regie.domaine import statut_facture
from regie.erreurs import FichierRefuse
from regie.journalisation import configurer
from regie.lecture_parallele import en_parallele, en_parallele_entrelace
from regie.progression import Progression
from regie.registre.lignes import encoder_json
from regie.registre.masse import lire_par_cles, reserver_ids, sans_ramasse_miettes, table_de
from regie.registre.modeles import (
    Anomalie,
    Bordereau,
    DebitDft,
    EtatFacture,
    Facture,
    FichierRecu,
    MouvementCompte,
    Paiement,
    ReleveDft,
    Remise,
    Titre,
)
from regie.registre.statistiques import rafraichir_statistiques
from regie.registre.types import maintenant
from regie.services.fichiers import (
    CANAUX_FICHIER,
    RapportImport,
    importer_une_fois,
)

log = structlog.get_logger()

TAILLE_LOT = 2000
PAIEMENT = table_de(Paiement)
_NUMERO_DANS_TEXTE = re.compile(r"[A-Za-z0-9][A-Za-z0-9/-]{4,29}")


@dataclass
class ComptesPaiements:
    nouveaux: int = 0
    ignores: int = 0
    doublons: int = 0


# Ce qui décrit le fichier et non l'encaissement : un retour « stock » relit les mêmes collectes.
DETAILS_DU_FICHIER = frozenset({"typ_restit"})


_EMPREINTE = msgspec.json.Encoder(order="sorted")


@functools.lru_cache(maxsize=4096)
def _iso(instant: datetime, _fuseau: tzinfo | None, _fold: int) -> str:
    """`instant.isoformat()` (0,7 µs : le décalage du fuseau recalculé), mémorisé : un fichier répète ses dates.

    Appelé avec le fuseau et `fold` de l'instant, qui entrent dans la clé : deux instants égaux d'autres
    fuseaux, ou l'heure répétée d'un passage à l'heure d'hiver, s'écrivent autrement.
    """
    return instant.isoformat()


def empreinte_paiement(recu: PaiementRecu) -> str:
    """Le contenu d'un enregistrement, sans sa place dans le fichier (ligne, texte brut, type de retour).

    Gardée en base : la même pour le même contenu d'une version à l'autre (un test en fixe des valeurs).
    """
    details, recu_le = recu.details, recu.recu_le
    if DETAILS_DU_FICHIER & details.keys():
        details = {k: v for k, v in details.items() if k not in DETAILS_DU_FICHIER}
    return hashlib.sha256(_EMPREINTE.encode((
        recu.canal, recu.reference, recu.montant, _iso(recu_le, recu_le.tzinfo, recu_le.fold),
        recu.reference_facture, recu.remise, details))).hexdigest()


class RecuCompact(NamedTuple):
    """Un paiement reçu, prêt à enregistrer : ce que la lecture (au besoin dans un autre processus) en garde.

    `details` : le JSON des détails tels qu'écrits dans le registre (la remise comprise).
    """

    canal: str
    reference: str
    montant: int
    recu_le: datetime
    reference_facture: str | None
    remise: str | None
    details: str
    brut: str | None
    ligne: int | None
    empreinte: str


def compacter(r: PaiementRecu, decalage: int = 0) -> RecuCompact:
    """`decalage` : ce qui sépare la ligne lue (dans un lot de lignes lu seul) de sa ligne dans le fichier."""
    details = {**r.details, "remise": r.remise} if r.remise else r.details
    ligne = r.ligne + decalage if r.ligne is not None else None
    return RecuCompact(r.canal, r.reference, r.montant, r.recu_le, r.reference_facture, r.remise,
                       encoder_json(details), r.brut, ligne, empreinte_paiement(r))


_ENCODEUR_RECUS = msgspec.msgpack.Encoder()
_DECODEUR_RECUS = msgspec.msgpack.Decoder(list[RecuCompact])


def _remises(conn: Connection, lot: Sequence[RecuCompact]) -> dict[str, int]:
    """Les remises (chèques, CESU) des paiements du lot, créées au besoin."""
    voulues = {(r.remise, r.canal) for r in lot if r.remise and r.canal in ("cheque", "cesu")}
    if not voulues:
        return {}
    cherchees = select(Remise.identifiant, Remise.id).where(Remise.identifiant.in_({i for i, _ in voulues}))
    ids: dict[str, int] = dict(conn.execute(cherchees).all())
    nouvelles = [{"identifiant": identifiant, "canal": canal, "montant": 0, "nombre": 0, "statut": "en_attente",
                  "cree_le": maintenant()} for identifiant, canal in sorted(voulues) if identifiant not in ids]
    if nouvelles:
        # Une instruction pour toutes (un CESU par dizaine de lignes change de remise : une par titre coûtait).
        conn.execute(insert(Remise), nouvelles)
        ids = dict(conn.execute(cherchees).all())
    return ids


def enregistrer_paiements(conn: Connection, recus: Iterable[PaiementRecu], *, fichier_id: int | None = None,
                          differer: list[NouveauPaiement] | None = None) -> ComptesPaiements:
    """Enregistre des paiements reçus dans la transaction de l'appelant (par lots, en flux).

    Avec `differer` (une liste vide), les paiements nouveaux n'y sont pas écrits mais ajoutés :
    le moteur les décide puis les écrit une fois (`rapprocher_a_l_import`). Une même référence lue
    deux fois avec deux contenus dans le fichier arrête cela : tout est alors écrit « à traiter ».
    """
    return enregistrer_compacts(conn, _par_lots(recus), fichier_id=fichier_id, differer=differer)


def _par_lots(recus: Iterable[PaiementRecu]) -> Iterator[list[RecuCompact]]:
    lot: list[RecuCompact] = []
    for recu in recus:
        lot.append(compacter(recu))
        if len(lot) >= TAILLE_LOT:
            yield lot
            lot = []
    if lot:
        yield lot


def enregistrer_compacts(conn: Connection, lots: Iterable[list[RecuCompact]], *, fichier_id: int | None = None,
                         differer: list[NouveauPaiement] | None = None) -> ComptesPaiements:
    enregistrement = _Enregistrement(conn, fichier_id, differer)
    progression = Progression("import des paiements", "paiements")
    for lot in lots:
        enregistrement.lot(lot)
        progression.avancer(len(lot))
    progression.terminer()
    return enregistrement.comptes


class _Enregistrement:
    def __init__(self, conn: Connection, fichier_id: int | None, differer: list[NouveauPaiement] | None) -> None:
        self.conn = conn
        self.fichier_id = fichier_id
        self.differes = differer
        self.comptes = ComptesPaiements()
        self.vus: dict[tuple[str, str], str] = {}  # clé → empreinte, pour tout le fichier
        self.prochain_id: int | None = None  # SQLite : les identifiants réservés mais pas encore écrits

    def _ids(self, n: int) -> list[int]:
        if self.conn.dialect.name == "postgresql":
            return reserver_ids(self.conn, PAIEMENT, n)
        if self.prochain_id is None:
            self.prochain_id = reserver_ids(self.conn, PAIEMENT, 1)[0]
        debut, self.prochain_id = self.prochain_id, self.prochain_id + n
        return list(range(debut, debut + n))

    def lot(self, lot: Sequence[RecuCompact]) -> None:
        conn = self.conn
        existants: dict[tuple[str, str], tuple[int, str]] = {}
        par_canal: dict[str, list[str]] = defaultdict(list)
        for r in lot:
            par_canal[r.canal].append(r.reference)
        marque = "%s" if conn.dialect.name == "postgresql" else "?"
        sql = f"SELECT id, reference, empreinte FROM paiement WHERE canal = {marque} AND reference {{cles}}"
        for canal, refs in par_canal.items():
            # Par le pilote (PostgreSQL : un tableau) : 2 ms par lot de 2000 au lieu de 13 avec IN (…2000…).
            for id_, ref, empreinte in lire_par_cles(conn, sql, refs, avant=(canal,)):
                existants[(canal, ref)] = (id_, empreinte)
        remises = _remises(conn, lot)
        now = maintenant()
        nouveaux: list[tuple[RecuCompact, int | None]] = []
        par_remise: dict[int, tuple[int, int]] = {}
        vus = self.vus
        for r in lot:
            cle = (r.canal, r.reference)
            empreinte = r.empreinte
            avant = existants.get(cle)
            deja = vus.get(cle)
            if avant is not None or deja is not None:
                if (avant[1] if avant is not None else deja) == empreinte:
                    self.comptes.ignores += 1
                    continue
                if avant is None:
                    # Deux contenus pour une clé dans le même fichier : le premier est enregistré, le second
                    # signalé ; il faut pour cela que le premier soit écrit.
                    self._ecrire(nouveaux, par_remise, now)
                    self._renoncer_au_differe()
                    nouveaux, par_remise = [], {}
                    avant = (conn.execute(select(Paiement.id).where(
                        Paiement.canal == r.canal, Paiement.reference == r.reference)).scalar_one(), "")
                _signaler_doublon(conn, avant[0], r)
                self.comptes.doublons += 1
                continue
            vus[cle] = empreinte
            remise_id = remises.get(r.remise) if r.remise and r.canal in ("cheque", "cesu") else None
            if remise_id is not None:
                m, n = par_remise.get(remise_id, (0, 0))
                par_remise[remise_id] = (m + r.montant, n + 1)
            nouveaux.append((r, remise_id))
        self._ecrire(nouveaux, par_remise, now)

    def _ecrire(self, nouveaux: list[tuple[RecuCompact, int | None]], par_remise: dict[int, tuple[int, int]],
                now: datetime) -> None:
        conn = self.conn
        if nouveaux:
            fichier_id = self.fichier_id
            lus = [NouveauPaiement(pid, r.canal, r.reference, r.montant, r.recu_le, r.reference_facture, r.remise,
                                   remise_id, r.details, r.brut, r.ligne, r.empreinte, fichier_id, now)
                   for pid, (r, remise_id) in zip(self._ids(len(nouveaux)), nouveaux, strict=True)]
            if self.differes is not None:
                self.differes.extend(lus)
            else:
                _inserer_a_traiter(conn, lus)
            self.comptes.nouveaux += len(nouveaux)
        if par_remise:
            t = table_de(Remise)
            conn.execute(update(t).where(t.c.id == bindparam("r_id")).values(
                montant=t.c.montant + bindparam("r_montant"), nombre=t.c.nombre + bindparam("r_nombre")),
                [{"r_id": i, "r_montant": m, "r_nombre": n} for i, (m, n) in sorted(par_remise.items())])

    def _renoncer_au_differe(self) -> None:
        if self.differes is not None:
            _inserer_a_traiter(self.conn, self.differes)
            self.differes.clear()
            self.differes = None
            log.info("rapprochement_a_l_import_abandonne", raison="référence lue deux fois avec deux contenus")


def _inserer_a_traiter(conn: Connection, paiements: Sequence[NouveauPaiement]) -> None:
    inserer_paiements(conn, [rangee_paiement(p, 0, "a_traiter", None, None, None, version=1) for p in paiements])


def _signaler_doublon(conn: Connection, paiement_id: int, recu: RecuCompact) -> None:
    """La même clé naturelle avec un autre contenu : le paiement connu part en revue, rien n'est compté deux fois."""
    deja = conn.execute(select(Anomalie.id).where(
        Anomalie.paiement_id == paiement_id, Anomalie.code == "DOUBLON",
        Anomalie.preuve["empreinte"].as_string() == recu.empreinte)).first()
    if deja is not None:
        return
    ancien = conn.execute(select(Paiement.montant, Paiement.recu_le, Paiement.reference_facture, Paiement.details,
                                 Paiement.brut).where(Paiement.id == paiement_id)).one()
    conn.execute(insert(Anomalie), {
        "paiement_id": paiement_id, "canal": recu.canal, "code": "DOUBLON", "statut": "ouverte",
        "raison": f"La référence {recu.reference} ({recu.canal}) a déjà été reçue avec un autre contenu : "
                  "le second enregistrement n'est pas compté ; vérifier auprès de l'émetteur.",
        "preuve": {"empreinte": recu.empreinte,
                   "connu": {"montant": ancien.montant, "recu_le": ancien.recu_le.isoformat(),
                             "reference_facture": ancien.reference_facture, "brut": ancien.brut},
                   "recu": {"montant": recu.montant, "recu_le": recu.recu_le.isoformat(),
                            "reference_facture": recu.reference_facture, "brut": recu.brut, "ligne": recu.ligne}},
        "suggestions": [], "cree_le": maintenant()})
    conn.execute(update(Paiement).where(Paiement.id == paiement_id).values(
        anomalie="DOUBLON", statut="en_anomalie", version=Paiement.version + 1))
    log.warning("paiement_doublon", canal=recu.canal, reference=recu.reference, paiement_id=paiement_id)


# --- Lecture par canal -----------------------------------------------------------------------------

def _recus_cfonb(app: Application, conn: Connection, contenu: bytes, nom: str,
                 comptes: dict[str, int], fichier_id: int) -> Iterator[PaiementRecu]:
    """Les crédits du relevé DFT : confirmation de remise (REMISE <id>) ou virement d'une famille."""
    from connecteurs.cfonb.cfonb120 import lire_releves, remise_citee

    comptes_regies = {r.dft_compte for r in app.config.regie}
    for releve in lire_releves(contenu, nom, comptes_regies):
        if conn.execute(select(ReleveDft.id).where(ReleveDft.cle == releve.cle)).first() is not None:
            comptes["releves deja importes"] = comptes.get("releves deja importes", 0) + 1
            continue
        conn.execute(insert(ReleveDft), {"cle": releve.cle, "compte": releve.compte,
                                         "date_debut": releve.date_debut, "date_fin": releve.date_fin,
                                         "solde_debut": releve.solde_debut, "solde_fin": releve.solde_fin,
                                         "fichier_id": fichier_id})
        comptes["releves"] = comptes.get("releves", 0) + 1
        for m in releve.mouvements:
            remise = remise_citee(m.texte)
            if m.montant < 0:
                _noter_debit(conn, m.reference, m.compte, m.date_operation, m.montant, m.texte, remise, fichier_id)
                continue
            yield PaiementRecu(
                canal="cfonb" if remise else "virement", reference=m.reference, montant=m.montant,
                recu_le=debut_du_jour(m.date_operation), reference_facture=None, remise=remise,
                details={"compte": m.compte, "code_operation": m.code_operation, "texte": m.texte,
                         "date_valeur": m.date_valeur.isoformat() if m.date_valeur else None},
                ligne=m.ligne, brut=m.brut)


def _noter_debit(conn: Connection, reference: str, compte: str, jour: date, montant: int, texte: str,
                 remise: str | None, fichier_id: int) -> None:
    """Un débit n'est pas un paiement : on le garde pour l'agent s'il nomme une remise ou une facture."""
    candidats = set(_NUMERO_DANS_TEXTE.findall(texte))
    facture_id = None
    if candidats:
        facture_id = conn.execute(select(Facture.id).where(or_(Facture.numero.in_(candidats),
                                                                Facture.refdet.in_(candidats)))).scalar()
    connue = remise is not None and conn.execute(
        select(Remise.id).where(Remise.identifiant == remise)).first() is not None
    if facture_id is None and not connue:
        return
    if conn.execute(select(DebitDft.id).where(DebitDft.reference == reference)).first() is None:
        conn.execute(insert(DebitDft), {"reference": reference, "compte": compte, "date_operation": jour,
                                        "montant": montant, "texte": texte[:500], "remise": remise,
                                        "facture_id": facture_id, "fichier_id": fichier_id, "examine": False})


def _recus_pes_retour(conn: Connection, contenu: bytes, nom: str, comptes: dict[str, int]) -> Iterator[PaiementRecu]:
    from connecteurs.pes_retour.recette import lire_pes_retour

    retour = lire_pes_retour(contenu, nom)
    for piece in retour.pieces:
        if piece.etat in ("04", "05"):
            _piece_rejetee_ou_annulee(conn, piece.exercice, piece.id_bordereau, piece.id_piece, piece.etat, nom)
            comptes["pieces rejetees ou annulees"] = comptes.get("pieces rejetees ou annulees", 0) + 1
    yield from retour.encaissements


def _piece_rejetee_ou_annulee(conn: Connection, exercice: int, id_bordereau: int, id_piece: int, etat: str,
                              fichier: str) -> None:
    """Hélios a rejeté (04) ou annulé (05) la pièce : le titre prend cet état, la facture revient à la régie."""
    titre = conn.execute(select(Titre.id, Titre.facture_id, Titre.statut, Facture.numero, Facture.dossier_id,
                                EtatFacture.montant, EtatFacture.paye, EtatFacture.avoirs)
                         .join(Bordereau, Bordereau.id == Titre.bordereau_id)
                         .join(Facture, Facture.id == Titre.facture_id)
                         .join(EtatFacture, EtatFacture.facture_id == Titre.facture_id)
                         .where(Titre.exercice == exercice, Bordereau.numero == id_bordereau,
                                Titre.piece == id_piece)).first()
    nouveau = "rejete" if etat == "04" else "annule"
    if titre is None or titre.statut in ("rejete", "annule"):
        return
    reference = f"{exercice}/{id_bordereau}/{id_piece}"
    quoi = "rejeté" if etat == "04" else "annulé"
    conn.execute(update(Titre).where(Titre.id == titre.id).values(statut=nouveau))
    conn.execute(update(EtatFacture).where(EtatFacture.facture_id == titre.facture_id).values(
        statut=statut_facture(titre.montant, titre.paye, titre.avoirs, False)))
    reste = titre.montant - titre.paye - titre.avoirs
    now = maintenant()
    if reste > 0:
        # Ce qui restait dû au Trésor sur ce titre redevient dû à la régie.
        conn.execute(insert(MouvementCompte), {
            "dossier_id": titre.dossier_id, "quand": now, "nature": "titre_rejete",
            "libelle": f"Titre {reference} {quoi} par le comptable : la facture {titre.numero} est de nouveau due "
                       "à la régie", "montant": reste, "delta_du": reste, "delta_credit": 0, "delta_tresor": -reste,
            "facture_id": titre.facture_id, "titre_id": titre.id, "cree_le": now})
    conn.execute(insert(Anomalie), {
        "facture_id": titre.facture_id, "code": "TITRE_REJETE" if etat == "04" else "TITRE_ANNULE",
        "statut": "ouverte",
        "raison": f"Le comptable a {quoi} la pièce {reference} (retour {fichier}) : la facture {titre.numero} est à "
                  "reprendre, puis à titrer de nouveau une fois l'anomalie résolue.",
        "preuve": {"exercice": exercice, "bordereau": id_bordereau, "piece": id_piece, "etat": etat},
        "suggestions": [], "cree_le": now})


def _releve_buralistes(chemin: Path, nom: str) -> Iterator[PaiementRecu]:
    from connecteurs.buralistes.releve import lire_releve_flux

    # En flux, par blocs : un relevé de centaines de milliers de lignes n'est jamais tenu en entier.
    with chemin.open("rb") as flux:
        yield from lire_releve_flux(flux, nom)


# Les formats qui se lisent sans la base (`_lire_sans_base`) : lus, empreintes comprises, dans un second
# processus pendant que celui-ci enregistre, quand le fichier dépasse ce seuil.
SEUIL_PARALLELE = 2 << 20  # octets


def _lire_sans_base(canal: str, chemin: Path, nom: str) -> Iterable[PaiementRecu]:
    if canal == "buraliste":
        return _releve_buralistes(chemin, nom)
    return _lire_contenu(canal, chemin.read_bytes(), nom)


def _lire_contenu(canal: str, contenu: bytes, nom: str) -> Iterable[PaiementRecu]:
    if canal == "buraliste":
        from connecteurs.buralistes.releve import lire_releve
        return lire_releve(contenu, nom)
    if canal == "cesu":
        from connecteurs.cesu.titres import lire_titres_cesu
        return lire_titres_cesu(contenu, nom)
    if canal == "crcesu":
        from connecteurs.cesu.crcesu import lire_remboursements_crcesu
        return lire_remboursements_crcesu(contenu, nom)
    if canal == "cheque":
        from connecteurs.cheques.remises import lire_remise_cheques
        return lire_remise_cheques(contenu, nom)
    raise ValueError(f"canal inconnu : {canal}")


def _lots_compacts(app: Application, conn: Connection, canal: str, chemin: Path, nom: str,
                   comptes: dict[str, int], fichier_id: int, parallele: bool) -> Iterator[list[RecuCompact]]:
    """Les paiements du fichier, par lots, prêts à enregistrer ; lus ailleurs si le fichier est gros."""
    if canal == "cfonb":
        yield from _par_lots(_recus_cfonb(app, conn, chemin.read_bytes(), nom, comptes, fichier_id))
        return
    if canal == "pes_retour":
        yield from _par_lots(_recus_pes_retour(conn, chemin.read_bytes(), nom, comptes))
        return

    def lire() -> Iterator[bytes]:
        with sans_ramasse_miettes():
            for lot in _par_lots(_lire_sans_base(canal, chemin, nom)):
                yield _ENCODEUR_RECUS.encode(lot)

    for lot in en_parallele(lire, parallele=parallele):
        yield _DECODEUR_RECUS.decode(lot)


# Les fichiers CSV lus par deux processus, un lot de lignes sur deux chacun (`_lots_a_deux`) : le processus
# qui enregistre attendait un lecteur seul (la moitié de la lecture d'un relevé de buralistes).
CANAUX_LUS_A_DEUX = frozenset({"buraliste", "cheque", "cesu"})
LIGNES_PAR_LOT_LU = TAILLE_LOT
_RELIRE_EN_LIGNE = b""  # le message d'un lecteur dont un lot ne se lit pas seul


class _RelireEnLigne(Exception):
    """Un lot ne se lit pas comme dans le fichier entier (erreur, ligne sur plusieurs lignes, transaction
    en double…) : tout le fichier est relu par un seul lecteur, qui dit ce qu'il en est."""


def _lot_lu_seul(canal: str, nom: str, entete: bytes, lignes: list[bytes],
                 debut: int) -> list[RecuCompact] | None:
    """Les paiements d'un lot de lignes (la première est la ligne `debut` + 1 du fichier), lu seul : l'en-tête
    puis ses lignes. None si ce ne sont pas ceux que donnerait la lecture du fichier entier.

    Ce sont les mêmes quand chaque ligne non blanche du lot donne un paiement à sa ligne : aucune valeur ne
    court alors sur deux lignes, et le lecteur du fichier entier commence chaque ligne comme celui-ci. Le lot
    d'avant (lu par l'autre processus) est vérifié de même. Une erreur : le fichier est refusé, relu en ligne
    pour dire toutes ses erreurs, dans l'ordre.
    """
    try:
        recus = list(_lire_contenu(canal, b"\n".join([entete, *lignes]), nom))
    except FichierRefuse:
        return None
    attendues = [rang for rang, brute in enumerate(lignes, 2) if brute.strip()]
    if [r.ligne for r in recus] != attendues:
        return None
    return [compacter(r, debut - 1) for r in recus]


def _lots_a_deux(canal: str, chemin: Path, nom: str) -> Iterator[list[RecuCompact]]:
    """Les paiements du fichier par lots, lus par deux processus (lots pairs, lots impairs), dans l'ordre.

    Lève `_RelireEnLigne` quand un lot ne se lit pas seul comme dans le fichier, ou, pour un relevé de
    buralistes, quand une transaction revient d'un lot à l'autre (refusée par la lecture en ligne).
    """
    def lire(rang: int, nombre: int) -> Iterator[bytes]:
        configurer(niveau=logging.ERROR)  # ce lecteur ne raconte pas chaque lot ; celui qui enregistre conclut
        lignes = chemin.read_bytes().split(b"\n")
        with sans_ramasse_miettes():
            for debut in range(1 + rang * LIGNES_PAR_LOT_LU, len(lignes), nombre * LIGNES_PAR_LOT_LU):
                lot = _lot_lu_seul(canal, nom, lignes[0], lignes[debut:debut + LIGNES_PAR_LOT_LU], debut)
                if lot is None:
                    yield _RELIRE_EN_LIGNE
                    return
                yield _ENCODEUR_RECUS.encode(lot)

    transactions: set[str] = set()
    flux = en_parallele_entrelace(lire)
    try:
        for message in flux:
            if message == _RELIRE_EN_LIGNE:
                raise _RelireEnLigne
            lot = _DECODEUR_RECUS.decode(message)
            if canal == "buraliste":
                avant = len(transactions)
                transactions.update(r.reference for r in lot)
                if len(transactions) - avant != len(lot):
                    raise _RelireEnLigne
            yield lot
    finally:
        flux.close()  # les lecteurs arrêtés tout de suite, pas quand l'exception sera oubliée


def importer_fichier_paiements(app: Application, canal: str, chemin: Path, *, origine: str | None = None,
                               rapprocher_ensuite: bool = True, aujourd_hui: date | None = None,
                               parallele: bool | None = None) -> RapportImport:
    """`regie paiements importer --canal CANAL FICHIER` : le fichier entier ou rien, puis le rapprochement.

    Un gros fichier est lu dans un second processus (`parallele`, par défaut au-delà de `SEUIL_PARALLELE`
    octets) pendant que celui-ci enregistre.
    """
    canal = CANAUX_FICHIER.get(canal, canal)  # le nom de la ligne de commande, ou déjà celui du canal
    comptes_canal: dict[str, int] = {}

    def faire(conn: Connection, fichier_id: int, nom: str) -> ComptesPaiements:
        # Dès l'enregistrement : un doublon change un paiement connu, qu'un agent ou un moteur peut tenir.
        verrouiller(conn)
        gros = parallele if parallele is not None else chemin.stat().st_size >= SEUIL_PARALLELE
        lots = _lots_compacts(app, conn, canal, chemin, nom, comptes_canal, fichier_id, gros)
        # Rapprochés dans la même transaction, avant d'être écrits : une écriture par paiement au lieu de deux.
        differes: list[NouveauPaiement] | None = [] if rapprocher_ensuite else None
        # Un gros fichier : les factures des lots à venir lues d'avance, par un second processus créé dès
        # maintenant, avant que les paiements du fichier ne remplissent la mémoire de celui-ci.
        avance = lecture_d_avance(conn) if differes is not None and gros else None
        try:
            with sans_ramasse_miettes():
                if gros and canal in CANAUX_LUS_A_DEUX:
                    comptes = _enregistrer_lu_a_deux(conn, canal, chemin, nom, fichier_id, differes, lots)
                else:
                    comptes = enregistrer_compacts(conn, lots, fichier_id=fichier_id, differer=differes)
            conn.execute(update(FichierRecu).where(FichierRecu.id == fichier_id).values(
                nb_enregistrements=comptes.nouveaux, nb_ignores=comptes.ignores))
            if differes:
                points_de_crash.point("avant_rapprochement_a_l_import")
                rapprocher_a_l_import(conn, differes, lecture=avance)
        finally:
            if avance is not None:
                avance.fermer()
        return comptes

    rapport, comptes = importer_une_fois(app, chemin, canal, origine, faire, RapportImport(chemin.name, canal))
    if comptes is None:
        return rapport
    rapport.importes = comptes.nouveaux
    rapport.ignores = comptes.ignores
    rapport.comptes = {"paiements": comptes.nouveaux, "doublons": comptes.doublons, **comptes_canal}
    log.info("paiements_importes", fichier=rapport.fichier, canal=canal, nouveaux=comptes.nouveaux,
             deja_importes=comptes.ignores, doublons=comptes.doublons)
    rafraichir_statistiques(app.moteur, ("paiement",), comptes.nouveaux)
    points_de_crash.point("apres_import_paiements")
    if rapprocher_ensuite:
        # Ce qui reste ouvert (un fichier qui a dû tout écrire « à traiter », un import concurrent…).
        rapprocher(app, aujourd_hui=aujourd_hui)
    return rapport


def _enregistrer_lu_a_deux(conn: Connection, canal: str, chemin: Path, nom: str, fichier_id: int,
                           differes: list[NouveauPaiement] | None,
                           en_ligne: Iterable[list[RecuCompact]]) -> ComptesPaiements:
    """Le fichier lu par deux processus ; au moindre écart, tout ce qui a été enregistré est annulé (point de
    reprise) et le fichier relu par un seul (`en_ligne`) : mêmes paiements, mêmes erreurs qu'en ligne."""
    try:
        with conn.begin_nested():
            return enregistrer_compacts(conn, _lots_a_deux(canal, chemin, nom), fichier_id=fichier_id,
                                        differer=differes)
    except _RelireEnLigne:
        pass
    log.info("fichier_relu_en_ligne", fichier=nom, canal=canal)
    if differes is not None:
        differes.clear()
    return enregistrer_compacts(conn, en_ligne, fichier_id=fichier_id, differer=differes)


def nombre_paiements(conn: Connection) -> int:
    return int(conn.execute(select(func.count()).select_from(Paiement)).scalar_one())
