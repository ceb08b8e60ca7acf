"""La nuit tuée (SIGKILL) n'importe où puis relancée finit exactement comme une nuit propre.

Cinquante arrêts : à chaque point de reprise nommé (entre les étapes, après un import, entre
deux lots du rapprochement, avant la publication d'un PES, entre dépôt et inscription) et à
des instants tirés au hasard. On compare `regie etat --json`, le dossier de dépôt du Trésor
(chaque fichier une fois, entier) et la boîte de réception.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from regie.jeu_essai import ecrire_jeu_de_nuit
from tests.conftest import CONFIG_EXEMPLE

pytestmark = pytest.mark.lent
DATE = "2026-06-20"
POINTS = [f"avant_{e}" for e in ("releve", "payfip", "rapprochement", "titres", "journaux", "depot")] + [
    "apres_import_factures@1", *(f"apres_import_paiements@{i}" for i in range(1, 6)),
    *(f"boite_apres_import@{i}" for i in (1, 2, 4, 7)), *(f"rapprochement_lot@{i}" for i in (1, 2, 3)),
    "titres_avant_publication@1", "envoi_avant_inscription@1"]
ALEATOIRES = 50 - len(POINTS)


def _env(racine: Path, **extra: str) -> dict[str, str]:
    return dict(os.environ, REGIE_CONFIG=str(CONFIG_EXEMPLE), REGIE_DATABASE_URL=f"sqlite:///{racine / 'regie.db'}",
                REGIE_DONNEES=str(racine / "var"), REGIE_LOG_NIVEAU="error", REGIE_RAPPROCHEMENT_LOT="20", **extra)


def _regie(racine: Path, *args: str, **extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "regie.cli", *args], env=_env(racine, **extra), cwd=racine,
                          capture_output=True, text=True, timeout=300, check=False)


def _empreintes(dossier: Path) -> dict[str, str]:
    if not dossier.exists():
        return {}
    return {str(f.relative_to(dossier)): hashlib.sha256(f.read_bytes()).hexdigest()
            for f in sorted(dossier.rglob("*")) if f.is_file()}


def _photo(racine: Path) -> dict[str, Any]:
    etat = _regie(racine, "etat", "--json")
    assert etat.returncode == 0, etat.stderr
    echanges = racine / "var" / "echanges"
    return {"etat": json.loads(etat.stdout), "depot": _empreintes(echanges / "depot"),
            "entree": sorted(_empreintes(echanges / "entree"))}


@pytest.fixture(scope="module")
def modele(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Les fichiers de la nuit, une base initialisée, et la photo d'une nuit propre."""
    base = tmp_path_factory.mktemp("modele")
    fichiers = tmp_path_factory.mktemp("fichiers")
    ecrire_jeu_de_nuit(fichiers, nombre=120, avec_fichier_errone=True)
    assert _regie(base, "init").returncode == 0
    propre = tmp_path_factory.mktemp("propre")
    _preparer(propre, base, fichiers)
    debut = time.perf_counter()
    res = _regie(propre, "nuit", "--date", DATE)
    duree = time.perf_counter() - debut
    assert res.returncode == 1, res.stderr  # le fichier erroné est refusé : la nuit le dit
    photo = _photo(propre)
    assert photo["depot"], "la nuit propre doit déposer au moins un PES"
    return {"base": base, "fichiers": fichiers, "photo": photo, "duree": duree}


def _preparer(racine: Path, base: Path, fichiers: Path) -> None:
    shutil.copy(base / "regie.db", racine / "regie.db")
    entree = racine / "var" / "echanges" / "entree"
    entree.mkdir(parents=True)
    for f in fichiers.iterdir():
        shutil.copy(f, entree / f.name)


def _reprendre_et_comparer(racine: Path, modele: dict[str, Any]) -> None:
    res = _regie(racine, "nuit", "--date", DATE)
    assert res.returncode in (0, 1), res.stdout + res.stderr
    photo = _photo(racine)
    assert photo["depot"] == modele["photo"]["depot"]
    assert photo["entree"] == modele["photo"]["entree"]
    assert photo["etat"] == modele["photo"]["etat"]


@pytest.mark.parametrize("point", POINTS)
def test_tuee_a_un_point_nomme_puis_relancee_la_nuit_finit_comme_une_nuit_propre(
        point: str, modele: dict[str, Any], tmp_path: Path) -> None:
    _preparer(tmp_path, modele["base"], modele["fichiers"])
    res = _regie(tmp_path, "nuit", "--date", DATE, REGIE_TUER_AU=point)
    assert res.returncode == -signal.SIGKILL, f"le point {point} n'a pas été atteint : {res.stdout}"
    _reprendre_et_comparer(tmp_path, modele)


@pytest.mark.parametrize("graine", range(ALEATOIRES))
def test_tuee_a_un_instant_au_hasard_puis_relancee_la_nuit_finit_comme_une_nuit_propre(
        graine: int, modele: dict[str, Any], tmp_path: Path) -> None:
    _preparer(tmp_path, modele["base"], modele["fichiers"])
    delai = random.Random(graine).uniform(0.3, max(0.5, modele["duree"]))
    proc = subprocess.Popen([sys.executable, "-m", "regie.cli", "nuit", "--date", DATE], env=_env(tmp_path),
                            cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(delai)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    _reprendre_et_comparer(tmp_path, modele)
