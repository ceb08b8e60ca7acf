"""Remises de chèques et de CESU qui attendent leur confirmation par le relevé DFT."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from zoneinfo import ZoneInfo

from sqlalchemy import func, select

from regie.application import Application
from regie.registre.modeles import Paiement, Remise

PARIS = ZoneInfo("Europe/Paris")


@dataclass(frozen=True)
class RemiseEnAttente:
    identifiant: str
    canal: str
    nombre: int
    montant: int
    depuis: datetime
    jours: int


def remises_non_confirmees(app: Application, *, jours: int = 15, aujourd_hui: date | None = None
                           ) -> list[RemiseEnAttente]:
    """Les remises déposées il y a plus de `jours` jours et jamais confirmées (ni en écart)."""
    jour = aujourd_hui or datetime.now(PARIS).date()
    with app.moteur.connect() as c:
        lignes = c.execute(
            select(Remise.identifiant, Remise.canal, Remise.nombre, Remise.montant, func.max(Paiement.recu_le))
            .join(Paiement, Paiement.remise_id == Remise.id)
            .where(Remise.statut == "en_attente")
            .group_by(Remise.id, Remise.identifiant, Remise.canal, Remise.nombre, Remise.montant)
            .order_by(Remise.identifiant)).all()
    resultat = []
    for identifiant, canal, nombre, montant, depuis in lignes:
        age = (jour - depuis.astimezone(PARIS).date()).days
        if age > jours:
            resultat.append(RemiseEnAttente(identifiant, canal, nombre, montant, depuis, age))
    return resultat
