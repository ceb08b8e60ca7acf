"""Les lignes d'une facture, gardées dans la facture elle-même (colonne `facture.lignes`).

Une facture ne change jamais après son import : ses lignes non plus. Les garder dans sa rangée
plutôt que dans une table à part évite trois rangées, trois entrées d'index et trois contrôles de
clé étrangère par facture (un million de factures par mois chez les plus grandes collectivités).
Une ligne se désigne par son rang (1, 2, …) ; ce qui a été payé sur chaque ligne se lit dans les
affectations (`parts`), seule source de vérité.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from typing import Any

import msgspec
from sqlalchemy import Dialect, Text
from sqlalchemy.types import TypeDecorator


class LigneFacture(msgspec.Struct, array_like=True, frozen=True, gc=False):
    """Une ligne telle que le portail l'a facturée ; gardée en tableau JSON (compact, ordre fixe).

    Le même ordre que la ligne lue (`connecteurs.portail.factures.LigneLue`) : elle s'écrit telle quelle.
    """

    rang: int
    prestation: str
    libelle: str
    enfant: str | None
    naissance: date | None
    quantite_centiemes: int
    prix_unitaire: int
    montant: int
    eligible_cesu: bool


_ENCODEUR = msgspec.json.Encoder()
_DECODEUR_LIGNES = msgspec.json.Decoder(tuple[LigneFacture, ...])
_DECODEUR = msgspec.json.Decoder()


def encoder_lignes(lignes: Sequence[msgspec.Struct]) -> str:
    """Des lignes (du registre, ou lues du portail, au même ordre de champs) en texte JSON."""
    return _ENCODEUR.encode(lignes).decode()


def lire_lignes(texte: str | bytes) -> tuple[LigneFacture, ...]:
    return _DECODEUR_LIGNES.decode(texte)


class LignesJson(TypeDecorator[tuple[LigneFacture, ...]]):
    """Les lignes d'une facture en texte JSON ; un texte déjà encodé (écritures en masse) passe tel quel."""

    impl = Text
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> str | None:
        if value is None or isinstance(value, str):
            return value
        return encoder_lignes(value)

    def process_result_value(self, value: Any, dialect: Dialect) -> tuple[LigneFacture, ...] | None:
        return None if value is None else lire_lignes(value)


class JsonCompact(TypeDecorator[Any]):
    """Une valeur JSON gardée en texte (msgspec) : pour les colonnes écrites un million de fois par nuit.

    Pas de JSONB sous PostgreSQL : ces colonnes ne sont jamais interrogées par leur contenu, et le
    serveur n'a pas à analyser chaque valeur à l'écriture.
    """

    impl = Text
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> str | None:
        if value is None or isinstance(value, str):
            return value
        return _ENCODEUR.encode(value).decode()

    def process_result_value(self, value: Any, dialect: Dialect) -> Any:
        return None if value is None else _DECODEUR.decode(value)


def encoder_json(valeur: Any) -> str:
    return _ENCODEUR.encode(valeur).decode()
