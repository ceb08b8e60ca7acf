"""Diagnostic du datamatrix de paiement de proximité.

    python -m connecteurs.buralistes decoder 'CHARGE UTILE DE 130 CARACTÈRES'
    python -m connecteurs.buralistes encoder --etablissement 019 --periode 2026-05 --produit 043 \\
        --dette 123 --codique 094012 --montant 42.00 [--png fichier.png] [--svg fichier.svg]

`decoder` sort avec le code 0 si la charge utile est valide, 1 sinon ; 2 pour une commande mal formée.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from connecteurs.buralistes.datamatrix import LONGUEUR, PARTIES, charge_utile, decoder
from regie.montants import MontantInvalide, centimes_en_euros, euros_en_centimes

_NOMS = {
    "code_etablissement": "code établissement (65-67)",
    "code_periode": "code période (68)",
    "mois": "mois (d'après le rang)",
    "code_produit": "code produit (69-71)",
    "exercice": "exercice (74-75)",
    "numero_dette": "numéro de dette (94-108)",
    "codique": "codique (109-114)",
    "montant_centimes": "montant dû (123-130)",
    "rang": "rang mod 23 (92-93)",
    "lettre": "lettre mod 23",
}

_CONTROLES = {
    "longueur": "longueur",
    "caracteres_fixes": "caractères fixes",
    "cle5": "clé 5 (76)",
    "cle3": "clé 3 (87-88)",
    "cle2": "clé 2 (90-91)",
    "cle1": "clé 1 (117-118)",
    "rang_mod23": "rang mod 23 (92-93)",
}


def _afficher_decodage(payload: str) -> int:
    resultat = decoder(payload)
    print(f"charge utile : «{payload}» ({len(payload)} caractères sur {LONGUEUR})")
    print("VALIDE" if resultat.valide else "INVALIDE (DATAMATRIX_INVALIDE)")
    for champ, nom in _NOMS.items():
        valeur = getattr(resultat, champ)
        if champ == "montant_centimes" and valeur is not None:
            valeur = f"{centimes_en_euros(valeur)} €"
        print(f"  {nom:<28} {'illisible' if valeur is None else valeur}")
    fautives = set(resultat.parties_en_erreur())
    # Une clé dont les chiffres sont illisibles n'est pas recalculée : sans erreur, elle n'est pas
    # « bonne » pour autant quand la charge utile est invalide.
    sans_erreur = "bon" if resultat.valide else "pas d'erreur relevée"
    print("contrôles :")
    for partie, nom in _CONTROLES.items():
        print(f"  {nom:<28} {'FAUX' if partie in fautives else sans_erreur}")
    autres = [p for p in PARTIES if p in fautives and p not in _CONTROLES]
    if autres:
        print("  format des champs           FAUX (" + ", ".join(autres) + ")")
    for erreur in resultat.erreurs:
        print(f"  - {erreur.partie} : {erreur.raison}")
    return 0 if resultat.valide else 1


def main(arguments: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m connecteurs.buralistes",
                                     description="Diagnostic du datamatrix de paiement de proximité")
    commandes = parser.add_subparsers(dest="commande", required=True)
    dec = commandes.add_parser("decoder", help="décoder et contrôler une charge utile (entre apostrophes)")
    dec.add_argument("payload", help="les 130 caractères, espaces de tête compris")
    enc = commandes.add_parser("encoder", help="construire la charge utile d'une facture")
    enc.add_argument("--etablissement", required=True, help="code établissement, 3 chiffres")
    enc.add_argument("--periode", required=True, help="période de la facture, AAAA-MM")
    enc.add_argument("--produit", required=True, help="code produit, 3 chiffres")
    enc.add_argument("--dette", required=True, type=int, help="numéro de dette")
    enc.add_argument("--codique", required=True, help="codique du poste comptable, 6 chiffres")
    enc.add_argument("--montant", required=True, help="montant dû en euros, « 42.00 »")
    enc.add_argument("--png", type=Path, help="écrire aussi l'image PNG dans ce fichier")
    enc.add_argument("--svg", type=Path, help="écrire aussi l'image SVG dans ce fichier")
    args = parser.parse_args(arguments)

    if args.commande == "decoder":
        return _afficher_decodage(args.payload)
    try:
        payload = charge_utile(code_etablissement=args.etablissement, periode=args.periode,
                               code_produit=args.produit, numero_dette=args.dette, codique=args.codique,
                               montant_centimes=euros_en_centimes(args.montant))
    except (ValueError, MontantInvalide) as exc:
        print(f"erreur : {exc}", file=sys.stderr)
        return 2
    print(f"'{payload}'")
    if args.png or args.svg:
        from connecteurs.buralistes.image import image_png, image_svg  # libdmtx seulement si on dessine

        if args.png:
            args.png.write_bytes(image_png(payload))
            print(f"PNG écrit : {args.png}")
        if args.svg:
            args.svg.write_text(image_svg(payload), encoding="utf-8")
            print(f"SVG écrit : {args.svg}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
