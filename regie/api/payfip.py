"""Routes appelées par PayFiP et par le navigateur de la famille : aucune clé, par construction.

La notification ne porte que l'idOp, n'est pas signée et peut venir de n'importe qui : elle ne fait
que déclencher une consultation de la DGFiP, après la réponse (toujours 200, vite).
"""

from __future__ import annotations

import html
from typing import Any

import structlog
from fastapi import APIRouter, BackgroundTasks, Request
from fastapi.responses import HTMLResponse

from regie.api.dependances import ApplicationDep, PasserelleDep
from regie.api.schemas import Accuse
from regie.application import Application
from regie.services.payfip import PasserellePayfip, traiter_notification

journal = structlog.get_logger()
routeur = APIRouter(prefix="/payfip", tags=["payfip"])


async def _id_op(request: Request) -> tuple[str | None, str]:
    from connecteurs.payfip import extraire_id_op

    sources: list[Any] = [request.query_params]
    if request.method == "POST":
        type_contenu = request.headers.get("content-type", "")
        if type_contenu.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
            try:
                sources.append(await request.form())
            except Exception:  # un corps illisible ne doit pas faire échouer la notification
                journal.warning("payfip.notification_illisible")
    brut = next((str(s.get(k)) for s in sources for k in ("idOp", "idop") if s.get(k)), "")
    return extraire_id_op(*sources), brut[:80]


def _consulter(app: Application, passerelle: PasserellePayfip, id_op: str) -> None:
    try:
        traiter_notification(app, passerelle, id_op)
    except Exception:
        # Après la réponse : rien ne remonte à PayFiP ; la consultation périodique rattrapera.
        journal.exception("payfip.notification_en_echec", id_op=id_op)


@routeur.api_route("/notification", methods=["GET", "POST"], response_model=Accuse,
                   summary="Notification PayFiP (urlnotif)")
async def notification(request: Request, taches: BackgroundTasks, app: ApplicationDep,
                       passerelle: PasserelleDep) -> dict[str, str]:
    """`idOp` ou `idop`, en chaîne de requête ou en formulaire. Répond 200 sans rien croire, puis consulte."""
    id_op, brut = await _id_op(request)
    if id_op is None:
        journal.warning("payfip.notification_sans_id_op", methode=request.method, recu=brut)
    else:
        journal.info("payfip.notification_recue", id_op=id_op, methode=request.method)
        taches.add_task(_consulter, app, passerelle, id_op)
    return {"statut": "recu"}


@routeur.get("/retour", response_class=HTMLResponse, summary="Retour du navigateur après paiement (urlredirect)")
async def retour(request: Request, taches: BackgroundTasks, app: ApplicationDep,
                 passerelle: PasserelleDep) -> HTMLResponse:
    id_op, _ = await _id_op(request)
    if id_op is not None:
        taches.add_task(_consulter, app, passerelle, id_op)  # la notification a pu se perdre
    corps = ("<p>Merci. Le résultat de votre paiement est en cours de vérification auprès de la DGFiP ; "
             "il apparaîtra dans votre espace familles d'ici quelques minutes.</p>"
             "<p>Vous recevez aussi un reçu par courriel si le paiement a abouti.</p>")
    if id_op is not None:
        corps += f"<p><small>Référence de l'opération : {html.escape(id_op)}</small></p>"
    page = ('<!doctype html><html lang="fr"><head><meta charset="utf-8"><title>Paiement en ligne</title></head>'
            f"<body><h1>Paiement en ligne</h1>{corps}</body></html>")
    return HTMLResponse(page)
