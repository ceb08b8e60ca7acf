"""Enregistrements normalisés produits par les connecteurs."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal, Protocol, TypeVar

from pydantic import BaseModel, ConfigDict, Field

Canal = Literal["payfip", "buraliste", "cesu", "cheque", "virement", "cfonb", "crcesu", "pes_retour"]
CANAUX: tuple[str, ...] = ("payfip", "buraliste", "cesu", "cheque", "virement", "cfonb", "crcesu", "pes_retour")

Detail = str | int | bool | None


class PaiementRecu(BaseModel):
    """Un paiement (ou une confirmation) tel que le canal l'a rapporté.

    `reference` est l'identifiant propre au canal : avec `canal`, la clé naturelle.
    `reference_facture` est ce que le paiement porte pour retrouver sa facture
    (numéro de facture, numéro de dette, refdet, titre Exer/IdBord/IdPce...) ; le moteur décide.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    canal: Canal
    reference: str = Field(min_length=1, max_length=200)
    montant: int = Field(gt=0, description="centimes")
    recu_le: datetime  # toujours avec fuseau
    reference_facture: str | None = None
    remise: str | None = None
    details: dict[str, Detail] = Field(default_factory=dict)
    ligne: int | None = None  # ligne (ou rang) dans le fichier source, pour la preuve
    brut: str | None = None  # la ligne brute, pour la preuve montrée à l'agent


# --- Construction sans revalidation ----------------------------------------------------------------
# Pour les lecteurs de masse (relevés, CFONB) qui ont déjà contrôlé chaque valeur champ par champ :
# revalider avec pydantic coûterait plus que toute la lecture. `model_construct` lui-même coûte ~6 µs
# (il rejoue les défauts et les alias) ; on remplit donc directement ce qu'il remplirait. Un
# auto-contrôle au chargement compare le résultat à une instance validée et retombe sur
# `model_construct` si une version de pydantic change ses entrailles.

_M = TypeVar("_M", bound=BaseModel)
_nouveau = object.__new__
_poser_dict = BaseModel.__dict__["__dict__"].__set__
_poser_champs = BaseModel.__dict__["__pydantic_fields_set__"].__set__
_poser_extra = BaseModel.__dict__["__pydantic_extra__"].__set__
_poser_prive = BaseModel.__dict__["__pydantic_private__"].__set__


def _construire_direct(cls: type[_M], valeurs: dict[str, Any], champs: set[str]) -> _M:
    # `valeurs` : tous les champs, dans l'ordre du modèle ; `champs` (ceux posés par l'appelant) est
    # partagé : pydantic le copie avant de le modifier (model_copy).
    objet = _nouveau(cls)
    _poser_dict(objet, valeurs)
    _poser_champs(objet, champs)
    _poser_extra(objet, None)
    _poser_prive(objet, None)
    return objet


def _construire_lent(cls: type[_M], valeurs: dict[str, Any], champs: set[str]) -> _M:
    return cls.model_construct(champs, **valeurs)


def _choisir_construction() -> Any:
    essai: dict[str, Any] = {
        "canal": "buraliste", "reference": "PP-1", "montant": 5, "recu_le": datetime(2026, 1, 2, tzinfo=UTC),
        "reference_facture": "1", "remise": None, "details": {"mode": "CARTE", "valide": True, "n": 1, "x": None},
        "ligne": 2, "brut": "b"}
    champs = set(essai) - {"remise"}
    try:
        direct = _construire_direct(PaiementRecu, dict(essai), champs)
        valide = PaiementRecu.model_validate({k: essai[k] for k in champs})
        if (direct == valide and direct.model_dump() == essai and repr(direct) == repr(valide)
                and direct.model_copy(update={"ligne": 3}).ligne == 3
                and direct.model_fields_set == valide.model_fields_set
                and direct.model_dump_json() == valide.model_dump_json()):
            return _construire_direct
    except Exception:  # pragma: no cover - seulement si pydantic change ses entrailles
        pass
    return _construire_lent  # pragma: no cover


class _Constructeur(Protocol):
    def __call__(self, cls: type[_M], valeurs: dict[str, Any], champs: set[str], /) -> _M: ...


# Construit une instance de `cls` avec `valeurs` (déjà contrôlées : rien n'est revalidé).
construire_sans_valider: _Constructeur = _choisir_construction()
