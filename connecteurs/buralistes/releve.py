"""Relevé des paiements de proximité (CSV `;`, UTF-8) lu en `PaiementRecu` du canal « buraliste ».

    transaction;date_heure;datamatrix;montant;mode;point_de_vente

Un datamatrix invalide n'est pas une erreur de fichier : l'argent a été encaissé, le paiement est
donné avec `datamatrix_valide` à False et la raison, et le moteur le met en file de revue. Seul ce
qui empêche de lire une ligne (encodage, en-tête, colonnes, champ illisible, transaction en double)
refuse le fichier entier.

Deux chemins, un seul résultat. Le chemin de référence est le lecteur CSV commun
(`connecteurs.lecture_csv`). Un relevé se compte en centaines de milliers de lignes toutes écrites
de la même façon : une ligne de forme canonique (champs sans espace ni guillemet, datamatrix entre
guillemets en ASCII imprimable, montant et date bien formés) est lue par une seule expression
régulière. À la première ligne qui n'a pas cette forme ou dont un contrôle échoue, la lecture
reprend par le chemin de référence à partir de cette ligne : c'est lui qui formule chaque erreur.
Les tests vérifient que les deux chemins donnent les mêmes paiements et les mêmes erreurs.
"""

from __future__ import annotations

import re
from collections.abc import Generator, Iterator
from datetime import datetime

import structlog

from connecteurs.buralistes.datamatrix import decoder
from connecteurs.lecture_csv import champ_date_heure, champ_montant, champ_texte, lignes_csv
from connecteurs.modeles import PaiementRecu
from regie.erreurs import CollecteurErreurs

COLONNES = ("transaction", "date_heure", "datamatrix", "montant", "mode", "point_de_vente")
MODES = ("ESPECES", "CARTE")
# Politique du moteur (LIMITE_ESPECES), pas de ce lecteur : au-delà, un paiement en espèces n'est
# jamais affecté. La constante vit ici, à côté du format qui porte le mode de paiement.
LIMITE_ESPECES_CENTIMES = 30000
TRANSACTION_MAXI = 40
POINT_DE_VENTE_MAXI = 200

_log = structlog.get_logger()

_BOM = b"\xef\xbb\xbf"
# Fins de ligne reconnues par le lecteur csv (io.StringIO, newline="") : les mêmes ici, pour que
# les numéros de ligne des deux chemins concordent.
_FIN = r"(?:\r\n|\r|\n)"
_ENTETE = re.compile(re.escape(";".join(COLONNES)) + _FIN)
_BLANCHE = re.compile(r"[ \t]*(?:" + _FIN + r"|\Z)")
_LIGNE = re.compile(
    r'([^\s;"]{1,' + str(TRANSACTION_MAXI) + r'});'
    r"([0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}(?::[0-9]{2}(?:\.[0-9]+)?)?(?:Z|[+-][0-9]{2}:[0-9]{2}));"
    r'"([ !#-~]*)";'  # datamatrix : ASCII imprimable sans guillemet, espaces de tête compris
    r"(0|[1-9][0-9]{0,12})\.([0-9]{2});"
    r"(ESPECES|CARTE);"
    r'([^\s;"]{1,' + str(POINT_DE_VENTE_MAXI) + r"})"
    r"(" + _FIN + r"|\Z)"
)


class _Compte:
    __slots__ = ("datamatrix_invalides", "paiements")

    def __init__(self) -> None:
        self.paiements = 0
        self.datamatrix_invalides = 0


def _paiement(numero: int, brut: str, transaction: str, recu_le: datetime, montant: int, datamatrix: str,
              mode: str, point_de_vente: str, compte: _Compte) -> PaiementRecu:
    lu = decoder(datamatrix)
    compte.paiements += 1
    if not lu.valide:
        compte.datamatrix_invalides += 1
    return PaiementRecu.model_validate({
        "canal": "buraliste",
        "reference": transaction,
        "montant": montant,
        "recu_le": recu_le,
        "reference_facture": str(lu.numero_dette) if lu.numero_dette is not None else None,
        "details": {
            "mode": mode,
            "point_de_vente": point_de_vente,
            "datamatrix": datamatrix,  # les 130 caractères tels que lus, espaces de tête compris
            "datamatrix_valide": lu.valide,
            "datamatrix_erreurs": lu.resume_erreurs() if lu.erreurs else "",
            "montant_du": lu.montant_centimes,
            "numero_dette": lu.numero_dette,
        },
        "ligne": numero,
        "brut": brut,
    })


def lire_releve(contenu: bytes, nom_fichier: str) -> Iterator[PaiementRecu]:
    """Donne chaque paiement du relevé au fil de la lecture ; à la fin, lève FichierRefuse s'il y a eu
    la moindre erreur, avec toutes les erreurs (ligne, champ, raison).

    Fait pour importer en flux dans une seule transaction, annulée si FichierRefuse arrive. Dès la
    première erreur plus rien n'est donné (le fichier sera refusé), mais la lecture va jusqu'au bout
    pour tout signaler.
    """
    return _lire(contenu, nom_fichier, rapide=True)


def _lire(contenu: bytes, nom_fichier: str, *, rapide: bool) -> Iterator[PaiementRecu]:
    erreurs = CollecteurErreurs(nom_fichier)
    vues: dict[str, int] = {}  # transaction → ligne : un doublon dans le même fichier est refusé
    compte = _Compte()
    # Lignes déjà lues par le chemin rapide (-1 : tout le fichier) ; le chemin de référence reprend après.
    deja_lues = (yield from _lire_canonique(contenu, vues, compte)) if rapide else 0
    if deja_lues >= 0:
        for numero, champs, brut in lignes_csv(contenu, COLONNES, erreurs):
            if numero <= deja_lues:
                continue
            paiement = _lire_ligne(numero, champs, brut, vues, erreurs, compte)
            if paiement is not None:
                yield paiement
    _log.info("releve_buralistes_lu", fichier=nom_fichier, paiements=compte.paiements,
              datamatrix_invalides=compte.datamatrix_invalides, erreurs=len(erreurs.erreurs))
    erreurs.verifier()


def _lire_canonique(contenu: bytes, vues: dict[str, int], compte: _Compte) -> Generator[PaiementRecu, None, int]:
    """Chemin rapide : donne les paiements des lignes canoniques et contrôlées. Renvoie -1 s'il est
    allé au bout du fichier, sinon le numéro de la dernière ligne lue avant la première ligne qui
    n'est pas canonique ou dont un contrôle échoue (0 : pas même l'en-tête)."""
    if contenu.startswith(_BOM):
        contenu = contenu[len(_BOM):]
    try:
        texte = contenu.decode("utf-8")
    except UnicodeDecodeError:
        return 0
    m = _ENTETE.match(texte)
    if m is None:
        return 0
    pos, numero, fin = m.end(), 1, len(texte)
    ligne = _LIGNE.match
    blanche = _BLANCHE.match
    while pos < fin:
        m = ligne(texte, pos)
        if m is None:
            b = blanche(texte, pos)
            if b is None or b.end() == pos:
                return numero
            pos, numero = b.end(), numero + 1
            continue
        transaction, date_heure, datamatrix, euros, cents, mode, point_de_vente, _ = m.groups()
        montant = int(euros) * 100 + int(cents)
        try:
            recu_le = datetime.fromisoformat(date_heure.replace("Z", "+00:00"))
        except ValueError:
            return numero  # le chemin de référence reprend à cette ligne et dit ce qui ne va pas
        if montant == 0 or vues.setdefault(transaction, numero + 1) != numero + 1:
            return numero
        numero += 1
        yield _paiement(numero, texte[pos:m.start(8)], transaction, recu_le, montant, datamatrix, mode,
                        point_de_vente, compte)
        pos = m.end()
    return -1


def _lire_ligne(numero: int, champs: dict[str, str], brut: str, vues: dict[str, int],
                erreurs: CollecteurErreurs, compte: _Compte) -> PaiementRecu | None:
    """Chemin de référence : chaque champ par les lecteurs communs, chaque erreur notée."""
    transaction = champ_texte(champs["transaction"], numero, "transaction", erreurs, maxi=TRANSACTION_MAXI)
    recu_le = champ_date_heure(champs["date_heure"], numero, "date_heure", erreurs)
    montant = champ_montant(champs["montant"], numero, "montant", erreurs)
    mode = champs["mode"].strip()
    if mode not in MODES:
        erreurs.ajouter(numero, "mode", f"« {champs['mode']} » : ESPECES ou CARTE attendu")
    point_de_vente = champ_texte(champs["point_de_vente"], numero, "point_de_vente", erreurs,
                                 maxi=POINT_DE_VENTE_MAXI)
    if transaction is not None:
        premiere = vues.setdefault(transaction, numero)
        if premiere != numero:
            erreurs.ajouter(numero, "transaction", f"« {transaction} » figure déjà ligne {premiere}")
    if erreurs or transaction is None or recu_le is None or montant is None or point_de_vente is None:
        return None  # le fichier sera refusé : inutile de décoder
    # Le champ brut, pas un champ nettoyé : les espaces de tête font partie des 130 caractères.
    return _paiement(numero, brut, transaction, recu_le, montant, champs["datamatrix"], mode, point_de_vente,
                     compte)
