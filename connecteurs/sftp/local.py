"""Un dossier local comme dépôt : le défaut embarqué, avec la sémantique du dépôt SFTP."""

from __future__ import annotations

import contextlib
import os
import secrets
import time
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Self

import structlog

from connecteurs.sftp.depot import (
    DossierIntrouvable,
    EnvoiResultat,
    FichierAbsent,
    FichierDejaPresent,
    FichierDistant,
    FichierInstable,
    FichierRecu,
    StatutEnvoi,
    TransfertIncomplet,
    blocs,
    copier_vers,
    est_temporaire,
    mesurer,
    nom_suffixe,
    nom_temporaire,
    verifier_nom,
    verifier_stable,
)

log = structlog.get_logger()


class DepotLocal:
    """Dépôt dans `racine` ; écritures sous nom temporaire, fsync, publication sans écraser."""

    def __init__(self, racine: Path, *, creer: bool = True) -> None:
        self.racine = Path(racine)
        if creer:
            self.racine.mkdir(parents=True, exist_ok=True)

    # Un dépôt local n'a pas de connexion ; les deux méthodes existent pour l'interface.
    def __enter__(self) -> Self:
        return self

    def __exit__(self, type_exc: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.fermer()

    def fermer(self) -> None:
        return None

    def _dossier(self, dossier: str) -> Path:
        return self.racine / dossier if dossier else self.racine

    def _dossier_existant(self, dossier: str) -> Path:
        chemin = self._dossier(dossier)
        if not chemin.is_dir():
            raise DossierIntrouvable(dossier)
        return chemin

    def lister(self, dossier: str) -> list[FichierDistant]:
        chemin = self._dossier_existant(dossier)
        fichiers = []
        with os.scandir(chemin) as entrees:
            for entree in entrees:
                if est_temporaire(entree.name) or not entree.is_file(follow_symlinks=False):
                    continue
                try:
                    etat = entree.stat(follow_symlinks=False)
                except FileNotFoundError:  # déplacé entre l'énumération et le stat
                    continue
                fichiers.append(FichierDistant(entree.name, etat.st_size,
                                               datetime.fromtimestamp(etat.st_mtime, UTC)))
        return sorted(fichiers, key=lambda f: f.nom)

    def lire(self, dossier: str, nom: str) -> bytes:
        try:
            return (self._dossier(dossier) / verifier_nom(nom)).read_bytes()
        except FileNotFoundError:
            raise FichierAbsent(dossier, nom) from None

    def telecharger(self, dossier: str, nom: str, destination: Path) -> FichierRecu:
        source = self._dossier(dossier) / verifier_nom(nom)
        try:
            avant = source.stat()
            with source.open("rb") as flux:
                recu = copier_vers(flux, destination, nom)
            apres = source.stat()
        except FileNotFoundError:
            raise FichierAbsent(dossier, nom) from None
        try:
            verifier_stable(nom, (avant.st_size, avant.st_mtime_ns), (apres.st_size, apres.st_mtime_ns), recu.taille)
        except FichierInstable:
            recu.chemin.unlink(missing_ok=True)  # une copie incohérente ne doit pas être importée
            raise
        return recu

    def deplacer(self, dossier: str, nom: str, vers_dossier: str) -> str:
        source = self._dossier(dossier) / verifier_nom(nom)
        cible_dossier = self._dossier(dossier) / vers_dossier
        cible_dossier.mkdir(parents=True, exist_ok=True)
        if not source.is_file():
            raise FichierAbsent(dossier, nom)
        rang, retenu = 1, nom
        while True:
            try:
                # link puis unlink : le nom cible n'est jamais écrasé (link échoue s'il existe).
                os.link(source, cible_dossier / retenu)
                break
            except FileExistsError:
                rang += 1
                retenu = nom_suffixe(nom, rang)
        source.unlink()
        _fsync_dossier(cible_dossier)
        _fsync_dossier(source.parent)
        log.info("fichier_deplace", depot="local", dossier=dossier, nom=nom, vers=vers_dossier, nom_retenu=retenu)
        return retenu

    def taille(self, dossier: str, nom: str) -> int | None:
        try:
            return (self._dossier(dossier) / verifier_nom(nom)).stat().st_size
        except FileNotFoundError:
            return None

    def empreinte(self, dossier: str, nom: str) -> str | None:
        try:
            return mesurer(self._dossier(dossier) / verifier_nom(nom)).sha256
        except FileNotFoundError:
            return None

    def deposer(self, chemin_local: Path, dossier: str, nom_final: str) -> EnvoiResultat:
        verifier_nom(nom_final)
        cible_dossier = self._dossier_existant(dossier)
        locale = mesurer(chemin_local)
        final = cible_dossier / nom_final
        if final.exists():
            return self._deja_la(dossier, nom_final, locale.taille, locale.sha256)
        temporaire = cible_dossier / nom_temporaire(nom_final, secrets.token_hex(4))
        try:
            with chemin_local.open("rb") as source, temporaire.open("xb") as sortie:
                for bloc in blocs(source):
                    sortie.write(bloc)
                sortie.flush()
                os.fsync(sortie.fileno())
                ecrit = os.fstat(sortie.fileno()).st_size
            if ecrit != locale.taille:
                raise TransfertIncomplet(f"{nom_final} : {ecrit} octets écrits au lieu de {locale.taille}")
            try:
                os.link(temporaire, final)
            except FileExistsError:
                # Apparu entre la vérification et la publication : même règle qu'au début.
                return self._deja_la(dossier, nom_final, locale.taille, locale.sha256)
            _fsync_dossier(cible_dossier)
        finally:
            with contextlib.suppress(FileNotFoundError):
                temporaire.unlink()
        log.info("fichier_depose", depot="local", dossier=dossier, nom=nom_final, taille=locale.taille,
                 sha256=locale.sha256, statut=StatutEnvoi.DEPOSE.value)
        return EnvoiResultat(dossier, nom_final, locale.taille, locale.sha256, StatutEnvoi.DEPOSE,
                             datetime.now(UTC))

    def _deja_la(self, dossier: str, nom: str, taille: int, sha256: str) -> EnvoiResultat:
        taille_distante = self.taille(dossier, nom)
        if taille_distante != taille or self.empreinte(dossier, nom) != sha256:
            raise FichierDejaPresent(dossier, nom, taille_distante=taille_distante or 0, taille_locale=taille)
        log.info("fichier_depose", depot="local", dossier=dossier, nom=nom, taille=taille, sha256=sha256,
                 statut=StatutEnvoi.DEJA_DEPOSE.value)
        return EnvoiResultat(dossier, nom, taille, sha256, StatutEnvoi.DEJA_DEPOSE, datetime.now(UTC))

    def nettoyer_temporaires(self, dossier: str, *, age_min_s: float = 0.0) -> list[str]:
        chemin = self._dossier_existant(dossier)
        limite = time.time() - age_min_s
        supprimes = []
        for entree in sorted(chemin.iterdir()):
            if not est_temporaire(entree.name):
                continue
            with contextlib.suppress(FileNotFoundError):
                if entree.stat().st_mtime <= limite:
                    entree.unlink()
                    supprimes.append(entree.name)
                    log.info("temporaire_supprime", depot="local", dossier=dossier, nom=entree.name)
        return supprimes


def _fsync_dossier(dossier: Path) -> None:
    # Le renommage n'est durable qu'une fois le dossier lui-même synchronisé.
    try:
        fd = os.open(dossier, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)

