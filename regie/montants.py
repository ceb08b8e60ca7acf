"""Montants : des centimes entiers à l'intérieur, des euros à deux décimales aux bords.

C'est le seul endroit où l'on lit ou écrit un montant en euros : aucun float ici.
"""

from __future__ import annotations

import re

_EUROS = re.compile(r"(-?)(0|[1-9][0-9]{0,12})\.([0-9]{2})")
_DECIMAL = re.compile(r"(0|[1-9][0-9]{0,12})(?:\.([0-9]{1,2}))?")


class MontantInvalide(ValueError):
    """Montant illisible ; le message (en français) dit pourquoi."""


def euros_en_centimes(texte: str, *, negatif_permis: bool = False) -> int:
    """Lit « 42.00 » en 4200 centimes. Refuse virgule, exposant, plus de deux décimales."""
    if not isinstance(texte, str):
        raise MontantInvalide("un montant doit être une chaîne « 0.00 »")
    m = _EUROS.fullmatch(texte)
    if m is None:
        if "," in texte:
            raise MontantInvalide(f"« {texte} » : le séparateur décimal est le point, pas la virgule")
        if re.fullmatch(r"-?[0-9]+\.[0-9]{3,}", texte):
            raise MontantInvalide(f"« {texte} » : plus de deux décimales")
        raise MontantInvalide(f"« {texte} » n'est pas un montant en euros à deux décimales")
    signe, entier, cents = m.groups()
    valeur = int(entier) * 100 + int(cents)
    if signe:
        if not negatif_permis:
            raise MontantInvalide(f"« {texte} » : montant négatif interdit ici")
        valeur = -valeur
    return valeur


def centimes_en_euros(centimes: int) -> str:
    """4200 → « 42.00 » ; -5 → « -0.05 »."""
    if isinstance(centimes, bool) or not isinstance(centimes, int):
        raise TypeError("un montant interne est un entier de centimes")
    signe = "-" if centimes < 0 else ""
    absolu = -centimes if centimes < 0 else centimes
    return f"{signe}{absolu // 100}.{absolu % 100:02d}"


def decimal_en_centiemes(texte: str) -> int:
    """Quantité positive à deux décimales au plus : « 12 » → 1200, « 1.5 » → 150."""
    m = _DECIMAL.fullmatch(texte) if isinstance(texte, str) else None
    if m is None:
        raise MontantInvalide(f"« {texte} » n'est pas un nombre décimal positif à deux décimales au plus")
    entier, dec = m.groups()
    return int(entier) * 100 + int((dec or "").ljust(2, "0"))


def produit_arrondi(quantite_centiemes: int, prix_centimes: int) -> int:
    """quantité × prix unitaire, arrondi au centime le plus proche, moitié vers le haut."""
    produit = quantite_centiemes * prix_centimes
    return (produit + 50) // 100 if produit >= 0 else -((-produit + 50) // 100)
