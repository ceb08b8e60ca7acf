"""Lectures des pages : tableau de bord, file de revue, paiement, compte famille, fichiers, titres, audit.

Chaque liste est paginée (par clé pour la file et le journal : le coût ne dépend pas de la
page) et s'appuie sur des index ; rien ici n'écrit.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Select, and_, case, func, or_, select, text
from sqlalchemy.orm import aliased

from connecteurs.cesu.titres import debut_du_jour as minuit_paris
from regie.application import Application
from regie.registre.modeles import (
    Affectation,
    Anomalie,
    Audit,
    Bordereau,
    Dossier,
    EtatFacture,
    Execution,
    Facture,
    FichierExporte,
    FichierRecu,
    MouvementCompte,
    Paiement,
    Remise,
    Titre,
)
from regie.registre.modeles_pages import FILE_OUVERTE
from regie.registre.moteur import connexion_lecture
from regie.registre.types import maintenant
from regie.services.compte import journal

PARIS = ZoneInfo("Europe/Paris")
TAILLE_PAGE = 50
STATUTS_FILE = {"ouvertes": ("ouverte", "en_cours"), "resolues": ("resolue",),
                "toutes": ("ouverte", "en_cours", "resolue")}
# Âge dans la file (jours) : les tranches du tableau de bord.
TRANCHES_AGE = ((0, 1, "< 1 j"), (1, 7, "1 à 7 j"), (7, 30, "8 à 30 j"), (30, None, "> 30 j"))
CANAUX_CONFIRMATION = ("cfonb", "crcesu")


def debut_du_jour(jour: date) -> datetime:
    """Minuit à Paris, en UTC (les instants sont stockés en UTC)."""
    return minuit_paris(jour).astimezone(UTC)


# --- Tableau de bord ---------------------------------------------------------------------------

@dataclass
class TableauDeBord:
    jour: date
    par_canal: list[dict[str, Any]]
    par_regie: list[dict[str, Any]]
    file_par_code: list[dict[str, Any]]
    file_total: int
    remises: list[dict[str, Any]]
    titres_par_statut: dict[str, int]
    bordereaux_rejetes: list[dict[str, Any]]
    fichiers_refuses: list[dict[str, Any]]
    derniers_exports: list[dict[str, Any]]
    nuits: list[dict[str, Any]]


def tableau_de_bord(app: Application, jour: date | None = None) -> TableauDeBord:
    now = maintenant()
    jour = jour or now.astimezone(PARIS).date()
    d_jour, d_mois = debut_du_jour(jour), debut_du_jour(jour.replace(day=1))
    fin = debut_du_jour(jour + timedelta(days=1))
    with connexion_lecture(app.moteur) as c:
        du_jour = Paiement.recu_le >= d_jour
        # L'argent reçu : les confirmations (relevé DFT d'une remise, CRCESU) ne comptent pas deux fois.
        par_canal = [dict(r._mapping) for r in c.execute(
            select(Paiement.canal,
                   func.sum(case((du_jour, 1), else_=0)).label("nb_jour"),
                   func.sum(case((du_jour, Paiement.montant), else_=0)).label("montant_jour"),
                   func.count().label("nb_mois"), func.sum(Paiement.montant).label("montant_mois"))
            .where(Paiement.recu_le >= d_mois, Paiement.recu_le < fin, Paiement.statut != "confirme",
                   Paiement.canal.not_in(CANAUX_CONFIRMATION))
            .group_by(Paiement.canal).order_by(Paiement.canal))]
        aff_jour = Paiement.recu_le >= d_jour
        par_regie = [dict(r._mapping) for r in c.execute(
            select(Facture.regie_code.label("regie"),
                   func.sum(case((aff_jour, Affectation.montant), else_=0)).label("montant_jour"),
                   func.sum(Affectation.montant).label("montant_mois"))
            .select_from(Affectation).join(Paiement, Paiement.id == Affectation.paiement_id)
            .join(Facture, Facture.id == Affectation.facture_id)
            .where(Paiement.recu_le >= d_mois, Paiement.recu_le < fin)
            .group_by(Facture.regie_code).order_by(Facture.regie_code))]
        colonnes = [func.count().label("total")]
        for i, (de, a, _libelle) in enumerate(TRANCHES_AGE):
            cond = [Anomalie.cree_le <= now - timedelta(days=de)]
            if a is not None:
                cond.append(Anomalie.cree_le > now - timedelta(days=a))
            colonnes.append(func.sum(case((and_(*cond), 1), else_=0)).label(f"t{i}"))
        file_par_code = [dict(r._mapping) for r in c.execute(
            select(Anomalie.code, *colonnes).where(Anomalie.statut.in_(STATUTS_FILE["ouvertes"]))
            .group_by(Anomalie.code).order_by(func.count().desc(), Anomalie.code))]
        remises = [dict(r._mapping) for r in c.execute(
            select(Remise.identifiant, Remise.canal, Remise.montant, Remise.nombre, Remise.statut,
                   Remise.deposee_le, Remise.cree_le)
            .where(Remise.statut != "confirmee").order_by(Remise.cree_le, Remise.id).limit(20))]
        titres = {s: int(n) for s, n in c.execute(
            select(Titre.statut, func.count()).group_by(Titre.statut))}
        rejetes = [dict(r._mapping) for r in c.execute(
            select(Bordereau.exercice, Bordereau.numero, Bordereau.regie_code, Bordereau.nombre_pieces,
                   Bordereau.montant, Bordereau.erreurs, Bordereau.cree_le)
            .where(Bordereau.statut == "rejete").order_by(Bordereau.cree_le.desc()).limit(10))]
        refuses = [dict(r._mapping) for r in c.execute(
            select(FichierRecu.id, FichierRecu.nom, FichierRecu.canal, FichierRecu.recu_le, FichierRecu.erreurs)
            .where(FichierRecu.statut == "refuse").order_by(FichierRecu.recu_le.desc()).limit(5))]
        exports = [dict(r._mapping) for r in c.execute(
            select(FichierExporte.nom, FichierExporte.nature, FichierExporte.statut, FichierExporte.cree_le,
                   FichierExporte.depose_le)
            .order_by(FichierExporte.cree_le.desc()).limit(5))]
        nuits = []
        for r in c.execute(select(Execution.id, Execution.date_metier, Execution.debut, Execution.fin,
                                  Execution.statut, Execution.etapes)
                           .order_by(Execution.debut.desc(), Execution.id.desc()).limit(5)):
            nuit = dict(r._mapping)
            nuit["echecs"] = [f"{e['libelle']} : {e.get('erreur') or e['statut']}" for e in r.etapes
                              if e.get("statut") in ("echec", "injoignable")]
            nuits.append(nuit)
    return TableauDeBord(jour, par_canal, par_regie, file_par_code, sum(int(r["total"]) for r in file_par_code),
                         remises, titres, rejetes, refuses, exports, nuits)


# --- File de revue -----------------------------------------------------------------------------

@dataclass(frozen=True)
class FiltresFile:
    code: str | None = None
    canal: str | None = None
    regie: str | None = None
    montant_min: int | None = None
    montant_max: int | None = None
    age_min: int | None = None  # jours dans la file, au moins
    statut: str = "ouvertes"


@dataclass
class PageFile:
    lignes: list[dict[str, Any]]
    total: int
    suivant: str | None = None
    precedent: str | None = None
    codes: list[str] = field(default_factory=list)
    canaux: list[str] = field(default_factory=list)


def _curseur(cree_le: datetime, ident: int) -> str:
    return f"{cree_le.astimezone(UTC).strftime('%Y%m%dT%H%M%S%f')}.{ident}"


def lire_curseur(texte: str | None) -> tuple[datetime, int] | None:
    if not texte:
        return None
    try:
        instant, ident = texte.split(".", 1)
        return datetime.strptime(instant, "%Y%m%dT%H%M%S%f").replace(tzinfo=UTC), int(ident)
    except ValueError:
        return None


def _filtrer_file(req: Select[Any], f: FiltresFile, facture_ref: Any) -> Select[Any]:
    statuts = STATUTS_FILE.get(f.statut, STATUTS_FILE["ouvertes"])
    if statuts == STATUTS_FILE["ouvertes"]:
        req = req.where(text(f"anomalie.{FILE_OUVERTE}"))  # l'index partiel de la file, dans l'ordre des pages
    else:
        req = req.where(Anomalie.statut.in_(statuts))
    if f.code:
        req = req.where(Anomalie.code == f.code)
    if f.canal:
        req = req.where(Paiement.canal == f.canal)
    if f.regie:
        req = req.where(facture_ref.regie_code == f.regie)
    if f.montant_min is not None:
        req = req.where(Paiement.montant >= f.montant_min)
    if f.montant_max is not None:
        req = req.where(Paiement.montant <= f.montant_max)
    if f.age_min:
        req = req.where(Anomalie.cree_le <= maintenant() - timedelta(days=f.age_min))
    return req


def file_revue(app: Application, filtres: FiltresFile, *, apres: str | None = None, avant: str | None = None,
               taille: int = TAILLE_PAGE) -> PageFile:
    """Une page de la file, la plus ancienne d'abord ; `apres`/`avant` : curseurs de la page voisine."""
    # La régie d'un paiement : celle de la facture que sa référence nomme (s'il en nomme une).
    fref = aliased(Facture)
    base = (select(Anomalie.id, Anomalie.code, Anomalie.statut, Anomalie.raison, Anomalie.preuve,
                   Anomalie.suggestions, Anomalie.cree_le, Paiement.id.label("paiement_id"), Paiement.canal,
                   Paiement.reference, Paiement.montant, Paiement.affecte, Paiement.recu_le, Paiement.brut,
                   Paiement.reference_facture, fref.regie_code.label("regie"))
            .select_from(Anomalie).join(Paiement, Paiement.id == Anomalie.paiement_id)
            .outerjoin(fref, fref.numero == Paiement.reference_facture))
    base = _filtrer_file(base, filtres, fref)
    cle_apres, cle_avant = lire_curseur(apres), lire_curseur(avant)
    if cle_avant is not None:
        req = base.where(or_(Anomalie.cree_le < cle_avant[0],
                             and_(Anomalie.cree_le == cle_avant[0], Anomalie.id < cle_avant[1])))
        req = req.order_by(Anomalie.cree_le.desc(), Anomalie.id.desc()).limit(taille + 1)
    else:
        req = base
        if cle_apres is not None:
            req = req.where(or_(Anomalie.cree_le > cle_apres[0],
                                and_(Anomalie.cree_le == cle_apres[0], Anomalie.id > cle_apres[1])))
        req = req.order_by(Anomalie.cree_le, Anomalie.id).limit(taille + 1)
    compte = select(func.count()).select_from(Anomalie)
    if filtres.canal or filtres.regie or filtres.montant_min is not None or filtres.montant_max is not None:
        compte = (compte.join(Paiement, Paiement.id == Anomalie.paiement_id)
                  .outerjoin(fref, fref.numero == Paiement.reference_facture))
    else:
        # Sans filtre sur le paiement ni la facture : compter les anomalies de paiement suffit (pas de jointure).
        compte = compte.where(Anomalie.paiement_id.is_not(None))
    compte = _filtrer_file(compte, filtres, fref)
    with connexion_lecture(app.moteur) as c:
        lignes = [dict(r._mapping) for r in c.execute(req)]
        total = int(c.execute(compte).scalar_one())
        codes = list(c.execute(select(Anomalie.code).distinct().order_by(Anomalie.code)).scalars())
        canaux = list(c.execute(select(Paiement.canal).distinct().order_by(Paiement.canal)).scalars())
    encore = len(lignes) > taille
    lignes = lignes[:taille]
    if cle_avant is not None:
        lignes.reverse()
        suivant = _curseur(lignes[-1]["cree_le"], lignes[-1]["id"]) if lignes else None
        precedent = _curseur(lignes[0]["cree_le"], lignes[0]["id"]) if lignes and encore else None
    else:
        suivant = _curseur(lignes[-1]["cree_le"], lignes[-1]["id"]) if lignes and encore else None
        precedent = _curseur(lignes[0]["cree_le"], lignes[0]["id"]) if lignes and cle_apres is not None else None
    return PageFile(lignes, total, suivant, precedent, codes, canaux)


# --- Un paiement ---------------------------------------------------------------------------------

def detail_paiement(app: Application, paiement_id: int) -> dict[str, Any] | None:
    with connexion_lecture(app.moteur) as c:
        p = c.execute(select(Paiement.__table__).where(Paiement.id == paiement_id)).first()
        if p is None:
            return None
        paiement = dict(p._mapping)
        anomalies = [dict(r._mapping) for r in c.execute(
            select(Anomalie.__table__).where(Anomalie.paiement_id == paiement_id)
            .order_by(case((Anomalie.statut == "resolue", 1), else_=0), Anomalie.cree_le.desc(), Anomalie.id.desc()))]
        affectations = [dict(r._mapping) for r in c.execute(
            select(Affectation.id, Affectation.montant, Affectation.regle, Affectation.preuve, Affectation.auteur,
                   Affectation.cree_le, Affectation.annule_id, Facture.numero.label("facture"),
                   EtatFacture.statut.label("facture_statut"))
            .join(Facture, Facture.id == Affectation.facture_id)
            .join(EtatFacture, EtatFacture.facture_id == Affectation.facture_id)
            .where(Affectation.paiement_id == paiement_id).order_by(Affectation.cree_le, Affectation.id))]
        net: dict[str, int] = {}
        for a in affectations:
            net[a["facture"]] = net.get(a["facture"], 0) + int(a["montant"])
        affectations = _par_facture(affectations)
        dossier = None
        if paiement["dossier_id"] is not None:
            dossier = c.execute(select(Dossier.numero).where(Dossier.id == paiement["dossier_id"])).scalar()
        # Les suggestions du moteur, avec l'état actuel de chaque facture (il a pu changer depuis).
        suggestions: list[dict[str, Any]] = []
        ouverte = next((a for a in anomalies if a["statut"] != "resolue"), None)
        source = ouverte or (anomalies[0] if anomalies else None)
        if source and source["suggestions"]:
            numeros = [s.get("facture") for s in source["suggestions"] if s.get("facture")]
            actuelles = {r.numero: r for r in c.execute(
                select(Facture.numero, Facture.montant, EtatFacture.paye, EtatFacture.avoirs, EtatFacture.statut,
                       Dossier.numero.label("dossier")).join(Dossier, Dossier.id == Facture.dossier_id)
                .join(EtatFacture, EtatFacture.facture_id == Facture.id)
                .where(Facture.numero.in_(numeros)))}
            for s in sorted(source["suggestions"], key=lambda s: -float(s.get("score") or 0)):
                f = actuelles.get(s.get("facture"))
                suggestions.append({**s, "reste_actuel": (f.montant - f.paye - f.avoirs) if f else None,
                                    "statut_actuel": f.statut if f else None,
                                    "dossier": s.get("dossier") or (f.dossier if f else None)})
        credit = None
        if dossier:
            credit = int(c.execute(select(func.coalesce(func.sum(MouvementCompte.delta_credit), 0))
                                   .where(MouvementCompte.dossier_id == paiement["dossier_id"])).scalar_one())
        remise = None
        if paiement["remise_id"] is not None:
            r = c.execute(select(Remise.identifiant, Remise.statut, Remise.montant, Remise.nombre)
                          .where(Remise.id == paiement["remise_id"])).first()
            remise = dict(r._mapping) if r else None
        audit = [dict(r._mapping) for r in c.execute(
            select(Audit.__table__).where(Audit.objet == "paiement", Audit.objet_id == str(paiement_id))
            .order_by(Audit.quand.desc(), Audit.id.desc()).limit(50))]
    return {"paiement": paiement, "anomalie": ouverte, "anomalies": anomalies, "affectations": affectations,
            "net_par_facture": {k: v for k, v in net.items() if v > 0}, "dossier": dossier,
            "suggestions": suggestions, "credit": credit, "remise": remise, "audit": audit}


def _par_facture(affectations: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Une ligne par facture et par décision (la base en garde une par ligne de facture)."""
    groupes: dict[tuple[Any, ...], dict[str, Any]] = {}
    resultat: list[dict[str, Any]] = []
    for a in affectations:
        cle = (a["facture"], a["regle"], a["auteur"], a["montant"] < 0)
        g = groupes.get(cle)
        # Une même décision écrit ses lignes dans la même transaction, à quelques millisecondes près.
        if g is not None and abs((a["cree_le"] - g["cree_le"]).total_seconds()) < 2:
            g["montant"] += a["montant"]
        else:
            groupes[cle] = dict(a)
            resultat.append(groupes[cle])
    return resultat


# --- Compte famille --------------------------------------------------------------------------------

def compte_famille(app: Application, numero: str) -> dict[str, Any] | None:
    with connexion_lecture(app.moteur) as c:
        d = c.execute(select(Dossier.id, Dossier.numero).where(Dossier.numero == numero)).first()
        if d is None:
            return None
        titre = aliased(Titre)
        factures = [dict(r._mapping) for r in c.execute(
            select(Facture.id, Facture.numero, Facture.regie_code, Facture.periode, Facture.echeance,
                   Facture.montant, EtatFacture.paye, EtatFacture.avoirs, EtatFacture.statut, Facture.nom,
                   Facture.prenom, titre.exercice, titre.piece, titre.statut.label("titre_statut"))
            .join(EtatFacture, EtatFacture.facture_id == Facture.id)
            .outerjoin(titre, and_(titre.facture_id == Facture.id, titre.statut != "annule"))
            .where(Facture.dossier_id == d.id).order_by(Facture.emise_le, Facture.numero))]
        ids_factures = [f["id"] for f in factures]
        paiements = [dict(r._mapping) for r in c.execute(
            select(Paiement.id, Paiement.canal, Paiement.reference, Paiement.montant, Paiement.affecte,
                   Paiement.en_credit, Paiement.rembourse, Paiement.statut, Paiement.anomalie, Paiement.recu_le)
            .where(or_(Paiement.id.in_(select(MouvementCompte.paiement_id).where(MouvementCompte.dossier_id == d.id)),
                       Paiement.id.in_(select(Affectation.paiement_id).where(Affectation.facture_id.in_(ids_factures)))))
            .order_by(Paiement.recu_le, Paiement.id))]
        mouvements = [{"quand": m.quand, "nature": m.nature, "libelle": m.libelle, "montant": m.montant,
                       "delta_du": m.delta_du, "delta_credit": m.delta_credit, "delta_tresor": m.delta_tresor,
                       "paiement_id": m.paiement_id, "solde_du": m.du, "solde_credit": m.credit,
                       "solde_tresor": m.tresor} for m in journal(c, d.id)]
    du, credit, tresor = ((mouvements[-1]["solde_du"], mouvements[-1]["solde_credit"], mouvements[-1]["solde_tresor"])
                          if mouvements else (0, 0, 0))
    return {"numero": d.numero, "factures": factures, "paiements": paiements, "mouvements": mouvements,
            "du": du, "credit": credit, "tresor": tresor,
            "payeur": f"{factures[-1]['prenom']} {factures[-1]['nom']}" if factures else None}


def chercher_dossier(app: Application, texte: str) -> str | None:
    """Un numéro de dossier, de facture ou un nom de payeur : le dossier trouvé (le premier)."""
    texte = texte.strip()
    if not texte:
        return None
    with connexion_lecture(app.moteur) as c:
        if c.execute(select(Dossier.id).where(Dossier.numero == texte)).first():
            return texte
        r = c.execute(select(Dossier.numero).join(Facture, Facture.dossier_id == Dossier.id)
                      .where(or_(Facture.numero == texte, Facture.refdet == texte)).limit(1)).scalar()
        if r:
            return str(r)
        r = c.execute(select(Dossier.numero).join(Facture, Facture.dossier_id == Dossier.id)
                      .where(func.upper(Facture.nom) == texte.upper()).order_by(Dossier.numero).limit(1)).scalar()
        return str(r) if r else None


# --- Fichiers, titres, audit -------------------------------------------------------------------------

def fichiers(app: Application, *, statut: str | None, canal: str | None, page: int,
             taille: int = TAILLE_PAGE) -> dict[str, Any]:
    req = select(FichierRecu.__table__)
    compte = select(func.count()).select_from(FichierRecu)
    for cond in ([FichierRecu.statut == statut] if statut else []) + ([FichierRecu.canal == canal] if canal else []):
        req, compte = req.where(cond), compte.where(cond)
    with connexion_lecture(app.moteur) as c:
        lignes = [dict(r._mapping) for r in c.execute(
            req.order_by(FichierRecu.recu_le.desc(), FichierRecu.id.desc()).offset((page - 1) * taille).limit(taille))]
        total = int(c.execute(compte).scalar_one())
        canaux = list(c.execute(select(FichierRecu.canal).distinct().order_by(FichierRecu.canal)).scalars())
        exportes = [dict(r._mapping) for r in c.execute(
            select(FichierExporte.__table__)
            .order_by(FichierExporte.cree_le.desc(), FichierExporte.id.desc()).limit(20))]
    return {"lignes": lignes, "total": total, "page": page, "pages": max(1, -(-total // taille)),
            "canaux": canaux, "exportes": exportes}


def titres(app: Application, *, statut: str | None, page: int, taille: int = TAILLE_PAGE) -> dict[str, Any]:
    req = (select(Titre.id, Titre.exercice, Titre.piece, Titre.montant, Titre.encaisse, Titre.statut, Titre.erreurs,
                  Titre.cree_le, Bordereau.numero.label("bordereau"), Facture.numero.label("facture"),
                  Dossier.numero.label("dossier"))
           .join(Bordereau, Bordereau.id == Titre.bordereau_id).join(Facture, Facture.id == Titre.facture_id)
           .join(Dossier, Dossier.id == Facture.dossier_id))
    compte = select(func.count()).select_from(Titre)
    if statut:
        req, compte = req.where(Titre.statut == statut), compte.where(Titre.statut == statut)
    with connexion_lecture(app.moteur) as c:
        lignes = [dict(r._mapping) for r in c.execute(
            req.order_by(Titre.exercice.desc(), Titre.piece.desc()).offset((page - 1) * taille).limit(taille))]
        total = int(c.execute(compte).scalar_one())
        bordereaux = [dict(r._mapping) for r in c.execute(
            select(Bordereau.exercice, Bordereau.numero, Bordereau.regie_code, Bordereau.nombre_pieces,
                   Bordereau.montant, Bordereau.statut, Bordereau.erreurs, Bordereau.cree_le,
                   FichierExporte.nom.label("fichier"))
            .outerjoin(FichierExporte, FichierExporte.id == Bordereau.fichier_id)
            .order_by(Bordereau.exercice.desc(), Bordereau.numero.desc()).limit(30))]
    return {"lignes": lignes, "total": total, "page": page, "pages": max(1, -(-total // taille)),
            "bordereaux": bordereaux}


@dataclass(frozen=True)
class FiltresAudit:
    qui: str | None = None
    action: str | None = None
    objet: str | None = None
    objet_id: str | None = None


def journal_audit(app: Application, f: FiltresAudit, *, avant: int | None = None,
                  taille: int = TAILLE_PAGE) -> dict[str, Any]:
    """Les entrées les plus récentes d'abord ; `avant` : l'id de la dernière entrée de la page précédente."""
    req = select(Audit.__table__)
    for col, val in ((Audit.qui, f.qui), (Audit.action, f.action), (Audit.objet, f.objet),
                     (Audit.objet_id, f.objet_id)):
        if val:
            req = req.where(col == val)
    if avant is not None:
        req = req.where(Audit.id < avant)
    with connexion_lecture(app.moteur) as c:
        lignes = [dict(r._mapping) for r in c.execute(req.order_by(Audit.id.desc()).limit(taille + 1))]
        actions = list(c.execute(select(Audit.action).distinct().order_by(Audit.action)).scalars())
    encore = len(lignes) > taille
    lignes = lignes[:taille]
    return {"lignes": lignes, "suivant": lignes[-1]["id"] if encore and lignes else None, "actions": actions}
