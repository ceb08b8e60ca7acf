"""Règles pures du registre : statuts et répartition sur les lignes (aucune entrée-sortie)."""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from itertools import combinations
from typing import Any, Protocol

from regie.montants import centimes_en_euros as eur

STATUTS_FACTURE = ("emise", "partiellement_payee", "payee", "annulee", "titree")


def statut_facture(montant: int, paye: int, avoirs: int, titre_en_cours: bool = False) -> str:
    """Le statut d'une facture (specs/cli.md) d'après ses montants."""
    reste = montant - paye - avoirs
    if reste == 0:
        return "annulee" if paye == 0 else "payee"
    if titre_en_cours:
        return "titree"
    return "partiellement_payee" if paye > 0 else "emise"


def statut_paiement(montant: int, affecte: int, anomalie: str | None) -> str:
    if anomalie is not None:
        return "en_anomalie"
    if affecte == montant:
        return "affecte"
    return "partiellement_affecte" if affecte > 0 else "en_anomalie"


class LigneARepartir(Protocol):
    """Ce que la répartition lit d'une ligne (une `LigneEtat`)."""

    @property
    def rang(self) -> int: ...
    @property
    def reste(self) -> int: ...
    @property
    def eligible_cesu(self) -> bool: ...


def repartir(montant: int, lignes: Sequence[LigneARepartir], *, cesu: bool = False) -> list[tuple[int, int]]:
    """Répartit `montant` sur les lignes dans l'ordre donné (l'ordre des lignes de la facture).

    Le CESU ne va que sur les lignes éligibles. Rend [(rang, part)] ; la somme des parts
    est min(montant, somme des restes permis) : l'appelant traite ce qui dépasse. Les lignes sont
    lues telles quelles (pas de copie par ligne : le moteur répartit des millions de paiements).
    """
    parts: list[tuple[int, int]] = []
    a_placer = montant
    for ligne in lignes:
        if a_placer <= 0:
            break
        if cesu and not ligne.eligible_cesu:
            continue
        part = min(a_placer, ligne.reste)
        if part > 0:
            parts.append((ligne.rang, part))
            a_placer -= part
    return parts


# --- L'état d'une facture, tel que le moteur et les décisions le voient ----------------------------------

# `init=False` et un __init__ écrit : compilé par mypyc (regie.natif), celui que génère `dataclass` serait
# interprété, et le moteur crée ces objets par millions. Les champs et l'ordre des arguments sont les mêmes.
@dataclass(slots=True, init=False)
class LigneEtat:
    """Une ligne de facture et ce qui y est affecté (somme des parts de ses affectations)."""

    rang: int
    montant: int
    paye: int
    avoirs: int
    eligible_cesu: bool
    cesu: int  # CESU déjà affecté à cette ligne

    def __init__(self, rang: int, montant: int, paye: int = 0, avoirs: int = 0, eligible_cesu: bool = False,
                 cesu: int = 0) -> None:
        self.rang, self.montant, self.paye, self.avoirs = rang, montant, paye, avoirs
        self.eligible_cesu, self.cesu = eligible_cesu, cesu

    @property
    def reste(self) -> int:
        return self.montant - self.paye - self.avoirs


@dataclass(slots=True, init=False)  # __init__ écrit : voir LigneEtat
class FactureEtat:
    id: int
    numero: str
    dossier_id: int
    dossier: str
    regie: str
    statut: str
    montant: int
    paye: int
    avoirs: int
    echeance: date
    titree: bool
    lignes: list[LigneEtat]
    nom: str
    prenom: str

    def __init__(self, id: int, numero: str, dossier_id: int, dossier: str, regie: str, statut: str, montant: int,
                 paye: int, avoirs: int, echeance: date, titree: bool, lignes: list[LigneEtat] | None = None,
                 nom: str = "", prenom: str = "") -> None:
        self.id, self.numero, self.dossier_id, self.dossier, self.regie = id, numero, dossier_id, dossier, regie
        self.statut, self.montant, self.paye, self.avoirs = statut, montant, paye, avoirs
        self.echeance, self.titree, self.lignes = echeance, titree, [] if lignes is None else lignes
        self.nom, self.prenom = nom, prenom

    @property
    def reste(self) -> int:
        return self.montant - self.paye - self.avoirs

    def vue(self) -> dict[str, Any]:
        return {"facture": self.numero, "dossier": self.dossier, "montant": eur(self.montant),
                "reste": eur(self.reste), "statut": self.statut}


# --- Les noms : la famille du tireur d'un chèque ---------------------------------------------------------

@functools.lru_cache(maxsize=65536)
def mots_du_nom(texte: str) -> frozenset[str]:
    """Les mots d'un nom, sans accents, en capitales (« Lefèvre-Roux » → {LEFEVRE, ROUX})."""
    sans_accents = "".join(c for c in unicodedata.normalize("NFKD", texte) if not unicodedata.combining(c))
    return frozenset(re.findall(r"[A-Z]+", sans_accents.upper()))


@functools.lru_cache(maxsize=4096)  # les factures d'une famille se suivent dans un fichier
def cle_payeur(nom: str, prenom: str) -> str:
    """Les mots du nom et du prénom d'un payeur, triés : la clé sous laquelle le tireur d'un chèque le cherche.

    Un tireur est de la famille si chaque mot du nom et du prénom du payeur est dans son libellé : la clé
    du payeur est alors l'une des `cles_possibles` du libellé.
    """
    return " ".join(sorted(mots_du_nom(nom) | mots_du_nom(prenom)))


MOTS_TIREUR_MAXI = 14  # au-delà (un libellé de chèque interminable), seuls les payeurs de 5 mots au plus


@functools.lru_cache(maxsize=4096)
def cles_possibles(mots: frozenset[str]) -> tuple[str, ...]:
    """Les clés de payeur qu'un tireur de ces mots peut désigner : tous les sous-ensembles, triés."""
    tries = sorted(mots)
    tailles = range(len(tries) + 1) if len(tries) <= MOTS_TIREUR_MAXI else range(6)
    return tuple(" ".join(c) for n in tailles for c in combinations(tries, n))
