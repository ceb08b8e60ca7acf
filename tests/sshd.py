"""Un vrai serveur OpenSSH sur la boucle locale pour les tests SFTP.

`sshd_serveur` (fixture de module) démarre `sshd -D -e` sur 127.0.0.1, port libre, en tant
que l'utilisateur courant : clé d'hôte et clé client ed25519 générées dans un dossier
temporaire, known_hosts prêt (`[127.0.0.1]:PORT ssh-ed25519 ...`), un dossier « distant »
qui est aussi un chemin local pour vérifier ce que le serveur a reçu. Le serveur s'arrête,
se tue (coupure franche, sessions comprises) et redémarre sur le même port.

Sans /usr/sbin/sshd : test sauté avec un message, sauf en CI (variable CI) où c'est un échec.
"""

from __future__ import annotations

import contextlib
import getpass
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import paramiko
import psutil
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

CHEMINS_SSHD = ("/usr/sbin/sshd", "/usr/local/sbin/sshd")


def trouver_sshd() -> str:
    """Chemin de sshd ; sinon saute le test (poste de dev) ou échoue (CI)."""
    for chemin in (*CHEMINS_SSHD, shutil.which("sshd")):
        if chemin and os.access(chemin, os.X_OK):
            return chemin
    message = ("OpenSSH sshd introuvable (/usr/sbin/sshd) : les tests SFTP exigent un vrai serveur ; "
               "lancez scripts/installer_sshd.sh")
    if os.environ.get("CI"):
        pytest.fail(message + " (en CI, son absence est une erreur)", pytrace=False)
    pytest.skip(message)


def port_libre() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def generer_cle(chemin: Path) -> str:
    """Écrit une clé privée ed25519 au format OpenSSH (0600) ; rend la ligne publique."""
    cle = Ed25519PrivateKey.generate()
    chemin.write_bytes(cle.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
                                         serialization.NoEncryption()))
    chemin.chmod(0o600)
    publique = cle.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    return publique.decode("ascii")


class ServeurSshd:
    def __init__(self, dossier: Path, binaire: str) -> None:
        self.dossier = dossier
        self.binaire = binaire
        self.hote = "127.0.0.1"
        self.port = port_libre()
        self.utilisateur = getpass.getuser()
        self.racine = dossier / "distant"
        self.racine.mkdir()
        self.cle_client = dossier / "id_client"
        self.cle_hote = dossier / "cle_hote"
        self.known_hosts = dossier / "known_hosts"
        self.journal = dossier / "sshd.log"
        self.config = dossier / "sshd_config"
        self.pid_fichier = dossier / "sshd.pid"
        self.cle_client_publique = generer_cle(self.cle_client)
        self.cle_hote_publique = generer_cle(self.cle_hote)
        self.empreinte = paramiko.PKey.from_path(self.cle_hote).fingerprint
        (dossier / "authorized_keys").write_text(self.cle_client_publique + "\n")
        self.known_hosts.write_text(self.ligne_known_hosts(self.cle_hote_publique))
        self.config.write_text("\n".join([
            f"Port {self.port}",
            "ListenAddress 127.0.0.1",
            f"HostKey {self.cle_hote}",
            f"PidFile {self.pid_fichier}",
            f"AuthorizedKeysFile {dossier / 'authorized_keys'}",
            "PubkeyAuthentication yes",
            "PasswordAuthentication no",
            "KbdInteractiveAuthentication no",
            "PermitRootLogin prohibit-password",
            "StrictModes no",
            "UsePAM no",
            "UseDNS no",
            "MaxStartups 50",
            "LogLevel VERBOSE",
            "Subsystem sftp internal-sftp",
            "",
        ]))
        self._processus: subprocess.Popen[bytes] | None = None

    def ligne_known_hosts(self, cle_publique: str) -> str:
        type_cle, corps = cle_publique.split()[:2]
        return f"[{self.hote}]:{self.port} {type_cle} {corps}\n"

    @property
    def en_marche(self) -> bool:
        return self._processus is not None and self._processus.poll() is None

    def demarrer(self, delai_s: float = 10.0) -> None:
        if self.en_marche:
            return
        if os.geteuid() == 0:
            Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # dossier de séparation des privilèges
        with self.journal.open("ab") as journal:
            self._processus = subprocess.Popen([self.binaire, "-D", "-e", "-f", str(self.config)],
                                               stdout=journal, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        limite = time.monotonic() + delai_s
        while time.monotonic() < limite:
            if self._processus.poll() is not None:
                raise RuntimeError(f"sshd s'est arrêté au démarrage :\n{self.journal.read_text(errors='replace')}")
            with contextlib.suppress(OSError), socket.create_connection((self.hote, self.port), timeout=1) as s:
                if s.recv(8).startswith(b"SSH-"):
                    return
            time.sleep(0.02)
        self.tuer()
        raise RuntimeError(f"sshd n'écoute pas sur {self.port} après {delai_s} s :\n{self.journal.read_text()}")

    def _sessions(self) -> list[psutil.Process]:
        if self._processus is None:
            return []
        try:
            return list(psutil.Process(self._processus.pid).children(recursive=True))
        except psutil.NoSuchProcess:
            return []

    def couper_sessions(self) -> None:
        """Coupe net les connexions en cours (SIGKILL des sessions) ; l'écoute continue."""
        for session in self._sessions():
            with contextlib.suppress(psutil.NoSuchProcess):
                session.send_signal(signal.SIGKILL)

    def tuer(self) -> None:
        """Coupure franche : l'écoute et toutes les sessions meurent ensemble."""
        self._arreter(signal.SIGKILL)

    def arreter(self) -> None:
        self._arreter(signal.SIGTERM)

    def _arreter(self, signal_envoye: signal.Signals) -> None:
        if self._processus is None:
            return
        sessions = self._sessions()  # relevées avant : orphelines, elles ne seraient plus retrouvées
        if self._processus.poll() is None:
            self._processus.send_signal(signal_envoye)
        for session in sessions:
            with contextlib.suppress(psutil.NoSuchProcess):
                session.send_signal(signal.SIGKILL)
        try:
            self._processus.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._processus.kill()
            self._processus.wait(timeout=10)
        psutil.wait_procs(sessions, timeout=5)
        self._processus = None

    def redemarrer(self) -> None:
        self.arreter()
        self.demarrer()


@pytest.fixture(scope="module")
def sshd_serveur(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeurSshd]:
    binaire = trouver_sshd()
    serveur = ServeurSshd(tmp_path_factory.mktemp("sshd"), binaire)
    serveur.demarrer()
    try:
        yield serveur
    finally:
        serveur.arreter()
