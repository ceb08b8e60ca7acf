"""Le contexte d'un processus : configuration, environnement, moteur, fabrique de sessions.

La CLI, l'API, les pages et le planificateur construisent le même objet et appellent les
mêmes services avec lui.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Engine, select
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker

from regie.parametres import Configuration, Environnement, charger_configuration
from regie.registre.moteur import MIGRATIONS, creer_moteur, fabrique_sessions, initialiser_schema, schema_a_jour

if TYPE_CHECKING:
    # Importés à l'usage : chaque commande `regie` démarre sans les connecteurs qu'elle n'emploie pas.
    from connecteurs.portail.factures import Referentiel


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
        from connecteurs.portail.factures import Referentiel

        return Referentiel(frozenset(self.config.regies),
                           {p.code: p.cesu for p in self.config.prestation})

    def fermer(self) -> None:
        """Les connexions à la base fermées (sous SQLite, la dernière range le journal WAL)."""
        if "moteur" in self.__dict__:
            self.moteur.dispose()

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
        """Vrai si la base est à la dernière révision du schéma.

        Chemin court, pris à chaque commande : la révision de la base comparée à la tête lue dans les
        fichiers de migration, sans charger Alembic (150 ms au démarrage). En cas de doute, Alembic tranche.
        """
        tete = _tete_des_migrations()
        if tete is not None:
            with self.moteur.connect() as conn:
                try:
                    revisions = list(conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalars())
                except DBAPIError:
                    revisions = []  # pas encore de table : base vierge
            if revisions == [tete]:
                return True
        return schema_a_jour(self.moteur)

    def synchroniser_referentiel(self) -> None:
        from regie.registre.modeles import Prestation, Regie

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


_REVISION = re.compile(r"""^revision(?:\s*:[^=]+)?\s*=\s*["']([^"']+)["']\s*$""", re.MULTILINE)
_PRECEDENTE = re.compile(r"""^down_revision(?:\s*:[^=]+)?\s*=\s*(None|["']([^"']+)["'])\s*$""", re.MULTILINE)


def _tete_des_migrations() -> str | None:
    """La révision de tête si l'historique est une simple chaîne lisible dans les fichiers ; sinon None."""
    revisions: set[str] = set()
    precedentes: set[str] = set()
    for fichier in (MIGRATIONS / "versions").glob("*.py"):
        if fichier.name.startswith(("__init__", ".#")):
            continue
        texte = fichier.read_text(encoding="utf-8")
        revision, precedente = _REVISION.findall(texte), _PRECEDENTE.findall(texte)
        if len(revision) != 1 or len(precedente) != 1:
            return None  # branche, fusion ou forme inattendue : Alembic tranche
        revisions.add(revision[0])
        if precedente[0][1]:
            precedentes.add(precedente[0][1])
    tetes = revisions - precedentes
    return tetes.pop() if len(tetes) == 1 and precedentes <= revisions else None
