"""Comptes des agents, connexion, sessions côté serveur, jeton CSRF et verrouillage.

- Mot de passe haché en argon2id ; un identifiant inconnu coûte le même calcul (pas d'oracle).
- Session : un jeton aléatoire dans un cookie HttpOnly ; la base n'en garde que l'empreinte.
  Elle expire après `INACTIVITE` sans requête ou `DUREE_MAX` après la connexion.
- CSRF : un jeton par session, exigé dans chaque formulaire POST (comparaison à temps constant).
- Verrouillage : `ECHECS_MAX` échecs de suite verrouillent le compte `DUREE_VERROU`.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

import structlog
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from regie.application import Application
from regie.registre.modeles_pages import ROLES, SessionAgent, Utilisateur
from regie.registre.moteur import ecriture_sans_attendre, moteur_lecture
from regie.registre.types import maintenant

log = structlog.get_logger()

ECHECS_MAX = 5
DUREE_VERROU = timedelta(minutes=15)
INACTIVITE = timedelta(minutes=30)
DUREE_MAX = timedelta(hours=10)
LONGUEUR_MIN = 10
_HACHEUR = PasswordHasher()
_LEURRE = _HACHEUR.hash("mot de passe de leurre, jamais valide")

# Ce que chaque rôle peut faire (les décisions qui rendent de l'argent sont au régisseur).
DROITS: dict[str, frozenset[str]] = {
    "consultation": frozenset(),
    "agent": frozenset({"affecter", "garder_en_credit", "appliquer_credit", "annuler_affectation"}),
    "regisseur": frozenset({"affecter", "garder_en_credit", "appliquer_credit", "annuler_affectation",
                            "rembourser", "annuler_paiement"}),
}


class CompteRefuse(Exception):
    """Création ou modification d'un compte refusée (message en français)."""


@dataclass(frozen=True)
class Agent:
    """L'agent connecté, tel que les pages le voient."""

    id: int
    identifiant: str
    nom: str
    role: str
    csrf: str
    session_id: int

    def peut(self, decision: str) -> bool:
        return decision in DROITS.get(self.role, frozenset())


@dataclass(frozen=True)
class Connexion:
    """Le résultat d'une tentative : un jeton de session, ou un refus avec sa raison."""

    jeton: str | None
    message: str | None = None


def empreinte(jeton: str) -> str:
    return hashlib.sha256(jeton.encode()).hexdigest()


def jetons_egaux(a: str | None, b: str | None) -> bool:
    return bool(a) and bool(b) and hmac.compare_digest(str(a), str(b))


# --- Comptes ------------------------------------------------------------------------------

def creer_utilisateur(app: Application, identifiant: str, role: str, mot_de_passe: str,
                      nom: str | None = None) -> None:
    identifiant = identifiant.strip()
    if not identifiant or len(identifiant) > 60 or any(c.isspace() for c in identifiant):
        raise CompteRefuse(f"identifiant « {identifiant} » invalide (1 à 60 caractères, sans espace)")
    if role not in ROLES:
        raise CompteRefuse(f"rôle « {role} » inconnu : {', '.join(ROLES)}")
    if len(mot_de_passe) < LONGUEUR_MIN:
        raise CompteRefuse(f"mot de passe trop court : au moins {LONGUEUR_MIN} caractères")
    with app.sessions() as s, s.begin():
        if s.scalar(select(Utilisateur.id).where(Utilisateur.identifiant == identifiant)) is not None:
            raise CompteRefuse(f"l'utilisateur « {identifiant} » existe déjà")
        s.add(Utilisateur(identifiant=identifiant, nom=(nom or identifiant).strip()[:100], role=role,
                          mot_de_passe=_HACHEUR.hash(mot_de_passe), echecs=0, actif=True))
    log.info("utilisateur_cree", identifiant=identifiant, role=role)


def lister_utilisateurs(app: Application) -> list[Utilisateur]:
    with app.sessions() as s:
        return list(s.scalars(select(Utilisateur).order_by(Utilisateur.identifiant)))


def desactiver_utilisateur(app: Application, identifiant: str) -> bool:
    """Désactive le compte et ferme ses sessions ; faux si l'identifiant est inconnu."""
    with app.sessions() as s, s.begin():
        u = s.scalar(select(Utilisateur).where(Utilisateur.identifiant == identifiant))
        if u is None:
            return False
        u.actif = False
        s.execute(delete(SessionAgent).where(SessionAgent.utilisateur_id == u.id))
    log.info("utilisateur_desactive", identifiant=identifiant)
    return True


# --- Connexion et sessions -----------------------------------------------------------------

def _heure(quand: datetime) -> str:
    from zoneinfo import ZoneInfo

    return quand.astimezone(ZoneInfo("Europe/Paris")).strftime("%H:%M")


def se_connecter(app: Application, identifiant: str, mot_de_passe: str,
                 maintenant_: datetime | None = None) -> Connexion:
    """Vérifie le mot de passe ; ouvre une session ou compte un échec (et verrouille au 5e)."""
    now = maintenant_ or maintenant()
    refus = Connexion(None, "Identifiant ou mot de passe incorrect.")
    with app.sessions() as s, s.begin():
        u = s.scalar(select(Utilisateur).where(Utilisateur.identifiant == identifiant.strip())
                     .with_for_update())
        if u is None or not u.actif:
            _verifier(_LEURRE, mot_de_passe)  # même coût qu'un compte existant
            log.info("connexion_refusee", raison="compte_inconnu_ou_inactif")
            return refus
        if u.verrouille_jusqu_a is not None and u.verrouille_jusqu_a > now:
            log.info("connexion_refusee", identifiant=u.identifiant, raison="verrouille")
            return Connexion(None, f"Compte verrouillé après {ECHECS_MAX} échecs : réessayez après "
                                   f"{_heure(u.verrouille_jusqu_a)} ou demandez au régisseur.")
        if not _verifier(u.mot_de_passe, mot_de_passe):
            u.echecs += 1
            if u.echecs >= ECHECS_MAX:
                u.verrouille_jusqu_a, u.echecs = now + DUREE_VERROU, 0
                log.warning("compte_verrouille", identifiant=u.identifiant)
                return Connexion(None, f"Compte verrouillé après {ECHECS_MAX} échecs : réessayez après "
                                       f"{_heure(u.verrouille_jusqu_a)} ou demandez au régisseur.")
            log.info("connexion_refusee", identifiant=u.identifiant, raison="mot_de_passe", echecs=u.echecs)
            return refus
        if _HACHEUR.check_needs_rehash(u.mot_de_passe):
            u.mot_de_passe = _HACHEUR.hash(mot_de_passe)
        u.echecs, u.verrouille_jusqu_a, u.derniere_connexion = 0, None, now
        jeton = secrets.token_urlsafe(32)
        s.add(SessionAgent(empreinte=empreinte(jeton), utilisateur_id=u.id, csrf=secrets.token_urlsafe(32),
                           cree_le=now, vue_le=now, expire_le=now + DUREE_MAX))
        # Les sessions expirées de tout le monde partent au passage (aucune tâche de fond à écrire).
        s.execute(delete(SessionAgent).where(SessionAgent.expire_le < now - INACTIVITE))
    log.info("connexion", identifiant=identifiant)
    return Connexion(jeton)


def _verifier(hache: str, mot_de_passe: str) -> bool:
    try:
        return _HACHEUR.verify(hache, mot_de_passe)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def agent_de_la_session(app: Application, jeton: str | None, maintenant_: datetime | None = None) -> Agent | None:
    """L'agent de ce jeton si sa session vit encore (et prolonge l'inactivité) ; sinon None."""
    if not jeton:
        return None
    now = maintenant_ or maintenant()
    # Lue sans le verrou d'écriture : une page répond pendant l'import de la nuit.
    with Session(moteur_lecture(app.moteur)) as s:
        ligne = s.execute(select(SessionAgent, Utilisateur)
                          .join(Utilisateur, Utilisateur.id == SessionAgent.utilisateur_id)
                          .where(SessionAgent.empreinte == empreinte(jeton))).first()
    if ligne is None:
        return None
    sa, u = ligne
    if not u.actif or sa.expire_le <= now or sa.vue_le + INACTIVITE <= now:
        with app.moteur.begin() as conn:
            conn.execute(delete(SessionAgent).where(SessionAgent.id == sa.id))
        return None
    if now - sa.vue_le > timedelta(minutes=1):  # une écriture par minute au plus, et jamais attendue
        with ecriture_sans_attendre(app.moteur) as conn:
            if conn is not None:
                conn.execute(update(SessionAgent).where(SessionAgent.id == sa.id).values(vue_le=now))
    return Agent(u.id, u.identifiant, u.nom, u.role, sa.csrf, sa.id)


def se_deconnecter(app: Application, jeton: str | None) -> None:
    if not jeton:
        return
    with app.sessions() as s, s.begin():
        s.execute(delete(SessionAgent).where(SessionAgent.empreinte == empreinte(jeton)))
