"""regie : registre des factures et des paiements entre l'Espace familles et la DGFiP."""

from regie import natif as _natif

__version__ = "0.1.0"

_natif.installer()  # avant tout import d'un module compilable (regie.natif)
