"""Le portail Espace familles : factures et avoirs qu'il émet (specs/factures.md)."""
