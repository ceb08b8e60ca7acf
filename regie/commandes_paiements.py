"""Commandes `regie paiements importer`, `regie rapprocher` (specs/cli.md)."""

from __future__ import annotations

import argparse
from typing import Any

from regie.application import Application
from regie.arguments import date_iso as _date
from regie.arguments import fichier_existant as _fichier

CANAUX_CLI = ("buraliste", "cesu", "crcesu", "cheque", "cfonb", "pes-retour")






def cmd_paiements_importer(app: Application, args: argparse.Namespace) -> int:
    from regie.services.fichiers import CANAUX_FICHIER, message_si_inchange

    if (deja := message_si_inchange(app, args.fichier, CANAUX_FICHIER[args.canal])) is not None:
        print(deja)
        return 0
    from regie.services.paiements import importer_fichier_paiements

    app.synchroniser_referentiel()
    rapport = importer_fichier_paiements(app, args.canal, args.fichier, aujourd_hui=args.date)
    print(rapport.message())
    return 0


def cmd_rapprocher(app: Application, args: argparse.Namespace) -> int:
    from rapprochement.moteur import rapprocher

    print(rapprocher(app, aujourd_hui=args.date).message())
    return 0


def ajouter_commandes(sous: Any, _sous_factures: Any) -> None:
    pai = sous.add_parser("paiements", help="paiements reçus par les canaux")
    ps = pai.add_subparsers(dest="action", required=True, parser_class=sous._parser_class, metavar="ACTION")
    c = ps.add_parser("importer", help="importe un fichier d'un canal, puis rapproche")
    c.add_argument("--canal", required=True, choices=CANAUX_CLI)
    c.add_argument("--date", type=_date, default=None, help="« aujourd'hui » pour les règles (AAAA-MM-JJ)")
    c.add_argument("fichier", type=_fichier, metavar="FICHIER")
    c.set_defaults(faire=cmd_paiements_importer)

    c = sous.add_parser("rapprocher", help="rapproche chaque paiement ouvert et affiche un résumé")
    c.add_argument("--date", type=_date, default=None)
    c.set_defaults(faire=cmd_rapprocher)
    ajouter_commandes_revue(sous)


# --- File de revue et décisions --------------------------------------------------------------------

def _paiement_id(app: Application, texte: str) -> int:
    """Un paiement désigné par son numéro interne ou par « canal:référence »."""
    from sqlalchemy import select

    from rapprochement.decisions import DecisionRefusee
    from regie.registre.modeles import Paiement

    if texte.isdigit():
        return int(texte)
    canal, _, reference = texte.partition(":")
    with app.moteur.connect() as c:
        pid = c.execute(select(Paiement.id).where(Paiement.canal == canal, Paiement.reference == reference)).scalar()
    if pid is None:
        raise DecisionRefusee("PAIEMENT_INCONNU", f"Paiement « {texte} » inconnu (numéro ou canal:référence).")
    return int(pid)


def _centimes(texte: str) -> int:
    from regie.montants import MontantInvalide, euros_en_centimes

    try:
        return euros_en_centimes(texte)
    except MontantInvalide as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _repartition(texte: str) -> tuple[str, int]:
    facture, sep, montant = texte.rpartition("=")
    if not sep or not facture:
        raise argparse.ArgumentTypeError(f"« {texte} » : FACTURE=MONTANT attendu (ex. F-2026-001=42.00)")
    return facture, _centimes(montant)


def _qui(args: argparse.Namespace) -> str:
    import getpass

    return str(args.par or getpass.getuser())


def cmd_anomalies_lister(app: Application, args: argparse.Namespace) -> int:
    import json

    from sqlalchemy import select

    from regie.montants import centimes_en_euros as eur
    from regie.registre.modeles import Anomalie, Paiement

    req = (select(Anomalie.id, Anomalie.code, Anomalie.raison, Anomalie.cree_le, Paiement.id, Paiement.canal,
                  Paiement.reference, Paiement.montant, Paiement.version)
           .outerjoin(Paiement, Paiement.id == Anomalie.paiement_id)
           .where(Anomalie.statut != "resolue").order_by(Anomalie.cree_le, Anomalie.id))
    if args.code:
        req = req.where(Anomalie.code == args.code)
    if args.canal:
        req = req.where(Paiement.canal == args.canal)
    with app.moteur.connect() as c:
        lignes = c.execute(req.limit(args.limite)).all()
    if args.json:
        print(json.dumps([{"anomalie": a, "code": code, "raison": raison, "depuis": quand.isoformat(),
                           "paiement": pid, "canal": canal, "reference": ref,
                           "montant": eur(m) if m is not None else None, "version": v}
                          for a, code, raison, quand, pid, canal, ref, m, v in lignes], ensure_ascii=False))
        return 0
    for _a, code, raison, quand, pid, canal, ref, m, v in lignes:
        quoi = f"paiement {pid} ({canal}:{ref}, {eur(m)} €, version {v})" if pid else "facture"
        print(f"[{code}] {quoi} depuis le {quand:%d/%m/%Y}\n    {raison}")
    print(f"{len(lignes)} anomalie(s) ouverte(s)")
    return 0


def cmd_anomalies_voir(app: Application, args: argparse.Namespace) -> int:
    import json

    from sqlalchemy import select

    from regie.montants import centimes_en_euros as eur
    from regie.registre.modeles import Anomalie, Paiement

    pid = _paiement_id(app, args.paiement)
    with app.sessions() as s:
        p = s.get(Paiement, pid)
        assert p is not None
        anomalies = s.scalars(select(Anomalie).where(Anomalie.paiement_id == pid).order_by(Anomalie.id)).all()
        print(f"Paiement {p.id} : {p.canal}:{p.reference}, {eur(p.montant)} € reçu le {p.recu_le:%d/%m/%Y %H:%M} "
              f"(UTC) ; affecté {eur(p.affecte)} €, crédit {eur(p.en_credit)} €, remboursé {eur(p.rembourse)} € ; "
              f"statut {p.statut} ; version {p.version}")
        if p.brut:
            print(f"Ligne reçue : {p.brut}")
        for a in anomalies:
            print(f"- [{a.code}] {a.statut} : {a.raison}")
            if a.preuve:
                print(f"  preuve : {json.dumps(a.preuve, ensure_ascii=False, default=str)}")
            for i, sg in enumerate(a.suggestions, 1):
                print(f"  suggestion {i} (score {sg['score']}) : facture {sg['facture']} du dossier {sg['dossier']}, "
                      f"reste {sg['reste']} € : {sg['pourquoi']}")
    return 0


def cmd_affecter(app: Application, args: argparse.Namespace) -> int:
    from rapprochement.decisions import affecter

    pid = _paiement_id(app, args.paiement)
    affecter(app, pid, args.repartition, qui=_qui(args), motif=args.motif, version=args.version)
    print(f"Paiement {pid} affecté.")
    return 0


def cmd_crediter(app: Application, args: argparse.Namespace) -> int:
    from rapprochement.decisions import garder_en_credit

    pid = _paiement_id(app, args.paiement)
    garder_en_credit(app, pid, qui=_qui(args), motif=args.motif, version=args.version, dossier=args.dossier)
    print(f"Excédent du paiement {pid} gardé en crédit de la famille.")
    return 0


def cmd_appliquer_credit(app: Application, args: argparse.Namespace) -> int:
    from rapprochement.decisions import appliquer_credit
    from regie.montants import centimes_en_euros as eur

    total = appliquer_credit(app, args.dossier, qui=_qui(args), motif=args.motif, factures=args.facture or None)
    print(f"{eur(total)} € de crédit appliqués aux factures du dossier {args.dossier}.")
    return 0


def cmd_rembourser(app: Application, args: argparse.Namespace) -> int:
    from rapprochement.decisions import rembourser

    pid = _paiement_id(app, args.paiement)
    rembourser(app, pid, args.montant, qui=_qui(args), motif=args.motif, version=args.version)
    print(f"Remboursement enregistré sur le paiement {pid} (à exporter pour le comptable).")
    return 0


def cmd_annuler_paiement(app: Application, args: argparse.Namespace) -> int:
    from rapprochement.decisions import annuler_paiement

    pid = _paiement_id(app, args.paiement)
    annuler_paiement(app, pid, qui=_qui(args), motif=args.motif, version=args.version)
    print(f"Paiement {pid} annulé ; ses factures sont rouvertes.")
    return 0


def cmd_defaire(app: Application, args: argparse.Namespace) -> int:
    from rapprochement.decisions import annuler_affectation

    pid = _paiement_id(app, args.paiement)
    annuler_affectation(app, pid, args.facture, qui=_qui(args), motif=args.motif, version=args.version)
    print(f"Affectation du paiement {pid} à {args.facture} défaite ; le paiement revient en revue.")
    return 0


def cmd_compte(app: Application, args: argparse.Namespace) -> int:
    import json
    import sys

    from regie.montants import centimes_en_euros as eur
    from regie.services.compte import DossierInconnu, historique

    try:
        lignes = historique(app, args.dossier)
    except DossierInconnu:
        print(f"regie : dossier {args.dossier} inconnu", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps([{"quand": x.quand.isoformat(), "nature": x.nature, "libelle": x.libelle,
                           "montant": eur(x.montant), "du": eur(x.du), "credit": eur(x.credit),
                           "tresor": eur(x.tresor), "solde": eur(x.solde)} for x in lignes], ensure_ascii=False))
        return 0
    print(f"Compte famille {args.dossier}")
    print(f"{'date':10}  {'mouvement':70} {'montant':>10} {'dû régie':>10} {'Trésor':>10} {'crédit':>10}")
    for x in lignes:
        print(f"{x.quand:%d/%m/%Y}  {x.libelle:70} {eur(x.montant):>10} {eur(x.du):>10} {eur(x.tresor):>10} "
              f"{eur(x.credit):>10}")
    if lignes:
        print(f"Solde : {eur(lignes[-1].solde)} € (dû régie {eur(lignes[-1].du)}, Trésor {eur(lignes[-1].tresor)}, "
              f"crédit {eur(lignes[-1].credit)})")
    return 0


def cmd_remises_en_attente(app: Application, args: argparse.Namespace) -> int:
    from regie.montants import centimes_en_euros as eur
    from regie.services.remises import remises_non_confirmees

    remises = remises_non_confirmees(app, jours=args.jours, aujourd_hui=args.date)
    for r in remises:
        print(f"{r.identifiant} ({r.canal}) : {r.nombre} pièce(s), {eur(r.montant)} €, déposée le "
              f"{r.depuis:%d/%m/%Y}, sans confirmation depuis {r.jours} jours")
    print(f"{len(remises)} remise(s) non confirmée(s) après {args.jours} jours")
    return 0


def ajouter_commandes_revue(sous: Any) -> None:
    ano = sous.add_parser("anomalies", help="la file de revue et les décisions des agents")
    an = ano.add_subparsers(dest="action", required=True, parser_class=sous._parser_class, metavar="ACTION")
    c = an.add_parser("lister", help="les anomalies ouvertes")
    c.add_argument("--code")
    c.add_argument("--canal")
    c.add_argument("--limite", type=int, default=200)
    c.add_argument("--json", action="store_true")
    c.set_defaults(faire=cmd_anomalies_lister)
    c = an.add_parser("voir", help="un paiement, sa raison, sa preuve et les suggestions")
    c.add_argument("paiement", metavar="PAIEMENT", help="numéro ou canal:référence")
    c.set_defaults(faire=cmd_anomalies_voir)

    def decision(nom: str, aide: str, faire: Any, *, motif_requis: bool = True) -> argparse.ArgumentParser:
        d: argparse.ArgumentParser = an.add_parser(nom, help=aide)
        d.add_argument("--motif", required=motif_requis, default="", help="pourquoi (gardé dans l'audit)")
        d.add_argument("--par", help="qui décide (par défaut : l'utilisateur du système)")
        d.set_defaults(faire=faire)
        return d

    c = decision("affecter", "affecte un paiement à une ou plusieurs factures", cmd_affecter)
    c.add_argument("paiement", metavar="PAIEMENT")
    c.add_argument("repartition", nargs="+", type=_repartition, metavar="FACTURE=MONTANT")
    c.add_argument("--version", type=int, help="la version vue : refusé si le paiement a changé")
    c = decision("crediter", "garde l'excédent en crédit de la famille", cmd_crediter)
    c.add_argument("paiement", metavar="PAIEMENT")
    c.add_argument("--dossier", help="le dossier à créditer si la famille n'est pas connue")
    c.add_argument("--version", type=int)
    c = decision("appliquer-credit", "applique le crédit d'une famille à ses factures ouvertes", cmd_appliquer_credit)
    c.add_argument("dossier", metavar="DOSSIER")
    c.add_argument("--facture", action="append", help="seulement ces factures (répétable)")
    c = decision("rembourser", "rembourse tout ou partie de l'excédent", cmd_rembourser)
    c.add_argument("paiement", metavar="PAIEMENT")
    c.add_argument("montant", type=_centimes, metavar="MONTANT")
    c.add_argument("--version", type=int)
    c = decision("annuler-paiement", "annule un paiement (chèque impayé) et rouvre ses factures", cmd_annuler_paiement)
    c.add_argument("paiement", metavar="PAIEMENT")
    c.add_argument("--version", type=int)
    c = decision("defaire", "défait l'affectation d'un paiement à une facture", cmd_defaire)
    c.add_argument("paiement", metavar="PAIEMENT")
    c.add_argument("facture", metavar="FACTURE")
    c.add_argument("--version", type=int)

    c = sous.add_parser("compte", help="l'historique du compte d'une famille avec son solde")
    c.add_argument("dossier", metavar="DOSSIER")
    c.add_argument("--json", action="store_true")
    c.set_defaults(faire=cmd_compte)

    rem = sous.add_parser("remises", help="remises de chèques et de CESU")
    rs = rem.add_subparsers(dest="action", required=True, parser_class=sous._parser_class, metavar="ACTION")
    c = rs.add_parser("en-attente", help="les remises jamais confirmées par le relevé DFT après N jours")
    c.add_argument("--jours", type=int, default=15)
    c.add_argument("--date", type=_date, default=None)
    c.set_defaults(faire=cmd_remises_en_attente)
