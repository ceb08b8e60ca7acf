"""Ce que les pages montrent : montants en euros à la française, dates à Paris, libellés des codes."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from regie.montants import centimes_en_euros, euros_en_centimes

PARIS = ZoneInfo("Europe/Paris")
FINE, INSECABLE = "\u202f", "\u00a0"

CODES = {
    "REFERENCE_INCONNUE": "Référence inconnue",
    "AMBIGU": "Plusieurs factures possibles",
    "TROP_PERCU": "Trop-perçu",
    "FACTURE_DEJA_PAYEE": "Facture déjà payée",
    "FACTURE_ANNULEE": "Facture annulée",
    "DATAMATRIX_INVALIDE": "Datamatrix invalide",
    "LIMITE_ESPECES": "Espèces au-delà de 300 €",
    "CESU_NON_ELIGIBLE": "CESU non éligible",
    "CESU_PERIME": "CESU périmé",
    "CESU_EXCEDENT": "CESU au-delà du reste éligible",
    "DOUBLON": "Doublon",
    "REMISE_ECART": "Écart sur une remise",
}
CANAUX = {"payfip": "PayFiP", "buraliste": "Buraliste", "cesu": "CESU", "cheque": "Chèque",
          "virement": "Virement", "cfonb": "Relevé DFT", "crcesu": "CRCESU", "pes_retour": "PES Retour",
          "factures": "Factures"}
STATUTS = {
    "emise": "émise", "partiellement_payee": "partiellement payée", "payee": "payée", "annulee": "annulée",
    "titree": "titrée", "affecte": "affecté", "partiellement_affecte": "partiellement affecté",
    "en_anomalie": "en anomalie", "confirme": "confirmé", "annule": "annulé", "a_traiter": "à traiter",
    "ouverte": "ouverte", "en_cours": "en cours", "resolue": "résolue", "importe": "importé",
    "refuse": "refusé", "emis": "émis", "transmis": "transmis", "accepte": "accepté", "rejete": "rejeté",
    "en_attente": "en attente", "confirmee": "confirmée", "ecart": "écart", "ecrit": "écrit",
    "depot_en_cours": "dépôt en cours", "depose": "déposé",
}
DECISIONS = {
    "affecter": "Affecter à une ou plusieurs factures",
    "garder_en_credit": "Garder l'excédent en crédit de la famille",
    "appliquer_credit": "Appliquer le crédit de la famille",
    "rembourser": "Rembourser",
    "annuler_paiement": "Annuler le paiement (chèque rejeté…)",
    "annuler_affectation": "Annuler une affectation",
}
ROLES = {"consultation": "consultation", "agent": "agent", "regisseur": "régisseur"}


def euros(centimes: Any) -> str:
    """4200 -> « 42,00 € » ; 123456 -> « 1 234,56 € » (espace fine insécable des milliers)."""
    if centimes is None or centimes == "":
        return "—"
    texte = centimes_en_euros(int(centimes))
    signe, texte = ("−", texte[1:]) if texte.startswith("-") else ("", texte)
    entiers, decimales = texte.split(".")
    groupes: list[str] = []
    while len(entiers) > 3:
        groupes.insert(0, entiers[-3:])
        entiers = entiers[:-3]
    groupes.insert(0, entiers)
    return signe + FINE.join(groupes) + "," + decimales + INSECABLE + "€"


def euros_saisie(centimes: Any) -> str:
    """La valeur d'un champ de saisie : « 42,00 »."""
    return "" if centimes is None else centimes_en_euros(int(centimes)).replace(".", ",")


def lire_euros(texte: str) -> int:
    """Ce qu'un agent tape (« 42,5 », « 1 234,56 € ») vers des centimes ; MontantInvalide sinon.

    On ne normalise que la présentation (virgule, espaces, symbole), puis le parseur commun décide.
    """
    t = texte.strip().replace("€", "").replace("\u202f", "").replace("\u00a0", "").replace(" ", "")
    t = t.replace(",", ".")
    if "." in t and len(t.split(".", 1)[1]) == 1:
        t += "0"
    elif "." not in t and t.isdigit():
        t += ".00"
    return euros_en_centimes(t)


def dateheure(valeur: Any) -> str:
    if valeur is None:
        return "—"
    if isinstance(valeur, datetime):
        return valeur.astimezone(PARIS).strftime("%d/%m/%Y %H:%M")
    if isinstance(valeur, date):
        return valeur.strftime("%d/%m/%Y")
    return str(valeur)


def jour(valeur: Any) -> str:
    if isinstance(valeur, datetime):
        return valeur.astimezone(PARIS).strftime("%d/%m/%Y")
    if isinstance(valeur, date):
        return valeur.strftime("%d/%m/%Y")
    return "—" if valeur is None else str(valeur)


def code(valeur: Any) -> str:
    return CODES.get(str(valeur), str(valeur)) if valeur else "—"


def canal(valeur: Any) -> str:
    return CANAUX.get(str(valeur), str(valeur))


def statut(valeur: Any) -> str:
    return STATUTS.get(str(valeur), str(valeur)) if valeur else "—"
