"""Aide des tests des lecteurs : un paiement construit sans revalidation doit valoir un paiement validé."""

from __future__ import annotations

from connecteurs.modeles import PaiementRecu


def assert_comme_valide(p: PaiementRecu) -> None:
    """Rien ne distingue `p` du même paiement passé par `model_validate` (égalité, repr, champs posés, JSON)."""
    valide = PaiementRecu.model_validate(p.model_dump(exclude_unset=True))
    assert p == valide and repr(p) == repr(valide)
    assert p.model_fields_set == valide.model_fields_set
    assert p.model_dump_json() == valide.model_dump_json()
