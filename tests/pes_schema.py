"""Validation d'un fichier PES contre le schéma officiel de `shared/pes/xsd` (jamais copié dans le projet).

Le dossier `shared` est à côté de la copie de travail (ou désigné par REGIE_SHARED) ; la CI
l'a toujours : son absence est une erreur, pas une raison de sauter un test.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any, cast

from lxml import etree

SCHEMAS = {
    "PES_Aller": "PES_V2/Rev0/PES_Aller.xsd",
    "PES_ACQUIT": "PES_V2/Rev0/PES_V2_Acquit_Autonome_V2.xsd",
    "PES_Retour": "PES_V2/RETOUR/Rev0/PES_Retour.xsd",
}


def dossier_shared() -> Path:
    env = os.environ.get("REGIE_SHARED")
    dossier = Path(env) if env else Path(__file__).resolve().parents[2] / "shared"
    if not (dossier / "pes" / "xsd").is_dir():
        raise RuntimeError(f"schémas PES introuvables dans {dossier}/pes/xsd (REGIE_SHARED ?)")
    return dossier


def exemple(nom: str) -> bytes:
    return (dossier_shared() / "pes" / "exemples" / nom).read_bytes()


def _parseur() -> etree.XMLParser:
    return etree.XMLParser(no_network=True, resolve_entities=False, huge_tree=True)


@functools.cache
def schema(racine: str) -> etree.XMLSchema:
    """Chaque schéma racine n'est compilé qu'une fois par session (plusieurs secondes sinon)."""
    chemin = dossier_shared() / "pes" / "xsd" / SCHEMAS[racine]
    return etree.XMLSchema(etree.parse(str(chemin), _parseur()))


def erreurs_schema(source: str | Path | bytes) -> list[str]:
    """Les erreurs de validation (liste vide si le fichier est valide)."""
    if isinstance(source, bytes):
        doc = etree.ElementTree(etree.fromstring(source, _parseur()))
    else:
        doc = etree.parse(str(source), _parseur())
    racine = etree.QName(doc.getroot()).localname
    xsd = schema(racine)
    if xsd.validate(doc):
        return []
    journal = cast(Iterable[Any], xsd.error_log)
    return [f"{e.line}: {e.message}" for e in journal]


def assert_valide(source: str | Path | bytes) -> None:
    erreurs = erreurs_schema(source)
    assert not erreurs, "\n".join(erreurs[:20])
