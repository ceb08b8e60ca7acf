"""Lectures du registre pour le portail : factures d'un dossier, une facture, compte famille.

Requêtes Core (pas d'objets ORM) : la page de statut d'une facture est l'appel le plus fréquent.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from functools import cache
from typing import Any, NamedTuple

from sqlalchemy import Connection, Engine, bindparam, func, select
from sqlalchemy.dialects.postgresql import psycopg as psycopg_pg

from regie.application import Application
from regie.montants import centimes_en_euros as eur
from regie.registre.modeles import (
    Affectation,
    Avoir,
    Dossier,
    EtatFacture,
    Facture,
    LignePanierPayfip,
    OperationPayfip,
    Paiement,
)
from regie.registre.moteur import connexion_lecture, curseur_psycopg
from regie.services.compte import journal
from regie.services.payfip import RAISONS, factures_en_cours, raison_non_payable

_COLONNES = (Facture.id, Facture.numero, Facture.regie_code, Dossier.numero.label("dossier"), Facture.periode,
             Facture.emise_le, Facture.echeance, Facture.montant, EtatFacture.paye, EtatFacture.avoirs,
             EtatFacture.statut)


class Introuvable(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def _resume(app: Application, f: Any, en_cours: bool, aujourd_hui: date) -> dict[str, Any]:
    reste = f.montant - f.paye - f.avoirs
    rc = app.config.regies.get(f.regie_code)
    raison = raison_non_payable(statut=f.statut, reste=reste, echeance=f.echeance,
                                mode_regie=rc.mode if rc else "regie",
                                delai_titre_jours=rc.delai_titre_jours if rc else 0,
                                en_cours=en_cours, aujourd_hui=aujourd_hui)
    return {"numero": f.numero, "regie": f.regie_code, "dossier": f.dossier, "periode": f.periode,
            "emise_le": f.emise_le, "echeance": f.echeance, "montant": eur(f.montant), "paye": eur(f.paye),
            "avoirs": eur(f.avoirs), "reste": eur(reste), "statut": f.statut, "payable_en_ligne": raison is None,
            "raison": raison, "raison_libelle": RAISONS.get(raison) if raison else None}


def factures_du_dossier(app: Application, numero_dossier: str, aujourd_hui: date) -> dict[str, Any]:
    with connexion_lecture(app.moteur) as conn:
        dossier_id = _dossier_id(conn, numero_dossier)
        lignes = conn.execute(select(*_COLONNES).join(Dossier, Dossier.id == Facture.dossier_id)
                              .join(EtatFacture, EtatFacture.facture_id == Facture.id)
                              .where(Facture.dossier_id == dossier_id)
                              .order_by(Facture.emise_le, Facture.numero)).all()
        en_cours = factures_en_cours(conn, [f.id for f in lignes])
    return {"dossier": numero_dossier,
            "factures": [_resume(app, f, f.id in en_cours, aujourd_hui) for f in lignes]}


_EN_COURS = (select(LignePanierPayfip.id)
             .join(OperationPayfip, OperationPayfip.id == LignePanierPayfip.operation_id)
             .where(LignePanierPayfip.facture_id == Facture.id,
                    OperationPayfip.statut.in_(("creee", "en_attente")))
             .exists().label("en_cours"))

# Construites une fois (bindparam) : la page de statut est l'appel le plus fréquent du portail.
_REQ_FACTURE = (select(*_COLONNES, _EN_COURS).join(Dossier, Dossier.id == Facture.dossier_id)
                .join(EtatFacture, EtatFacture.facture_id == Facture.id)
                .where(Facture.numero == bindparam("numero")))
_REQ_PAIEMENTS = (select(Paiement.canal, Paiement.reference, Paiement.recu_le, Paiement.montant,
                         func.sum(Affectation.montant).label("affecte"))
                  .join(Paiement, Paiement.id == Affectation.paiement_id)
                  .where(Affectation.facture_id == bindparam("facture_id"))
                  .group_by(Paiement.id, Paiement.canal, Paiement.reference, Paiement.recu_le, Paiement.montant)
                  .having(func.sum(Affectation.montant) != 0)
                  .order_by(Paiement.recu_le, Paiement.id))
_REQ_AVOIRS = (select(Avoir.numero, Avoir.emise_le, Avoir.montant, Avoir.motif)
               .where(Avoir.facture_id == bindparam("facture_id")).order_by(Avoir.emise_le, Avoir.id))


class _LigneFacture(NamedTuple):
    """Une ligne de `_REQ_FACTURE` lue par psycopg (mêmes noms que les colonnes)."""

    id: int
    numero: str
    regie_code: str
    dossier: str
    periode: str
    emise_le: date
    echeance: date
    montant: int
    paye: int
    avoirs: int
    statut: str
    en_cours: bool


@cache
def _sql_facture_pg() -> tuple[str, dict[str, Any]]:
    """`_REQ_FACTURE` compilée une fois pour psycopg : le texte SQL et ses paramètres constants."""
    dialecte = psycopg_pg.dialect()  # type: ignore[no-untyped-call]
    etat = _REQ_FACTURE.compile(dialect=dialecte).construct_expanded_state({"numero": ""})
    return etat.statement, dict(etat.parameters)


def _facture_pg(moteur: Engine, numero: str) -> _LigneFacture | None:
    # Requête préparée côté serveur, exécutée par psycopg sans passer par SQLAlchemy : un aller-retour.
    sql, parametres = _sql_facture_pg()
    with curseur_psycopg(moteur) as curseur:
        ligne = curseur.execute(sql, {**parametres, "numero": numero}, prepare=True).fetchone()
    return None if ligne is None else _LigneFacture(*ligne)


def _paiements_et_avoirs(conn: Connection, f: Any) -> tuple[Sequence[Any], Sequence[Any]]:
    # Une facture sans rien de payé (ni d'avoir) n'a pas d'affectation à lire : une requête au lieu de trois.
    paiements = conn.execute(_REQ_PAIEMENTS, {"facture_id": f.id}).all() if f.paye else []
    avoirs = conn.execute(_REQ_AVOIRS, {"facture_id": f.id}).all() if f.avoirs or f.paye else []
    return paiements, avoirs


def facture(app: Application, numero: str, aujourd_hui: date) -> dict[str, Any]:
    f: Any
    if app.moteur.dialect.name == "postgresql" and app.moteur.dialect.driver == "psycopg":
        # En READ COMMITTED chaque requête a son instantané : les lire sur deux emprunts ne change rien.
        f = _facture_pg(app.moteur, numero)
        if f is None:
            raise Introuvable("FACTURE_INCONNUE", f"la facture {numero} est inconnue")
        paiements: Sequence[Any] = []
        avoirs: Sequence[Any] = []
        if f.paye or f.avoirs:
            with connexion_lecture(app.moteur) as conn:
                paiements, avoirs = _paiements_et_avoirs(conn, f)
    else:
        with connexion_lecture(app.moteur) as conn:
            f = conn.execute(_REQ_FACTURE, {"numero": numero}).first()
            if f is None:
                raise Introuvable("FACTURE_INCONNUE", f"la facture {numero} est inconnue")
            paiements, avoirs = _paiements_et_avoirs(conn, f)
    resultat = _resume(app, f, bool(f.en_cours), aujourd_hui)
    resultat["paiements"] = [{"canal": p.canal, "reference": p.reference, "recu_le": p.recu_le,
                              "montant_paiement": eur(p.montant), "montant_affecte": eur(int(p.affecte))}
                             for p in paiements]
    resultat["avoirs_emis"] = [{"numero": a.numero, "emise_le": a.emise_le, "montant": eur(a.montant),
                                "motif": a.motif} for a in avoirs]
    return resultat


def _signe(centimes: int) -> str:
    return ("-" if centimes < 0 else "") + eur(abs(centimes))


def compte_famille(app: Application, numero_dossier: str) -> dict[str, Any]:
    """Le journal du compte dans l'ordre du temps, avec les soldes courants après chaque mouvement."""
    with connexion_lecture(app.moteur) as conn:
        lignes = journal(conn, _dossier_id(conn, numero_dossier))
    mouvements = [{"quand": m.quand, "nature": m.nature, "libelle": m.libelle, "montant": eur(abs(m.montant)),
                   "facture": m.facture, "du": _signe(m.du), "credit": _signe(m.credit),
                   "tresor": _signe(m.tresor), "solde": _signe(m.solde)} for m in lignes]
    du, credit, tresor = (lignes[-1].du, lignes[-1].credit, lignes[-1].tresor) if lignes else (0, 0, 0)
    return {"dossier": numero_dossier, "mouvements": mouvements, "du": _signe(du), "credit": _signe(credit),
            "tresor": _signe(tresor), "solde": _signe(du + tresor - credit)}


def operation(app: Application, id_op: str) -> dict[str, Any]:
    with connexion_lecture(app.moteur) as conn:
        op = conn.execute(select(OperationPayfip.id, OperationPayfip.id_op, OperationPayfip.refdet,
                                 Dossier.numero.label("dossier"), OperationPayfip.montant, OperationPayfip.statut,
                                 OperationPayfip.resultat, OperationPayfip.cree_le, OperationPayfip.terminee_le)
                          .join(Dossier, Dossier.id == OperationPayfip.dossier_id)
                          .where(OperationPayfip.id_op == id_op)).first()
        if op is None:
            raise Introuvable("OPERATION_INCONNUE", f"l'opération PayFiP {id_op} est inconnue")
        panier = conn.execute(
            select(Facture.numero, LignePanierPayfip.montant)
            .join(Facture, Facture.id == LignePanierPayfip.facture_id)
            .where(LignePanierPayfip.operation_id == op.id).order_by(LignePanierPayfip.id)).all()
    return {"id_op": op.id_op, "refdet": op.refdet, "dossier": op.dossier, "montant": eur(op.montant),
            "statut": op.statut, "resultat": op.resultat,
            "factures": [{"numero": n, "montant": eur(m)} for n, m in panier],
            "cree_le": op.cree_le, "terminee_le": op.terminee_le}


def _dossier_id(conn: Connection, numero: str) -> int:
    dossier_id = conn.execute(select(Dossier.id).where(Dossier.numero == numero)).scalar()
    if dossier_id is None:
        raise Introuvable("DOSSIER_INCONNU", f"le dossier {numero} est inconnu")
    return int(dossier_id)
