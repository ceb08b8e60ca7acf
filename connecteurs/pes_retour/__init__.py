"""PES V2 en retour du comptable (Hélios) : `PES_Retour` recette (état des titres, encaissements).

Lecture pure, sans base : `recette.lire_pes_retour(contenu, nom_fichier)`. Ce module garde aussi
la lecture XML sûre commune aux fichiers PES reçus (PES_Retour, PES_ACQUIT) : analyseur sans
réseau ni entités ni DTD, encodage déclaré ISO-8859-1 ou UTF-8, valeurs dans l'attribut V.
"""

from __future__ import annotations

import re
from typing import Any

from lxml import etree

from regie.erreurs import CollecteurErreurs

ENCODAGES_ACCEPTES = frozenset({"ISO-8859-1", "ISO8859-1", "ISO_8859-1", "LATIN1", "LATIN-1", "UTF-8", "UTF8",
                                "US-ASCII", "ASCII"})
_DECLARATION = re.compile(rb"\A(?:\xef\xbb\xbf)?<\?xml[^>]*?encoding\s*=\s*[\"']([^\"']*)[\"']")

# Pas de réseau, pas d'entités, pas de DTD : un fichier reçu ne doit rien pouvoir aller chercher
# ni se démultiplier en mémoire (« billion laughs »).
OPTIONS_ANALYSEUR: dict[str, Any] = {
    "resolve_entities": False,
    "no_network": True,
    "load_dtd": False,
    "dtd_validation": False,
    "huge_tree": False,
    "remove_comments": True,
    "remove_pis": True,
}


def analyseur_sur() -> etree.XMLParser:
    return etree.XMLParser(**OPTIONS_ANALYSEUR)


# Le prologue XML (déclaration, blancs, commentaires, instructions) suivi d'une déclaration de type.
_DOCTYPE = re.compile(rb"\A(?:\xef\xbb\xbf)?(?:\s+|<\?.*?\?>|<!--.*?-->)*<!DOCTYPE", re.DOTALL)


def verifier_encodage(contenu: bytes, erreurs: CollecteurErreurs) -> bool:
    """PES est déclaré ISO-8859-1 ; on accepte aussi UTF-8 (déclaré ou par défaut), rien d'autre.

    Une DTD (même interne) n'a rien à faire dans un fichier PES : refusée avant toute analyse, plutôt
    que d'interpréter ses entités (selon sa version, libxml2 s'arrête déjà sur leur usage).
    """
    m = _DOCTYPE.match(contenu)
    if m is not None:
        erreurs.ajouter(contenu.count(b"\n", 0, m.end()) + 1, None, "déclaration DOCTYPE interdite dans un fichier PES")
        return False
    if contenu.startswith((b"\xff\xfe", b"\xfe\xff")):
        erreurs.ajouter(1, "encoding", "fichier en UTF-16 : un fichier PES est en ISO-8859-1 (ou UTF-8)")
        return False
    m = _DECLARATION.match(contenu)
    if m is None:
        return True
    declare = m.group(1).decode("ascii", "replace").strip().upper()
    if declare not in ENCODAGES_ACCEPTES:
        erreurs.ajouter(1, "encoding", f"encodage déclaré « {declare} » : un fichier PES est en ISO-8859-1 "
                                       "(UTF-8 accepté)")
        return False
    return True


def erreur_syntaxe(exc: Exception, erreurs: CollecteurErreurs) -> None:
    """Une erreur de l'analyseur XML devient une erreur de fichier avec sa ligne."""
    ligne: int | None = None
    message = str(exc)
    if isinstance(exc, etree.XMLSyntaxError):
        ligne = exc.lineno if isinstance(exc.lineno, int) and exc.lineno > 0 else None
        message = exc.msg or message
    erreurs.ajouter(ligne, None, f"XML mal formé : {message}")


def numero_ligne(element: etree._Element) -> int | None:
    """Le numéro de ligne d'un élément dans le fichier, s'il est connu."""
    numero = getattr(element, "sourceline", None)
    return numero if isinstance(numero, int) else None


def nom_local(element: etree._Element) -> str:
    tag = element.tag
    if not isinstance(tag, str):
        return ""
    return tag.rsplit("}", 1)[-1]


def espace_de_noms(element: etree._Element) -> str | None:
    tag = element.tag
    if isinstance(tag, str) and tag.startswith("{"):
        return tag[1:].split("}", 1)[0]
    return None


def enfants(element: etree._Element, nom: str) -> list[etree._Element]:
    """Les enfants directs `nom` (non qualifiés, comme le veut PES)."""
    return [e for e in element if e.tag == nom]


def chemin_enfant(chemin_parent: str, parent: etree._Element, element: etree._Element) -> str:
    """Chemin XML d'un enfant : `/PES_Retour/.../Piece[2]` (rang parmi les frères de même nom)."""
    rang = 1
    for frere in parent:
        if frere is element:
            break
        if frere.tag == element.tag:
            rang += 1
    return f"{chemin_parent}/{nom_local(element)}[{rang}]"


def valeur_v(parent: etree._Element, nom: str, chemin_parent: str, erreurs: CollecteurErreurs,
             *, obligatoire: bool = True) -> str | None:
    """La valeur de l'attribut V de l'enfant `nom` ; l'erreur nomme le chemin et le champ."""
    trouves = enfants(parent, nom)
    chemin = f"{chemin_parent}/{nom}"
    if not trouves:
        if obligatoire:
            erreurs.ajouter(numero_ligne(parent), nom, "élément obligatoire absent", chemin)
        return None
    if len(trouves) > 1:
        erreurs.ajouter(numero_ligne(trouves[1]), nom, "élément en double", chemin)
        return None
    element = trouves[0]
    valeur = element.get("V")
    if valeur is None:
        erreurs.ajouter(numero_ligne(element), nom, "attribut V absent (PES porte chaque valeur dans V)", chemin)
        return None
    if valeur.strip() == "":
        if obligatoire:
            erreurs.ajouter(numero_ligne(element), nom, "valeur vide", chemin)
        return None
    return valeur.strip()
