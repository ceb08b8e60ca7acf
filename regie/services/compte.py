"""Le compte famille : l'historique d'un dossier, dans l'ordre du temps, avec son solde courant.

Le journal du compte est fait de trois sources, toutes en ajout seul : chaque facture (son
émission, tirée de la facture elle-même, qui ne change jamais), chaque affectation faite par le
moteur (un paiement affecté, à la date du paiement : voir `Affectation.imputation`) et chaque
mouvement de `mouvement_compte` (avoirs, décisions des agents, crédits, remboursements, titres,
annulations). Factures et affectations du moteur ne sont pas recopiées dans `mouvement_compte` : un
million de factures ou de paiements par import, c'est un million d'écritures et d'entrées d'index de
moins. La CLI, l'API, les pages, `regie etat` et `regie verifier` lisent le journal ici.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import Connection, case, func, literal, select, union_all

from connecteurs.cesu.titres import debut_du_jour
from regie.application import Application
from regie.registre.modeles import Affectation, Dossier, Facture, MouvementCompte, Paiement
from regie.registre.moteur import connexion_lecture

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


NATURE_PAIEMENT = "paiement"


def libelle_paiement(canal: str, reference: str, numero: str) -> str:
    return f"Paiement {canal} {reference} affecté à la facture {numero}"[:300]


def _affectations(conn: Connection, dossier_id: int) -> Iterator[tuple[Any, ...]]:
    """Les affectations du moteur aux factures du dossier, à la date de leur paiement."""
    for aid, quand, montant, imputation, numero, canal, reference, paiement_id in conn.execute(
            select(Affectation.id, Paiement.recu_le, Affectation.montant, Affectation.imputation, Facture.numero,
                   Paiement.canal, Paiement.reference, Affectation.paiement_id)
            .join(Facture, Facture.id == Affectation.facture_id)
            .join(Paiement, Paiement.id == Affectation.paiement_id)
            .where(Facture.dossier_id == dossier_id, Affectation.imputation.is_not(None))
            .order_by(Paiement.recu_le, Affectation.id)):
        au_tresor = imputation == "tresor"
        yield (quand, 2, aid, NATURE_PAIEMENT, libelle_paiement(canal, reference, numero), montant,
               0 if au_tresor else -montant, 0, -montant if au_tresor else 0, numero, paiement_id)


def journal(conn: Connection, dossier_id: int) -> list[LigneCompte]:
    """Le journal d'un dossier, ses trois sources fusionnées dans l'ordre du temps, avec les soldes courants.

    À instant égal : l'émission d'une facture, puis les mouvements, puis les affectations du moteur.
    """
    lignes: list[LigneCompte] = []
    du = credit = tresor = 0
    for (quand, _source, _id, nature, libelle, montant, d_du, d_credit, d_tresor, facture,
         paiement_id) in heapq.merge(_emissions(conn, dossier_id), _mouvements(conn, dossier_id),
                                     _affectations(conn, dossier_id), key=lambda m: (m[0], m[1], m[2])):
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
               MouvementCompte.delta_tresor),
        select(Facture.dossier_id, case((Affectation.imputation == "du", -Affectation.montant), else_=0),
               literal(0), case((Affectation.imputation == "tresor", -Affectation.montant), else_=0))
        .join(Facture, Facture.id == Affectation.facture_id).where(Affectation.imputation.is_not(None))
    ).subquery()
    return (select(entrees.c.dossier_id, func.sum(entrees.c.du).label("du"),
                   func.sum(entrees.c.credit).label("credit"), func.sum(entrees.c.tresor).label("tresor"))
            .group_by(entrees.c.dossier_id).subquery())


def historique(app: Application, dossier: str, *, limite: int | None = None) -> list[LigneCompte]:
    with connexion_lecture(app.moteur) as conn:
        dossier_id = conn.execute(select(Dossier.id).where(Dossier.numero == dossier)).scalar()
        if dossier_id is None:
            raise DossierInconnu(dossier)
        lignes = journal(conn, dossier_id)
    return lignes[-limite:] if limite else lignes
