"""CESU préfinancés reçus au guichet (specs/cesu.md, `--canal cesu`), et les règles pures du CESU.

La lecture donne un `PaiementRecu` par titre. La validité (CESU_PERIME), l'éligibilité et
l'excédent sont la politique du moteur de rapprochement ; il trouve ici les calculs purs :
`date_limite_validite`, `est_perime`, `age_au`, `ligne_eligible_cesu`.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator
from datetime import date, datetime
from typing import Final
from zoneinfo import ZoneInfo

import structlog

from connecteurs.cfonb.cfonb120 import MOTIF_REMISE  # l'identifiant revient dans le libellé DFT
from connecteurs.lecture_csv import champ_date, champ_montant, champ_texte, lignes_csv
from connecteurs.modeles import PaiementRecu, construire_sans_valider
from regie.erreurs import CollecteurErreurs

log = structlog.get_logger()

PARIS: Final = ZoneInfo("Europe/Paris")
COLONNES: Final = ("remise", "numero_titre", "support", "emetteur", "millesime", "valeur", "facture", "recu_le")
SUPPORTS: Final = ("PAPIER", "ELECTRONIQUE")
AGE_LIMITE: Final = 6
_MILLESIME: Final = re.compile(r"[0-9]{4}")
_CHAMPS: Final = {"canal", "reference", "montant", "recu_le", "reference_facture", "remise", "details", "ligne",
                  "brut"}


def lire_titres_cesu(contenu: bytes, nom_fichier: str) -> Iterator[PaiementRecu]:
    """Donne un PaiementRecu (canal « cesu ») par titre ; à la fin, FichierRefuse s'il y a des erreurs.

    Dès la première erreur plus rien n'est donné : le fichier sera refusé en entier.
    """
    erreurs = CollecteurErreurs(nom_fichier)
    lus = 0
    for ligne, champs, brut in lignes_csv(contenu, COLONNES, erreurs):
        paiement = _titre(ligne, champs, brut, erreurs)
        if paiement is not None and not erreurs:
            lus += 1
            yield paiement
    if erreurs:
        log.warning("cesu_refuse", fichier=nom_fichier, erreurs=len(erreurs.erreurs))
        erreurs.verifier()
    log.info("cesu_lu", fichier=nom_fichier, titres=lus)


def _titre(ligne: int, champs: dict[str, str], brut: str, erreurs: CollecteurErreurs) -> PaiementRecu | None:
    avant = len(erreurs.erreurs)
    remise = champ_texte(champs["remise"], ligne, "remise", erreurs, maxi=20, motif=MOTIF_REMISE)
    numero = champ_texte(champs["numero_titre"], ligne, "numero_titre", erreurs, mini=6, maxi=20)
    if numero is not None and not (numero.isascii() and numero.isdigit()):
        erreurs.ajouter(ligne, "numero_titre", f"« {numero} » : le numéro de titre ne contient que des chiffres")
    support = champs["support"].strip()
    if support not in SUPPORTS:
        erreurs.ajouter(ligne, "support", f"« {champs['support']} » : PAPIER ou ELECTRONIQUE attendu")
    emetteur = champ_texte(champs["emetteur"], ligne, "emetteur", erreurs, maxi=100)
    millesime_texte = champs["millesime"].strip()
    millesime: int | None = None
    if _MILLESIME.fullmatch(millesime_texte):
        millesime = int(millesime_texte)
    else:
        erreurs.ajouter(ligne, "millesime", f"« {champs['millesime']} » : une année sur 4 chiffres attendue")
    valeur = champ_montant(champs["valeur"], ligne, "valeur", erreurs)
    facture = champ_texte(champs["facture"], ligne, "facture", erreurs, maxi=50)
    recu_le = champ_date(champs["recu_le"], ligne, "recu_le", erreurs)
    if millesime is not None and recu_le is not None and millesime > recu_le.year:
        erreurs.ajouter(ligne, "millesime", f"millésime dans le futur : {millesime} pour un titre reçu le "
                        f"{recu_le.isoformat()}")
    if len(erreurs.erreurs) != avant or numero is None or valeur is None or recu_le is None or millesime is None:
        return None
    # Valeurs contrôlées champ par champ : construites sans revalidation (un test compare à `model_validate`).
    return construire_sans_valider(PaiementRecu, {
        "canal": "cesu", "reference": numero, "montant": valeur, "recu_le": debut_du_jour(recu_le),
        "reference_facture": facture, "remise": remise,
        "details": {"support": support, "emetteur": emetteur, "millesime": millesime, "recu_le": recu_le.isoformat()},
        "ligne": ligne, "brut": brut,
    }, _CHAMPS)


@functools.lru_cache(maxsize=4096)  # un bordereau répète ses jours ; une date-heure ne change pas
def debut_du_jour(jour: date) -> datetime:
    """Minuit, heure de Paris : un jour de guichet sans heure."""
    return datetime(jour.year, jour.month, jour.day, tzinfo=PARIS)


# --- Règles pures ---------------------------------------------------------------------------------

def date_limite_validite(millesime: int) -> date:
    """Un titre du millésime A vaut jusqu'au 31 janvier de A+1 (date de réception au guichet)."""
    return date(millesime + 1, 1, 31)


def est_perime(millesime: int, recu_le: date) -> bool:
    """Vrai si le titre a été reçu après sa date limite (le 31 janvier A+1 est encore valable)."""
    if isinstance(recu_le, datetime):
        # Une date-heure compte au jour de Paris : 31/01 23h30 à Paris est le 31, pas le 1er.
        recu_le = (recu_le.astimezone(PARIS) if recu_le.tzinfo is not None else recu_le).date()
    return recu_le > date_limite_validite(millesime)


def age_au(naissance: date, jour: date) -> int:
    """Âge en années révolues au jour donné (né un 29 février : un an de plus le 1er mars)."""
    age = jour.year - naissance.year
    if (jour.month, jour.day) < (naissance.month, naissance.day):
        age -= 1
    return age


def naissance_limite_cesu(periode: str) -> date:
    """Né après ce jour (et pas ce jour-là), un enfant a moins de 6 ans le 1er de la période.

    La règle de `ligne_eligible_cesu` en une comparaison de dates, pour la lecture d'un fichier de
    factures ; ValueError pour une période mal formée ou d'avant l'an 7.
    """
    jour = premier_jour(periode)
    return jour.replace(year=jour.year - AGE_LIMITE)


def premier_jour(periode: str) -> date:
    """« AAAA-MM » → le 1er du mois ; ValueError sinon."""
    if not re.fullmatch(r"[0-9]{4}-[0-9]{2}", periode):
        raise ValueError(f"« {periode} » : période AAAA-MM attendue")
    return date(int(periode[:4]), int(periode[5:]), 1)


def ligne_eligible_cesu(prestation_cesu: bool, naissance: date | None, periode: str) -> bool:
    """Ligne payable en CESU : prestation `cesu = true` et enfant de moins de 6 ans le 1er de la période.

    L'enfant qui a 6 ans ce jour-là n'est plus éligible ; sans date de naissance, rien ne le prouve.
    """
    if not prestation_cesu or naissance is None:
        return False
    return age_au(naissance, premier_jour(periode)) < AGE_LIMITE
