"""Dépôt sur un serveur SFTP (paramiko) : clé d'hôte épinglée, authentification par clé seule.

Chaque opération passe par `_executer` : une coupure (connexion refusée, délai dépassé,
connexion réinitialisée, serveur disparu en plein transfert) ferme la session et l'opération
est reprise depuis le début après une attente qui double, jusqu'à `tentatives` ; au-delà,
PairInjoignable. Reprendre un envoi est sûr : rien n'est publié sous le nom final avant le
renommage, et un nom final déjà présent avec le même contenu n'est jamais renvoyé.
"""

from __future__ import annotations

import contextlib
import posixpath
import secrets
import socket
import stat
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import NoReturn, Self, TypeVar

import paramiko
import structlog

from connecteurs.sftp.depot import (
    AuthentificationRefusee,
    CleHoteInconnue,
    DossierIntrouvable,
    Empreinte,
    EnvoiResultat,
    ErreurDepot,
    FichierAbsent,
    FichierDejaPresent,
    FichierDistant,
    FichierInstable,
    FichierRecu,
    PairInjoignable,
    StatutEnvoi,
    TransfertIncomplet,
    copier_vers,
    est_temporaire,
    mesurer,
    mesurer_flux,
    nom_suffixe,
    nom_temporaire,
    verifier_nom,
    verifier_stable,
)

log = structlog.get_logger()

T = TypeVar("T")


class _Coupure(Exception):
    """Défaillance passagère pendant l'établissement de la connexion : on réessaie."""


class _RefusCleInconnue(paramiko.RejectPolicy):
    """RejectPolicy qui dit l'empreinte reçue ; une clé inconnue n'est jamais ajoutée."""

    def __init__(self, known_hosts: str) -> None:
        self.known_hosts = known_hosts

    def missing_host_key(self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey) -> NoReturn:
        raise CleHoteInconnue(hostname, key.fingerprint, known_hosts=self.known_hosts)


class DepotSftp:
    """Un dossier d'échange sur un serveur SFTP.

    `racine` (facultative) préfixe les dossiers relatifs ; sans elle, ils sont relatifs au
    dossier d'arrivée de l'utilisateur sur le serveur.
    """

    def __init__(self, hote: str, port: int, utilisateur: str, cle_privee_chemin: Path | str,
                 known_hosts_chemin: Path | str, *, delai_s: float = 15, tentatives: int = 3,
                 attente_initiale_s: float = 1.0, racine: str | None = None,
                 phrase_secrete: str | None = None) -> None:
        if tentatives < 1:
            raise ValueError("tentatives doit valoir au moins 1")
        self.hote = hote
        self.port = port
        self.utilisateur = utilisateur
        self.cle_privee_chemin = Path(cle_privee_chemin)
        self.known_hosts_chemin = Path(known_hosts_chemin)
        self.delai_s = delai_s
        self.tentatives = tentatives
        self.attente_initiale_s = attente_initiale_s
        self.racine = racine
        self._phrase_secrete = phrase_secrete
        self._client: paramiko.SSHClient | None = None
        self._sftp: paramiko.SFTPClient | None = None

    def __repr__(self) -> str:  # jamais la phrase secrète
        return f"DepotSftp({self.utilisateur}@{self.hote}:{self.port}, racine={self.racine!r})"

    # --- Connexion ---------------------------------------------------------------------------

    def __enter__(self) -> Self:
        self.connecter()
        return self

    def __exit__(self, type_exc: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.fermer()

    def connecter(self) -> None:
        """Ouvre la session dès maintenant (sinon elle s'ouvre à la première opération)."""
        self._executer("connexion", lambda _sftp: None)

    def fermer(self) -> None:
        sftp, client = self._sftp, self._client
        self._sftp = self._client = None
        with contextlib.suppress(Exception):
            if sftp is not None:
                sftp.close()
        with contextlib.suppress(Exception):
            if client is not None:
                client.close()

    def _nom_hote(self) -> str:
        return self.hote if self.port == 22 else f"[{self.hote}]:{self.port}"

    def _charger_cle(self) -> paramiko.PKey:
        try:
            return paramiko.PKey.from_path(self.cle_privee_chemin, self._phrase_secrete)
        except paramiko.PasswordRequiredException:
            raise ErreurDepot(f"{self.cle_privee_chemin} : la clé privée est chiffrée et aucune phrase secrète "
                              "n'est configurée") from None
        except (OSError, paramiko.SSHException, ValueError) as exc:
            raise ErreurDepot(f"{self.cle_privee_chemin} : clé privée illisible ({type(exc).__name__})") from None

    def _session(self) -> paramiko.SFTPClient:
        if self._sftp is not None and self._transport_actif():
            return self._sftp
        self.fermer()
        cle = self._charger_cle()
        client = paramiko.SSHClient()
        try:
            client.load_host_keys(str(self.known_hosts_chemin))
        except OSError:
            raise ErreurDepot(f"{self.known_hosts_chemin} : fichier known_hosts illisible ; la clé d'hôte du "
                              "serveur doit y être inscrite avant tout transfert") from None
        client.set_missing_host_key_policy(_RefusCleInconnue(str(self.known_hosts_chemin)))
        try:
            client.connect(self.hote, port=self.port, username=self.utilisateur, pkey=cle,
                           allow_agent=False, look_for_keys=False, timeout=self.delai_s,
                           banner_timeout=self.delai_s, auth_timeout=self.delai_s,
                           channel_timeout=self.delai_s)
            sftp = client.open_sftp()
            sftp.get_channel().settimeout(self.delai_s)  # type: ignore[union-attr]
        except paramiko.BadHostKeyException as exc:
            client.close()
            raise CleHoteInconnue(self._nom_hote(), exc.key.fingerprint, attendue=exc.expected_key.fingerprint,
                                  known_hosts=str(self.known_hosts_chemin)) from None
        except paramiko.AuthenticationException:
            client.close()
            raise AuthentificationRefusee(
                f"{self.utilisateur}@{self.hote}:{self.port} : authentification refusée avec la clé "
                f"{self.cle_privee_chemin} (clé absente des clés autorisées du serveur ?)") from None
        except ErreurDepot:
            client.close()
            raise
        except (OSError, EOFError, paramiko.SSHException) as exc:
            client.close()
            raise _Coupure(_cause(exc)) from exc
        except BaseException:
            client.close()
            raise
        self._client, self._sftp = client, sftp
        transport = client.get_transport()
        empreinte = transport.get_remote_server_key().fingerprint if transport else None
        log.info("connexion_sftp", hote=self.hote, port=self.port, utilisateur=self.utilisateur,
                 cle_hote=empreinte)
        return sftp

    def _transport_actif(self) -> bool:
        transport = self._client.get_transport() if self._client is not None else None
        return transport is not None and transport.is_active()

    def _executer(self, quoi: str, action: Callable[[paramiko.SFTPClient], T]) -> T:
        derniere = "?"
        for essai in range(1, self.tentatives + 1):
            try:
                return action(self._session())
            except _Coupure as exc:
                derniere = str(exc)
            except ErreurDepot:
                raise
            except (OSError, EOFError, paramiko.SSHException) as exc:
                passagere = isinstance(exc, EOFError | TimeoutError | ConnectionError) or not self._transport_actif()
                if not passagere:
                    # Le serveur répond mais refuse (droits, quota...) : réessayer n'y changerait rien.
                    raise ErreurDepot(f"{self.hote}:{self.port} : {quoi} refusé par le serveur "
                                      f"({_cause(exc)})") from exc
                derniere = _cause(exc)
            self.fermer()
            if essai < self.tentatives:
                attente = self.attente_initiale_s * 2 ** (essai - 1)
                log.warning("sftp_nouvelle_tentative", hote=self.hote, port=self.port, operation=quoi,
                            essai=essai, attente_s=attente, cause=derniere)
                time.sleep(attente)
        log.error("sftp_injoignable", hote=self.hote, port=self.port, operation=quoi,
                  tentatives=self.tentatives, cause=derniere)
        raise PairInjoignable(f"{self.hote}:{self.port} injoignable après {self.tentatives} tentative"
                              f"{'s' if self.tentatives > 1 else ''} ({quoi}) : {derniere}")

    # --- Chemins -------------------------------------------------------------------------------

    def _dossier(self, dossier: str) -> str:
        if self.racine and not dossier.startswith("/"):
            return posixpath.normpath(posixpath.join(self.racine, dossier or "."))
        return posixpath.normpath(dossier or ".")

    def _fichier(self, dossier: str, nom: str) -> str:
        return posixpath.join(self._dossier(dossier), verifier_nom(nom))

    # --- Opérations ----------------------------------------------------------------------------

    def lister(self, dossier: str) -> list[FichierDistant]:
        chemin = self._dossier(dossier)

        def action(sftp: paramiko.SFTPClient) -> list[FichierDistant]:
            try:
                entrees = sftp.listdir_attr(chemin)
            except FileNotFoundError:
                raise DossierIntrouvable(dossier) from None
            fichiers = [
                FichierDistant(e.filename, e.st_size or 0, datetime.fromtimestamp(e.st_mtime or 0, UTC))
                for e in entrees
                if e.st_mode is not None and stat.S_ISREG(e.st_mode) and not est_temporaire(e.filename)
            ]
            return sorted(fichiers, key=lambda f: f.nom)

        return self._executer(f"liste de {dossier}", action)

    def lire(self, dossier: str, nom: str) -> bytes:
        chemin = self._fichier(dossier, nom)

        def action(sftp: paramiko.SFTPClient) -> bytes:
            try:
                with sftp.open(chemin, "rb") as flux:
                    flux.prefetch()
                    return flux.read()
            except FileNotFoundError:
                raise FichierAbsent(dossier, nom) from None

        return self._executer(f"lecture de {nom}", action)

    def telecharger(self, dossier: str, nom: str, destination: Path) -> FichierRecu:
        chemin = self._fichier(dossier, nom)

        def action(sftp: paramiko.SFTPClient) -> FichierRecu:
            try:
                avant = sftp.stat(chemin)
                with sftp.open(chemin, "rb") as flux:
                    flux.prefetch(avant.st_size)
                    recu = copier_vers(flux, destination, nom)
                apres = sftp.stat(chemin)
            except FileNotFoundError:
                raise FichierAbsent(dossier, nom) from None
            try:
                verifier_stable(nom, (avant.st_size or 0, avant.st_mtime or 0),
                                (apres.st_size or 0, apres.st_mtime or 0), recu.taille)
            except FichierInstable:
                recu.chemin.unlink(missing_ok=True)  # une copie incohérente ne doit pas être importée
                raise
            return recu

        recu = self._executer(f"téléchargement de {nom}", action)
        log.info("fichier_telecharge", depot="sftp", dossier=dossier, nom=nom, taille=recu.taille, sha256=recu.sha256)
        return recu

    def deplacer(self, dossier: str, nom: str, vers_dossier: str) -> str:
        source = self._fichier(dossier, nom)
        cible = posixpath.normpath(posixpath.join(self._dossier(dossier), vers_dossier))
        dernier_essai: list[str] = []  # nom visé par un renommage dont la réponse a pu se perdre

        def action(sftp: paramiko.SFTPClient) -> str:
            _creer_dossiers(sftp, cible)
            if _stat(sftp, source) is None:
                if dernier_essai and _stat(sftp, posixpath.join(cible, dernier_essai[-1])) is not None:
                    return dernier_essai[-1]  # la coupure a suivi le renommage : il a eu lieu
                raise FichierAbsent(dossier, nom)
            rang, retenu = 1, nom
            while True:
                if _stat(sftp, posixpath.join(cible, retenu)) is None:
                    dernier_essai.append(retenu)
                    try:
                        # Le rename SFTP v3 n'écrase jamais une cible existante (posix-rename, lui, écraserait).
                        sftp.rename(source, posixpath.join(cible, retenu))
                        return retenu
                    except OSError:
                        if not self._transport_actif() or _stat(sftp, posixpath.join(cible, retenu)) is None:
                            raise
                rang += 1
                retenu = nom_suffixe(nom, rang)

        retenu = self._executer(f"déplacement de {nom}", action)
        log.info("fichier_deplace", depot="sftp", dossier=dossier, nom=nom, vers=vers_dossier, nom_retenu=retenu)
        return retenu

    def taille(self, dossier: str, nom: str) -> int | None:
        chemin = self._fichier(dossier, nom)

        def action(sftp: paramiko.SFTPClient) -> int | None:
            attributs = _stat(sftp, chemin)
            return None if attributs is None else attributs.st_size or 0

        return self._executer(f"taille de {nom}", action)

    def empreinte(self, dossier: str, nom: str) -> str | None:
        chemin = self._fichier(dossier, nom)

        def action(sftp: paramiko.SFTPClient) -> str | None:
            mesure = _mesurer_distant(sftp, chemin)
            return None if mesure is None else mesure.sha256

        return self._executer(f"empreinte de {nom}", action)

    def deposer(self, chemin_local: Path, dossier: str, nom_final: str) -> EnvoiResultat:
        verifier_nom(nom_final)
        locale = mesurer(chemin_local)
        chemin_dossier = self._dossier(dossier)
        final = posixpath.join(chemin_dossier, nom_final)
        # Un seul nom temporaire par appel : une reprise réécrit le même, rien ne traîne.
        temporaire = posixpath.join(chemin_dossier, nom_temporaire(nom_final, secrets.token_hex(4)))
        publication_tentee = False

        def deja_la(sftp: paramiko.SFTPClient) -> StatutEnvoi:
            distante = _mesurer_distant(sftp, final)
            if distante is None or distante != locale:
                raise FichierDejaPresent(dossier, nom_final, taille_distante=distante.taille if distante else 0,
                                         taille_locale=locale.taille)
            return StatutEnvoi.DEPOSE if publication_tentee else StatutEnvoi.DEJA_DEPOSE

        def action(sftp: paramiko.SFTPClient) -> StatutEnvoi:
            nonlocal publication_tentee
            if _stat(sftp, chemin_dossier) is None:
                raise DossierIntrouvable(dossier)
            if _stat(sftp, final) is not None:
                return deja_la(sftp)
            with chemin_local.open("rb") as flux:
                sftp.putfo(flux, temporaire, file_size=locale.taille, confirm=False)
            recue = _stat(sftp, temporaire)
            taille_recue = None if recue is None else recue.st_size
            if taille_recue != locale.taille:
                with contextlib.suppress(OSError):
                    sftp.remove(temporaire)
                raise TransfertIncomplet(f"{nom_final} : le serveur a reçu {taille_recue} octets au lieu de "
                                         f"{locale.taille} ; rien n'est publié, l'envoi est à reprendre")
            publication_tentee = True
            try:
                sftp.rename(temporaire, final)  # SFTP v3 : échoue si `final` existe, n'écrase jamais
            except OSError:
                if not self._transport_actif():
                    raise
                if _stat(sftp, final) is not None:  # arrivé entre-temps : même règle qu'au début
                    with contextlib.suppress(OSError):
                        sftp.remove(temporaire)
                    publication_tentee = False
                    return deja_la(sftp)
                # Serveur qui refuse le rename v3 : posix-rename, la cible étant vérifiée absente.
                sftp.posix_rename(temporaire, final)
            return StatutEnvoi.DEPOSE

        statut = self._executer(f"dépôt de {nom_final}", action)
        log.info("fichier_depose", depot="sftp", hote=self.hote, dossier=dossier, nom=nom_final,
                 taille=locale.taille, sha256=locale.sha256, statut=statut.value)
        return EnvoiResultat(dossier, nom_final, locale.taille, locale.sha256, statut, datetime.now(UTC))

    def nettoyer_temporaires(self, dossier: str, *, age_min_s: float = 0.0) -> list[str]:
        chemin = self._dossier(dossier)

        def action(sftp: paramiko.SFTPClient) -> list[str]:
            try:
                entrees = sftp.listdir_attr(chemin)
            except FileNotFoundError:
                raise DossierIntrouvable(dossier) from None
            limite = time.time() - age_min_s
            supprimes = []
            for entree in sorted(entrees, key=lambda e: e.filename):
                if not est_temporaire(entree.filename):
                    continue
                if age_min_s > 0 and (entree.st_mtime or 0) > limite:
                    continue
                with contextlib.suppress(FileNotFoundError):
                    sftp.remove(posixpath.join(chemin, entree.filename))
                    supprimes.append(entree.filename)
            return supprimes

        supprimes = self._executer(f"nettoyage de {dossier}", action)
        for nom in supprimes:
            log.info("temporaire_supprime", depot="sftp", dossier=dossier, nom=nom)
        return supprimes


def _stat(sftp: paramiko.SFTPClient, chemin: str) -> paramiko.SFTPAttributes | None:
    try:
        return sftp.stat(chemin)
    except FileNotFoundError:
        return None


def _mesurer_distant(sftp: paramiko.SFTPClient, chemin: str) -> Empreinte | None:
    try:
        with sftp.open(chemin, "rb") as flux:
            flux.prefetch()
            return mesurer_flux(flux)
    except FileNotFoundError:
        return None


def _creer_dossiers(sftp: paramiko.SFTPClient, chemin: str) -> None:
    """mkdir -p distant ; un dossier créé en même temps par un autre est accepté."""
    a_creer = []
    courant = chemin
    while courant not in {"", "/", "."} and _stat(sftp, courant) is None:
        a_creer.append(courant)
        courant = posixpath.dirname(courant)
    for dossier in reversed(a_creer):
        try:
            sftp.mkdir(dossier)
        except OSError:
            if _stat(sftp, dossier) is None:
                raise


def _cause(exc: BaseException) -> str:
    texte = str(exc) or type(exc).__name__
    if isinstance(exc, socket.timeout | TimeoutError):
        texte = f"délai dépassé ({texte})"
    return texte
