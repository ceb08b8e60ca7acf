"""Transport de fichiers partagé par la boîte de réception et l'envoi au Trésor.

`DepotSftp` (un serveur SFTP, clé d'hôte épinglée, clé privée) et `DepotLocal` (un dossier,
le défaut embarqué) suivent le même protocole `Depot` ; voir depot.py pour la sémantique.
"""

from connecteurs.sftp.depot import (
    AuthentificationRefusee,
    CleHoteInconnue,
    Depot,
    DossierIntrouvable,
    Empreinte,
    EnvoiResultat,
    ErreurDepot,
    FichierAbsent,
    FichierDejaPresent,
    FichierDistant,
    FichierInstable,
    FichierRecu,
    PairInjoignable,
    StatutEnvoi,
    TransfertIncomplet,
    appliquer_motif,
    est_temporaire,
    mesurer,
)
from connecteurs.sftp.local import DepotLocal
from connecteurs.sftp.sftp import DepotSftp

__all__ = [
    "AuthentificationRefusee",
    "CleHoteInconnue",
    "Depot",
    "DepotLocal",
    "DepotSftp",
    "DossierIntrouvable",
    "Empreinte",
    "EnvoiResultat",
    "ErreurDepot",
    "FichierAbsent",
    "FichierDejaPresent",
    "FichierDistant",
    "FichierInstable",
    "FichierRecu",
    "PairInjoignable",
    "StatutEnvoi",
    "TransfertIncomplet",
    "appliquer_motif",
    "est_temporaire",
    "mesurer",
]
