"""Commandes `regie titres emettre|envoyer`, `regie acquits importer`, `regie journaux` (specs/cli.md).

Codes de retour : 0 fait ; 1 entrée refusée (ou un fichier distant en conflit, non envoyé) ;
2 mauvais usage ou configuration (clé d'hôte inconnue, clé refusée, dossier distant absent) ;
3 pair injoignable après les nouvelles tentatives.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from datetime import date
from pathlib import Path
from typing import Any

from regie.application import Application
from regie.arguments import date_iso as _date
from regie.arguments import fichier_existant as _fichier

OK, REFUSE, USAGE, INJOIGNABLE = 0, 1, 2, 3




def _mois(texte: str) -> tuple[int, int]:
    m = re.fullmatch(r"([0-9]{4})-(0[1-9]|1[0-2])", texte)
    if m is None:
        raise argparse.ArgumentTypeError(f"« {texte} » n'est pas un mois AAAA-MM")
    return int(m.group(1)), int(m.group(2))




def cmd_titres_emettre(app: Application, args: argparse.Namespace) -> int:
    from exports.titres import emettre

    app.synchroniser_referentiel()
    bilan = emettre(app, args.date or date.today())
    for chemin in bilan.fichiers:
        print(chemin)
    if bilan.impossibles:
        print(f"{bilan.impossibles} facture(s) non titrée(s) : payeur ou lignes à corriger, voir la file de revue "
              "(TITRE_IMPOSSIBLE)", file=sys.stderr)
    return OK


def _depot(app: Application, args: argparse.Namespace) -> Any:
    from connecteurs.sftp import DepotLocal, DepotSftp
    from exports.envoi import DOSSIER_DEPOT_LOCAL

    if not args.sftp_hote:
        return DepotLocal(Path(args.depot_local) if args.depot_local else app.env.donnees / DOSSIER_DEPOT_LOCAL)
    manquants = [o for o, v in (("--sftp-utilisateur", args.sftp_utilisateur), ("--sftp-cle", args.sftp_cle),
                                ("--sftp-known-hosts", args.sftp_known_hosts)) if not v]
    if manquants:
        raise _Usage(f"envoi SFTP : {', '.join(manquants)} manquant(s)")
    return DepotSftp(args.sftp_hote, args.sftp_port, args.sftp_utilisateur, args.sftp_cle, args.sftp_known_hosts,
                     tentatives=args.tentatives, attente_initiale_s=args.attente, delai_s=args.delai)


class _Usage(Exception):
    pass


def cmd_titres_envoyer(app: Application, args: argparse.Namespace) -> int:
    from connecteurs.sftp import AuthentificationRefusee, CleHoteInconnue, DossierIntrouvable, ErreurDepot
    from connecteurs.sftp import PairInjoignable as Injoignable
    from exports.envoi import envoyer_fichiers

    try:
        depot = _depot(app, args)
    except _Usage as exc:
        print(f"regie : {exc}", file=sys.stderr)
        return USAGE
    try:
        with depot:
            bilan = envoyer_fichiers(app, depot, dossier_distant=args.dossier_distant, motif=args.motif)
    except Injoignable as exc:
        print(f"regie : {exc} ; rien n'est marqué déposé, le prochain passage reprendra", file=sys.stderr)
        return INJOIGNABLE
    except (CleHoteInconnue, AuthentificationRefusee, DossierIntrouvable) as exc:
        print(f"regie : {exc}", file=sys.stderr)
        return USAGE
    except ErreurDepot as exc:
        print(f"regie : {exc}", file=sys.stderr)
        return REFUSE
    print(bilan.message())
    for conflit in bilan.en_conflit:
        print(conflit, file=sys.stderr)
    return OK if bilan.complet else REFUSE


def cmd_acquits_importer(app: Application, args: argparse.Namespace) -> int:
    from exports.service_acquits import importer_acquit

    rapport = importer_acquit(app, args.fichier)  # FichierRefuse : la CLI sort en 1 avec chaque erreur
    print(rapport.message())
    return OK


def cmd_journaux(app: Application, args: argparse.Namespace) -> int:
    from exports.journaux import Periode, ecrire_journaux

    periode = Periode.mois(*args.mois) if args.mois is not None else Periode.jour(args.date or date.today())
    for chemin in ecrire_journaux(app, periode, Path(args.dossier) if args.dossier else None):
        print(chemin)
    return OK


def ajouter_commandes(sous: Any, _sous_factures: Any) -> None:
    classe = sous._parser_class
    tit = sous.add_parser("titres", help="titres de recettes (PES V2) et leur envoi au Trésor public")
    ts = tit.add_subparsers(dest="action", required=True, parser_class=classe, metavar="ACTION")
    c = ts.add_parser("emettre", help="titre les factures dues et écrit les PES_Aller dans la boîte d'envoi")
    c.add_argument("--date", type=_date, default=None, help="« aujourd'hui » pour le délai de titre (AAAA-MM-JJ)")
    c.set_defaults(faire=cmd_titres_emettre)

    c = ts.add_parser("envoyer", help="dépose les fichiers écrits chez le pair (SFTP, ou un dossier local)")
    env = os.environ.get
    c.add_argument("--sftp-hote", default=env("REGIE_SFTP_HOTE"), help="sans lui : le dépôt local embarqué")
    c.add_argument("--sftp-port", type=int, default=int(env("REGIE_SFTP_PORT", "22")))
    c.add_argument("--sftp-utilisateur", default=env("REGIE_SFTP_UTILISATEUR"))
    c.add_argument("--sftp-cle", default=env("REGIE_SFTP_CLE"), help="clé privée (jamais de mot de passe)")
    c.add_argument("--sftp-known-hosts", default=env("REGIE_SFTP_KNOWN_HOSTS"), help="clé d'hôte épinglée")
    c.add_argument("--dossier-distant", default=env("REGIE_SFTP_DOSSIER_DEPOT", "."))
    c.add_argument("--motif", default=env("REGIE_SFTP_MOTIF", "{nom}"),
                   help="nom distant : champs {nom}, {siren}, {date}")
    c.add_argument("--depot-local", default=env("REGIE_DEPOT_LOCAL"), help="dossier du dépôt local")
    c.add_argument("--tentatives", type=int, default=3)
    c.add_argument("--attente", type=float, default=1.0, help="première attente entre deux tentatives (s)")
    c.add_argument("--delai", type=float, default=15.0, help="délai réseau (s)")
    c.set_defaults(faire=cmd_titres_envoyer)

    acq = sous.add_parser("acquits", help="accusés de réception d'Hélios (PES_ACQUIT)")
    acs = acq.add_subparsers(dest="action", required=True, parser_class=classe, metavar="ACTION")
    c = acs.add_parser("importer", help="applique un PES_ACQUIT")
    c.add_argument("fichier", type=_fichier, metavar="FICHIER")
    c.set_defaults(faire=cmd_acquits_importer)

    c = sous.add_parser("journaux", help="journal des encaissements, état de rapprochement, remboursements")
    quand = c.add_mutually_exclusive_group()
    quand.add_argument("--date", type=_date, default=None, help="le jour (AAAA-MM-JJ), aujourd'hui par défaut")
    quand.add_argument("--mois", type=_mois, default=None, help="le mois (AAAA-MM)")
    c.add_argument("--dossier", default=None, help="dossier de sortie (défaut : <données>/journaux)")
    c.set_defaults(faire=cmd_journaux)
