"""Le compte famille : l'historique d'un dossier, dans l'ordre du temps, avec son solde courant."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select

from regie.application import Application
from regie.registre.modeles import Dossier, MouvementCompte


@dataclass(frozen=True)
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

    @property
    def solde(self) -> int:
        """Ce que la famille doit en tout (régie et Trésor), moins son crédit."""
        return self.du + self.tresor - self.credit


class DossierInconnu(LookupError):
    pass


def historique(app: Application, dossier: str, *, limite: int | None = None) -> list[LigneCompte]:
    with app.moteur.connect() as conn:
        dossier_id = conn.execute(select(Dossier.id).where(Dossier.numero == dossier)).scalar()
        if dossier_id is None:
            raise DossierInconnu(dossier)
        req = (select(MouvementCompte.quand, MouvementCompte.nature, MouvementCompte.libelle, MouvementCompte.montant,
                      MouvementCompte.delta_du, MouvementCompte.delta_credit, MouvementCompte.delta_tresor)
               .where(MouvementCompte.dossier_id == dossier_id)
               .order_by(MouvementCompte.quand, MouvementCompte.id))
        lignes: list[LigneCompte] = []
        du = credit = tresor = 0
        for quand, nature, libelle, montant, d_du, d_credit, d_tresor in conn.execute(req):
            du, credit, tresor = du + d_du, credit + d_credit, tresor + d_tresor
            lignes.append(LigneCompte(quand, nature, libelle, montant, d_du, d_credit, d_tresor, du, credit, tresor))
    return lignes[-limite:] if limite else lignes
