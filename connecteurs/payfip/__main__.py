"""Diagnostic PayFiP : interroger la DGFiP (ou le simulateur) directement.

    python -m connecteurs.payfip info-paiement IDOP [--endpoint URL]
    python -m connecteurs.payfip info-client NUMCLI [--endpoint URL]

Codes de sortie : 0 réponse obtenue, 1 faute PayFiP ou réponse illisible, 2 demande invalide,
3 PayFiP injoignable.
"""

from __future__ import annotations

import argparse
import logging
import sys
from typing import TextIO

import structlog

from connecteurs.payfip.client import (
    ENDPOINT_PRODUCTION,
    FUSEAU_DGFIP,
    DemandeInvalide,
    DetailPaiement,
    ErreurPayfip,
    PayfipInjoignable,
    ReponseInvalide,
    TransportPayfip,
    masquer_mel,
)
from regie.montants import centimes_en_euros

SORTIE_OK = 0
SORTIE_FAUTE = 1
SORTIE_DEMANDE = 2
SORTIE_INJOIGNABLE = 3


def _afficher_paiement(detail: DetailPaiement, sortie: TextIO) -> None:
    lignes = [
        ("idOp", detail.id_op),
        ("Résultat", f"{detail.resultat} ({detail.libelle_resultat})"),
        ("Montant", f"{centimes_en_euros(detail.montant_centimes)} €"),
        ("Référence (refdet)", detail.refdet),
        ("Numéro client", detail.numcli),
        ("Exercice (écho)", detail.exer or "—"),
        ("Saisie", detail.saisie or "—"),
        ("Objet", detail.objet or "—"),
        ("Courriel", masquer_mel(detail.mel) or "—"),
        ("N° d'autorisation", detail.numauto or "—"),
    ]
    if detail.paye_le is not None:
        paris = detail.paye_le.astimezone(FUSEAU_DGFIP)
        lignes.append(("Transaction", f"{paris:%d/%m/%Y %H:%M} (Paris), {detail.paye_le:%Y-%m-%dT%H:%MZ} (UTC)"))
    for nom, valeur in lignes:
        print(f"{nom:>20} : {valeur}", file=sortie)


def main(argv: list[str] | None = None, sortie: TextIO | None = None) -> int:
    sortie = sortie if sortie is not None else sys.stdout
    parseur = argparse.ArgumentParser(prog="python -m connecteurs.payfip", description="Diagnostic PayFiP Régie.")
    commun = argparse.ArgumentParser(add_help=False)
    commun.add_argument("--endpoint", default=ENDPOINT_PRODUCTION, help="adresse du service SOAP")
    commun.add_argument("--delai", type=float, default=10.0, help="délai d'attente d'une réponse, en secondes")
    commun.add_argument("--tentatives", type=int, default=3)
    sous = parseur.add_subparsers(dest="commande", required=True)
    paiement = sous.add_parser("info-paiement", parents=[commun], help="résultat d'une opération (idOp)")
    paiement.add_argument("id_op", metavar="IDOP")
    client = sous.add_parser("info-client", parents=[commun], help="libellés d'un numéro client")
    client.add_argument("numcli", metavar="NUMCLI")
    options = parseur.parse_args(argv)

    try:
        with TransportPayfip(options.endpoint, delai_s=options.delai, tentatives=options.tentatives) as transport:
            if options.commande == "info-paiement":
                _afficher_paiement(transport.recuperer_detail_paiement(options.id_op), sortie)
            else:
                detail = transport.recuperer_detail_client(options.numcli)
                for nom, valeur in (("Numéro client", detail.numcli), ("Libellé 1", detail.libelle_n1),
                                    ("Libellé 2", detail.libelle_n2), ("Libellé 3", detail.libelle_n3)):
                    print(f"{nom:>20} : {valeur or '—'}", file=sortie)
    except DemandeInvalide as exc:
        print(f"Demande invalide : {exc}", file=sortie)
        return SORTIE_DEMANDE
    except ErreurPayfip as exc:
        print(f"Faute PayFiP {exc.code} ({exc.classe}) : {exc.libelle}", file=sortie)
        if exc.descriptif:
            print(f"  {exc.descriptif}", file=sortie)
        if exc.code == "P5":
            print("  Le résultat n'est pas encore connu : paiement en cours.", file=sortie)
        elif exc.code == "P1":
            print("  Opération inconnue ou purgée (un idOp jamais utilisé est purgé la nuit suivante).", file=sortie)
        return SORTIE_FAUTE
    except ReponseInvalide as exc:
        print(str(exc), file=sortie)
        return SORTIE_FAUTE
    except PayfipInjoignable as exc:
        print(str(exc), file=sortie)
        return SORTIE_INJOIGNABLE
    return SORTIE_OK


if __name__ == "__main__":
    # En ligne de commande, le journal ne doit pas se mêler au diagnostic : avertissements seulement, sur stderr.
    structlog.configure(
        wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
    )
    raise SystemExit(main())
