"""PES_ACQUIT : l'accusé de réception d'Hélios pour un PES_Aller (specs/pes.md).

Un acquit nomme le fichier acquitté (Enveloppe/Parametres/NomFic) puis, pour chaque domaine ou
bordereau, dit accepté (EtatAck 1) ou rejeté, avec les codes et libellés d'Hélios gardés tels
quels : l'agent les lira. Lecture pure ; un fichier illisible est refusé entier (FichierRefuse).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import NamedTuple

import structlog
from lxml import etree

from connecteurs.pes_retour import (
    analyseur_sur,
    chemin_enfant,
    enfants,
    erreur_syntaxe,
    espace_de_noms,
    nom_local,
    numero_ligne,
    valeur_v,
    verifier_encodage,
)
from regie.erreurs import CollecteurErreurs, FichierRefuse

NS_ACQUIT = "http://www.minefi.gouv.fr/cp/helios/pes_v2/Rev0/retour/v2"
DOMAINE_RECETTE = 6

_log = structlog.get_logger()
_ENTIER = re.compile(r"[0-9]{1,13}")
_BOOLEENS = {"1": True, "true": True, "0": False, "false": False}


class ErreurAcquit(NamedTuple):
    """Un couple (code, libellé) tel qu'Hélios l'a écrit."""

    code: str | None  # NumAnoAck, par exemple ERREUR_DOUBLON_BORDEREAU
    libelle: str | None  # LibelleAnoAck


@dataclass(frozen=True, slots=True)
class LigneEnErreur:
    numero_ligne: int
    erreurs: list[ErreurAcquit] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class PieceEnErreur:
    numero_piece: int
    erreurs: list[ErreurAcquit] = field(default_factory=list)
    lignes: list[LigneEnErreur] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class ElementAcquit:
    domaine: int  # DomaineAck : 6 recette, 5 dépense, 4 PJ, 0-3 technique...
    accepte: bool  # EtatAck
    exercice: int | None  # ExerciceBord
    numero_bordereau: int | None  # NumBord
    erreurs: list[ErreurAcquit] = field(default_factory=list)
    pieces_en_erreur: list[PieceEnErreur] = field(default_factory=list)
    identifiant: str | None = None  # IdMarche ou IdUnique, quand l'élément ne vise pas un bordereau


@dataclass(frozen=True, slots=True)
class Acquit:
    nom_fichier: str  # l'acquit lui-même
    nom_fic_acquitte: str  # le PES_Aller qu'il acquitte
    date: str | None  # EnTetePES/DteStr
    elements: list[ElementAcquit]

    @property
    def tout_accepte(self) -> bool:
        return all(e.accepte for e in self.elements)


def lire_acquit(contenu: bytes, nom_fichier: str) -> Acquit:
    """Lit un PES_ACQUIT ; lève FichierRefuse (toutes les erreurs, avec leur chemin XML) sinon."""
    erreurs = CollecteurErreurs(nom_fichier)
    racine = _analyser(contenu, erreurs)
    if racine is None:
        erreurs.verifier()
        raise FichierRefuse(nom_fichier, list(erreurs.erreurs))  # pragma: no cover - verifier() a levé
    chemin = "/PES_ACQUIT"
    nom_fic = None
    date = None
    enveloppe = _unique(racine, "Enveloppe", chemin, erreurs)
    if enveloppe is not None:
        parametres = _unique(enveloppe, "Parametres", f"{chemin}/Enveloppe", erreurs)
        if parametres is not None:
            nom_fic = valeur_v(parametres, "NomFic", f"{chemin}/Enveloppe/Parametres", erreurs)
    entete = _unique(racine, "EnTetePES", chemin, erreurs, obligatoire=False)
    if entete is not None:
        date = valeur_v(entete, "DteStr", f"{chemin}/EnTetePES", erreurs, obligatoire=False)
    elements: list[ElementAcquit] = []
    acquit = _unique(racine, "ACQUIT", chemin, erreurs)
    if acquit is not None:
        chemin_acquit = f"{chemin}/ACQUIT"
        lus = enfants(acquit, "ElementACQUIT")
        if not lus:
            erreurs.ajouter(numero_ligne(acquit), "ElementACQUIT", "aucun élément d'acquit",
                            f"{chemin_acquit}/ElementACQUIT")
        for element in lus:
            lu = _element(element, chemin_enfant(chemin_acquit, acquit, element), erreurs)
            if lu is not None:
                elements.append(lu)
    erreurs.verifier()
    assert nom_fic is not None  # sinon verifier() aurait levé
    resultat = Acquit(nom_fichier, nom_fic, date, elements)
    _log.info("acquit_lu", fichier=nom_fichier, acquitte=nom_fic, elements=len(elements),
              rejets=sum(not e.accepte for e in elements))
    return resultat


def _analyser(contenu: bytes, erreurs: CollecteurErreurs) -> etree._Element | None:
    if not isinstance(contenu, bytes) or not contenu.strip():
        erreurs.ajouter(None, None, "fichier vide : un PES_ACQUIT est attendu")
        return None
    if not verifier_encodage(contenu, erreurs):
        return None
    try:
        arbre = etree.ElementTree(etree.fromstring(contenu, analyseur_sur()))
    except (etree.LxmlError, ValueError, LookupError) as exc:
        erreur_syntaxe(exc, erreurs)
        return None
    racine = arbre.getroot()
    if nom_local(racine) != "PES_ACQUIT":
        erreurs.ajouter(numero_ligne(racine), None, f"racine « {nom_local(racine) or racine.tag} » : un PES_ACQUIT "
                                                 "est attendu", f"/{nom_local(racine)}")
        return None
    if espace_de_noms(racine) != NS_ACQUIT:
        erreurs.ajouter(numero_ligne(racine), None, f"espace de noms « {espace_de_noms(racine)} » : attendu "
                                                 f"« {NS_ACQUIT} »", "/PES_ACQUIT")
        return None
    return racine


def _unique(parent: etree._Element, nom: str, chemin: str, erreurs: CollecteurErreurs,
            *, obligatoire: bool = True) -> etree._Element | None:
    trouves = enfants(parent, nom)
    if not trouves:
        if obligatoire:
            erreurs.ajouter(numero_ligne(parent), nom, "élément obligatoire absent", f"{chemin}/{nom}")
        return None
    if len(trouves) > 1:
        erreurs.ajouter(numero_ligne(trouves[1]), nom, "élément en double", f"{chemin}/{nom}")
        return None
    return trouves[0]


def _entier(parent: etree._Element, nom: str, chemin: str, erreurs: CollecteurErreurs,
            *, obligatoire: bool) -> int | None:
    valeur = valeur_v(parent, nom, chemin, erreurs, obligatoire=obligatoire)
    if valeur is None:
        return None
    if not _ENTIER.fullmatch(valeur):
        erreurs.ajouter(numero_ligne(parent), nom, f"« {valeur} » n'est pas un nombre entier", f"{chemin}/{nom}")
        return None
    return int(valeur)


def _erreurs(parent: etree._Element, chemin: str, erreurs: CollecteurErreurs) -> list[ErreurAcquit]:
    lues = []
    for erreur in enfants(parent, "Erreur"):
        chemin_e = chemin_enfant(chemin, parent, erreur)
        lues.append(ErreurAcquit(
            valeur_v(erreur, "NumAnoAck", chemin_e, erreurs, obligatoire=False),
            valeur_v(erreur, "LibelleAnoAck", chemin_e, erreurs, obligatoire=False),
        ))
    return lues


def _element(element: etree._Element, chemin: str, erreurs: CollecteurErreurs) -> ElementAcquit | None:
    avant = len(erreurs.erreurs)
    domaine = _entier(element, "DomaineAck", chemin, erreurs, obligatoire=True)
    etat = valeur_v(element, "EtatAck", chemin, erreurs)
    accepte = None
    if etat is not None:
        accepte = _BOOLEENS.get(etat)
        if accepte is None:
            erreurs.ajouter(numero_ligne(element), "EtatAck", f"« {etat} » : 1 (accepté) ou 0 (rejeté) attendu",
                            f"{chemin}/EtatAck")
    numero = _entier(element, "NumBord", chemin, erreurs, obligatoire=False)
    exercice = _entier(element, "ExerciceBord", chemin, erreurs, obligatoire=False)
    if exercice is not None and not 1000 <= exercice <= 9999:
        erreurs.ajouter(numero_ligne(element), "ExerciceBord", f"« {exercice} » n'est pas une année",
                        f"{chemin}/ExerciceBord")
    identifiant = (valeur_v(element, "IdMarche", chemin, erreurs, obligatoire=False)
                   or valeur_v(element, "IdUnique", chemin, erreurs, obligatoire=False))
    if domaine == DOMAINE_RECETTE and (numero is None or exercice is None) and len(erreurs.erreurs) == avant:
        erreurs.ajouter(numero_ligne(element), "NumBord", "un acquit de recette nomme son bordereau (NumBord et "
                                                       "ExerciceBord)", chemin)
    propres = _erreurs(element, chemin, erreurs)
    pieces = []
    for detail in enfants(element, "DetailPiece"):
        chemin_p = chemin_enfant(chemin, element, detail)
        numero_piece = _entier(detail, "NumPiece", chemin_p, erreurs, obligatoire=True)
        lignes = []
        for detail_ligne in enfants(detail, "DetailLigne"):
            chemin_l = chemin_enfant(chemin_p, detail, detail_ligne)
            numero_l = _entier(detail_ligne, "NumLigne", chemin_l, erreurs, obligatoire=True)
            if numero_l is not None:
                lignes.append(LigneEnErreur(numero_l, _erreurs(detail_ligne, chemin_l, erreurs)))
        if numero_piece is not None:
            pieces.append(PieceEnErreur(numero_piece, _erreurs(detail, chemin_p, erreurs), lignes))
    if domaine is None or accepte is None or len(erreurs.erreurs) != avant:
        return None
    return ElementAcquit(domaine, accepte, exercice, numero, propres, pieces, identifiant)
