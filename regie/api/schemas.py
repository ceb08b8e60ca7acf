"""Modèles des requêtes et réponses de l'API (pydantic) : montants en euros, chaînes « 42.00 »."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Euros = Annotated[str, Field(pattern=r"^[0-9]+\.[0-9]{2}$", examples=["42.00"],
                             description="montant en euros, point décimal, exactement deux décimales")]


class _Schema(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Erreur(_Schema):
    """Toute erreur : un code stable (pour les programmes) et un message en français (pour les gens)."""

    code: str = Field(examples=["FACTURE_INCONNUE"])
    message: str = Field(examples=["la facture F2605-0000001 est inconnue"])
    erreurs: list[ErreurDetail] | None = None
    factures: list[str] | None = None


class ErreurDetail(_Schema):
    ligne: int | None = Field(description="rang de l'objet dans le tableau envoyé (à partir de 1)")
    champ: str | None
    raison: str


Erreur.model_rebuild()

StatutFacture = Literal["emise", "partiellement_payee", "payee", "annulee", "titree"]


class FactureResume(_Schema):
    numero: str
    regie: str
    dossier: str
    periode: str
    emise_le: date
    echeance: date
    montant: Euros
    paye: Euros
    avoirs: Euros
    reste: Euros
    statut: StatutFacture
    payable_en_ligne: bool
    raison: str | None = Field(description="code de la raison quand la facture n'est pas payable en ligne : "
                                           "FACTURE_PAYEE, FACTURE_ANNULEE, FACTURE_TITREE, REGIE_MODE_TITRE, "
                                           "ECHEANCE_DEPASSEE, PAIEMENT_EN_COURS")
    raison_libelle: str | None = None


class FacturesDossier(_Schema):
    dossier: str
    factures: list[FactureResume]


class AffectationPaiement(_Schema):
    canal: str
    reference: str
    recu_le: datetime
    montant_paiement: Euros
    montant_affecte: Euros = Field(description="part de ce paiement affectée à cette facture")


class AvoirFacture(_Schema):
    numero: str
    emise_le: date
    montant: Euros
    motif: str


class FactureDetail(FactureResume):
    paiements: list[AffectationPaiement]
    avoirs_emis: list[AvoirFacture]


class Mouvement(_Schema):
    quand: datetime
    nature: str
    libelle: str
    montant: Euros
    facture: str | None
    du: Euros = Field(description="ce que la famille doit à la régie après ce mouvement")
    credit: Euros = Field(description="crédit de la famille après ce mouvement")
    tresor: Euros = Field(description="ce que la famille doit au Trésor public (titres) après ce mouvement")
    solde: str = Field(description="du + tresor - credit (négatif : la famille est en crédit)",
                       pattern=r"^-?[0-9]+\.[0-9]{2}$")


class CompteFamille(_Schema):
    dossier: str
    mouvements: list[Mouvement]
    du: Euros
    credit: Euros
    tresor: Euros
    solde: str


class RapportPousse(_Schema):
    importes: int
    deja_importes: int
    factures: int
    avoirs: int
    message: str


class FactureAPayer(_Schema):
    numero: str = Field(min_length=1, max_length=30)
    montant: Euros | None = Field(default=None, description="ce que le portail affiche ; refusé s'il diffère du "
                                                            "reste du registre")


class DemandePaiementPayfip(_Schema):
    dossier: str = Field(min_length=1, max_length=20)
    factures: list[FactureAPayer] = Field(min_length=1, max_length=100)
    mel: str | None = Field(default=None, max_length=80,
                            description="adresse du reçu ; par défaut celle du payeur de la facture")
    montant: Euros | None = Field(default=None, description="total attendu, contrôlé contre le registre")


class PaiementPayfipDemarre(_Schema):
    operation: int
    id_op: str
    refdet: str
    montant: Euros
    url: str = Field(description="où envoyer le navigateur de la famille")
    factures: list[FactureAPayer]


class OperationPayfipEtat(_Schema):
    id_op: str
    refdet: str
    dossier: str
    montant: Euros
    statut: Literal["creee", "en_attente", "payee", "refusee", "abandonnee", "expiree", "echec_creation"]
    resultat: str | None
    factures: list[FactureAPayer]
    cree_le: datetime
    terminee_le: datetime | None


class Accuse(_Schema):
    statut: Literal["recu"] = "recu"


class Sante(_Schema):
    statut: Literal["ok"] = "ok"
    base: bool


def exemple(modele: type[BaseModel]) -> dict[str, Any]:
    return {"model": modele}
