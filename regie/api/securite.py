"""Clés d'API du portail : aléatoires (32 octets), montrées une fois, gardées sous forme d'empreinte.

Une clé vaut `rgk_<43 caractères base64url>`. En base : son préfixe (12 caractères après `rgk_`,
pour la retrouver sans parcourir la table) et le SHA-256 de la clé entière. Un SHA-256 simple suffit
pour un secret de 256 bits tiré au hasard (rien à deviner par dictionnaire) et garde la vérification
rapide ; la comparaison se fait à temps constant (`hmac.compare_digest`). Plusieurs clés, révocables.

Les clés vérifiées sont gardées en mémoire `DUREE_CACHE` secondes (une requête ne coûte pas une lecture
de plus) : une révocation faite par un autre processus (`regie cles-api revoquer`) prend effet dans ce
délai ; faite dans ce processus, elle prend effet aussitôt.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

import structlog
from sqlalchemy import insert, select, update

from regie.application import Application
from regie.registre.modeles import CleApi
from regie.registre.moteur import connexion_lecture, ecriture_sans_attendre
from regie.registre.types import maintenant

journal = structlog.get_logger()

PREFIXE_CLE: Final = "rgk_"
LONGUEUR_PREFIXE: Final = 12
DUREE_CACHE: Final = 10.0
INTERVALLE_UTILISATION: Final = timedelta(minutes=5)  # « utilisée le » n'est pas réécrit à chaque requête


@dataclass(frozen=True, slots=True)
class CleCreee:
    id: int
    nom: str
    prefixe: str
    cle: str  # en clair : à montrer une seule fois, jamais gardée


@dataclass(frozen=True, slots=True)
class CleDecrite:
    nom: str
    prefixe: str
    creee_le: datetime
    revoquee_le: datetime | None
    utilisee_le: datetime | None


def empreinte_cle(cle: str) -> str:
    return hashlib.sha256(cle.encode("utf-8")).hexdigest()


def prefixe_de(cle: str) -> str | None:
    if not cle.startswith(PREFIXE_CLE) or len(cle) < len(PREFIXE_CLE) + LONGUEUR_PREFIXE + 8:
        return None
    return cle[len(PREFIXE_CLE):len(PREFIXE_CLE) + LONGUEUR_PREFIXE]


def creer_cle(app: Application, nom: str) -> CleCreee:
    nom = nom.strip()
    if not 1 <= len(nom) <= 100:
        raise ValueError("le nom d'une clé compte de 1 à 100 caractères")
    with app.moteur.begin() as conn:
        while True:
            cle = PREFIXE_CLE + secrets.token_urlsafe(32)
            prefixe = prefixe_de(cle)
            assert prefixe is not None
            if conn.execute(select(CleApi.id).where(CleApi.prefixe == prefixe)).first() is None:
                break
        id_ = conn.execute(insert(CleApi).returning(CleApi.id), {
            "nom": nom, "prefixe": prefixe, "empreinte": empreinte_cle(cle), "creee_le": maintenant(),
            "revoquee_le": None, "utilisee_le": None}).scalar_one()
    journal.info("cle_api.creee", nom=nom, prefixe=prefixe)
    return CleCreee(id_, nom, prefixe, cle)


def lister_cles(app: Application) -> list[CleDecrite]:
    with connexion_lecture(app.moteur) as conn:
        return [CleDecrite(*r) for r in conn.execute(
            select(CleApi.nom, CleApi.prefixe, CleApi.creee_le, CleApi.revoquee_le, CleApi.utilisee_le)
            .order_by(CleApi.creee_le, CleApi.id))]


def revoquer_cle(app: Application, prefixe: str) -> bool:
    """Révoque la clé de ce préfixe ; faux si aucune clé active ne l'a."""
    prefixe = prefixe.removeprefix(PREFIXE_CLE)[:LONGUEUR_PREFIXE]
    with app.moteur.begin() as conn:
        fait = conn.execute(update(CleApi).where(CleApi.prefixe == prefixe, CleApi.revoquee_le.is_(None))
                            .values(revoquee_le=maintenant())).rowcount
    _CACHE.oublier()
    if fait:
        journal.info("cle_api.revoquee", prefixe=prefixe)
    return bool(fait)


class _Cache:
    """Clé (empreinte) → (id, nom, valable jusqu'à), pour `DUREE_CACHE` secondes."""

    def __init__(self) -> None:
        self._verrou = threading.Lock()
        self._cles: dict[str, tuple[int, str, float]] = {}
        self._utilisations: dict[int, datetime] = {}

    def lire(self, empreinte: str) -> tuple[int, str] | None:
        entree = self._cles.get(empreinte)
        if entree is None or entree[2] < time.monotonic():
            return None
        return entree[0], entree[1]

    def garder(self, empreinte: str, id_: int, nom: str, duree: float) -> None:
        with self._verrou:
            if len(self._cles) > 1000:
                self._cles.clear()
            self._cles[empreinte] = (id_, nom, time.monotonic() + duree)

    def oublier(self) -> None:
        with self._verrou:
            self._cles.clear()

    def utilisation_a_noter(self, id_: int, instant: datetime) -> bool:
        with self._verrou:
            avant = self._utilisations.get(id_)
            if avant is not None and instant - avant < INTERVALLE_UTILISATION:
                return False
            self._utilisations[id_] = instant
            return True


_CACHE = _Cache()


def verifier_cle(app: Application, cle: str | None, *, duree_cache: float = DUREE_CACHE) -> tuple[int, str] | None:
    """(id, nom) de la clé si elle est valide et non révoquée, sinon None."""
    if not cle:
        return None
    prefixe = prefixe_de(cle)
    if prefixe is None:
        return None
    empreinte = empreinte_cle(cle)
    connue = _CACHE.lire(empreinte)
    if connue is not None:
        return connue
    with connexion_lecture(app.moteur) as conn:
        ligne = conn.execute(select(CleApi.id, CleApi.nom, CleApi.empreinte).where(
            CleApi.prefixe == prefixe, CleApi.revoquee_le.is_(None))).first()
    if ligne is None or not hmac.compare_digest(ligne.empreinte, empreinte):
        return None
    instant = maintenant()
    if _CACHE.utilisation_a_noter(ligne.id, instant):
        with ecriture_sans_attendre(app.moteur) as conn:  # pas d'attente derrière l'import de la nuit
            if conn is not None:
                conn.execute(update(CleApi).where(CleApi.id == ligne.id).values(utilisee_le=instant))
    if duree_cache > 0:
        _CACHE.garder(empreinte, ligne.id, ligne.nom, duree_cache)
    return ligne.id, ligne.nom


def cle_de_la_requete(x_api_key: str | None, authorization: str | None) -> str | None:
    """`X-Api-Key: <clé>` ou `Authorization: Bearer <clé>`."""
    if x_api_key:
        return x_api_key.strip()
    if authorization:
        schema, _, valeur = authorization.partition(" ")
        if schema.lower() == "bearer" and valeur.strip():
            return valeur.strip()
    return None
