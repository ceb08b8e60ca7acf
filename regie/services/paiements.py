"""Import des fichiers de paiements de chaque canal : tout ou rien, idempotent, puis rapprochement.

Le connecteur lit son format ; ici on enregistre par clé naturelle (canal, référence) :
le même enregistrement revu est ignoré, la même clé avec un autre contenu est un DOUBLON.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import structlog
from sqlalchemy import Connection, func, insert, or_, select, update

from connecteurs.cesu.titres import debut_du_jour
from connecteurs.modeles import PaiementRecu
from regie import points_de_crash
from regie.application import Application
from regie.domaine import statut_facture
from regie.progression import Progression
from regie.registre.masse import inserer_tuples, table_de
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
    RapportImport,
    importer_une_fois,
)

log = structlog.get_logger()

# Nom de canal de la ligne de commande → canal des fichiers reçus.
CANAUX_FICHIER = {"buraliste": "buraliste", "cesu": "cesu", "crcesu": "crcesu", "cheque": "cheque",
                  "cfonb": "cfonb", "pes-retour": "pes_retour"}
TAILLE_LOT = 2000
COLONNES_PAIEMENT = ("canal", "reference", "montant", "recu_le", "reference_facture", "remise_id", "details", "brut",
                     "ligne", "empreinte", "fichier_id", "affecte", "en_credit", "rembourse", "statut",
                     "decision_manuelle", "version", "cree_le")
_NUMERO_DANS_TEXTE = re.compile(r"[A-Za-z0-9][A-Za-z0-9/-]{4,29}")


@dataclass
class ComptesPaiements:
    nouveaux: int = 0
    ignores: int = 0
    doublons: int = 0


# Ce qui décrit le fichier et non l'encaissement : un retour « stock » relit les mêmes collectes.
DETAILS_DU_FICHIER = frozenset({"typ_restit"})


def empreinte_paiement(recu: PaiementRecu) -> str:
    """Le contenu d'un enregistrement, sans sa place dans le fichier (ligne, texte brut, type de retour)."""
    contenu = recu.model_dump(mode="json", exclude={"ligne", "brut"})
    contenu["details"] = {k: v for k, v in contenu["details"].items() if k not in DETAILS_DU_FICHIER}
    return hashlib.sha256(json.dumps(contenu, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


def _remises(conn: Connection, lot: list[PaiementRecu]) -> dict[str, int]:
    """Les remises (chèques, CESU) des paiements du lot, créées au besoin."""
    voulues = {(r.remise, r.canal) for r in lot if r.remise and r.canal in ("cheque", "cesu")}
    if not voulues:
        return {}
    ids: dict[str, int] = dict(conn.execute(select(Remise.identifiant, Remise.id).where(
        Remise.identifiant.in_({i for i, _ in voulues}))).all())
    for identifiant, canal in sorted(voulues):
        if identifiant not in ids:
            ids[identifiant] = conn.execute(insert(Remise).returning(Remise.id), {
                "identifiant": identifiant, "canal": canal, "montant": 0, "nombre": 0, "statut": "en_attente",
                "cree_le": maintenant()}).scalar_one()
    return ids


def enregistrer_paiements(conn: Connection, recus: Iterable[PaiementRecu], *,
                          fichier_id: int | None = None) -> ComptesPaiements:
    """Enregistre des paiements reçus dans la transaction de l'appelant (par lots, en flux)."""
    comptes = ComptesPaiements()
    lot: list[PaiementRecu] = []
    progression = Progression("import des paiements", "paiements")
    for recu in recus:
        lot.append(recu)
        if len(lot) >= TAILLE_LOT:
            _enregistrer_lot(conn, lot, fichier_id, comptes)
            progression.avancer(len(lot))
            lot = []
    if lot:
        _enregistrer_lot(conn, lot, fichier_id, comptes)
        progression.avancer(len(lot))
    progression.terminer()
    return comptes


def _enregistrer_lot(conn: Connection, lot: list[PaiementRecu], fichier_id: int | None,
                     comptes: ComptesPaiements) -> None:
    cles = {(r.canal, r.reference) for r in lot}
    existants: dict[tuple[str, str], tuple[int, str]] = {}
    for canal in {c for c, _ in cles}:
        refs = [ref for c, ref in cles if c == canal]
        for id_, ref, empreinte in conn.execute(select(Paiement.id, Paiement.reference, Paiement.empreinte).where(
                Paiement.canal == canal, Paiement.reference.in_(refs))):
            existants[(canal, ref)] = (id_, empreinte)
    remises = _remises(conn, lot)
    now = maintenant()
    nouveaux: list[tuple[Any, ...]] = []
    vus: dict[tuple[str, str], tuple[str, PaiementRecu]] = {}
    par_remise: dict[int, tuple[int, int]] = {}
    for r in lot:
        cle = (r.canal, r.reference)
        empreinte = empreinte_paiement(r)
        avant = existants.get(cle)
        deja = vus.get(cle)
        if avant is not None or deja is not None:
            if (avant[1] if avant is not None else deja[0]) == empreinte:  # type: ignore[index]
                comptes.ignores += 1
                continue
            if avant is None:
                # Deux contenus pour une clé dans le même fichier : le premier est enregistré, le second signalé.
                _inserer(conn, nouveaux, par_remise, comptes)
                nouveaux, par_remise = [], {}
                avant = (conn.execute(select(Paiement.id).where(Paiement.canal == r.canal,
                                                                Paiement.reference == r.reference)).scalar_one(), "")
            _signaler_doublon(conn, avant[0], r, empreinte)
            comptes.doublons += 1
            continue
        vus[cle] = (empreinte, r)
        remise_id = remises.get(r.remise) if r.remise and r.canal in ("cheque", "cesu") else None
        if remise_id is not None:
            m, n = par_remise.get(remise_id, (0, 0))
            par_remise[remise_id] = (m + r.montant, n + 1)
        # Dans l'ordre de COLONNES_PAIEMENT ; dossier, confirmation et anomalie restent NULL.
        nouveaux.append((
            r.canal, r.reference, r.montant, r.recu_le, r.reference_facture, remise_id,
            {**r.details, **({"remise": r.remise} if r.remise else {})}, r.brut, r.ligne, empreinte, fichier_id,
            0, 0, 0, "a_traiter", False, 1, now))
    _inserer(conn, nouveaux, par_remise, comptes)


def _inserer(conn: Connection, nouveaux: list[tuple[Any, ...]], par_remise: dict[int, tuple[int, int]],
             comptes: ComptesPaiements) -> None:
    if nouveaux:
        inserer_tuples(conn, table_de(Paiement), COLONNES_PAIEMENT, nouveaux)
        comptes.nouveaux += len(nouveaux)
    for remise_id, (montant, nombre) in par_remise.items():
        conn.execute(update(Remise).where(Remise.id == remise_id).values(
            montant=Remise.montant + montant, nombre=Remise.nombre + nombre))


def _signaler_doublon(conn: Connection, paiement_id: int, recu: PaiementRecu, empreinte: str) -> None:
    """La même clé naturelle avec un autre contenu : le paiement connu part en revue, rien n'est compté deux fois."""
    deja = conn.execute(select(Anomalie.id).where(
        Anomalie.paiement_id == paiement_id, Anomalie.code == "DOUBLON",
        Anomalie.preuve["empreinte"].as_string() == empreinte)).first()
    if deja is not None:
        return
    ancien = conn.execute(select(Paiement.montant, Paiement.recu_le, Paiement.reference_facture, Paiement.details,
                                 Paiement.brut).where(Paiement.id == paiement_id)).one()
    conn.execute(insert(Anomalie), {
        "paiement_id": paiement_id, "code": "DOUBLON", "statut": "ouverte",
        "raison": f"La référence {recu.reference} ({recu.canal}) a déjà été reçue avec un autre contenu : "
                  "le second enregistrement n'est pas compté ; vérifier auprès de l'émetteur.",
        "preuve": {"empreinte": empreinte,
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


def _lire_canal(app: Application, conn: Connection, canal: str, chemin: Path, nom: str,
                comptes: dict[str, int], fichier_id: int) -> Iterable[PaiementRecu]:
    if canal == "buraliste":
        return _releve_buralistes(chemin, nom)
    contenu = chemin.read_bytes()
    if canal == "cesu":
        from connecteurs.cesu.titres import lire_titres_cesu
        return lire_titres_cesu(contenu, nom)
    if canal == "crcesu":
        from connecteurs.cesu.crcesu import lire_remboursements_crcesu
        return lire_remboursements_crcesu(contenu, nom)
    if canal == "cheque":
        from connecteurs.cheques.remises import lire_remise_cheques
        return lire_remise_cheques(contenu, nom)
    if canal == "cfonb":
        return _recus_cfonb(app, conn, contenu, nom, comptes, fichier_id)
    if canal == "pes_retour":
        return _recus_pes_retour(conn, contenu, nom, comptes)
    raise ValueError(f"canal inconnu : {canal}")


def importer_fichier_paiements(app: Application, canal: str, chemin: Path, *, origine: str | None = None,
                               rapprocher_ensuite: bool = True, aujourd_hui: date | None = None) -> RapportImport:
    """`regie paiements importer --canal CANAL FICHIER` : le fichier entier ou rien, puis le rapprochement."""
    canal = CANAUX_FICHIER.get(canal, canal)
    comptes_canal: dict[str, int] = {}

    def faire(conn: Connection, fichier_id: int, nom: str) -> ComptesPaiements:
        recus = _lire_canal(app, conn, canal, chemin, nom, comptes_canal, fichier_id)
        comptes = enregistrer_paiements(conn, recus, fichier_id=fichier_id)
        conn.execute(update(FichierRecu).where(FichierRecu.id == fichier_id).values(
            nb_enregistrements=comptes.nouveaux, nb_ignores=comptes.ignores))
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
        from rapprochement.moteur import rapprocher

        rapprocher(app, aujourd_hui=aujourd_hui)
    return rapport


def nombre_paiements(conn: Connection) -> int:
    return int(conn.execute(select(func.count()).select_from(Paiement)).scalar_one())
