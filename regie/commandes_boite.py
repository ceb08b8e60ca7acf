"""Commandes `regie boite relever` et `regie factures datamatrix NUMERO`.

`regie boite relever` relève la boîte de réception : par défaut le dossier local
`$REGIE_DONNEES/boite` (le défaut embarqué), ou `--local DOSSIER`, ou un serveur SFTP
(`--hote`, `--utilisateur`, `--cle`, `--known-hosts` : en attendant la section [depot] de
regie.toml). Chaque `--entree DOSSIER[:CANAL[:MOTIF]]` ajoute un dossier à relever
(défaut : la racine, canal reconnu au contenu, tous les noms).

Codes de retour : 0 tout est rangé (importé, déjà importé ou reporté au passage suivant) ;
1 au moins un fichier refusé (quarantaine, erreurs sur la sortie d'erreur, une ligne chacune)
ou en erreur ; 2 usage ou configuration (clé d'hôte inconnue ou changée, authentification
refusée, dossier introuvable) ; 3 le pair SFTP injoignable après les nouvelles tentatives.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from regie.application import Application
from regie.arguments import date_iso as _date

OK, REFUSE, USAGE, INJOIGNABLE = 0, 1, 2, 3




def _entree(texte: str) -> Any:
    from regie.services.boite_reception import AUTO, EntreeBoite

    dossier, _, reste = texte.partition(":")
    canal, _, motif = reste.partition(":")
    try:
        return EntreeBoite(dossier, canal or AUTO, motif or "*")
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


# --- regie boite relever ---------------------------------------------------------------------


def cmd_boite_relever(app: Application, args: argparse.Namespace) -> int:
    from connecteurs.sftp import ErreurDepot, PairInjoignable
    from regie.services.boite_reception import EntreeBoite, depot_depuis_configuration, relever

    entrees = args.entree or [EntreeBoite("")]
    try:
        if args.hote:
            depot = depot_depuis_configuration(hote=args.hote, port=args.port, utilisateur=args.utilisateur,
                                               cle_privee=args.cle, known_hosts=args.known_hosts,
                                               racine_distante=args.racine_distante, tentatives=args.tentatives)
        else:
            racine = args.local if args.local is not None else app.env.donnees / "boite"
            depot = depot_depuis_configuration(racine_locale=racine)
    except ValueError as exc:
        print(f"regie : {exc}", file=sys.stderr)
        return USAGE
    try:
        with depot:
            bilan = relever(app, depot, entrees, aujourd_hui=args.date)
    except PairInjoignable as exc:  # dès la connexion
        print(f"regie : {exc}", file=sys.stderr)
        return INJOIGNABLE
    except ErreurDepot as exc:  # clé d'hôte, authentification : rien n'a été importé
        print(f"regie : {exc}", file=sys.stderr)
        return USAGE
    for resultat in bilan.fichiers:
        print(resultat.ligne())
        for erreur in resultat.erreurs:
            print(erreur, file=sys.stderr)
    for erreur in bilan.erreurs_entrees:
        print(f"regie : {erreur}", file=sys.stderr)
    if bilan.rapprochement:
        print(f"Rapprochement : {bilan.rapprochement}")
    print(bilan.message())
    if bilan.interruption is not None:
        print(f"regie : {bilan.interruption}", file=sys.stderr)
        return INJOIGNABLE
    if bilan.erreurs_entrees:
        return USAGE
    return OK if bilan.complet else REFUSE


# --- regie factures datamatrix NUMERO ----------------------------------------------------------


def _nom_image(numero: str, extension: str) -> Path:
    return Path(f"datamatrix-{numero.replace('/', '_')}.{extension}")


def cmd_factures_datamatrix(app: Application, args: argparse.Namespace) -> int:
    from sqlalchemy import select

    from connecteurs.buralistes.datamatrix import charge_utile
    from connecteurs.buralistes.image import image_png, image_svg
    from regie.registre.modeles import EtatFacture, Facture

    with app.sessions() as session:
        trouvee = session.execute(select(Facture, EtatFacture).join(EtatFacture, EtatFacture.facture_id == Facture.id)
                                  .where(Facture.numero == args.numero)).one_or_none()
        if trouvee is None:
            print(f"regie : facture « {args.numero} » inconnue", file=sys.stderr)
            return REFUSE
        facture, etat = trouvee
        reste, statut, periode = etat.reste, etat.statut, facture.periode
        numero_dette, code_regie = facture.numero_dette, facture.regie_code
    if statut == "annulee" or reste <= 0:
        print(f"regie : facture « {args.numero} » {'annulée' if statut == 'annulee' else 'soldée'} : "
              "rien à payer, pas de datamatrix", file=sys.stderr)
        return REFUSE
    regie = app.config.regies.get(code_regie)
    if regie is None:
        print(f"regie : la régie « {code_regie} » de la facture « {args.numero} » n'est plus dans la "
              "configuration", file=sys.stderr)
        return USAGE
    collectivite = app.config.collectivite
    try:
        payload = charge_utile(code_etablissement=collectivite.code_etablissement, periode=periode,
                               code_produit=regie.code_produit, numero_dette=numero_dette,
                               codique=collectivite.codique, montant_centimes=reste)
    except ValueError as exc:
        print(f"regie : facture « {args.numero} » : datamatrix impossible ({exc})", file=sys.stderr)
        return REFUSE
    # Entre guillemets : les 64 espaces de tête font partie de la charge utile.
    print(f'"{payload}"')
    png, svg = args.png, args.svg
    if png is None and svg is None:
        png = _nom_image(args.numero, "png")
    if png is not None:
        png.write_bytes(image_png(payload))
        print(f"PNG : {png}")
    if svg is not None:
        svg.write_text(image_svg(payload), encoding="utf-8")
        print(f"SVG : {svg}")
    return OK


# --- Enregistrement dans l'analyseur -----------------------------------------------------------


def ajouter_commandes(sous: Any, sous_factures: Any) -> None:
    boite = sous.add_parser("boite", help="boîte de réception : fichiers à relever (SFTP ou dossier local)")
    bs = boite.add_subparsers(dest="action", required=True, parser_class=sous._parser_class, metavar="ACTION")
    c = bs.add_parser("relever", help="relève, importe et range les fichiers nouveaux",
                      description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    c.add_argument("--local", type=Path, default=None, metavar="DOSSIER",
                   help="dossier local servant de boîte (défaut : $REGIE_DONNEES/boite)")
    c.add_argument("--entree", type=_entree, action="append", default=None, metavar="DOSSIER[:CANAL[:MOTIF]]",
                   help="dossier à relever, son canal (auto par défaut) et le motif des noms (* par défaut)")
    c.add_argument("--date", type=_date, default=None, help="« aujourd'hui » pour les règles (AAAA-MM-JJ)")
    sftp = c.add_argument_group("serveur SFTP (au lieu du dossier local)")
    sftp.add_argument("--hote", default=None)
    sftp.add_argument("--port", type=int, default=22)
    sftp.add_argument("--utilisateur", default=None)
    sftp.add_argument("--cle", type=Path, default=None, metavar="CLE_PRIVEE")
    sftp.add_argument("--known-hosts", type=Path, default=None, metavar="FICHIER")
    sftp.add_argument("--racine-distante", default=None, metavar="CHEMIN")
    sftp.add_argument("--tentatives", type=int, default=3, help="essais avant de déclarer le pair injoignable")
    c.set_defaults(faire=cmd_boite_relever)

    c = sous_factures.add_parser("datamatrix", help="affiche la charge utile du datamatrix et écrit son image")
    c.add_argument("numero", metavar="NUMERO")
    c.add_argument("--png", type=Path, default=None, metavar="FICHIER",
                   help=f"image PNG (défaut, sans --svg : {_nom_image('NUMERO', 'png')})")
    c.add_argument("--svg", type=Path, default=None, metavar="FICHIER", help="image SVG")
    c.set_defaults(faire=cmd_factures_datamatrix)
