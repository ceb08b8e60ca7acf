"""L'application FastAPI : routes du portail (/api/v1), routes PayFiP (/payfip), OpenAPI publié."""

from __future__ import annotations

from fastapi import FastAPI
from sqlalchemy import text

from regie import __version__
from regie.api import erreurs, payfip, portail
from regie.api.dependances import ApplicationDep
from regie.api.rapide import StatutRapide
from regie.api.schemas import Sante
from regie.application import Application
from regie.registre.moteur import connexion_lecture
from regie.services.payfip import PasserellePayfip

DESCRIPTION = """API du registre pour l'Espace familles.

- Authentification : une clé d'API (`regie cles-api creer NOM`) en `X-Api-Key` ou `Authorization: Bearer`.
- Montants : chaînes en euros, deux décimales (`"42.00"`).
- Erreurs : `{"code": "...", "message": "..."}` ; 401 clé manquante ou révoquée, 404 dossier ou facture
  inconnus, 422 demande refusée (code stable et raison en français), 503 PayFiP injoignable.
- `/payfip/notification` (GET ou POST, `idOp` ou `idop`) n'exige pas de clé : elle ne fait que
  déclencher une consultation de la DGFiP.
"""


def creer_app(application: Application, passerelle: PasserellePayfip | None = None) -> FastAPI:
    """L'application ASGI ; `passerelle` (clients PayFiP) est créée au premier besoin si absente."""
    api = FastAPI(title="regie — API du portail familles", version=__version__, description=DESCRIPTION)
    api.state.application = application
    api.state.passerelle = passerelle
    erreurs.installer(api)
    # Le cas courant de la page de statut d'une facture, servi avant le routage de FastAPI.
    api.add_middleware(StatutRapide, application=application)
    api.include_router(portail.routeur)
    api.include_router(payfip.routeur)

    @api.get("/sante", response_model=Sante, tags=["exploitation"], summary="Le service répond-il ?")
    def sante(app: ApplicationDep) -> dict[str, object]:
        try:
            with connexion_lecture(app.moteur) as conn:
                conn.execute(text("select 1"))
            base = True
        except Exception:
            base = False
        return {"statut": "ok", "base": base}

    from regie.pages import monter_pages

    monter_pages(api, application)
    return api
