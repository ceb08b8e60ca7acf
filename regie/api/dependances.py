"""Ce que les routes reçoivent : l'application, la passerelle PayFiP, la clé d'API vérifiée."""

from __future__ import annotations

from typing import Annotated

import structlog
from fastapi import Depends, Request, Security
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from regie.api.erreurs import ErreurApi
from regie.api.securite import cle_de_la_requete, verifier_cle
from regie.application import Application
from regie.services.payfip import PasserellePayfip

journal = structlog.get_logger()

_EN_TETE = APIKeyHeader(name="X-Api-Key", auto_error=False, description="clé d'API du portail")
_PORTEUR = HTTPBearer(auto_error=False, description="la même clé, en « Authorization: Bearer <clé> »")


async def application(request: Request) -> Application:
    app: Application = request.app.state.application
    return app


async def passerelle(request: Request) -> PasserellePayfip:
    existante: PasserellePayfip | None = request.app.state.passerelle
    if existante is None:
        existante = PasserellePayfip(request.app.state.application)
        request.app.state.passerelle = existante
    return existante


async def portail(
    request: Request,
    x_api_key: Annotated[str | None, Security(_EN_TETE)] = None,
    porteur: Annotated[HTTPAuthorizationCredentials | None, Security(_PORTEUR)] = None,
) -> str:
    """Le nom de la clé d'API de l'appelant ; 401 si elle manque, est inconnue ou révoquée."""
    autorisation = f"{porteur.scheme} {porteur.credentials}" if porteur else None
    cle = cle_de_la_requete(x_api_key, autorisation)
    if cle is None:
        raise ErreurApi(401, "CLE_MANQUANTE", "clé d'API manquante : en-tête X-Api-Key ou Authorization: Bearer")
    # Presque toujours servi par le cache en mémoire ; sinon une lecture indexée (sous la milliseconde).
    trouvee = verifier_cle(request.app.state.application, cle)
    if trouvee is None:
        journal.warning("api.cle_refusee", chemin=request.url.path)
        raise ErreurApi(401, "CLE_INVALIDE", "clé d'API inconnue ou révoquée")
    return trouvee[1]


ApplicationDep = Annotated[Application, Depends(application)]
PasserelleDep = Annotated[PasserellePayfip, Depends(passerelle)]
PortailDep = Annotated[str, Depends(portail)]
