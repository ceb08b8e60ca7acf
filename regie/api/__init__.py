"""API HTTP du portail familles (FastAPI) : factures, compte famille, paiement PayFiP, notification.

`regie.api.app.creer_app(application)` construit l'application ASGI ; `regie serveur` la sert avec
uvicorn. Rien n'est importé ici : la ligne de commande démarre sans charger FastAPI.
"""
