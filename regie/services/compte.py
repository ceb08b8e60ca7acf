"""Le compte famille : l'historique d'un dossier, dans l'ordre du temps, avec son solde courant.

Le journal du compte est fait de deux sources, toutes deux en ajout seul : chaque facture (son
émission, tirée de la facture elle-même, qui ne change jamais) et chaque mouvement de
`mouvement_compte` (avoirs, paiements affectés, crédits, remboursements, titres, annulations). Une
facture n'est pas recopiée dans `mouvement_compte` : un million de factures par import, c'est un
million d'écritures et d'entrées d'index de moins. La CLI, l'API, les pages et `regie etat` lisent
le journal ici.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import Connection, func, literal, select, union_all

from connecteurs.cesu.titres import debut_du_jour
from regie.application import Application
from regie.registre.modeles import Dossier, Facture, MouvementCompte

NATURE_FACTURE = "facture"


@dataclass(frozen=True, slots=True)
class LigneCompte:
    quand: datetime
    nature: str
    libelle: str
    montant: int
    delta_du: int
    delta_credit: int
    delta_tresor: int
    du: int  # ce que la famille doit à la régie, après ce mouvement
    credit: int  # son crédit
    tresor: int  # ce qu'elle doit au Trésor (factures titrées)
    facture: str | None = None  # le numéro de la facture concernée
    paiement_id: int | None = None

    @property
    def solde(self) -> int:
        """Ce que la famille doit en tout (régie et Trésor), moins son crédit."""
        return self.du + self.tresor - self.credit


class DossierInconnu(LookupError):
    pass


def libelle_facture(numero: str, periode: str) -> str:
    return f"Facture {numero} ({periode})"


def _emissions(conn: Connection, dossier_id: int) -> Iterator[tuple[Any, ...]]:
    debuts: dict[date, datetime] = {}
    for fid, numero, periode, montant, emise_le in conn.execute(
            select(Facture.id, Facture.numero, Facture.periode, Facture.montant, Facture.emise_le)
            .where(Facture.dossier_id == dossier_id).order_by(Facture.emise_le, Facture.id)):
        quand = debuts.setdefault(emise_le, debut_du_jour(emise_le))
        # À instant égal, l'émission d'une facture précède ce qui la suit (elle a toujours été importée avant).
        yield (quand, 0, fid, NATURE_FACTURE, libelle_facture(numero, periode), montant, montant, 0, 0, numero, None)


def _mouvements(conn: Connection, dossier_id: int) -> Iterator[tuple[Any, ...]]:
    for (mid, quand, nature, libelle, montant, d_du, d_credit, d_tresor, facture, paiement_id) in conn.execute(
            select(MouvementCompte.id, MouvementCompte.quand, MouvementCompte.nature, MouvementCompte.libelle,
                   MouvementCompte.montant, MouvementCompte.delta_du, MouvementCompte.delta_credit,
                   MouvementCompte.delta_tresor, Facture.numero, MouvementCompte.paiement_id)
            .outerjoin(Facture, Facture.id == MouvementCompte.facture_id)
            .where(MouvementCompte.dossier_id == dossier_id)
            .order_by(MouvementCompte.quand, MouvementCompte.id)):
        yield (quand, 1, mid, nature, libelle, montant, d_du, d_credit, d_tresor, facture, paiement_id)


def journal(conn: Connection, dossier_id: int) -> list[LigneCompte]:
    """Le journal d'un dossier, émissions de factures et mouvements fusionnés, avec les soldes courants."""
    lignes: list[LigneCompte] = []
    du = credit = tresor = 0
    for (quand, _source, _id, nature, libelle, montant, d_du, d_credit, d_tresor, facture,
         paiement_id) in heapq.merge(_emissions(conn, dossier_id), _mouvements(conn, dossier_id),
                                     key=lambda m: (m[0], m[1], m[2])):
        du, credit, tresor = du + d_du, credit + d_credit, tresor + d_tresor
        lignes.append(LigneCompte(quand, nature, libelle, montant, d_du, d_credit, d_tresor, du, credit, tresor,
                                  facture, paiement_id))
    return lignes


def soldes_par_dossier() -> Any:
    """(dossier_id, dû, crédit, Trésor) de chaque dossier qui a un journal : une sous-requête à joindre."""
    entrees = union_all(
        select(Facture.dossier_id.label("dossier_id"), Facture.montant.label("du"), literal(0).label("credit"),
               literal(0).label("tresor")),
        select(MouvementCompte.dossier_id, MouvementCompte.delta_du, MouvementCompte.delta_credit,
               MouvementCompte.delta_tresor)).subquery()
    return (select(entrees.c.dossier_id, func.sum(entrees.c.du).label("du"),
                   func.sum(entrees.c.credit).label("credit"), func.sum(entrees.c.tresor).label("tresor"))
            .group_by(entrees.c.dossier_id).subquery())


def historique(app: Application, dossier: str, *, limite: int | None = None) -> list[LigneCompte]:
    with app.moteur.connect() as conn:
        dossier_id = conn.execute(select(Dossier.id).where(Dossier.numero == dossier)).scalar()
        if dossier_id is None:
            raise DossierInconnu(dossier)
        lignes = journal(conn, dossier_id)
    return lignes[-limite:] if limite else lignes
