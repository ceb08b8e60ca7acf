"""Bordereau de remise de chèques du guichet (specs/cheques.md, `--canal cheque`)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Final

import structlog

from connecteurs.cesu.titres import debut_du_jour
from connecteurs.cfonb.cfonb120 import MOTIF_REMISE  # l'identifiant revient dans le libellé DFT
from connecteurs.lecture_csv import champ_date, champ_montant, champ_texte, lignes_csv
from connecteurs.modeles import PaiementRecu, construire_sans_valider
from regie.erreurs import CollecteurErreurs

log = structlog.get_logger()

COLONNES: Final = ("remise", "numero_cheque", "tireur", "banque", "montant", "facture", "recu_le")
_CHAMPS: Final = {"canal", "reference", "montant", "recu_le", "reference_facture", "remise", "details", "ligne",
                  "brut"}


def lire_remise_cheques(contenu: bytes, nom_fichier: str) -> Iterator[PaiementRecu]:
    """Donne un PaiementRecu (canal « cheque », référence remise/numéro) par chèque ; FichierRefuse à la fin.

    Facture vide : `reference_facture` None (le moteur cherche la famille du tireur).
    Dès la première erreur plus rien n'est donné : le fichier sera refusé en entier.
    """
    erreurs = CollecteurErreurs(nom_fichier)
    lus = 0
    for ligne, champs, brut in lignes_csv(contenu, COLONNES, erreurs):
        paiement = _cheque(ligne, champs, brut, erreurs)
        if paiement is not None and not erreurs:
            lus += 1
            yield paiement
    if erreurs:
        log.warning("cheques_refuse", fichier=nom_fichier, erreurs=len(erreurs.erreurs))
        erreurs.verifier()
    log.info("cheques_lu", fichier=nom_fichier, cheques=lus)


def _cheque(ligne: int, champs: dict[str, str], brut: str, erreurs: CollecteurErreurs) -> PaiementRecu | None:
    avant = len(erreurs.erreurs)
    remise = champ_texte(champs["remise"], ligne, "remise", erreurs, maxi=20, motif=MOTIF_REMISE)
    numero = champ_texte(champs["numero_cheque"], ligne, "numero_cheque", erreurs, maxi=12)
    if numero is not None and not (numero.isascii() and numero.isdigit()):
        erreurs.ajouter(ligne, "numero_cheque", f"« {numero} » : de 1 à 12 chiffres attendus")
    tireur = champ_texte(champs["tireur"], ligne, "tireur", erreurs, maxi=100)
    banque = champ_texte(champs["banque"], ligne, "banque", erreurs, mini=0, maxi=100)
    montant = champ_montant(champs["montant"], ligne, "montant", erreurs)
    facture = champ_texte(champs["facture"], ligne, "facture", erreurs, mini=0, maxi=50)
    recu_le = champ_date(champs["recu_le"], ligne, "recu_le", erreurs)
    if len(erreurs.erreurs) != avant:
        return None
    if remise is None or numero is None or tireur is None or montant is None or recu_le is None:
        return None
    # Chaque valeur vient d'être contrôlée champ par champ : pydantic ne la revaliderait que pour rien
    # (le tiers de la lecture). Un test compare le résultat à `model_validate`.
    return construire_sans_valider(PaiementRecu, {
        "canal": "cheque", "reference": f"{remise}/{numero}", "montant": montant,
        "recu_le": debut_du_jour(recu_le),  # jour de guichet, minuit à Paris
        "reference_facture": facture or None, "remise": remise,
        "details": {"tireur": tireur, "banque": banque or None, "recu_le": recu_le.isoformat()},
        "ligne": ligne, "brut": brut,
    }, _CHAMPS)
