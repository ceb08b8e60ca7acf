"""Les décisions des agents : une transaction chacune, qui écrit le compte famille et l'audit.

La CLI, l'API et les pages appellent ces mêmes fonctions. Une décision sur un paiement qui a
changé depuis que l'agent l'a regardé (`version`) est refusée. Défaire ajoute des écritures
inverses : rien n'est jamais effacé.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import structlog
from sqlalchemy import Connection, Row, insert, select, update
from sqlalchemy.exc import OperationalError

from rapprochement.moteur import verrouiller
from rapprochement.regles import allouer
from regie.application import Application
from regie.domaine import FactureEtat
from regie.erreurs import ErreurRegie
from regie.montants import centimes_en_euros as eur
from regie.registre.etats import lire_facture, porter
from regie.registre.masse import table_de
from regie.registre.modeles import (
    Affectation,
    Anomalie,
    Audit,
    Avoir,
    Dossier,
    EtatFacture,
    Facture,
    MouvementCompte,
    Paiement,
    Remboursement,
)
from regie.registre.moteur import attente_du_verrou
from regie.registre.types import maintenant
from regie.services.compte import NATURE_PAIEMENT, libelle_paiement

log = structlog.get_logger()


class DecisionRefusee(ErreurRegie):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    def __str__(self) -> str:
        return self.message


# --- Lecture sous verrou ------------------------------------------------------------------------------

# Ce qu'une décision attend au plus le moteur ou l'import en cours, avant d'être refusée (réessayable).
ATTENTE_DU_MOTEUR_S = 30.0


@contextmanager
def _transaction(app: Application) -> Iterator[Connection]:
    """La transaction d'une décision, après celle du moteur qui tourne : celui-ci lit les factures d'un lot
    puis écrit leur nouvel état, et une décision prise entre les deux serait écrasée (PostgreSQL : son
    verrou ; SQLite : BEGIN IMMEDIATE, le verrou d'écriture que tient tout import). Au-delà de
    `ATTENTE_DU_MOTEUR_S`, la décision est refusée avec un message clair plutôt que de faire attendre la page.
    """
    attente_ms = int(ATTENTE_DU_MOTEUR_S * 1000)
    with app.moteur.connect() as conn, attente_du_verrou(conn, attente_ms):
        try:
            transaction = conn.begin()
            if conn.dialect.name == "postgresql":
                conn.exec_driver_sql(f"SET LOCAL lock_timeout = '{attente_ms}ms'")
                verrouiller(conn)
        except OperationalError as exc:
            if not _verrou_occupe(exc):
                raise
            raise DecisionRefusee("RAPPROCHEMENT_EN_COURS", "Un import ou un rapprochement est en cours : la "
                                  "décision n'a pas été enregistrée ; réessayez dans un instant.") from None
        with transaction:
            yield conn


def _verrou_occupe(exc: OperationalError) -> bool:
    """Le verrou n'a pas été obtenu à temps : SQLITE_BUSY, ou lock_not_available (55P03) de PostgreSQL."""
    return (getattr(exc.orig, "sqlite_errorname", None) == "SQLITE_BUSY"
            or getattr(exc.orig, "sqlstate", None) == "55P03")


def _paiement(conn: Connection, paiement_id: int, version: int | None) -> Row[Any]:
    req = select(table_de(Paiement)).where(Paiement.id == paiement_id)
    if conn.dialect.name == "postgresql":
        req = req.with_for_update()
    p = conn.execute(req).first()
    if p is None:
        raise DecisionRefusee("PAIEMENT_INCONNU", f"Le paiement {paiement_id} est inconnu.")
    if version is not None and p.version != version:
        raise DecisionRefusee("PAIEMENT_MODIFIE", f"Le paiement {p.canal} {p.reference} a changé depuis que vous "
                                                  f"l'avez consulté (version {version}, maintenant {p.version}) : "
                                                  "rechargez la page et décidez de nouveau.")
    return p


def _facture(conn: Connection, numero: str) -> FactureEtat:
    f = lire_facture(conn, numero, pour_mise_a_jour=True)
    if f is None:
        raise DecisionRefusee("FACTURE_INCONNUE", f"La facture {numero} est inconnue.")
    return f


def _disponible(p: Row[Any]) -> int:
    return int(p.montant - p.affecte - p.en_credit - p.rembourse)


def _vue(p: Row[Any] | dict[str, Any]) -> dict[str, Any]:
    d = p._asdict() if isinstance(p, Row) else p
    return {k: d[k] for k in ("montant", "affecte", "en_credit", "rembourse", "statut", "anomalie") if k in d}


# --- Écritures ----------------------------------------------------------------------------------------------

def _audit(conn: Connection, qui: str, action: str, objet: str, objet_id: Any, motif: str | None,
           avant: dict[str, Any], apres: dict[str, Any]) -> None:
    conn.execute(insert(Audit), {"quand": maintenant(), "qui": qui, "action": action, "objet": objet,
                                 "objet_id": str(objet_id), "motif": motif, "avant": avant, "apres": apres})


def _journal(conn: Connection, dossier_id: int, nature: str, libelle: str, montant: int, *, du: int = 0,
             credit: int = 0, tresor: int = 0, facture_id: int | None = None, paiement_id: int | None = None,
             avoir_id: int | None = None) -> None:
    now = maintenant()
    conn.execute(insert(MouvementCompte), {
        "dossier_id": dossier_id, "quand": now, "nature": nature, "libelle": libelle[:300], "montant": montant,
        "delta_du": du, "delta_credit": credit, "delta_tresor": tresor, "facture_id": facture_id,
        "paiement_id": paiement_id, "avoir_id": avoir_id, "cree_le": now})


def _statut(montant: int, affecte: int, en_credit: int, rembourse: int, anomalie: str | None) -> str:
    if montant - affecte - en_credit - rembourse > 0:
        return "en_anomalie" if anomalie or affecte == 0 else "partiellement_affecte"
    if affecte == montant:
        return "affecte"
    if affecte == 0 and en_credit == 0:
        return "annule"
    return "partiellement_affecte"


def _mettre_a_jour(conn: Connection, p: Row[Any], *, affecte: int, en_credit: int, rembourse: int,
                   dossier_id: int | None, qui: str, resolution: str, motif: str, statut: str | None = None
                   ) -> dict[str, Any]:
    reste = p.montant - affecte - en_credit - rembourse
    anomalie = p.anomalie if reste > 0 else None
    statut = statut or _statut(p.montant, affecte, en_credit, rembourse, anomalie)
    valeurs = {"affecte": affecte, "en_credit": en_credit, "rembourse": rembourse, "statut": statut,
               "anomalie": anomalie, "decision_manuelle": True, "version": p.version + 1,
               "dossier_id": dossier_id or p.dossier_id}
    conn.execute(update(table_de(Paiement)).where(Paiement.id == p.id).values(valeurs))
    if reste == 0 or statut == "annule":
        conn.execute(update(Anomalie).where(Anomalie.paiement_id == p.id, Anomalie.statut != "resolue").values(
            statut="resolue", resolue_le=maintenant(), resolue_par=qui, resolution=resolution, note=motif))
    return valeurs


def _motif_requis(motif: str, action: str) -> None:
    if not motif or not motif.strip():
        raise DecisionRefusee("MOTIF_REQUIS", f"Un motif est obligatoire pour {action}.")


# --- Les décisions ---------------------------------------------------------------------------------------

def affecter(app: Application, paiement_id: int, repartition: Sequence[tuple[str, int]], *, qui: str, motif: str,
             version: int | None = None) -> None:
    """Affecte à la main tout ou partie d'un paiement à une ou plusieurs factures."""
    if not repartition or any(m <= 0 for _, m in repartition):
        raise DecisionRefusee("REPARTITION_INVALIDE", "Indiquez au moins une facture et des montants positifs.")
    with _transaction(app) as conn:
        p = _paiement(conn, paiement_id, version)
        if p.statut == "annule" or p.canal in ("cfonb", "crcesu"):
            raise DecisionRefusee("PAIEMENT_NON_AFFECTABLE", f"Le paiement {p.canal} {p.reference} ne peut pas être "
                                                             "affecté (annulé, ou simple confirmation).")
        total = sum(m for _, m in repartition)
        if total > _disponible(p):
            raise DecisionRefusee("MONTANT_DEPASSE", f"{eur(total)} € dépassent ce qui reste à affecter sur ce "
                                                     f"paiement ({eur(_disponible(p))} €).")
        dossier_id = None
        for numero, montant in repartition:
            f = _facture(conn, numero)
            if f.statut == "annulee":
                raise DecisionRefusee("FACTURE_ANNULEE", f"La facture {numero} est annulée.")
            if montant > f.reste:
                raise DecisionRefusee("RESTE_DEPASSE", f"{eur(montant)} € dépassent le reste dû sur {numero} "
                                                       f"({eur(f.reste)} €).")
            parts, code, raison = allouer(montant, f, cesu=p.canal == "cesu")
            if sum(x.montant for x in parts) != montant:
                raise DecisionRefusee(code or "REPARTITION_INVALIDE", raison or "Répartition impossible.")
            porter(conn, f, [(x.rang, x.montant) for x in parts], paiement_id=p.id, avoir_id=None,
                   regle="manuelle", preuve={"qui": qui, "motif": motif}, auteur=qui, cesu=p.canal == "cesu")
            _journal(conn, f.dossier_id, NATURE_PAIEMENT, f"{libelle_paiement(p.canal, p.reference, numero)} par {qui}",
                     montant, du=0 if f.titree else -montant, tresor=-montant if f.titree else 0, facture_id=f.id,
                     paiement_id=p.id)
            dossier_id = dossier_id or f.dossier_id
        apres = _mettre_a_jour(conn, p, affecte=p.affecte + total, en_credit=p.en_credit, rembourse=p.rembourse,
                               dossier_id=dossier_id, qui=qui, resolution="affectation_manuelle", motif=motif)
        _audit(conn, qui, "affecter", "paiement", p.id, motif, _vue(p),
               {**_vue(apres), "repartition": [{"facture": n, "montant": eur(m)} for n, m in repartition]})
    log.info("decision_affecter", paiement_id=paiement_id, qui=qui, total=total)


def garder_en_credit(app: Application, paiement_id: int, *, qui: str, motif: str, version: int | None = None,
                     dossier: str | None = None) -> None:
    """L'excédent d'un paiement devient crédit de la famille (pour ses prochaines factures)."""
    with _transaction(app) as conn:
        p = _paiement(conn, paiement_id, version)
        excedent = _disponible(p)
        if excedent <= 0 or p.statut == "annule":
            raise DecisionRefusee("RIEN_A_CREDITER", "Ce paiement n'a pas d'excédent à garder en crédit.")
        dossier_id = p.dossier_id
        if dossier is not None:
            dossier_id = conn.execute(select(Dossier.id).where(Dossier.numero == dossier)).scalar()
            if dossier_id is None:
                raise DecisionRefusee("DOSSIER_INCONNU", f"Le dossier {dossier} est inconnu.")
        if dossier_id is None:
            raise DecisionRefusee("FAMILLE_INCONNUE", "La famille de ce paiement n'est pas connue : indiquez le "
                                                      "dossier à créditer.")
        _journal(conn, dossier_id, "credit", f"Excédent du paiement {p.canal} {p.reference} gardé en crédit "
                                             f"({motif})", excedent, credit=excedent, paiement_id=p.id)
        apres = _mettre_a_jour(conn, p, affecte=p.affecte, en_credit=p.en_credit + excedent, rembourse=p.rembourse,
                               dossier_id=dossier_id, qui=qui, resolution="credit_famille", motif=motif)
        _audit(conn, qui, "garder_en_credit", "paiement", p.id, motif, _vue(p), _vue(apres))
    log.info("decision_credit", paiement_id=paiement_id, qui=qui, montant=excedent)


def appliquer_credit(app: Application, dossier: str, *, qui: str, motif: str,
                     factures: Sequence[str] | None = None) -> int:
    """Le crédit de la famille (excédents gardés, avoirs au-delà de la facture) paie ses factures ouvertes."""
    with _transaction(app) as conn:
        dossier_id = conn.execute(select(Dossier.id).where(Dossier.numero == dossier)).scalar()
        if dossier_id is None:
            raise DecisionRefusee("DOSSIER_INCONNU", f"Le dossier {dossier} est inconnu.")
        req = select(Facture.numero).join(EtatFacture, EtatFacture.facture_id == Facture.id).where(
            Facture.dossier_id == dossier_id, EtatFacture.statut.in_(("emise", "partiellement_payee")))
        if factures:
            req = req.where(Facture.numero.in_(factures))
        cibles = [_facture(conn, n) for n in conn.execute(req.order_by(Facture.echeance, Facture.numero)).scalars()]
        cibles = [f for f in cibles if not f.titree and f.reste > 0]
        sources: list[tuple[str, Any, int]] = [
            ("paiement", r, r.en_credit) for r in conn.execute(select(table_de(Paiement)).where(
                Paiement.dossier_id == dossier_id, Paiement.en_credit > 0).order_by(Paiement.recu_le, Paiement.id))]
        sources += [("avoir", r, r.montant - r.affecte) for r in conn.execute(select(table_de(Avoir)).where(
            Avoir.dossier_id == dossier_id, Avoir.montant > Avoir.affecte).order_by(Avoir.emise_le, Avoir.id))]
        total = 0
        for nature, src, dispo in sources:
            for f in cibles:
                if dispo <= 0:
                    break
                part = min(dispo, f.reste)
                if part <= 0:
                    continue
                parts, _, _ = allouer(part, f)
                est_paiement = nature == "paiement"
                porter(conn, f, [(x.rang, x.montant) for x in parts], paiement_id=src.id if est_paiement else None,
                       avoir_id=None if est_paiement else src.id, regle="credit_famille",
                       preuve={"qui": qui, "motif": motif}, auteur=qui, cesu=est_paiement and src.canal == "cesu")
                libelle = (f"Crédit ({'paiement ' + src.reference if est_paiement else 'avoir ' + src.numero}) "
                           f"appliqué à la facture {f.numero}")
                _journal(conn, dossier_id, "credit_applique", libelle, part, du=-part, credit=-part, facture_id=f.id,
                         paiement_id=src.id if est_paiement else None, avoir_id=None if est_paiement else src.id)
                if est_paiement:
                    conn.execute(update(table_de(Paiement)).where(Paiement.id == src.id).values(
                        en_credit=Paiement.en_credit - part, affecte=Paiement.affecte + part,
                        version=Paiement.version + 1, decision_manuelle=True,
                        statut="affecte" if src.affecte + part == src.montant else "partiellement_affecte"))
                else:
                    conn.execute(update(Avoir).where(Avoir.id == src.id).values(affecte=Avoir.affecte + part))
                dispo -= part
                total += part
        if total == 0:
            raise DecisionRefusee("RIEN_A_APPLIQUER", f"Le dossier {dossier} n'a pas de crédit ou pas de facture "
                                                      "ouverte à payer.")
        _audit(conn, qui, "appliquer_credit", "dossier", dossier, motif, {}, {"applique": eur(total)})
    log.info("decision_appliquer_credit", dossier=dossier, qui=qui, montant=total)
    return total


def rembourser(app: Application, paiement_id: int, montant: int, *, qui: str, motif: str,
               version: int | None = None) -> None:
    """Rembourse à la famille tout ou partie de ce qui n'est pas affecté (crédit gardé ou excédent)."""
    _motif_requis(motif, "un remboursement")
    with _transaction(app) as conn:
        p = _paiement(conn, paiement_id, version)
        possible = p.en_credit + _disponible(p)
        if montant <= 0 or montant > possible:
            raise DecisionRefusee("MONTANT_DEPASSE", f"On peut rembourser au plus {eur(possible)} € sur ce paiement.")
        depuis_credit = min(montant, p.en_credit)
        if depuis_credit and p.dossier_id is not None:
            _journal(conn, p.dossier_id, "remboursement", f"Remboursement du paiement {p.canal} {p.reference} "
                                                          f"({motif})", montant, credit=-depuis_credit,
                     paiement_id=p.id)
        conn.execute(insert(Remboursement), {"paiement_id": p.id, "dossier_id": p.dossier_id, "montant": montant,
                                             "motif": motif, "qui": qui, "statut": "a_faire",
                                             "cree_le": maintenant()})
        apres = _mettre_a_jour(conn, p, affecte=p.affecte, en_credit=p.en_credit - depuis_credit,
                               rembourse=p.rembourse + montant, dossier_id=None, qui=qui, resolution="remboursement",
                               motif=motif)
        _audit(conn, qui, "rembourser", "paiement", p.id, motif, _vue(p), {**_vue(apres), "rembourse": eur(montant)})
    log.info("decision_rembourser", paiement_id=paiement_id, qui=qui, montant=montant)


def _defaire(conn: Connection, p: Row[Any], qui: str, motif: str, facture_numero: str | None) -> int:
    """Écritures inverses des affectations d'un paiement (à une facture, ou à toutes). Rend le total défait."""
    req = select(Affectation.id, Affectation.parts, Facture.numero).join(
        Facture, Facture.id == Affectation.facture_id).where(Affectation.paiement_id == p.id)
    if facture_numero is not None:
        req = req.where(Facture.numero == facture_numero)
    nets: dict[str, dict[int, int]] = defaultdict(lambda: defaultdict(int))
    originales: dict[str, int] = {}
    for aid, lues, numero in conn.execute(req.order_by(Affectation.id)):
        for rang, montant in lues:
            nets[numero][rang] += montant
        if sum(m for _, m in lues) > 0:
            originales.setdefault(numero, aid)
    total = 0
    for numero, lignes in sorted(nets.items()):
        parts = [(rang, -m) for rang, m in sorted(lignes.items()) if m > 0]
        if not parts:
            continue
        f = _facture(conn, numero)
        defait = -porter(conn, f, parts, paiement_id=p.id, avoir_id=None, regle="annulation",
                         preuve={"qui": qui, "motif": motif}, auteur=qui, cesu=p.canal == "cesu",
                         annule_id=originales.get(numero))
        _journal(conn, f.dossier_id, "annulation", f"Annulation : paiement {p.canal} {p.reference} retiré de la "
                                                   f"facture {numero} ({motif})", defait,
                 du=0 if f.titree else defait, tresor=defait if f.titree else 0, facture_id=f.id, paiement_id=p.id)
        total += defait
    return total


def annuler_paiement(app: Application, paiement_id: int, *, qui: str, motif: str, version: int | None = None) -> None:
    """Chèque impayé, paiement rejeté : toutes ses affectations sont défaites, les factures rouvertes."""
    _motif_requis(motif, "annuler un paiement")
    with _transaction(app) as conn:
        p = _paiement(conn, paiement_id, version)
        if p.statut == "annule":
            raise DecisionRefusee("DEJA_ANNULE", "Ce paiement est déjà annulé.")
        defait = _defaire(conn, p, qui, motif, None)
        if p.en_credit and p.dossier_id is not None:
            _journal(conn, p.dossier_id, "annulation", f"Annulation du paiement {p.canal} {p.reference} : crédit "
                                                       "retiré", p.en_credit, credit=-p.en_credit, paiement_id=p.id)
        apres = _mettre_a_jour(conn, p, affecte=p.affecte - defait, en_credit=0, rembourse=p.rembourse,
                               dossier_id=None, qui=qui, resolution="paiement_annule", motif=motif, statut="annule")
        _audit(conn, qui, "annuler_paiement", "paiement", p.id, motif, _vue(p), _vue(apres))
    log.info("decision_annuler_paiement", paiement_id=paiement_id, qui=qui, defait=defait)


def annuler_affectation(app: Application, paiement_id: int, facture_numero: str, *, qui: str, motif: str,
                        version: int | None = None) -> None:
    """Défait l'affectation d'un paiement à une facture ; l'argent revient en revue."""
    _motif_requis(motif, "défaire une affectation")
    with _transaction(app) as conn:
        p = _paiement(conn, paiement_id, version)
        defait = _defaire(conn, p, qui, motif, facture_numero)
        if defait == 0:
            raise DecisionRefusee("RIEN_A_DEFAIRE", f"Ce paiement n'est pas affecté à la facture {facture_numero}.")
        affecte = p.affecte - defait
        conn.execute(insert(Anomalie), {
            "paiement_id": p.id, "canal": p.canal, "code": "A_REAFFECTER", "statut": "ouverte",
            "raison": f"L'affectation à la facture {facture_numero} a été défaite par {qui} ({motif}) : "
                      f"{eur(defait)} € attendent une nouvelle décision.",
            "preuve": {"facture": facture_numero, "defait": eur(defait)}, "suggestions": [], "cree_le": maintenant()})
        statut = "partiellement_affecte" if affecte > 0 else "en_anomalie"
        apres = _mettre_a_jour(conn, p, affecte=affecte, en_credit=p.en_credit, rembourse=p.rembourse,
                               dossier_id=None, qui=qui, resolution="affectation_annulee", motif=motif, statut=statut)
        _audit(conn, qui, "annuler_affectation", "paiement", p.id, motif, _vue(p),
               {**_vue(apres), "facture": facture_numero, "defait": eur(defait)})
    log.info("decision_annuler_affectation", paiement_id=paiement_id, facture=facture_numero, qui=qui)
