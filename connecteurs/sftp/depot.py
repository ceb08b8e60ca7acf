"""Le dépôt de fichiers : ce que l'envoi au Trésor et la boîte de réception attendent d'un pair.

Deux implémentations : `DepotSftp` (un serveur SFTP, clé d'hôte épinglée) et `DepotLocal`
(un dossier, le défaut embarqué). Aucune base de données ici : l'enregistrement avant et
après l'envoi, l'import par canal et la quarantaine appartiennent à la couche de service.

Les dossiers se désignent par un chemin POSIX relatif à la racine du dépôt (ou absolu).
"""

from __future__ import annotations

import contextlib
import enum
import hashlib
import os
import secrets
import string
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import BinaryIO, Protocol, Self, runtime_checkable

from regie.erreurs import ErreurRegie

# Nom temporaire d'un envoi : caché, reconnaissable, unique par appel.
MARQUE_TEMPORAIRE = ".part-"
TAILLE_BLOC = 1024 * 1024


# --- Valeurs -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FichierDistant:
    """Un fichier ordinaire vu dans un dossier du dépôt."""

    nom: str
    taille: int
    modifie_le: datetime  # UTC


class StatutEnvoi(enum.StrEnum):
    DEPOSE = "depose"
    DEJA_DEPOSE = "deja_depose"  # le même contenu était déjà là sous ce nom : rien n'a été renvoyé


@dataclass(frozen=True, slots=True)
class EnvoiResultat:
    dossier: str
    nom: str
    taille: int
    sha256: str
    statut: StatutEnvoi
    termine_le: datetime  # UTC

    @property
    def deja_depose(self) -> bool:
        return self.statut is StatutEnvoi.DEJA_DEPOSE


@dataclass(frozen=True, slots=True)
class FichierRecu:
    """Un fichier téléchargé : ce que la boîte de réception enregistre (nom, SHA-256, taille)."""

    nom: str
    taille: int
    sha256: str
    chemin: Path


@dataclass(frozen=True, slots=True)
class Empreinte:
    taille: int
    sha256: str


# --- Erreurs -------------------------------------------------------------------------------


class ErreurDepot(ErreurRegie):
    """Racine des erreurs de dépôt ; le message est en français et dit quoi faire."""

    code = "depot"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class CleHoteInconnue(ErreurDepot):
    """Clé d'hôte absente de known_hosts ou différente : jamais acceptée, rien n'est transféré."""

    code = "cle_hote_inconnue"

    def __init__(self, hote: str, empreinte_recue: str, *, attendue: str | None = None,
                 known_hosts: str | None = None) -> None:
        self.hote = hote
        self.empreinte_recue = empreinte_recue
        self.empreinte_attendue = attendue
        fichier = f" ({known_hosts})" if known_hosts else ""
        if attendue is None:
            message = (f"{hote} : clé d'hôte inconnue {empreinte_recue}, absente de known_hosts{fichier} ; "
                       "vérifiez l'empreinte auprès de l'exploitant du serveur avant de l'ajouter")
        else:
            message = (f"{hote} : la clé d'hôte a changé ({empreinte_recue} reçue, {attendue} attendue "
                       f"dans known_hosts{fichier}) ; transfert arrêté, vérifiez auprès de l'exploitant")
        super().__init__(message)


class AuthentificationRefusee(ErreurDepot):
    code = "authentification_refusee"


class PairInjoignable(ErreurDepot):
    """Le pair ne répond pas après toutes les tentatives (la commande sort avec le code 3)."""

    code = "pair_injoignable"
    code_sortie = 3


class FichierDejaPresent(ErreurDepot):
    """Un autre contenu occupe déjà le nom final : on n'écrase jamais."""

    code = "fichier_deja_present"

    def __init__(self, dossier: str, nom: str, *, taille_distante: int, taille_locale: int) -> None:
        self.dossier = dossier
        self.nom = nom
        super().__init__(
            f"{_chemin_affiche(dossier, nom)} : un fichier de même nom et de contenu différent est déjà "
            f"déposé ({taille_distante} octets, le nôtre en fait {taille_locale}) ; il n'est pas écrasé")


class FichierAbsent(ErreurDepot):
    code = "fichier_absent"

    def __init__(self, dossier: str, nom: str) -> None:
        self.dossier = dossier
        self.nom = nom
        super().__init__(f"{_chemin_affiche(dossier, nom)} : fichier introuvable dans le dépôt")


class DossierIntrouvable(ErreurDepot):
    code = "dossier_introuvable"

    def __init__(self, dossier: str) -> None:
        self.dossier = dossier
        super().__init__(f"{dossier or '.'} : dossier introuvable dans le dépôt (vérifiez la configuration)")


class TransfertIncomplet(ErreurDepot):
    """La taille relue ne correspond pas : le fichier n'est pas publié sous son nom final."""

    code = "transfert_incomplet"


class FichierInstable(ErreurDepot):
    """Le fichier a changé pendant sa lecture (le pair l'écrit encore) : à reprendre plus tard."""

    code = "fichier_instable"


# --- L'interface -----------------------------------------------------------------------------


@runtime_checkable
class Depot(Protocol):
    """Ce que DepotSftp et DepotLocal savent faire, avec la même sémantique."""

    def lister(self, dossier: str) -> list[FichierDistant]:
        """Fichiers ordinaires du dossier, triés par nom, sans les temporaires d'envoi."""
        ...

    def lire(self, dossier: str, nom: str) -> bytes: ...

    def telecharger(self, dossier: str, nom: str, destination: Path) -> FichierRecu:
        """Copie en flux vers `destination` (écrite sous un nom temporaire puis renommée)."""
        ...

    def deplacer(self, dossier: str, nom: str, vers_dossier: str) -> str:
        """Déplace vers `vers_dossier` (relatif à `dossier`, créé au besoin) ; rend le nom retenu,
        suffixé (`nom-2.ext`) si ce nom y est déjà pris : les deux sont gardés."""
        ...

    def deposer(self, chemin_local: Path, dossier: str, nom_final: str) -> EnvoiResultat:
        """Envoi sous un nom temporaire, taille vérifiée, puis renommage sans écraser.

        Si `nom_final` existe déjà avec la même taille et le même SHA-256 : statut `deja_depose`,
        rien n'est renvoyé. Avec un autre contenu : FichierDejaPresent."""
        ...

    def taille(self, dossier: str, nom: str) -> int | None: ...

    def empreinte(self, dossier: str, nom: str) -> str | None:
        """SHA-256 (hexadécimal) du fichier distant, lu en entier ; None s'il n'existe pas."""
        ...

    def nettoyer_temporaires(self, dossier: str, *, age_min_s: float = 0.0) -> list[str]:
        """Supprime les temporaires d'envoi laissés par une exécution interrompue ; rend leurs noms."""
        ...

    def fermer(self) -> None: ...

    def __enter__(self) -> Self: ...

    def __exit__(self, type_exc: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None: ...


# --- Outils communs aux deux implémentations ------------------------------------------------------


def verifier_nom(nom: str) -> str:
    """Un nom de fichier simple : jamais un chemin, jamais un nom caché de temporaire."""
    if not nom or nom in {".", ".."} or "/" in nom or "\\" in nom or "\x00" in nom:
        raise ErreurDepot(f"{nom!r} : nom de fichier invalide (un nom simple, sans dossier, est attendu)")
    return nom


def est_temporaire(nom: str) -> bool:
    return nom.startswith(".") and MARQUE_TEMPORAIRE in nom


def nom_temporaire(nom_final: str, jeton: str) -> str:
    return f".{nom_final}{MARQUE_TEMPORAIRE}{jeton}"


def nom_suffixe(nom: str, rang: int) -> str:
    """`PES.xml`, 2 → `PES-2.xml` : pour garder deux fichiers de même nom dans `traites/`."""
    base, point, extension = nom.rpartition(".")
    if not point or not base:
        return f"{nom}-{rang}"
    return f"{base}-{rang}.{extension}"


class FluxLisible(Protocol):
    """Un fichier local ouvert en binaire ou un fichier SFTP de paramiko."""

    def read(self, size: int, /) -> bytes: ...


def mesurer_flux(flux: FluxLisible) -> Empreinte:
    sha = hashlib.sha256()
    taille = 0
    for bloc in iter(lambda: flux.read(TAILLE_BLOC), b""):
        sha.update(bloc)
        taille += len(bloc)
    return Empreinte(taille, sha.hexdigest())


def mesurer(chemin: Path) -> Empreinte:
    """Taille et SHA-256 d'un fichier local : de quoi l'enregistrer avant de l'envoyer."""
    with chemin.open("rb") as flux:
        return mesurer_flux(flux)


def blocs(flux: BinaryIO) -> Iterator[bytes]:
    yield from iter(lambda: flux.read(TAILLE_BLOC), b"")


def copier_vers(flux: FluxLisible, destination: Path, nom: str) -> FichierRecu:
    """Copie un flux vers `destination` (temporaire local, fsync, os.replace), SHA-256 au passage."""
    destination.parent.mkdir(parents=True, exist_ok=True)
    temporaire = destination.with_name(nom_temporaire(destination.name, secrets.token_hex(4)))
    sha = hashlib.sha256()
    taille = 0
    try:
        with temporaire.open("xb") as sortie:
            while bloc := flux.read(TAILLE_BLOC):
                sortie.write(bloc)
                sha.update(bloc)
                taille += len(bloc)
            sortie.flush()
            os.fsync(sortie.fileno())
        os.replace(temporaire, destination)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            temporaire.unlink()
        raise
    return FichierRecu(nom, taille, sha.hexdigest(), destination)


def verifier_stable(nom: str, avant: tuple[int, float], apres: tuple[int, float], taille_lue: int) -> None:
    """Le fichier n'a pas bougé pendant sa lecture (taille, date) ; sinon le pair l'écrit encore."""
    if avant != apres or taille_lue != apres[0]:
        raise FichierInstable(f"{nom} : le fichier a changé pendant sa lecture (le pair l'écrit encore ?) ; "
                              "il sera repris au prochain passage")


def appliquer_motif(motif: str, **champs: str) -> str:
    """Nom distant selon le motif configuré, ex. `"{nom}"` ou `"ROUTAGE_{siren}_{nom}"`.

    Seuls des champs simples sont permis (pas d'attribut ni d'index) ; le résultat doit rester
    un nom de fichier simple."""
    for _texte, champ, _format, _conversion in string.Formatter().parse(motif):
        if champ is None:
            continue
        if champ not in champs:
            connus = ", ".join(sorted(champs))
            raise ErreurDepot(f"motif de nom {motif!r} : champ {{{champ}}} inconnu (champs possibles : {connus})")
    return verifier_nom(motif.format(**champs))


def _chemin_affiche(dossier: str, nom: str) -> str:
    return f"{dossier.rstrip('/')}/{nom}" if dossier not in {"", "."} else nom
