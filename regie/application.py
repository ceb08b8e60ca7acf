"""Le contexte d'un processus : configuration, environnement, moteur, fabrique de sessions.

La CLI, l'API, les pages et le planificateur construisent le même objet et appellent les
mêmes services avec lui.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, sessionmaker

from connecteurs.portail.factures import Referentiel
from regie.parametres import Configuration, Environnement, charger_configuration
from regie.registre.modeles import Prestation, Regie
from regie.registre.moteur import creer_moteur, fabrique_sessions, initialiser_schema, schema_a_jour


@dataclass
class Application:
    config: Configuration
    env: Environnement = field(default_factory=Environnement)
    url: str | None = None

    @classmethod
    def depuis_environnement(cls) -> Application:
        env = Environnement()
        return cls(charger_configuration(env.config), env)

    @cached_property
    def moteur(self) -> Engine:
        return creer_moteur(self.url or self.env.database_url)

    @cached_property
    def sessions(self) -> sessionmaker[Session]:
        return fabrique_sessions(self.moteur)

    @cached_property
    def referentiel(self) -> Referentiel:
        return Referentiel(frozenset(self.config.regies),
                           {p.code: p.cesu for p in self.config.prestation})

    def dossier_donnees(self, *parties: str) -> Path:
        chemin = self.env.donnees.joinpath(*parties)
        chemin.mkdir(parents=True, exist_ok=True)
        return chemin

    def initialiser(self) -> str:
        """Crée ou met à niveau le schéma et recopie le référentiel de la configuration."""
        revision = initialiser_schema(self.moteur)
        self.synchroniser_referentiel()
        return revision

    def schema_a_jour(self) -> bool:
        return schema_a_jour(self.moteur)

    def synchroniser_referentiel(self) -> None:
        with self.sessions() as s, s.begin():
            regies = {r.code: r for r in s.scalars(select(Regie))}
            for rc in self.config.regie:
                r = regies.get(rc.code) or Regie(code=rc.code)
                r.libelle, r.mode, r.payfip_numcli = rc.libelle, rc.mode, rc.payfip_numcli
                r.dft_compte, r.delai_titre_jours, r.code_produit = rc.dft_compte, rc.delai_titre_jours, rc.code_produit
                s.add(r)
            prestations = {p.code: p for p in s.scalars(select(Prestation))}
            for pc in self.config.prestation:
                p = prestations.get(pc.code) or Prestation(code=pc.code)
                p.libelle, p.nature, p.code_produit_local, p.cesu = (pc.libelle, pc.nature,
                                                                    pc.code_produit_local, pc.cesu)
                s.add(p)
