"""Fichiers reçus : empreinte, « déjà importé », refus enregistré et quarantaine."""

from __future__ import annotations

import hashlib
import os
import shutil
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import structlog
from sqlalchemy import Connection, insert, select, update
from sqlalchemy.exc import IntegrityError

from regie.application import Application
from regie.erreurs import FichierRefuse
from regie.registre.modeles import FichierRecu
from regie.registre.moteur import connexion_lecture
from regie.registre.types import maintenant

log = structlog.get_logger()
# Nom de canal de la ligne de commande → canal des fichiers reçus.
CANAUX_FICHIER = {"buraliste": "buraliste", "cesu": "cesu", "crcesu": "crcesu", "cheque": "cheque",
                  "cfonb": "cfonb", "pes-retour": "pes_retour"}


@dataclass
class RapportImport:
    """Ce qu'un import a fait, pour l'utilisateur : comptes et raison."""

    fichier: str
    canal: str
    deja_importe: bool = False
    importes: int = 0
    ignores: int = 0
    comptes: dict[str, int] = field(default_factory=dict)

    def message(self) -> str:
        if self.deja_importe:
            return f"{self.fichier} : fichier déjà importé (même contenu), rien n'a changé"
        detail = ", ".join(f"{n} {k}" for k, n in self.comptes.items() if n)
        msg = f"{self.fichier} : {self.importes} enregistrement(s) importé(s)"
        if detail:
            msg += f" ({detail})"
        if self.ignores:
            msg += f", {self.ignores} déjà importé(s), ignoré(s)"
        return msg


# Un fichier déjà importé est reconnu sans être relu, comme git reconnaît un fichier inchangé : par son
# identité et ses dates dans le système de fichiers (`signature_fichier`). Le ctime ne se règle pas à la
# main (touch le remet à l'heure) : un contenu changé change la signature. Une signature n'est gardée
# que si le fichier n'a pas bougé pendant la seconde qui précède sa lecture : une écriture dans le même
# grain d'horloge que la lecture passerait sinon inaperçue.
MARGE_SIGNATURE_NS = 1_000_000_000


def signature_fichier(etat: os.stat_result) -> str:
    """Appareil, inode, taille, dates de modification et de changement (ns)."""
    return f"{etat.st_dev}:{etat.st_ino}:{etat.st_size}:{etat.st_mtime_ns}:{etat.st_ctime_ns}"


def _empreinte_et_signature(chemin: Path, avant: os.stat_result) -> tuple[str, int, str | None]:
    """SHA-256 et taille du contenu ; la signature (d'après `avant`, l'état pris juste avant) si le fichier
    était stable avant et pendant la lecture."""
    debut = time.time_ns()
    sha, taille = empreinte_fichier(chemin)
    signature = signature_fichier(avant)
    stable = (max(avant.st_mtime_ns, avant.st_ctime_ns) < debut - MARGE_SIGNATURE_NS
              and signature_fichier(chemin.stat()) == signature and taille == avant.st_size)
    return sha, taille, signature if stable else None


def empreinte_fichier(chemin: Path) -> tuple[str, int]:
    with chemin.open("rb") as f:
        # file_digest lit dans un tampon réutilisé, sans une copie par bloc.
        empreinte = hashlib.file_digest(f, "sha256").hexdigest()
        return empreinte, f.tell()


def deja_importe(conn: Connection, canal: str, sha256: str) -> bool:
    return conn.execute(select(FichierRecu.id).where(
        FichierRecu.canal == canal, FichierRecu.sha256 == sha256,
        FichierRecu.statut == "importe")).first() is not None


def reconnu_par_signature(conn: Connection, canal: str, signature: str) -> str | None:
    """Le SHA-256 du fichier importé sur ce canal qui avait cette signature, s'il y en a un."""
    return conn.execute(select(FichierRecu.sha256).where(
        FichierRecu.canal == canal, FichierRecu.signature == signature,
        FichierRecu.statut == "importe")).scalar()


def ouvrir_fichier(conn: Connection, nom: str, sha256: str, canal: str, taille: int,
                   origine: str | None, signature: str | None = None) -> int:
    """Inscrit le fichier comme importé dans la transaction de l'import (annulée avec lui)."""
    return int(conn.execute(insert(FichierRecu).returning(FichierRecu.id), {
        "nom": nom, "sha256": sha256, "canal": canal, "statut": "importe", "taille": taille,
        "nb_enregistrements": 0, "nb_ignores": 0, "erreurs": [], "origine": origine, "signature": signature,
        "recu_le": maintenant()}).scalar_one())


def enregistrer_refus(app: Application, chemin: Path, sha256: str, taille: int, canal: str,
                      refus: FichierRefuse, origine: str | None) -> Path:
    """Garde le fichier refusé en quarantaine et inscrit ses erreurs (dans sa propre transaction)."""
    horodatage = maintenant().strftime("%Y%m%dT%H%M%S")
    dossier = app.dossier_donnees("quarantaine", canal)
    copie = dossier / f"{horodatage}_{sha256[:12]}_{chemin.name}"
    if not copie.exists():
        shutil.copyfile(chemin, copie)
    erreurs = [e.en_dict() for e in refus.erreurs]
    (copie.with_name(copie.name + ".erreurs.txt")).write_text(
        "\n".join(str(e) for e in refus.erreurs) + "\n", encoding="utf-8")
    with app.moteur.begin() as conn:
        conn.execute(insert(FichierRecu), {
            "nom": chemin.name, "sha256": sha256, "canal": canal, "statut": "refuse", "taille": taille,
            "nb_enregistrements": 0, "nb_ignores": 0, "erreurs": erreurs, "origine": origine,
            "chemin_quarantaine": str(copie), "recu_le": maintenant()})
    log.warning("fichier_refuse", fichier=chemin.name, canal=canal, sha256=sha256,
                erreurs=len(refus.erreurs), quarantaine=str(copie))
    return copie


def reconnu_inchange(app: Application, chemin: Path, canal: str, avant: os.stat_result | None = None) -> bool:
    """Vrai si ce fichier, inchangé depuis son import sur ce canal, est reconnu à sa signature (sans le lire).

    Les commandes d'import le demandent avant de charger le code de lecture et de rapprochement : relancer
    une nuit sur des fichiers déjà importés ne coûte alors que le démarrage.
    """
    with connexion_lecture(app.moteur) as conn:  # une lecture : n'attend pas un import en cours
        connu = reconnu_par_signature(conn, canal, signature_fichier(avant or chemin.stat()))
    if connu is None:
        return False
    log.info("fichier_deja_importe", fichier=chemin.name, canal=canal, sha256=connu, reconnu_par="signature")
    return True


def message_si_inchange(app: Application, chemin: Path, canal: str) -> str | None:
    """Ce que dit une commande d'import d'un fichier reconnu inchangé (`reconnu_inchange`) ; None sinon."""
    if not reconnu_inchange(app, chemin, canal):
        return None
    return RapportImport(chemin.name, canal, deja_importe=True).message()


T = TypeVar("T")


R = TypeVar("R", bound=RapportImport)


# Au-delà, l'empreinte d'un fichier se calcule dans un fil pendant que l'import avance (SHA-256 d'un fichier de
# 900 Mo : 2 à 3 s, le dixième d'un million de factures), et « déjà importé ? » se demande à la fin.
SEUIL_EMPREINTE_PENDANT_L_IMPORT = 16 << 20  # octets


class _Empreinte:
    """SHA-256, taille et signature d'un fichier (`_empreinte_et_signature`) : calculées tout de suite, ou dans un
    fil pour un gros fichier ; `resultat()` les attend."""

    def __init__(self, chemin: Path, avant: os.stat_result) -> None:
        self._resultat: tuple[str, int, str | None] | None = None
        self._erreur: BaseException | None = None
        self._fil: threading.Thread | None = None
        if avant.st_size < SEUIL_EMPREINTE_PENDANT_L_IMPORT:
            self._resultat = _empreinte_et_signature(chemin, avant)
            return
        self._fil = threading.Thread(target=self._calculer, args=(chemin, avant), name="regie-empreinte", daemon=True)
        self._fil.start()

    def _calculer(self, chemin: Path, avant: os.stat_result) -> None:
        try:
            self._resultat = _empreinte_et_signature(chemin, avant)
        except BaseException as exc:  # relevée par `resultat()`, dans le fil de l'import
            self._erreur = exc

    @property
    def connue(self) -> bool:
        return self._fil is None

    def resultat(self) -> tuple[str, int, str | None]:
        if self._fil is not None:
            self._fil.join()
        if self._erreur is not None:
            raise self._erreur
        assert self._resultat is not None
        return self._resultat


class _DejaImporte(Exception):
    """L'empreinte, connue à la fin de l'import, est celle d'un fichier déjà importé : l'import est annulé."""


def importer_une_fois(app: Application, chemin: Path, canal: str, origine: str | None,
                      faire: Callable[[Connection, int, str], T], rapport: R) -> tuple[R, T | None]:
    """Le cadre de chaque import de fichier : tout ou rien, une seule fois.

    Un contenu déjà importé (même SHA-256, même canal) est reconnu et rien ne change. Sinon
    `faire(conn, fichier_id, nom)` travaille dans une seule transaction ; un `FichierRefuse` l'annule,
    garde le fichier en quarantaine avec ses erreurs et remonte. Deux processus qui importent le même
    fichier en même temps : l'index unique en arrête un, qui le dit déjà importé.

    Un gros fichier (`SEUIL_EMPREINTE_PENDANT_L_IMPORT`) est inscrit sous une empreinte provisoire, la sienne
    calculée pendant l'import ; celle-ci connue, un contenu déjà importé annule la transaction (rien ne change),
    sinon le fichier reçoit son empreinte avant la validation.
    """
    nom = chemin.name
    avant = chemin.stat()
    if reconnu_inchange(app, chemin, canal, avant):
        rapport.deja_importe = True
        return rapport, None
    empreinte = _Empreinte(chemin, avant)

    def deja(conn: Connection, sha: str) -> bool:
        if deja_importe(conn, canal, sha):
            rapport.deja_importe = True
            log.info("fichier_deja_importe", fichier=nom, canal=canal, sha256=sha, reconnu_par="sha256")
            return True
        return False

    def deja_a_part() -> bool:
        with app.moteur.connect() as conn:
            return deja(conn, empreinte.resultat()[0])

    if empreinte.connue and deja_a_part():
        return rapport, None
    try:
        with app.moteur.begin() as conn:
            if empreinte.connue:
                sha, taille, signature = empreinte.resultat()
                fichier_id = ouvrir_fichier(conn, nom, sha, canal, taille, origine, signature)
            else:
                # Unique (l'index des fichiers importés), jamais validée : remplacée avant la fin de la transaction.
                fichier_id = ouvrir_fichier(conn, nom, f"provisoire-{uuid.uuid4().hex}", canal, avant.st_size,
                                            origine)
            resultat = faire(conn, fichier_id, nom)
            if not empreinte.connue:
                sha, taille, signature = empreinte.resultat()
                if deja(conn, sha):
                    raise _DejaImporte
                conn.execute(update(FichierRecu).where(FichierRecu.id == fichier_id).values(
                    sha256=sha, taille=taille, signature=signature))
    except _DejaImporte:
        return rapport, None
    except FichierRefuse as refus:
        sha, taille, _ = empreinte.resultat()
        enregistrer_refus(app, chemin, sha, taille, canal, refus, origine)
        raise
    except IntegrityError:
        if deja_a_part():
            return rapport, None
        raise
    return rapport, resultat
