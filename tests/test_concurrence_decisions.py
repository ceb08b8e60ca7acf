"""Un agent décide pendant qu'un moteur tourne dans un autre processus : aucune décision n'est écrasée.

Le moteur lit les factures d'un lot, décide, puis écrit leur nouvel état ; une affectation faite à la
main entre sa lecture et son écriture disparaîtrait de l'état de la facture (payé trop bas, reste
trop haut) tout en restant dans les affectations. Les décisions attendent donc le moteur.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import select

from rapprochement import decisions
from rapprochement.decisions import DecisionRefusee
from rapprochement.moteur import verrouiller
from regie.application import Application
from regie.montants import centimes_en_euros as eur
from regie.registre.modeles import Paiement
from regie.services.paiements import importer_fichier_paiements
from tests.conftest import CONFIG_EXEMPLE
from tests.scenarios import Scenario, autre
from tests.test_decisions import verifier_paiements
from tests.test_factures_import import verifier_invariants

ENTETE = "remise;numero_cheque;tireur;banque;montant;facture;recu_le\n"


def test_une_decision_prise_pendant_un_rapprochement_n_est_pas_ecrasee(app: Application, tmp_path: Path) -> None:
    sc = Scenario(app, tmp_path)
    numeros = [f"F01-26-05-{i:07d}" for i in range(1, 31)]
    sc.factures(*(autre(n, "50.00", dossier=f"D{i % 7:06d}") for i, n in enumerate(numeros)))
    # Un chèque de 1 € par facture, sans facture connue, en revue : l'agent l'affecte à la main, centime par centime.
    inconnus = tmp_path / "inconnus.csv"
    inconnus.write_text(ENTETE + "".join(f"RC-A;{i};DURAND PAUL;CCM;1.00;X{i:07d};2026-05-14\n"
                                         for i in range(len(numeros))), encoding="utf-8")
    importer_fichier_paiements(app, "cheque", inconnus)
    # Puis un chèque de 20 € par facture, que le moteur rapproche dans un autre processus, lot par lot.
    cheques = tmp_path / "cheques.csv"
    cheques.write_text(ENTETE + "".join(f"RC-B;{i};MARTIN CLAIRE;CCM;20.00;{n};2026-05-15\n"
                                        for i, n in enumerate(numeros)), encoding="utf-8")
    importer_fichier_paiements(app, "cheque", cheques, rapprocher_ensuite=False)
    with app.moteur.connect() as c:
        a_la_main = dict(c.execute(select(Paiement.reference, Paiement.id).where(Paiement.montant == 100)).all())
    # L'écriture de chaque lot retardée : entre la lecture des factures d'un lot et l'écriture de leur état,
    # l'agent a le temps de décider sur l'une d'elles.
    env = dict(os.environ, REGIE_DATABASE_URL=str(app.url), REGIE_CONFIG=str(CONFIG_EXEMPLE),
               REGIE_DONNEES=str(app.env.donnees), REGIE_LOG_NIVEAU="warning", REGIE_PAUSE_AU="ecriture_lot:0.1")
    moteur = subprocess.Popen([sys.executable, "-c",
                               "from regie.application import Application\n"
                               "from rapprochement.moteur import rapprocher\n"
                               "print(rapprocher(Application.depuis_environnement(), taille_lot=3).examines)"],
                              env=env, stdout=subprocess.PIPE, text=True)
    a_la_main_par_facture = [0] * len(numeros)
    while moteur.poll() is None and min(a_la_main_par_facture) < 100:
        for i, numero in enumerate(numeros):
            decisions.affecter(app, a_la_main[f"RC-A/{i}"], [(numero, 1)], qui="agent.martin",
                               motif="le tireur a appelé")
            a_la_main_par_facture[i] += 1
    sortie, _ = moteur.communicate(timeout=300)
    assert moteur.returncode == 0 and int(sortie.strip().splitlines()[-1]) >= len(numeros)
    assert min(a_la_main_par_facture) > 0
    # Chaque facture dit tout ce qui lui est affecté : les 20 € du moteur et chaque centime de l'agent.
    paye = {f["numero"]: f["paye"] for f in sc.etat()["factures"]}
    assert paye == {n: eur(2000 + a_la_main_par_facture[i]) for i, n in enumerate(numeros)}
    verifier_invariants(app)
    verifier_paiements(app)


def test_une_decision_qui_attend_trop_le_moteur_est_refusee_et_peut_etre_refaite(
        app: Application, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sc = Scenario(app, tmp_path)
    sc.factures(autre("F01-26-05-0000001", "50.00"))
    sc.cheques(("RC-1", "1", "DURAND PAUL", "50.00", "X0000001"))
    assert sc.paiement("cheque", "RC-1/1")["anomalie"] == "REFERENCE_INCONNUE"
    with app.moteur.connect() as c:
        pid = c.execute(select(Paiement.id).where(Paiement.reference == "RC-1/1")).scalar_one()
    monkeypatch.setattr(decisions, "ATTENTE_DU_MOTEUR_S", 0.3)
    # Un moteur (ou un import) tient le registre : son verrou, ou sous SQLite le verrou d'écriture.
    with app.moteur.begin() as moteur:
        verrouiller(moteur)
        debut = time.monotonic()
        with pytest.raises(DecisionRefusee) as refus:
            decisions.affecter(app, pid, [("F01-26-05-0000001", 5000)], qui="agent.martin", motif="appel")
        assert time.monotonic() - debut < 10
    assert refus.value.code == "RAPPROCHEMENT_EN_COURS"
    assert "réessayez" in refus.value.message
    assert sc.paiement("cheque", "RC-1/1")["statut"] == "en_anomalie"
    # Le moteur a fini : la même décision passe.
    decisions.affecter(app, pid, [("F01-26-05-0000001", 5000)], qui="agent.martin", motif="appel")
    assert (sc.facture("F01-26-05-0000001")["statut"], sc.paiement("cheque", "RC-1/1")["statut"]) == (
        "payee", "affecte")
