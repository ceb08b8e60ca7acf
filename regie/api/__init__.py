"""API HTTP du portail familles (FastAPI) : factures, compte famille, paiement PayFiP, notification.

`creer_app(application)` construit l'application ASGI ; `regie serveur` la sert avec uvicorn.
"""

from regie.api.app import creer_app

__all__ = ["creer_app"]
