"""Émission des titres de recettes : `regie titres emettre` (specs/pes.md).

Une exécution écrit un PES_Aller par régie qui a des factures à titrer. Pour chaque régie,
une seule transaction (sous le verrou du rapprochement : aucun paiement ne s'affecte pendant
qu'on calcule les restes) :

1. choisit les factures dues (mode `regie` : échéance + délai dépassés ; mode `titre` : toutes),
   écarte celles dont le payeur ou les lignes casseraient le PES (anomalie TITRE_IMPOSSIBLE,
   la suite continue) ;
2. prend IdBord, IdPce et le numéro du fichier du jour dans des séquences sans trou ;
3. inscrit Bordereau, Titre, LigneTitre, FichierExporte (statut `en_ecriture`), passe les
   factures en `titree` et écrit le mouvement du compte famille (dû → Trésor) ;
4. écrit le XML en flux dans un temporaire de la boîte d'envoi, depuis la base elle-même,
   et note sa taille et son SHA-256.

Une erreur avant la validation annule tout : aucun numéro n'est pris, aucun trou. Après la
validation, le temporaire est renommé et le fichier passe `ecrit` ; un arrêt entre les deux
est repris au passage suivant (`finir_fichiers_interrompus`) : le même fichier, jamais un
second titre pour la même facture.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any, NamedTuple

import structlog
from sqlalchemy import Connection, and_, exists, insert, select, update

from connecteurs.buralistes.datamatrix import lettre_cle2, rang_mod23
from connecteurs.cesu.titres import debut_du_jour
from connecteurs.sftp import mesurer
from exports.pes_aller import (
    MAX_NOMBRE_PIECES,
    BordereauPes,
    Collectivite,
    LignePes,
    PesInvalide,
    PiecePes,
    ResumePes,
    TiersPes,
    ecrire_pes_aller,
    nom_fichier_pes,
    objet_piece,
    verifier_piece,  # les invariants exacts de l'écrivain, vérifiés facture par facture avant numérotation
)
from rapprochement.moteur import TITRES_ACTIFS, verrouiller
from regie import __version__, points_de_crash
from regie.application import Application
from regie.domaine import FactureEtat, LigneEtat
from regie.montants import centimes_en_euros
from regie.progression import Progression
from regie.registre.etats import completer
from regie.registre.masse import inserer, reserver_ids, table_de
from regie.registre.modeles import (
    Anomalie,
    Bordereau,
    Dossier,
    EtatFacture,
    Facture,
    FichierExporte,
    LigneTitre,
    MouvementCompte,
    Prestation,
    Regie,
    Titre,
)
from regie.registre.types import maintenant
from regie.services.factures import prendre_numeros

log = structlog.get_logger()

NATURE_PES = "pes_aller"
DOSSIER_SORTIE = "sortie"
EN_ECRITURE = "en_ecriture"  # inscrit et numéroté, le fichier n'est pas encore à son nom final
ECRIT = "ecrit"
CODE_IMPOSSIBLE = "TITRE_IMPOSSIBLE"
CODE_REJETE = "TITRE_REJETE"
STATUTS_TITRABLES = ("emise", "partiellement_payee")
CIVILITES = ("M", "MME")
_LOT = 900  # taille des listes IN (limite de paramètres de SQLite)


def compteur_bordereau(exercice: int) -> str:
    return f"pes_idbord_{exercice}"


def compteur_piece(exercice: int) -> str:
    return f"pes_idpce_{exercice}"


def compteur_fichier(jour: date) -> str:
    return f"pes_fichier_{jour:%Y%m%d}"


def exercice_du_titre(aujourd_hui: date) -> int:
    """Un titre est pris en charge sur l'exercice de son émission."""
    return aujourd_hui.year


class _RegieTitres(NamedTuple):
    code: str
    mode: str  # regie | titre
    delai_titre_jours: int


@dataclass(slots=True)
class _Candidate:
    facture_id: int
    numero: str
    dossier_id: int
    reste: int
    piece: PiecePes  # numérotée provisoirement (IdPce 1), renumérotée à l'écriture depuis la base
    lignes: list[tuple[int, int]]  # (rang de la ligne de la facture, reste dû) dans l'ordre des IdLigne


@dataclass
class BilanTitres:
    fichiers: list[Path] = field(default_factory=list)
    titres: int = 0
    montant: int = 0
    impossibles: int = 0


# --- Choix des factures ------------------------------------------------------------------------

def _conditions(regie: _RegieTitres, aujourd_hui: date) -> list[Any]:
    reste = EtatFacture.montant - EtatFacture.paye - EtatFacture.avoirs
    titre_actif = exists().where(Titre.facture_id == Facture.id, Titre.statut.in_(TITRES_ACTIFS))
    # Un titre rejeté par Hélios attend la correction de l'agent : l'anomalie résolue, il repart.
    rejet_ouvert = exists().where(Anomalie.facture_id == Facture.id,
                                  Anomalie.code.in_((CODE_REJETE, "TITRE_ANNULE")), Anomalie.statut != "resolue")
    conditions: list[Any] = [Facture.regie_code == regie.code, reste > 0, EtatFacture.statut.in_(STATUTS_TITRABLES),
                             ~titre_actif, ~rejet_ouvert]
    if regie.mode == "regie":
        conditions.append(Facture.echeance < aujourd_hui - timedelta(days=regie.delai_titre_jours))
    else:
        conditions.append(Facture.emise_le <= aujourd_hui)
    return conditions


def _tiers(f: Any) -> TiersPes:
    return TiersPes(reference=f.dossier, civilite=f.civilite, nom=f.nom, prenom=f.prenom,
                    adresse1=f.adresse1, adresse2=f.adresse2, code_postal=f.code_postal, ville=f.ville)


def _cle2(periode: str, numero_dette: int) -> str | None:
    """La lettre Cle2, la même que celle du datamatrix imprimé sur la facture."""
    try:
        return lettre_cle2(rang_mod23(periode[2:4], int(periode[5:7]), numero_dette))
    except ValueError:
        return None


def _objet_ligne(libelle: str, enfant: str | None) -> str:
    return f"{libelle} - {enfant}" if enfant else libelle


def _probleme_payeur(f: Any) -> str | None:
    """Les défauts du payeur que l'agent doit corriger, dits simplement (le reste : l'écrivain)."""
    if f.civilite not in CIVILITES:
        return f"civilité « {f.civilite} » du payeur : « M » ou « MME » seulement (Hélios rejette toute autre valeur)"
    if not (f.adresse1 or "").strip() or not (f.code_postal or "").strip() or not (f.ville or "").strip():
        return "adresse du payeur absente ou incomplète : un titre porte l'adresse du débiteur"
    if not (f.nom or "").strip() or not (f.prenom or "").strip():
        return "nom ou prénom du payeur absent"
    return None


def _candidates(conn: Connection, regie: _RegieTitres,
                aujourd_hui: date) -> tuple[list[_Candidate], list[tuple[int, str]]]:
    """Les factures à titrer, vérifiées ; et les impossibles avec leur raison."""
    req = (select(Facture.id, Facture.numero, Facture.dossier_id, Dossier.numero.label("dossier"), Facture.periode,
                  Facture.id.label("numero_dette"), Facture.montant, EtatFacture.paye, EtatFacture.avoirs,
                  EtatFacture.statut,
                  Facture.echeance, Facture.regie_code, Facture.civilite, Facture.nom, Facture.prenom,
                  Facture.adresse1, Facture.adresse2, Facture.code_postal, Facture.ville, Facture.lignes)
           .join(EtatFacture, EtatFacture.facture_id == Facture.id)
           .join(Dossier, Dossier.id == Facture.dossier_id)
           .where(and_(*_conditions(regie, aujourd_hui)))
           .order_by(Facture.echeance, Facture.numero))
    factures = conn.execute(req).all()
    prestations = {code: (nature, produit) for code, nature, produit in conn.execute(
        select(Prestation.code, Prestation.nature, Prestation.code_produit_local))}
    # Ce qui reste dû sur chaque ligne : les parts déjà affectées, sommées (seulement là où il y en a).
    etats = [FactureEtat(f.id, f.numero, f.dossier_id, f.dossier, f.regie_code, f.statut, f.montant, f.paye,
                         f.avoirs, f.echeance, False,
                         [LigneEtat(rang, lg.montant) for rang, lg in enumerate(f.lignes, 1)]) for f in factures]
    completer(conn, etats)
    bonnes: list[_Candidate] = []
    impossibles: list[tuple[int, str]] = []
    for f, etat in zip(factures, etats, strict=True):
        reste = f.montant - f.paye - f.avoirs
        raison = _probleme_payeur(f)
        pes_lignes: list[LignePes] = []
        parts: list[tuple[int, int]] = []
        for lg, le in zip(f.lignes, etat.lignes, strict=True):
            reste_ligne = le.reste
            if reste_ligne < 0 and raison is None:
                raison = f"ligne {le.rang} : reste dû négatif ({centimes_en_euros(reste_ligne)} €)"
            if reste_ligne > 0:
                nature, produit = prestations.get(lg.prestation, ("", ""))
                pes_lignes.append(LignePes(len(pes_lignes) + 1, _objet_ligne(lg.libelle, lg.enfant), produit, nature,
                                           reste_ligne))
                parts.append((le.rang, reste_ligne))
        if raison is None and sum(p for _, p in parts) != reste:
            raison = (f"les restes des lignes font {centimes_en_euros(sum(p for _, p in parts))} € mais la facture "
                      f"doit {centimes_en_euros(reste)} € : répartition à reprendre")
        piece = PiecePes(id_piece=1, objet=objet_piece(f.numero, f.periode), numero_dette=f.numero_dette,
                         tiers=_tiers(f), lignes=pes_lignes, montant_centimes=reste,
                         cle2=_cle2(f.periode, f.numero_dette))
        if raison is None:
            try:
                verifier_piece(piece, f"facture {f.numero}")
            except PesInvalide as exc:
                raison = exc.raison
        if raison is not None:
            impossibles.append((f.id, f"Facture {f.numero} : titre impossible, {raison}"))
            continue
        bonnes.append(_Candidate(f.id, f.numero, f.dossier_id, reste, piece, parts))
    return bonnes, impossibles


def _signaler_impossibles(conn: Connection, impossibles: Sequence[tuple[int, str]]) -> int:
    """Une anomalie ouverte par facture (pas une de plus à chaque nuit) ; sa raison suit la dernière vue."""
    nouvelles = 0
    for facture_id, raison in impossibles:
        ouverte = conn.execute(select(Anomalie.id, Anomalie.raison).where(
            Anomalie.facture_id == facture_id, Anomalie.code == CODE_IMPOSSIBLE,
            Anomalie.statut != "resolue")).first()
        if ouverte is None:
            conn.execute(insert(Anomalie), {
                "facture_id": facture_id, "code": CODE_IMPOSSIBLE, "statut": "ouverte", "raison": raison,
                "preuve": {}, "suggestions": [], "cree_le": maintenant()})
            nouvelles += 1
        elif ouverte.raison != raison:
            conn.execute(update(Anomalie).where(Anomalie.id == ouverte.id).values(raison=raison))
        log.warning("titre_impossible", facture_id=facture_id, raison=raison)
    return nouvelles


# --- Inscription dans le registre --------------------------------------------------------------

def _inscrire(conn: Connection, app: Application, regie: _RegieTitres, candidates: list[_Candidate], aujourd_hui: date,
              max_pieces: int) -> tuple[int, str]:
    """Numérote et inscrit tout ; rend (id du FichierExporte, nom du fichier)."""
    exercice = exercice_du_titre(aujourd_hui)
    lots = [candidates[i:i + max_pieces] for i in range(0, len(candidates), max_pieces)]
    premier_bord = prendre_numeros(conn, compteur_bordereau(exercice), len(lots))
    premiere_piece = prendre_numeros(conn, compteur_piece(exercice), len(candidates))
    numero_du_jour = prendre_numeros(conn, compteur_fichier(aujourd_hui), 1)
    nom = nom_fichier_pes(app.config.collectivite.siret, aujourd_hui, numero_du_jour)
    chemin = app.dossier_donnees(DOSSIER_SORTIE) / nom
    now = maintenant()
    fichier_id = int(conn.execute(insert(FichierExporte).returning(FichierExporte.id), {
        "nom": nom, "nature": NATURE_PES, "chemin": str(chemin), "statut": EN_ECRITURE, "cree_le": now,
    }).scalar_one())
    titres: list[dict[str, Any]] = []
    lignes: list[dict[str, Any]] = []
    mouvements: list[dict[str, Any]] = []
    quand = debut_du_jour(aujourd_hui)
    ids_titres = reserver_ids(conn, table_de(Titre), len(candidates))
    rang = 0
    for n, lot in enumerate(lots):
        numero_bord = premier_bord + n
        bordereau_id = int(conn.execute(insert(Bordereau).returning(Bordereau.id), {
            "exercice": exercice, "numero": numero_bord, "regie_code": regie.code, "fichier_id": fichier_id,
            "nombre_pieces": len(lot), "montant": sum(c.reste for c in lot), "statut": "emis", "erreurs": [],
            "cree_le": now}).scalar_one())
        for c in lot:
            titre_id, piece = ids_titres[rang], premiere_piece + rang
            rang += 1
            titres.append({"id": titre_id, "facture_id": c.facture_id, "bordereau_id": bordereau_id,
                           "exercice": exercice, "piece": piece, "montant": c.reste, "encaisse": 0,
                           "statut": "emis", "erreurs": [], "cree_le": now})
            lignes.extend({"titre_id": titre_id, "rang": rang, "numero": i, "montant": montant}
                          for i, (rang, montant) in enumerate(c.lignes, 1))
            mouvements.append({
                "dossier_id": c.dossier_id, "quand": quand, "nature": "titre",
                "libelle": f"Titre {exercice}/{numero_bord}/{piece} : la facture {c.numero} est due au Trésor public",
                "montant": c.reste, "delta_du": -c.reste, "delta_credit": 0, "delta_tresor": c.reste,
                "facture_id": c.facture_id, "titre_id": titre_id, "cree_le": now})
    inserer(conn, table_de(Titre), titres)
    inserer(conn, table_de(LigneTitre), lignes)
    inserer(conn, table_de(MouvementCompte), mouvements)
    ids = [c.facture_id for c in candidates]
    for i in range(0, len(ids), _LOT):
        morceau = ids[i:i + _LOT]
        conn.execute(update(EtatFacture).where(EtatFacture.facture_id.in_(morceau)).values(statut="titree"))
        conn.execute(update(Anomalie).where(
            Anomalie.facture_id.in_(morceau), Anomalie.code == CODE_IMPOSSIBLE, Anomalie.statut != "resolue")
            .values(statut="resolue", resolue_le=now, resolue_par="systeme", resolution="titre_emis"))
    return fichier_id, nom


# --- Écriture du fichier depuis la base --------------------------------------------------------

def collectivite_pes(app: Application) -> Collectivite:
    c = app.config.collectivite
    return Collectivite(c.siret, c.codique, c.code_collectivite, c.code_budget, c.nom)


def jour_du_nom(nom: str) -> date:
    """`PESALR2_<SIREN>_<AAMMJJ>_<NNN>.xml` → la date du fichier (celle de ses bordereaux)."""
    return datetime.strptime(nom.split("_")[2], "%y%m%d").date()


def _pieces(conn: Connection, bordereau_id: int) -> Iterator[PiecePes]:
    """Les pièces d'un bordereau, lues en flux dans l'ordre des IdPce."""
    req = (select(Titre.piece, Titre.montant, Facture.numero, Facture.periode, Facture.id.label("numero_dette"),
                  Dossier.numero.label("dossier"), Facture.civilite, Facture.nom, Facture.prenom, Facture.adresse1,
                  Facture.adresse2, Facture.code_postal, Facture.ville, Facture.lignes,
                  LigneTitre.numero.label("id_ligne"), LigneTitre.rang, LigneTitre.montant.label("montant_ligne"))
           .join(Facture, Facture.id == Titre.facture_id)
           .join(Dossier, Dossier.id == Facture.dossier_id)
           .join(LigneTitre, LigneTitre.titre_id == Titre.id)
           .where(Titre.bordereau_id == bordereau_id)
           .order_by(Titre.piece, LigneTitre.numero))
    prestations = {code: (nature, produit) for code, nature, produit in conn.execute(
        select(Prestation.code, Prestation.nature, Prestation.code_produit_local))}
    courante: Any = None
    lignes: list[LignePes] = []
    progression = Progression("écriture du PES", "titres")
    for r in conn.execute(req).yield_per(2000):
        if courante is not None and r.piece != courante.piece:
            yield _piece(courante, lignes)
            progression.avancer()
            lignes = []
        courante = r
        lg = r.lignes[r.rang - 1]
        nature, produit = prestations.get(lg.prestation, ("", ""))
        lignes.append(LignePes(r.id_ligne, _objet_ligne(lg.libelle, lg.enfant), produit, nature, r.montant_ligne))
    if courante is not None:
        yield _piece(courante, lignes)
        progression.avancer()
    progression.terminer()


def _piece(r: Any, lignes: list[LignePes]) -> PiecePes:
    return PiecePes(id_piece=r.piece, objet=objet_piece(r.numero, r.periode), numero_dette=r.numero_dette,
                    tiers=_tiers(r), lignes=lignes, montant_centimes=r.montant,
                    cle2=_cle2(r.periode, r.numero_dette))


def _bordereaux(conn: Connection, fichier_id: int, jour: date) -> Iterator[BordereauPes]:
    for b in conn.execute(select(Bordereau.id, Bordereau.exercice, Bordereau.numero, Bordereau.nombre_pieces,
                                 Bordereau.montant).where(Bordereau.fichier_id == fichier_id)
                          .order_by(Bordereau.exercice, Bordereau.numero)).all():
        yield BordereauPes(b.exercice, b.numero, jour, b.nombre_pieces, b.montant, _pieces(conn, b.id))


def temporaire_de(chemin: Path) -> Path:
    return chemin.with_name(f".{chemin.name}.partiel")


def _ecrire_temporaire(conn: Connection, app: Application, fichier_id: int, nom: str, chemin: Path) -> ResumePes:
    """Écrit le PES_Aller du fichier inscrit dans un temporaire (fsync) ; lève PesInvalide sans rien laisser."""
    temporaire = temporaire_de(chemin)
    try:
        with temporaire.open("wb") as sortie:
            resume = ecrire_pes_aller(sortie, collectivite_pes(app), _bordereaux(conn, fichier_id, jour_du_nom(nom)),
                                      nom_fichier=nom, date_fichier=jour_du_nom(nom),
                                      emetteur=("REGIE", f"regie {__version__}"))
            sortie.flush()
            os.fsync(sortie.fileno())
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            temporaire.unlink()
        raise
    return resume


def _publier(temporaire: Path, chemin: Path) -> None:
    """Le renommage atomique qui rend le fichier visible sous son nom final."""
    points_de_crash.point("titres_avant_publication")
    os.replace(temporaire, chemin)
    with contextlib.suppress(OSError):
        fd = os.open(chemin.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _marquer_ecrit(app: Application, fichier_id: int, resume: ResumePes | None = None) -> None:
    valeurs: dict[str, Any] = {"statut": ECRIT}
    if resume is not None:
        valeurs.update(sha256=resume.sha256, taille=resume.taille_octets)
    with app.moteur.begin() as conn:
        conn.execute(update(FichierExporte).where(FichierExporte.id == fichier_id,
                                                  FichierExporte.statut == EN_ECRITURE).values(**valeurs))


def finir_fichiers_interrompus(app: Application) -> list[Path]:
    """Termine les PES inscrits dont l'écriture a été interrompue après la validation.

    Le temporaire complet (même SHA-256) est renommé ; sinon le fichier est réécrit depuis la
    base : mêmes numéros, mêmes titres. Rien n'est renuméroté, rien n'est titré deux fois.
    """
    finis: list[Path] = []
    with app.moteur.connect() as conn:
        en_cours = conn.execute(select(FichierExporte.id, FichierExporte.nom, FichierExporte.chemin,
                                       FichierExporte.sha256).where(
            FichierExporte.nature == NATURE_PES, FichierExporte.statut == EN_ECRITURE)
            .order_by(FichierExporte.id)).all()
    for f in en_cours:
        chemin = Path(f.chemin)
        chemin.parent.mkdir(parents=True, exist_ok=True)
        temporaire = temporaire_de(chemin)
        resume: ResumePes | None = None
        if chemin.exists() and mesurer(chemin).sha256 == f.sha256:
            pass  # renommé juste avant l'arrêt
        elif temporaire.exists() and mesurer(temporaire).sha256 == f.sha256:
            _publier(temporaire, chemin)
        else:
            with app.moteur.connect() as conn:
                resume = _ecrire_temporaire(conn, app, f.id, f.nom, chemin)
            if f.sha256 is not None and resume.sha256 != f.sha256:
                log.warning("pes_reecrit_different", fichier=f.nom, sha256_inscrit=f.sha256, sha256=resume.sha256)
            _publier(temporaire, chemin)
        _marquer_ecrit(app, f.id, resume)
        log.info("pes_repris", fichier=f.nom, chemin=str(chemin))
        finis.append(chemin)
    return finis


# --- Le service ---------------------------------------------------------------------------------

def _emettre_regie(app: Application, regie_code: str, aujourd_hui: date, max_pieces: int,
                   bilan: BilanTitres) -> None:
    with app.moteur.begin() as conn:
        verrouiller(conn)
        r = conn.execute(select(Regie.code, Regie.mode, Regie.delai_titre_jours).where(Regie.code == regie_code)).one()
        regie = _RegieTitres(r.code, r.mode, r.delai_titre_jours)
        candidates, impossibles = _candidates(conn, regie, aujourd_hui)
        bilan.impossibles += len(impossibles)
        _signaler_impossibles(conn, impossibles)
        if not candidates:
            return
        fichier_id, nom = _inscrire(conn, app, regie, candidates, aujourd_hui, max_pieces)
        chemin = app.dossier_donnees(DOSSIER_SORTIE) / nom
        resume = _ecrire_temporaire(conn, app, fichier_id, nom, chemin)
        conn.execute(update(FichierExporte).where(FichierExporte.id == fichier_id).values(
            sha256=resume.sha256, taille=resume.taille_octets))
    # Validé : les numéros sont pris pour de bon. Un arrêt ici est repris au passage suivant.
    _publier(temporaire_de(chemin), chemin)
    _marquer_ecrit(app, fichier_id)
    bilan.fichiers.append(chemin)
    bilan.titres += resume.nombre_pieces
    bilan.montant += resume.montant_centimes
    log.info("titres_emis", regie=regie_code, fichier=nom, titres=resume.nombre_pieces,
             bordereaux=len(resume.bordereaux), montant=centimes_en_euros(resume.montant_centimes),
             impossibles=len(impossibles))


def emettre(app: Application, aujourd_hui: date, *, max_pieces_par_bordereau: int = MAX_NOMBRE_PIECES) -> BilanTitres:
    """Comme `emettre_titres`, avec le bilan complet (titres, montant, factures écartées)."""
    if not 1 <= max_pieces_par_bordereau <= MAX_NOMBRE_PIECES:
        raise ValueError(f"max_pieces_par_bordereau : de 1 à {MAX_NOMBRE_PIECES}")
    bilan = BilanTitres()
    bilan.fichiers.extend(finir_fichiers_interrompus(app))
    for code in sorted(app.config.regies):
        _emettre_regie(app, code, aujourd_hui, max_pieces_par_bordereau, bilan)
    return bilan


def emettre_titres(app: Application, aujourd_hui: date, *,
                   max_pieces_par_bordereau: int = MAX_NOMBRE_PIECES) -> list[Path]:
    """`regie titres emettre` : les PES_Aller écrits (ou achevés) dans la boîte d'envoi, un par régie."""
    return emettre(app, aujourd_hui, max_pieces_par_bordereau=max_pieces_par_bordereau).fichiers
