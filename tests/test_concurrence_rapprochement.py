"""Deux moteurs lancés en même temps (deux vrais processus) n'affectent jamais deux fois le même argent."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from sqlalchemy import func, select

from regie.application import Application
from regie.montants import centimes_en_euros as eur
from regie.registre.modeles import Affectation, Paiement
from regie.services.paiements import importer_fichier_paiements
from tests.conftest import CONFIG_EXEMPLE
from tests.scenarios import Scenario, autre
from tests.test_decisions import verifier_paiements
from tests.test_factures_import import verifier_invariants


def test_deux_moteurs_concurrents_n_affectent_chaque_paiement_qu_une_fois(app: Application, tmp_path: Path) -> None:
    sc = Scenario(app, tmp_path)
    numeros = [f"F01-26-05-{i:07d}" for i in range(1, 61)]
    sc.factures(*(autre(n, "50.00", dossier=f"D{i % 7:06d}") for i, n in enumerate(numeros)))
    # Trois chèques par facture, plus que son reste : l'ordre décide qui déborde, jamais les deux moteurs.
    lignes = "".join(f"RC-C;{i}{k};MARTIN CLAIRE;CCM;{eur(2000 + k * 100)};{n};2026-05-15\n"
                     for i, n in enumerate(numeros) for k in range(3))
    chemin = tmp_path / "cheques.csv"
    chemin.write_text("remise;numero_cheque;tireur;banque;montant;facture;recu_le\n" + lignes, encoding="utf-8")
    importer_fichier_paiements(app, "cheque", chemin, rapprocher_ensuite=False)
    env = dict(os.environ, REGIE_DATABASE_URL=str(app.url), REGIE_CONFIG=str(CONFIG_EXEMPLE),
               REGIE_DONNEES=str(app.env.donnees), REGIE_LOG_NIVEAU="warning")
    moteurs = [subprocess.Popen([sys.executable, "-c",
                                 "from regie.application import Application\n"
                                 "from rapprochement.moteur import rapprocher\n"
                                 "print(rapprocher(Application.depuis_environnement(), taille_lot=7).examines)"],
                                env=env, stdout=subprocess.PIPE, text=True) for _ in range(2)]
    examines = [int(m.communicate(timeout=300)[0].strip().splitlines()[-1]) for m in moteurs]
    assert all(m.returncode == 0 for m in moteurs)
    assert sum(examines) == 180  # chaque paiement examiné par un seul moteur
    with app.moteur.connect() as c:
        assert c.execute(select(func.count()).select_from(Paiement).where(Paiement.statut == "a_traiter")).scalar() == 0
        assert c.execute(select(func.sum(Affectation.montant))).scalar() == 60 * 5000
    verifier_invariants(app)
    verifier_paiements(app)
    assert {f["statut"] for f in sc.etat()["factures"]} == {"payee"}
