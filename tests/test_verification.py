"""`regie verifier` : un registre sain est dit cohérent ; chaque sorte d'écart est trouvée et nommée."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import insert, select, text, update

from rapprochement.decisions import garder_en_credit
from regie.application import Application
from regie.registre.modeles import Affectation, EtatFacture, Facture, MouvementCompte, Paiement
from regie.registre.types import maintenant
from regie.services.verification import verifier
from tests.scenarios import FACTURE, Scenario, facture

F = FACTURE["numero"]
F2 = "F01-26-05-0000124"


@pytest.fixture
def sc(app: Application, tmp_path: Path) -> Scenario:
    """Deux factures, un chèque qui en paie une, un CESU, un trop-perçu gardé en crédit, un avoir."""
    s = Scenario(app, tmp_path)
    s.factures(facture(), facture(F2))
    s.cheques(("RC-1", "1", "MARTIN CLAIRE", "42.00", F))
    s.cesu(("R-1", "0412345678901", 2026, "20.00", F, "2026-05-14"))
    s.cheques(("RC-2", "1", "MARTIN CLAIRE", "80.00", F2))
    with app.moteur.connect() as c:
        trop = c.execute(select(Paiement.id).where(Paiement.reference == "RC-2/1")).scalar_one()
    garder_en_credit(app, trop, qui="agent", motif="famille d'accord")
    s.factures({"type": "avoir", "numero": "A-2026-0001", "facture": F, "emise_le": "2026-05-10",
                "montant": "5.00", "motif": "Absence"})
    return s


def ecarts(app: Application) -> dict[str, int]:
    return verifier(app).par_controle


def test_un_registre_sain_est_coherent_et_la_commande_sort_en_0(sc: Scenario, regie_cli) -> None:
    bilan = verifier(sc.app)
    assert bilan.coherent, bilan.ecarts
    res = regie_cli("verifier")
    assert res.returncode == 0 and "Registre cohérent" in res.stdout


def test_une_reference_orpheline_est_trouvee(sc: Scenario, regie_cli) -> None:
    with sc.app.moteur.begin() as c:
        c.execute(insert(MouvementCompte), {"dossier_id": 99999, "quand": maintenant(), "nature": "credit",
                                            "libelle": "sans famille", "montant": 1, "delta_credit": 0})
    assert ecarts(sc.app) == {"reference": 1}
    res = regie_cli("verifier")
    assert res.returncode == 1
    assert "mouvement_compte" in res.stderr and "dossier_id = 99999" in res.stderr
    assert "Registre incohérent : 1 écart(s)" in res.stdout


def test_un_etat_qui_ne_suit_pas_les_affectations_est_trouve(sc: Scenario) -> None:
    with sc.app.moteur.begin() as c:
        c.execute(update(EtatFacture).where(EtatFacture.facture_id == select(Facture.id).where(
            Facture.numero == F2).scalar_subquery()).values(paye=EtatFacture.paye - 100))
    assert ecarts(sc.app) == {"etat": 1, "statut": 1, "compte": 1}


def test_des_parts_qui_ne_font_pas_leur_affectation_ou_visent_une_ligne_absente_sont_trouvees(sc: Scenario) -> None:
    with sc.app.moteur.begin() as c:
        premiere = c.execute(select(Affectation.id).order_by(Affectation.id)).scalars().first()
        c.execute(update(Affectation).where(Affectation.id == premiere).values(parts=[[1, 4100], [7, 50]]))
    assert ecarts(sc.app) == {"parts": 2}


def test_un_statut_qui_ne_suit_pas_les_montants_est_trouve(sc: Scenario) -> None:
    with sc.app.moteur.begin() as c:
        c.execute(update(EtatFacture).where(EtatFacture.facture_id == select(Facture.id).where(
            Facture.numero == F2).scalar_subquery()).values(statut="emise"))
    assert ecarts(sc.app) == {"statut": 1}


def test_un_paiement_dont_l_affecte_ne_fait_pas_ses_affectations_est_trouve(sc: Scenario) -> None:
    with sc.app.moteur.begin() as c:
        c.execute(update(Paiement).where(Paiement.reference == "RC-1/1").values(affecte=4000))
    assert ecarts(sc.app) == {"paiement": 1}


def test_un_compte_famille_qui_ne_suit_pas_le_registre_est_trouve(sc: Scenario) -> None:
    with sc.app.moteur.begin() as c:
        c.execute(text("UPDATE mouvement_compte SET delta_credit = delta_credit + 1 WHERE nature = 'credit'"))
    assert ecarts(sc.app) == {"compte": 1}
