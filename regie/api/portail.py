"""Routes du portail familles, sous /api/v1 (clé d'API exigée)."""

from __future__ import annotations

from typing import Annotated, Any

import structlog
from fastapi import APIRouter, Body, Path, Response
from fastapi.concurrency import run_in_threadpool

from regie.api import lectures
from regie.api.dependances import ApplicationDep, PasserelleDep, PortailDep
from regie.api.erreurs import ErreurApi
from regie.api.rapide import reponse_json
from regie.api.schemas import (
    CompteFamille,
    DemandePaiementPayfip,
    Erreur,
    FactureDetail,
    FacturesDossier,
    OperationPayfipEtat,
    PaiementPayfipDemarre,
    RapportPousse,
)
from regie.montants import MontantInvalide, centimes_en_euros, euros_en_centimes
from regie.services.factures import pousser_objets
from regie.services.payfip import DemandePaiement, FactureDemandee, aujourd_hui_paris, demarrer_paiement

journal = structlog.get_logger()

_401: dict[int | str, dict[str, Any]] = {
    401: {"model": Erreur, "description": "clé d'API manquante, inconnue ou révoquée"}}
_404: dict[int | str, dict[str, Any]] = {404: {"model": Erreur, "description": "dossier ou facture inconnus"}}
_422: dict[int | str, dict[str, Any]] = {422: {"model": Erreur, "description": "demande refusée (code et raison)"}}

routeur = APIRouter(prefix="/api/v1", responses=_401)

NumeroDossier = Annotated[str, Path(min_length=1, max_length=20, description="numéro de dossier du portail")]
NumeroFacture = Annotated[str, Path(min_length=1, max_length=30, description="numéro de la facture")]


@routeur.get("/dossiers/{dossier}/factures", response_model=FacturesDossier, responses=_404,
             summary="Factures d'un dossier", tags=["factures"])
def factures_dossier(dossier: NumeroDossier, app: ApplicationDep, _cle: PortailDep) -> dict[str, Any]:
    """Statut, payé, reste, échéance de chaque facture, et si elle est payable en ligne (sinon pourquoi)."""
    return lectures.factures_du_dossier(app, dossier, aujourd_hui_paris())


@routeur.get("/factures/{numero}", response_model=FactureDetail, responses=_404,
             summary="Une facture et ses paiements", tags=["factures"])
async def facture(numero: NumeroFacture, app: ApplicationDep, _cle: PortailDep) -> Response:
    """L'appel le plus fréquent : une lecture indexée (< 1 ms), faite dans la boucle plutôt que de payer le
    passage par le réservoir de fils, et sérialisée directement. Le cas courant (clé en X-Api-Key, facture
    connue) est servi avant FastAPI par `regie.api.rapide.StatutRapide`, avec les mêmes fonctions."""
    return reponse_json(lectures.facture(app, numero, aujourd_hui_paris()))


@routeur.get("/dossiers/{dossier}/compte", response_model=CompteFamille, responses=_404,
             summary="Compte famille", tags=["factures"])
def compte(dossier: NumeroDossier, app: ApplicationDep, _cle: PortailDep) -> dict[str, Any]:
    """Le journal du compte (factures, avoirs, paiements, titres) dans l'ordre du temps, avec soldes courants."""
    return lectures.compte_famille(app, dossier)


@routeur.post("/factures", response_model=RapportPousse, responses=_422, summary="Pousser des factures et avoirs",
              tags=["factures"])
def pousser(
    app: ApplicationDep,
    cle: PortailDep,
    objets: Annotated[list[dict[str, Any]], Body(
        description="tableau JSON des objets facture et avoir de specs/factures.md ; tout ou rien",
        min_length=1, max_length=10_000)],
) -> dict[str, Any]:
    rapport = pousser_objets(app, objets, source="api")
    journal.info("api.factures_poussees", cle=cle, factures=rapport.comptes.get("factures", 0),
                 avoirs=rapport.comptes.get("avoirs", 0), deja_importees=rapport.ignores)
    return {"importes": rapport.importes, "deja_importes": rapport.ignores,
            "factures": rapport.comptes.get("factures", 0), "avoirs": rapport.comptes.get("avoirs", 0),
            "message": f"{rapport.importes} enregistrement(s) importé(s), {rapport.ignores} déjà importé(s)"}


def _centimes(texte: str | None, champ: str) -> int | None:
    if texte is None:
        return None
    try:
        return euros_en_centimes(texte)
    except MontantInvalide as exc:
        raise ErreurApi(422, "REQUETE_INVALIDE", f"{champ} : {exc}") from exc


@routeur.post("/paiements/payfip", response_model=PaiementPayfipDemarre, status_code=201,
              responses={**_404, **_422, 503: {"model": Erreur, "description": "PayFiP injoignable"}},
              summary="Démarrer un paiement PayFiP", tags=["paiements"])
async def demarrer(demande: DemandePaiementPayfip, app: ApplicationDep, passerelle: PasserelleDep,
                   cle: PortailDep) -> dict[str, Any]:
    """Pour une facture ou un panier de factures d'un même dossier ; répond l'adresse où envoyer la famille."""
    d = DemandePaiement(
        dossier=demande.dossier,
        factures=tuple(FactureDemandee(f.numero, _centimes(f.montant, f"factures.{f.numero}.montant"))
                       for f in demande.factures),
        mel=demande.mel, montant_total=_centimes(demande.montant, "montant"))
    demarre = await run_in_threadpool(demarrer_paiement, app, passerelle, d)
    journal.info("api.paiement_demarre", cle=cle, id_op=demarre.id_op, operation_id=demarre.operation_id)
    return {"operation": demarre.operation_id, "id_op": demarre.id_op, "refdet": demarre.refdet,
            "montant": centimes_en_euros(demarre.montant), "url": demarre.url,
            "factures": [{"numero": n, "montant": centimes_en_euros(m)} for n, m in demarre.factures]}


@routeur.get("/paiements/payfip/{id_op}", response_model=OperationPayfipEtat,
             responses={404: {"model": Erreur, "description": "opération inconnue"}},
             summary="Où en est un paiement PayFiP", tags=["paiements"])
def operation(id_op: Annotated[str, Path(min_length=1, max_length=64)], app: ApplicationDep,
              _cle: PortailDep) -> dict[str, Any]:
    return lectures.operation(app, id_op)
