"""Une nuit à la fois : deux processus lancés ensemble, l'un travaille, l'autre le dit et s'en va."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from sqlalchemy import select

from regie.application import Application
from regie.registre.modeles import Execution
from regie.services.verrou import tache_exclusive
from tests.conftest import CONFIG_EXEMPLE


def _nuit(app: Application, **extra: str) -> subprocess.Popen[str]:
    env = dict(os.environ, REGIE_DATABASE_URL=str(app.url), REGIE_CONFIG=str(CONFIG_EXEMPLE),
               REGIE_DONNEES=str(app.env.donnees), REGIE_LOG_NIVEAU="error", **extra)
    return subprocess.Popen([sys.executable, "-m", "regie.cli", "nuit", "--date", "2026-06-20"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_deux_nuits_lancees_ensemble_une_seule_travaille(app: Application) -> None:
    premiere = _nuit(app, REGIE_PAUSE_AU="avant_rapprochement:4")
    time.sleep(2.5)  # la première tient le verrou, en pause avant le rapprochement
    seconde = _nuit(app)
    sortie2, _ = seconde.communicate(timeout=120)
    sortie1, erreurs1 = premiere.communicate(timeout=120)
    assert premiere.returncode == 0, erreurs1
    assert seconde.returncode == 0
    assert "Nuit ignorée : un autre processus l'exécute déjà" in sortie2
    assert "Nuit du 20/06/2026" in sortie1
    with app.sessions() as s:
        assert [e.statut for e in s.scalars(select(Execution))] == ["termine"]
    # Le verrou est rendu : la nuit suivante tourne.
    troisieme = _nuit(app)
    assert "Nuit du" in troisieme.communicate(timeout=120)[0]


def test_le_verrou_d_un_processus_tue_est_repris(app: Application, tmp_path: Path) -> None:
    tuee = _nuit(app, REGIE_TUER_AU="avant_titres")
    tuee.communicate(timeout=120)
    assert tuee.returncode == -9
    reprise = _nuit(app)
    sortie, erreurs = reprise.communicate(timeout=120)
    assert reprise.returncode == 0, erreurs
    assert "Nuit du" in sortie
    with app.sessions() as s:
        assert [e.statut for e in s.scalars(select(Execution).order_by(Execution.id))] == ["interrompu", "termine"]


def test_dans_un_meme_processus_le_verrou_se_prend_et_se_rend(app: Application) -> None:
    with tache_exclusive(app, "essai") as premier:
        assert premier
    with tache_exclusive(app, "essai") as encore:
        assert encore
