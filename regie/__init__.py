"""regie : registre des factures et des paiements entre l'Espace familles et la DGFiP."""

__version__ = "0.1.0"
