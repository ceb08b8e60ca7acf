"""Types d'arguments communs aux commandes `regie` : une date AAAA-MM-JJ, un fichier qui existe."""

from __future__ import annotations

import argparse
from datetime import date
from pathlib import Path


def date_iso(texte: str) -> date:
    try:
        return date.fromisoformat(texte)
    except ValueError:
        raise argparse.ArgumentTypeError(f"« {texte} » n'est pas une date AAAA-MM-JJ") from None


def fichier_existant(texte: str) -> Path:
    chemin = Path(texte)
    if not chemin.is_file():
        raise argparse.ArgumentTypeError(f"« {texte} » : fichier introuvable")
    return chemin
