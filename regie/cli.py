"""La commande `regie` (specs/cli.md) : noms, sorties et codes de retour dont dépendent les scripts.

Codes de retour : 0 fait ; 1 entrée refusée (rien d'appliqué) ; 2 mauvais usage ou configuration ;
3 un pair injoignable après les nouvelles tentatives.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import importlib
import os
import sys
from collections.abc import Callable, Sequence
from typing import NoReturn

import structlog

from regie import __version__
from regie.application import Application
from regie.arguments import fichier_existant as _fichier
from regie.erreurs import ErreurRegie, FichierRefuse
from regie.journalisation import configurer
from regie.parametres import ConfigurationInvalide

OK, REFUSE, USAGE, INJOIGNABLE = 0, 1, 2, 3
log = structlog.get_logger()

Commande = Callable[[Application, argparse.Namespace], int]


class PairInjoignable(Exception):
    """Un pair (SFTP, PayFiP) n'a pas répondu après les nouvelles tentatives."""






# --- Commandes ------------------------------------------------------------------------------

def cmd_init(app: Application, _args: argparse.Namespace) -> int:
    revision = app.initialiser()
    print(f"Base à jour (révision {revision}) : {app.moteur.url.render_as_string(hide_password=True)}")
    return OK


def cmd_factures_importer(app: Application, args: argparse.Namespace) -> int:
    from regie.services.fichiers import message_si_inchange

    if (deja := message_si_inchange(app, args.fichier, "factures")) is not None:
        print(deja)
        return OK
    from regie.services.factures import importer_fichier_factures

    app.synchroniser_referentiel()
    rapport = importer_fichier_factures(app, args.fichier)
    print(rapport.message())
    return OK


def cmd_etat(app: Application, args: argparse.Namespace) -> int:
    from regie.services.etat import ecrire_etat, etat

    if args.json:
        ecrire_etat(app, sys.stdout)
        return OK
    e = etat(app)
    par_statut: dict[str, int] = {}
    for f in e["factures"]:
        par_statut[f["statut"]] = par_statut.get(f["statut"], 0) + 1
    print(f"{len(e['factures'])} facture(s) : "
          + (", ".join(f"{n} {s}" for s, n in sorted(par_statut.items())) or "aucune"))
    en_anomalie = sum(1 for p in e["paiements"] if p["statut"] == "en_anomalie")
    print(f"{len(e['paiements'])} paiement(s), dont {en_anomalie} en anomalie")
    print(f"{len(e['familles'])} famille(s)")
    return OK


def cmd_verifier(app: Application, _args: argparse.Namespace) -> int:
    from regie.services.verification import verifier

    bilan = verifier(app)
    for ecart in bilan.ecarts:
        print(f"{ecart.controle} : {ecart.message}", file=sys.stderr)
    print(bilan.message())
    return OK if bilan.coherent else REFUSE


# --- Analyse des arguments ------------------------------------------------------------------

class _Analyseur(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        self.exit(USAGE, f"regie : erreur d'usage : {message}\n")


def analyseur() -> argparse.ArgumentParser:
    p = _Analyseur(prog="regie", description="Registre des factures et des paiements (régie de recettes).")
    p.add_argument("--version", action="version", version=f"regie {__version__}")
    sous = p.add_subparsers(dest="commande", required=True, parser_class=_Analyseur, metavar="COMMANDE")

    c = sous.add_parser("init", help="crée ou met à niveau le schéma de la base")
    c.set_defaults(faire=cmd_init)

    fac = sous.add_parser("factures", help="factures et avoirs du portail")
    fs = fac.add_subparsers(dest="action", required=True, parser_class=_Analyseur, metavar="ACTION")
    c = fs.add_parser("importer", help="importe un fichier JSON Lines de factures et d'avoirs")
    c.add_argument("fichier", type=_fichier, metavar="FICHIER")
    c.set_defaults(faire=cmd_factures_importer)

    c = sous.add_parser("verifier", help="contrôle la cohérence de tout le registre (références, montants, "
                                         "parts par ligne, statuts, compte famille) ; 1 s'il y a un écart")
    c.set_defaults(faire=cmd_verifier)

    c = sous.add_parser("etat", help="affiche l'état du registre")
    c.add_argument("--json", action="store_true", help="l'objet JSON du contrat (specs/cli.md)")
    c.set_defaults(faire=cmd_etat)

    # Les autres modules ajoutent leurs commandes (chacun les siennes, dans son module).
    for module in MODULES_COMMANDES:
        try:
            ajouter = importlib.import_module(module).ajouter_commandes
        except ModuleNotFoundError as exc:
            if exc.name != module:
                raise
            continue
        ajouter(sous, fs)
    return p


# Chaque module expose ajouter_commandes(sous_commandes, sous_commandes_factures).
MODULES_COMMANDES = ("regie.commandes_paiements", "regie.api.commandes", "exports.commandes",
                     "regie.commandes_boite", "regie.commandes_nuit", "regie.commandes_utilisateurs")


def main(argv: Sequence[str] | None = None) -> int:
    try:
        return _main(argv)
    except BrokenPipeError:
        # `regie etat --json | head` : le lecteur est parti, ce n'est pas une erreur.
        sys.stderr.close()
        return OK


def _main(argv: Sequence[str] | None) -> int:
    configurer()
    args = analyseur().parse_args(argv)
    try:
        app = Application.depuis_environnement()
    except ConfigurationInvalide as exc:
        print(f"regie : configuration invalide\n{exc}", file=sys.stderr)
        return USAGE
    try:
        return _commande(app, args)
    finally:
        app.fermer()


def _commande(app: Application, args: argparse.Namespace) -> int:
    try:
        if args.faire is not cmd_init and not app.schema_a_jour():
            print("regie : la base n'est pas initialisée ou pas à jour : lancez « regie init »", file=sys.stderr)
            return USAGE
        code: int = args.faire(app, args)
        return code
    except FichierRefuse as refus:
        for erreur in refus.erreurs:
            print(str(erreur), file=sys.stderr)
        print(f"{refus.fichier} : fichier refusé en entier, rien n'a été appliqué "
              f"({len(refus.erreurs)} erreur(s)) ; il est gardé en quarantaine", file=sys.stderr)
        return REFUSE
    except ErreurRegie as exc:
        # Une décision refusée, une donnée inconnue : rien n'a été appliqué.
        print(f"regie : {exc}", file=sys.stderr)
        return REFUSE
    except PairInjoignable as exc:
        print(f"regie : {exc}", file=sys.stderr)
        return INJOIGNABLE


def programme() -> NoReturn:
    """La commande `regie` (les tests appellent `main`) : sortie sans démonter l'interprète.

    Après un gros import, libérer un à un les millions d'objets encore en mémoire et faire la dernière passe
    du ramasse-miettes prenait 0,2 à 0,3 s par commande. Ce qui doit se faire à la sortie se fait avant :
    connexions fermées (`Application.fermer`), fonctions `atexit` (processus enfants, fichiers temporaires,
    journaux), sorties vidées.
    """
    code = main()
    atexit._run_exitfuncs()
    for sortie in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):  # lecteur parti, sortie fermée (`regie etat | head`)
            sortie.flush()
    os._exit(code)


if __name__ == "__main__":
    programme()
