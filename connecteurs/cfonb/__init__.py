"""Connecteur CFONB 120 : relevés du compte DFT de la régie."""

from connecteurs.cfonb.cfonb120 import (
    MontantCfonbInvalide,
    MouvementDft,
    ReleveDft,
    ecrire_montant,
    lire_montant,
    lire_releves,
    lire_releves_flux,
    remise_citee,
    remises_citees,
)

__all__ = [
    "MontantCfonbInvalide",
    "MouvementDft",
    "ReleveDft",
    "ecrire_montant",
    "lire_montant",
    "lire_releves",
    "lire_releves_flux",
    "remise_citee",
    "remises_citees",
]
