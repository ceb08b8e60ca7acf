"""Diagnostic d'un pair SFTP, pour l'intégrateur ou l'exploitant.

    python -m connecteurs.sftp cle-hote --hote H [--port P]
        affiche l'empreinte de la clé d'hôte et la ligne known_hosts correspondante, à vérifier
        auprès de l'exploitant du serveur avant de l'ajouter : rien n'est écrit ni accepté.
    python -m connecteurs.sftp lister --hote H --utilisateur U --cle K --known-hosts F DOSSIER
        se connecte comme la nuit le ferait et liste le dossier.

Codes de sortie : 0 fait, 1 erreur (clé d'hôte, authentification, dossier), 2 usage, 3 pair injoignable.
"""

from __future__ import annotations

import argparse
import socket
import sys
from collections.abc import Sequence

import paramiko

from connecteurs.sftp.depot import ErreurDepot, PairInjoignable
from connecteurs.sftp.sftp import DepotSftp


def cle_hote(hote: str, port: int, delai_s: float) -> tuple[str, str]:
    """(empreinte SHA256, ligne known_hosts) de la clé que présente le serveur, sans s'authentifier."""
    try:
        with socket.create_connection((hote, port), timeout=delai_s) as prise:
            transport = paramiko.Transport(prise)
            try:
                transport.start_client(timeout=delai_s)
                cle = transport.get_remote_server_key()
            finally:
                transport.close()
    except (OSError, EOFError, paramiko.SSHException) as exc:
        raise PairInjoignable(f"{hote}:{port} injoignable : {exc or type(exc).__name__}") from exc
    nom = hote if port == 22 else f"[{hote}]:{port}"
    return cle.fingerprint, f"{nom} {cle.get_name()} {cle.get_base64()}"


def main(arguments: Sequence[str] | None = None) -> int:
    analyseur = argparse.ArgumentParser(prog="python -m connecteurs.sftp", description=__doc__,
                                        formatter_class=argparse.RawDescriptionHelpFormatter)
    commandes = analyseur.add_subparsers(dest="commande", required=True)
    c_cle = commandes.add_parser("cle-hote", help="empreinte de la clé d'hôte du serveur (rien n'est accepté)")
    c_lister = commandes.add_parser("lister", help="se connecter et lister un dossier distant")
    for commande in (c_cle, c_lister):
        commande.add_argument("--hote", required=True)
        commande.add_argument("--port", type=int, default=22)
        commande.add_argument("--delai", type=float, default=15.0)
    c_lister.add_argument("--utilisateur", required=True)
    c_lister.add_argument("--cle", required=True, help="chemin de la clé privée")
    c_lister.add_argument("--known-hosts", required=True)
    c_lister.add_argument("--tentatives", type=int, default=3)
    c_lister.add_argument("dossier")
    options = analyseur.parse_args(arguments)

    try:
        if options.commande == "cle-hote":
            empreinte, ligne = cle_hote(options.hote, options.port, options.delai)
            print(f"empreinte : {empreinte}")
            print(f"ligne known_hosts (à vérifier avant de l'ajouter) : {ligne}")
        else:
            with DepotSftp(options.hote, options.port, options.utilisateur, options.cle, options.known_hosts,
                           delai_s=options.delai, tentatives=options.tentatives) as depot:
                for fichier in depot.lister(options.dossier):
                    print(f"{fichier.nom}\t{fichier.taille}\t{fichier.modifie_le.isoformat()}")
    except PairInjoignable as erreur:
        print(f"erreur : {erreur}", file=sys.stderr)
        return PairInjoignable.code_sortie
    except ErreurDepot as erreur:
        print(f"erreur : {erreur}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
