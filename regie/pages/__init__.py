"""Les pages de revue des agents des finances (HTML rendu côté serveur, en français).

`monter_pages(api, application)` ajoute les pages, leurs fichiers statiques et leurs
gestionnaires d'erreurs à une application FastAPI (celle de `regie serveur`).
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlencode

from fastapi import FastAPI, Request
from fastapi.responses import Response
from fastapi.staticfiles import StaticFiles

from regie.application import Application

STATIQUE = Path(__file__).parent / "static"


def monter_pages(app_fastapi: FastAPI, application: Application) -> None:
    from regie.pages import routes

    app_fastapi.state.application_pages = application
    app_fastapi.include_router(routes.routeur)
    app_fastapi.mount("/statique", StaticFiles(directory=STATIQUE), name="statique")

    @app_fastapi.exception_handler(routes.NonConnecte)
    async def _non_connecte(_request: Request, exc: routes.NonConnecte) -> Response:
        return routes.rediriger("/connexion?" + urlencode({"suite": exc.suite, "message": "expiree"}))

    @app_fastapi.exception_handler(routes.Interdit)
    async def _interdit(request: Request, exc: routes.Interdit) -> Response:
        return routes.page(request, "erreur.html", {"titre": "Action refusée", "message": exc.message}, 403,
                           getattr(request.state, "agent", None))


__all__ = ["monter_pages"]
