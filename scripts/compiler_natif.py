"""Compile avec mypyc les modules du chemin chaud (`regie.natif.MODULES`), s'ils ont changé.

    .venv/bin/python scripts/compiler_natif.py [--forcer]

Sans compilateur C ni mypyc, ne fait rien : les sources tournent telles quelles (mêmes résultats, plus
lentement). Les extensions sont posées à côté des sources, avec l'empreinte de chacune (`regie/_natif.json`).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

RACINE = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(RACINE))

from regie import natif  # noqa: E402


def main() -> int:
    forcer = "--forcer" in sys.argv[1:]
    if not forcer and natif.a_jour():
        print("Modules compilés : à jour.")
        return 0
    if shutil.which(os.environ.get("CC", "cc")) is None:
        print("Modules compilés : pas de compilateur C, les sources Python seront utilisées.")
        return 0
    try:
        from mypyc.build import mypycify
        from setuptools import setup
    except ImportError:
        print("Modules compilés : mypyc absent, les sources Python seront utilisées.")
        return 0
    for ancien in natif.compiles():  # toutes, y compris celles d'un module qui n'est plus compilé
        ancien.unlink()
    natif.MANIFESTE.unlink(missing_ok=True)
    debut = time.perf_counter()
    os.chdir(RACINE)
    with tempfile.TemporaryDirectory() as temporaire:
        fichiers = [str(natif.source(m).relative_to(RACINE)) for m in natif.MODULES]
        avis = io.StringIO()
        try:
            with contextlib.redirect_stdout(avis):  # ses remarques (« generator comprehension as list »…)
                extensions = mypycify(fichiers, opt_level="3", group_name=natif.GROUPE, target_dir=temporaire)
            setup(name="regie-natif", ext_modules=extensions, script_args=[
                "--quiet", "build_ext", "--inplace", "--build-temp", temporaire])
        except (Exception, SystemExit) as erreur:  # setuptools sort par SystemExit quand gcc échoue
            # L'application tourne sur ses sources ; la CI, elle, exige les modules compilés (tests/test_natif.py).
            for partielle in natif.compiles():
                partielle.unlink()
            print(f"Modules compilés : la compilation a échoué ({erreur}), les sources Python seront utilisées.\n"
                  f"{avis.getvalue()}", file=sys.stderr)
            return 0
    natif.MANIFESTE.write_text(json.dumps(natif.empreintes(), indent=1) + "\n", encoding="utf-8")
    print(f"Modules compilés : {len(natif.MODULES)} modules en {time.perf_counter() - debut:.0f} s.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
