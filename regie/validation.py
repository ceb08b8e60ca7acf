"""Traduction en français des erreurs de validation pydantic (configuration, API)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

_MESSAGES = {
    "missing": "clé obligatoire manquante",
    "extra_forbidden": "clé inconnue",
    "string_type": "une chaîne de caractères est attendue",
    "int_type": "un nombre entier est attendu",
    "int_parsing": "un nombre entier est attendu",
    "int_from_float": "un nombre entier est attendu",
    "bool_type": "true ou false est attendu",
    "bool_parsing": "true ou false est attendu",
    "list_type": "une liste est attendue",
    "tuple_type": "une liste est attendue",
    "dict_type": "une table est attendue",
    "model_type": "une table est attendue",
    "date_from_datetime_parsing": "une date AAAA-MM-JJ est attendue",
    "date_parsing": "une date AAAA-MM-JJ est attendue",
    "date_type": "une date AAAA-MM-JJ est attendue",
}


def chemin_erreur(loc: Sequence[Any]) -> str:
    morceaux: list[str] = []
    for part in loc:
        if isinstance(part, int):
            morceaux.append(f"[{part}]")
        else:
            morceaux.append(("." if morceaux else "") + str(part))
    return "".join(morceaux) or "(racine)"


def message_erreur(err: dict[str, Any]) -> str:
    """Le message français d'une erreur pydantic (`ValidationError.errors()`)."""
    typ = err.get("type", "")
    ctx = err.get("ctx") or {}
    entree = err.get("input")
    if typ in _MESSAGES:
        return _MESSAGES[typ]
    if typ == "string_pattern_mismatch":
        return f"« {entree} » ne respecte pas le format attendu ({ctx.get('pattern')})"
    if typ == "string_too_short":
        return f"au moins {ctx.get('min_length')} caractère(s) attendu(s)"
    if typ == "string_too_long":
        return f"au plus {ctx.get('max_length')} caractère(s) attendu(s)"
    if typ == "too_short":
        return f"au moins {ctx.get('min_length')} élément(s) attendu(s)"
    if typ == "literal_error":
        return f"« {entree} » n'est pas une valeur permise (attendu : {ctx.get('expected')})"
    if typ in ("greater_than_equal", "greater_than", "less_than_equal", "less_than"):
        signe = {"greater_than_equal": "≥", "greater_than": ">", "less_than_equal": "≤", "less_than": "<"}[typ]
        borne = next(iter(ctx.values()), "")
        return f"la valeur doit être {signe} {borne}"
    if typ == "value_error":
        return str(ctx.get("error", err.get("msg", "valeur invalide")))
    return str(err.get("msg", "valeur invalide"))
