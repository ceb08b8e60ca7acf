"""Les modules du chemin chaud compilés par mypyc, pris seulement s'ils viennent des sources présentes.

`scripts/compiler_natif.py` (lancé par `scripts/installer.sh`) compile `MODULES` en extensions posées à côté
des sources et note l'empreinte de chaque source dans `MANIFESTE`. Python préfère une extension à la source
du même nom : une source modifiée depuis la compilation ferait tourner l'ancien code. `installer()` met donc
devant les autres un chercheur qui, dès qu'une seule source diffère de sa compilation (les modules compilés
ensemble s'appellent entre eux en C) ou qu'une extension de trop traîne, fait charger les sources de tous.
`REGIE_NATIF=0` force les sources.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.abc
import importlib.machinery
import importlib.util
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

RACINE = Path(__file__).resolve().parents[1]
# Les règles, le moteur et ce qu'ils appellent pour chaque paiement (la boucle qui limite le débit).
MODULES = ("regie.domaine", "regie.registre.masse", "rapprochement.regles", "rapprochement.moteur")
GROUPE = "regie._natif"  # la bibliothèque partagée des modules compilés : regie/_natif__mypyc.*.so
MANIFESTE = RACINE / "regie" / "_natif.json"
PAQUETS = ("regie", "rapprochement", "connecteurs", "exports")  # là où une extension périmée serait prise


def source(module: str) -> Path:
    return RACINE.joinpath(*module.split(".")).with_suffix(".py")


def empreintes() -> dict[str, str]:
    return {m: hashlib.sha256(source(m).read_bytes()).hexdigest() for m in MODULES}


def attendues() -> set[Path]:
    """Les extensions qu'une compilation de `MODULES` pose : une par module et la bibliothèque partagée."""
    suffixe = importlib.machinery.EXTENSION_SUFFIXES[0]
    return {RACINE.joinpath(*n.split(".")).with_name(n.rsplit(".", 1)[-1] + suffixe)
            for n in (*MODULES, f"{GROUPE}__mypyc")}


def compiles() -> list[Path]:
    """Les extensions présentes dans les paquets du projet (seul `scripts/compiler_natif.py` en pose)."""
    return sorted(p for paquet in PAQUETS for p in (RACINE / paquet).rglob("*.so")
                  if any(p.name.endswith(s) for s in importlib.machinery.EXTENSION_SUFFIXES))


def a_jour() -> bool:
    """Les extensions présentes sont exactement celles de `MODULES`, compilées depuis les sources présentes."""
    if os.environ.get("REGIE_NATIF", "1") == "0" or not MANIFESTE.exists():
        return False
    try:
        notees = json.loads(MANIFESTE.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return bool(notees == empreintes() and set(compiles()) == attendues())


class _Sources(importlib.abc.MetaPathFinder):
    """Charge la source `.py` de chaque module du projet (ses extensions sont périmées ou refusées)."""

    def find_spec(self, nom: str, chemin: Sequence[str] | None,
                  cible: ModuleType | None = None) -> importlib.machinery.ModuleSpec | None:
        if nom.partition(".")[0] not in PAQUETS or not (fichier := source(nom)).exists():
            return None  # un paquet (son __init__.py) ou un module d'ailleurs : la recherche ordinaire
        return importlib.util.spec_from_file_location(nom, fichier)


@functools.cache
def installer() -> bool:
    """À l'import de `regie` : les modules compilés s'ils sont à jour, sinon leurs sources. Rend s'ils sont pris."""
    actifs = a_jour()
    if not actifs and compiles():
        sys.meta_path.insert(0, _Sources())
    return actifs
