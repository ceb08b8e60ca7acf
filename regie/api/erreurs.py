"""Erreurs de l'API : toujours `{"code": ..., "message": ...}`, un code stable et un message en français."""

from __future__ import annotations

from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from regie.api.lectures import Introuvable
from regie.erreurs import FichierRefuse
from regie.services.payfip import PayfipIndisponible, RefusPaiement
from regie.validation import chemin_erreur, message_erreur

journal = structlog.get_logger()


class ErreurApi(Exception):
    def __init__(self, statut: int, code: str, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.statut = statut
        self.code = code
        self.message = message
        self.extra = extra


def reponse_erreur(statut: int, code: str, message: str, **extra: Any) -> JSONResponse:
    corps: dict[str, Any] = {"code": code, "message": message}
    corps.update({k: v for k, v in extra.items() if v is not None})
    entetes = {"WWW-Authenticate": 'Bearer realm="regie"'} if statut == 401 else None
    return JSONResponse(corps, status_code=statut, headers=entetes)


_CODES_HTTP = {404: ("ROUTE_INCONNUE", "adresse inconnue"), 405: ("METHODE_NON_PERMISE", "méthode non permise"),
               401: ("CLE_MANQUANTE", "clé d'API manquante"), 403: ("INTERDIT", "accès refusé")}


def installer(app: FastAPI) -> None:
    @app.exception_handler(ErreurApi)
    async def _api(_r: Request, exc: ErreurApi) -> JSONResponse:
        return reponse_erreur(exc.statut, exc.code, exc.message, **exc.extra)

    @app.exception_handler(Introuvable)
    async def _introuvable(_r: Request, exc: Introuvable) -> JSONResponse:
        return reponse_erreur(404, exc.code, exc.message)

    @app.exception_handler(RefusPaiement)
    async def _refus(_r: Request, exc: RefusPaiement) -> JSONResponse:
        journal.info("api.paiement_refuse", code=exc.code, factures=exc.factures)
        return reponse_erreur(404 if exc.introuvable else 422, exc.code, exc.message, factures=exc.factures or None)

    @app.exception_handler(PayfipIndisponible)
    async def _payfip(_r: Request, exc: PayfipIndisponible) -> JSONResponse:
        return reponse_erreur(503, "PAYFIP_INDISPONIBLE", exc.message)

    @app.exception_handler(FichierRefuse)
    async def _refuse(_r: Request, exc: FichierRefuse) -> JSONResponse:
        erreurs = [{"ligne": e.ligne, "champ": e.champ, "raison": e.raison} for e in exc.erreurs]
        return reponse_erreur(422, "FACTURES_REFUSEES",
                              f"envoi refusé en entier, rien n'a été appliqué ({len(erreurs)} erreur(s))",
                              erreurs=erreurs)

    @app.exception_handler(RequestValidationError)
    async def _validation(_r: Request, exc: RequestValidationError) -> JSONResponse:
        erreurs = []
        for e in exc.errors():
            loc = [p for p in e.get("loc", ()) if p not in ("body", "query", "path", "header")]
            erreurs.append({"ligne": None, "champ": chemin_erreur(tuple(loc)) or None,
                            "raison": message_erreur(dict(e))})
        return reponse_erreur(422, "REQUETE_INVALIDE", "requête invalide : " + "; ".join(
            f"{x['champ']} : {x['raison']}" if x["champ"] else str(x["raison"]) for x in erreurs), erreurs=erreurs)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_r: Request, exc: StarletteHTTPException) -> JSONResponse:
        code, message = _CODES_HTTP.get(exc.status_code, ("ERREUR_HTTP", str(exc.detail)))
        return reponse_erreur(exc.status_code, code, message)

    @app.exception_handler(Exception)
    async def _interne(r: Request, exc: Exception) -> JSONResponse:
        journal.exception("api.erreur_interne", chemin=r.url.path)
        return reponse_erreur(500, "ERREUR_INTERNE", "erreur interne : l'incident est journalisé")
