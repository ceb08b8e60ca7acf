"""Les modules compilés (regie.natif) : pris s'ils viennent des sources présentes, sinon les sources."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from regie import natif

RACINE = Path(__file__).resolve().parents[1]


def _fichiers_charges(env: dict[str, str]) -> dict[str, str]:
    code = ("import json, importlib\n"
            f"print(json.dumps({{m: importlib.import_module(m).__file__ for m in {list(natif.MODULES)!r}}}))")
    sortie = subprocess.run([sys.executable, "-c", code], env=env, cwd="/", capture_output=True, text=True,
                            check=True).stdout
    resultat: dict[str, str] = json.loads(sortie)
    return resultat


def test_a_jour_seulement_si_chaque_source_est_celle_de_la_compilation(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    manifeste = tmp_path / "_natif.json"
    monkeypatch.setattr(natif, "MANIFESTE", manifeste)
    presentes = sorted(natif.attendues())
    monkeypatch.setattr(natif, "compiles", lambda: presentes)
    assert not natif.a_jour()  # pas de manifeste
    empreintes = natif.empreintes()
    manifeste.write_text(json.dumps(empreintes), encoding="utf-8")
    assert natif.a_jour()
    # Une seule source changée depuis la compilation : aucun module compilé n'est pris.
    manifeste.write_text(json.dumps({**empreintes, "rapprochement.regles": "0" * 64}), encoding="utf-8")
    assert not natif.a_jour()
    manifeste.write_text(json.dumps(empreintes), encoding="utf-8")
    # L'extension d'un module qui n'est plus compilé : elle serait prise avant sa source.
    presentes.append(natif.RACINE / "regie" / "montants.cpython-311-x86_64-linux-gnu.so")
    assert not natif.a_jour()
    presentes.pop()
    assert natif.a_jour()
    monkeypatch.setenv("REGIE_NATIF", "0")
    assert not natif.a_jour()


def test_le_chercheur_des_sources_rend_le_fichier_py() -> None:
    spec = natif._Sources().find_spec("rapprochement.moteur", None)
    assert spec is not None and spec.origin == str(RACINE / "rapprochement" / "moteur.py")
    cli = natif._Sources().find_spec("regie.cli", None)
    assert cli is not None and cli.origin == str(RACINE / "regie" / "cli.py")
    assert natif._Sources().find_spec("regie.registre", None) is None  # un paquet : la recherche ordinaire
    assert natif._Sources().find_spec("sqlalchemy.orm", None) is None


def test_refuses_ou_perimes_les_modules_sont_charges_depuis_leurs_sources() -> None:
    charges = _fichiers_charges(dict(os.environ, REGIE_NATIF="0"))
    assert all(f.endswith(".py") for f in charges.values()), charges


def test_compiles_et_a_jour_les_modules_sont_pris() -> None:
    if not natif.a_jour():
        if os.environ.get("CI"):  # la CI installe gcc et mypyc : les modules y sont toujours compilés
            pytest.fail("modules compilés absents ou périmés en CI (scripts/compiler_natif.py)")
        pytest.skip("modules non compilés ici (pas de compilateur ni de mypyc) : les sources tournent")
    charges = _fichiers_charges(dict(os.environ))
    assert all(not f.endswith(".py") for f in charges.values()), charges
