"""Connecteur CESU : titres reçus au guichet, remboursements du CRCESU, règles pures du CESU."""

from connecteurs.cesu.crcesu import lire_remboursements_crcesu
from connecteurs.cesu.titres import (
    age_au,
    date_limite_validite,
    est_perime,
    ligne_eligible_cesu,
    lire_titres_cesu,
)

__all__ = [
    "age_au",
    "date_limite_validite",
    "est_perime",
    "ligne_eligible_cesu",
    "lire_remboursements_crcesu",
    "lire_titres_cesu",
]
