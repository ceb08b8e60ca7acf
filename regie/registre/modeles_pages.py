"""Modèles des pages de revue : comptes des agents et sessions (côté serveur).

Le mot de passe n'est gardé que haché (argon2) ; la session n'est gardée que par l'empreinte
SHA-256 du jeton du cookie : une copie de la base ne permet pas de se faire passer pour un agent.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, Index, String, text
from sqlalchemy.orm import Mapped, mapped_column

from regie.registre.modeles import Anomalie, Audit, Base
from regie.registre.types import maintenant

ROLES = ("consultation", "agent", "regisseur")


class Utilisateur(Base):
    __tablename__ = "utilisateur"
    id: Mapped[int] = mapped_column(primary_key=True)
    identifiant: Mapped[str] = mapped_column(String(60), unique=True)
    nom: Mapped[str] = mapped_column(String(100))
    role: Mapped[str] = mapped_column(String(12))
    mot_de_passe: Mapped[str] = mapped_column(String(200))  # empreinte argon2id
    echecs: Mapped[int] = mapped_column(default=0)
    verrouille_jusqu_a: Mapped[datetime | None]
    actif: Mapped[bool] = mapped_column(default=True)
    cree_le: Mapped[datetime] = mapped_column(default=maintenant)
    derniere_connexion: Mapped[datetime | None]
    __table_args__ = (CheckConstraint("role IN ('consultation', 'agent', 'regisseur')", name="role"),)


class SessionAgent(Base):
    """Une session ouverte : expire après une inactivité ou une durée maximale."""

    __tablename__ = "session_agent"
    id: Mapped[int] = mapped_column(primary_key=True)
    empreinte: Mapped[str] = mapped_column(String(64), unique=True)
    utilisateur_id: Mapped[int] = mapped_column(ForeignKey("utilisateur.id"), index=True)
    csrf: Mapped[str] = mapped_column(String(64))
    cree_le: Mapped[datetime] = mapped_column(default=maintenant)
    vue_le: Mapped[datetime] = mapped_column(default=maintenant)
    expire_le: Mapped[datetime]


# La file de revue se lit par statut puis par ancienneté (pagination par clé) ; le journal
# d'audit par objet. Index déclarés ici pour ne pas toucher aux modèles du registre.
Index("ix_anomalie_file", Anomalie.statut, Anomalie.cree_le, Anomalie.id)
# La file par défaut (ouvertes et en cours) dans l'ordre des pages : une page en lit 51 entrées, même
# quand la file en compte cent mille (la requête répète la condition).
FILE_OUVERTE = "statut IN ('ouverte', 'en_cours')"
Index("ix_anomalie_file_ouverte", Anomalie.cree_le, Anomalie.id, sqlite_where=text(FILE_OUVERTE),
      postgresql_where=text(FILE_OUVERTE))
Index("ix_audit_objet", Audit.objet, Audit.objet_id)
