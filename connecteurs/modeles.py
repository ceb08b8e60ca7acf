"""Enregistrements normalisés produits par les connecteurs."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

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
