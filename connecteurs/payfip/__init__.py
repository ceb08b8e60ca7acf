"""PayFiP Régie (DGFiP) : paiement en ligne par carte ou prélèvement.

- `client` : règles des champs, transport SOAP (`TransportPayfip`), adaptateur métier (`PayfipRegie`) ;
- `simulateur` : un faux PayFiP HTTP sur la boucle locale, pour la démonstration et les tests ;
- `python -m connecteurs.payfip` : commande de diagnostic (info-paiement, info-client).
"""

from connecteurs.payfip.client import (
    ENDPOINT_PRODUCTION,
    URL_PAGE_PAIEMENT,
    DemandeInvalide,
    DetailClient,
    DetailPaiement,
    ErreurConnecteurPayfip,
    ErreurPayfip,
    EtatPayfip,
    PayfipInjoignable,
    PayfipRegie,
    ReponseInvalide,
    ResultatPayfip,
    TransportPayfip,
    date_transaction,
    extraire_id_op,
    masquer_mel,
    nettoyer_objet,
    preparer_creation,
    url_paiement,
)

__all__ = [
    "ENDPOINT_PRODUCTION",
    "URL_PAGE_PAIEMENT",
    "DemandeInvalide",
    "DetailClient",
    "DetailPaiement",
    "ErreurConnecteurPayfip",
    "ErreurPayfip",
    "EtatPayfip",
    "PayfipInjoignable",
    "PayfipRegie",
    "ReponseInvalide",
    "ResultatPayfip",
    "TransportPayfip",
    "date_transaction",
    "extraire_id_op",
    "masquer_mel",
    "nettoyer_objet",
    "preparer_creation",
    "url_paiement",
]
