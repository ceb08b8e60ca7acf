"""Les décisions des agents : une transaction, le compte famille et l'audit ; défaire n'efface rien."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import func, select

from rapprochement import decisions
from rapprochement.decisions import DecisionRefusee
from rapprochement.moteur import rapprocher
from regie.application import Application
from regie.registre.modeles import Affectation, Anomalie, Audit, MouvementCompte, Paiement, Remboursement
from regie.services.compte import historique
from tests.scenarios import FACTURE, Scenario, autre, facture
from tests.test_factures_import import verifier_invariants

F = FACTURE["numero"]
G = "F01-26-05-0000200"


@pytest.fixture
def sc(app: Application, tmp_path: Path) -> Scenario:
    s = Scenario(app, tmp_path)
    s.factures(facture(), autre(G, "30.00"))
    return s


def pid(sc: Scenario, canal: str, reference: str) -> tuple[int, int]:
    with sc.app.sessions() as s:
        p = s.scalars(select(Paiement).where(Paiement.canal == canal, Paiement.reference == reference)).one()
        return p.id, p.version


def verifier_paiements(app: Application) -> None:
    """Pour chaque paiement : montant = affecté + excédent ; affecté = somme de ses affectations."""
    with app.moteur.connect() as c:
        for p_id, montant, affecte, credit, rembourse in c.execute(select(
                Paiement.id, Paiement.montant, Paiement.affecte, Paiement.en_credit, Paiement.rembourse)):
            net = c.execute(select(func.coalesce(func.sum(Affectation.montant), 0))
                            .where(Affectation.paiement_id == p_id)).scalar()
            assert net == affecte, p_id
            assert 0 <= affecte + credit + rembourse <= montant


def test_un_agent_affecte_un_paiement_a_deux_factures_et_l_audit_le_dit(sc: Scenario) -> None:
    sc.cheques(("RC-1", "1", "MARTIN CLAIRE", "107.00", ""))
    assert sc.paiement("cheque", "RC-1/1")["anomalie"] == "REFERENCE_INCONNUE"
    i, v = pid(sc, "cheque", "RC-1/1")
    decisions.affecter(sc.app, i, [(F, 7700), (G, 3000)], qui="agent.dupont", motif="appel de la famille",
                       version=v)
    p = sc.paiement("cheque", "RC-1/1")
    assert (p["statut"], p["anomalie"], p["affecte"]) == ("affecte", None, "107.00")
    assert p["affectations"] == [{"facture": F, "montant": "77.00"}, {"facture": G, "montant": "30.00"}]
    assert [sc.facture(n)["statut"] for n in (F, G)] == ["payee", "payee"]
    with sc.app.sessions() as s:
        audit = s.scalars(select(Audit)).one()
        assert (audit.qui, audit.action, audit.motif) == ("agent.dupont", "affecter", "appel de la famille")
        assert audit.avant["statut"] == "en_anomalie" and audit.apres["statut"] == "affecte"
        assert s.scalars(select(Anomalie.statut)).all() == ["resolue"]
    verifier_invariants(sc.app)
    verifier_paiements(sc.app)
    # Le moteur ne reprend pas un paiement décidé par un agent.
    assert rapprocher(sc.app).examines == 0


def test_une_decision_sur_un_paiement_qui_a_change_est_refusee(sc: Scenario) -> None:
    sc.cheques(("RC-2", "1", "MARTIN CLAIRE", "10.00", "F-INCONNUE-9"))
    i, v = pid(sc, "cheque", "RC-2/1")
    decisions.affecter(sc.app, i, [(G, 500)], qui="agent.a", motif="x", version=v)
    with pytest.raises(DecisionRefusee, match="a changé depuis que vous l'avez consulté"):
        decisions.affecter(sc.app, i, [(G, 500)], qui="agent.b", motif="x", version=v)
    assert sc.paiement("cheque", "RC-2/1")["affecte"] == "5.00"


def test_on_ne_peut_pas_affecter_plus_que_le_paiement_ni_plus_que_le_reste(sc: Scenario) -> None:
    sc.cheques(("RC-3", "1", "MARTIN CLAIRE", "50.00", "F-INCONNUE-9"))
    i, _ = pid(sc, "cheque", "RC-3/1")
    with pytest.raises(DecisionRefusee, match="dépassent ce qui reste à affecter"):
        decisions.affecter(sc.app, i, [(F, 4000), (G, 2000)], qui="a", motif="x")
    with pytest.raises(DecisionRefusee, match="dépassent le reste dû"):
        decisions.affecter(sc.app, i, [(G, 4000)], qui="a", motif="x")
    assert sc.paiement("cheque", "RC-3/1")["affecte"] == "0.00"


def test_un_excedent_garde_en_credit_paie_la_facture_suivante(sc: Scenario) -> None:
    sc.cheques(("RC-4", "1", "MARTIN CLAIRE", "90.00", F))
    assert sc.paiement("cheque", "RC-4/1")["anomalie"] == "TROP_PERCU"
    i, v = pid(sc, "cheque", "RC-4/1")
    decisions.garder_en_credit(sc.app, i, qui="agent", motif="accord de la famille", version=v)
    assert sc.famille("D004512") == {"dossier": "D004512", "du": "30.00", "credit": "13.00"}
    p = sc.paiement("cheque", "RC-4/1")
    assert (p["statut"], p["anomalie"]) == ("partiellement_affecte", None)
    assert decisions.appliquer_credit(sc.app, "D004512", qui="agent", motif="crédit disponible") == 1300
    assert sc.famille("D004512") == {"dossier": "D004512", "du": "17.00", "credit": "0.00"}
    assert sc.facture(G)["paye"] == "13.00"
    assert sc.paiement("cheque", "RC-4/1")["statut"] == "affecte"
    verifier_invariants(sc.app)
    verifier_paiements(sc.app)


def test_un_avoir_au_dela_de_la_facture_paie_une_autre_facture_de_la_famille(sc: Scenario) -> None:
    sc.factures({"type": "avoir", "numero": "A-0001", "facture": G, "emise_le": "2026-05-10", "montant": "40.00",
                 "motif": "Absences"})
    assert sc.famille("D004512")["credit"] == "10.00"
    decisions.appliquer_credit(sc.app, "D004512", qui="agent", motif="avoir")
    assert sc.famille("D004512") == {"dossier": "D004512", "du": "67.00", "credit": "0.00"}
    verifier_invariants(sc.app)


def test_le_regisseur_rembourse_un_excedent(sc: Scenario) -> None:
    sc.cheques(("RC-5", "1", "MARTIN CLAIRE", "100.00", F))
    i, _ = pid(sc, "cheque", "RC-5/1")
    with pytest.raises(DecisionRefusee, match=r"au plus 23\.00"):
        decisions.rembourser(sc.app, i, 3000, qui="regisseur", motif="trop perçu")
    with pytest.raises(DecisionRefusee, match="motif est obligatoire"):
        decisions.rembourser(sc.app, i, 2300, qui="regisseur", motif=" ")
    decisions.rembourser(sc.app, i, 2300, qui="regisseur", motif="trop perçu, virement à la famille")
    p = sc.paiement("cheque", "RC-5/1")
    assert (p["statut"], p["anomalie"], p["affecte"]) == ("partiellement_affecte", None, "77.00")
    with sc.app.sessions() as s:
        r = s.scalars(select(Remboursement)).one()
        assert (r.montant, r.statut) == (2300, "a_faire")
    verifier_paiements(sc.app)


def test_un_cheque_impaye_est_annule_la_facture_rouverte_et_l_historique_dit_pourquoi(sc: Scenario) -> None:
    sc.cheques(("RC-6", "1", "MARTIN CLAIRE", "77.00", F))
    assert sc.facture(F)["statut"] == "payee"
    with sc.app.sessions() as s:
        avant = s.scalar(select(func.count()).select_from(Affectation))
    i, v = pid(sc, "cheque", "RC-6/1")
    decisions.annuler_paiement(sc.app, i, qui="regisseur", motif="chèque revenu impayé (provision insuffisante)",
                               version=v)
    f = sc.facture(F)
    assert (f["statut"], f["paye"], f["reste"]) == ("emise", "0.00", "77.00")
    p = sc.paiement("cheque", "RC-6/1")
    assert (p["statut"], p["affecte"], p["affectations"]) == ("annule", "0.00", [])
    with sc.app.sessions() as s:
        assert s.scalar(select(func.count()).select_from(Affectation)) == 2 * avant  # rien d'effacé
        dernier = s.scalars(select(MouvementCompte).order_by(MouvementCompte.id.desc())).first()
        assert dernier is not None and "provision insuffisante" in dernier.libelle
        assert dernier.delta_du == 7700
    assert sc.famille("D004512")["du"] == "107.00"
    verifier_invariants(sc.app)
    verifier_paiements(sc.app)


def test_le_compte_famille_deroule_factures_paiement_du_moteur_et_annulation_dans_l_ordre(sc: Scenario) -> None:
    """L'affectation faite par le moteur est la ligne « paiement » du compte, à la date du chèque."""
    sc.cheques(("RC-6", "1", "MARTIN CLAIRE", "77.00", F), recu_le="2026-05-15")
    i, v = pid(sc, "cheque", "RC-6/1")
    decisions.annuler_paiement(sc.app, i, qui="regisseur", motif="chèque revenu impayé", version=v)
    lignes = historique(sc.app, "D004512")
    assert [(x.nature, x.delta_du, x.du) for x in lignes] == [
        ("facture", 7700, 7700), ("facture", 3000, 10700), ("paiement", -7700, 3000), ("annulation", 7700, 10700)]
    paiement = lignes[2]
    assert paiement.libelle == f"Paiement cheque RC-6/1 affecté à la facture {F}"
    assert (paiement.facture, paiement.paiement_id, paiement.montant) == (F, i, 7700)
    assert paiement.quand.date().isoformat() == "2026-05-14"  # minuit à Paris, le 15, en UTC
    assert lignes[-1].quand > paiement.quand
    assert sc.famille("D004512")["du"] == "107.00"
    verifier_invariants(sc.app)


def test_defaire_une_affectation_remet_l_argent_en_revue_puis_on_la_refait_ailleurs(sc: Scenario) -> None:
    sc.cheques(("RC-7", "1", "MARTIN CLAIRE", "30.00", F))
    i, _ = pid(sc, "cheque", "RC-7/1")
    decisions.annuler_affectation(sc.app, i, F, qui="agent", motif="erreur de facture : c'était la cantine de juin")
    p = sc.paiement("cheque", "RC-7/1")
    assert (p["statut"], p["affecte"]) == ("en_anomalie", "0.00")
    assert sc.facture(F)["paye"] == "0.00"
    with sc.app.sessions() as s:
        assert s.scalars(select(Anomalie.code).where(Anomalie.statut == "ouverte")).all() == ["A_REAFFECTER"]
    decisions.affecter(sc.app, i, [(G, 3000)], qui="agent", motif="bonne facture")
    assert sc.facture(G)["statut"] == "payee"
    assert sc.paiement("cheque", "RC-7/1")["statut"] == "affecte"
    verifier_invariants(sc.app)
    verifier_paiements(sc.app)


def test_la_cli_expose_la_file_de_revue_les_decisions_et_le_compte(regie_cli, tmp_path: Path) -> None:
    import json

    from tests.scenarios import facture as f_

    chemin = tmp_path / "f.jsonl"
    chemin.write_text(json.dumps(f_(), ensure_ascii=False) + "\n", encoding="utf-8")
    assert regie_cli("factures", "importer", str(chemin)).returncode == 0
    cheques = tmp_path / "cheques.csv"
    cheques.write_text("remise;numero_cheque;tireur;banque;montant;facture;recu_le\n"
                       "RC-9;1;INCONNU;CCM;77.00;;2026-05-15\n", encoding="utf-8")
    res = regie_cli("paiements", "importer", "--canal", "cheque", str(cheques))
    assert res.returncode == 0, res.stderr
    res = regie_cli("anomalies", "lister", "--json")
    (ligne,) = json.loads(res.stdout)
    assert (ligne["code"], ligne["reference"]) == ("REFERENCE_INCONNUE", "RC-9/1")
    res = regie_cli("anomalies", "voir", "cheque:RC-9/1")
    assert "suggestion 1" in res.stdout and F in res.stdout
    res = regie_cli("anomalies", "affecter", "cheque:RC-9/1", f"{F}=77.00", "--motif", "chèque de la grand-mère",
                    "--par", "agent.martin", "--version", str(ligne["version"] + 5))
    assert res.returncode == 1 and "a changé depuis" in res.stderr
    res = regie_cli("anomalies", "affecter", "cheque:RC-9/1", f"{F}=77.00", "--motif", "chèque de la grand-mère",
                    "--par", "agent.martin", "--version", str(ligne["version"]))
    assert res.returncode == 0, res.stderr
    res = regie_cli("compte", "D004512")
    assert "Solde : 0.00 €" in res.stdout
    assert "affecté à la facture F01-26-05-0000123 par agent.martin" in res.stdout
    assert regie_cli("compte", "D999999").returncode == 1
    assert regie_cli("anomalies", "affecter", "cheque:RC-9/1", "F=4,00", "--motif", "x").returncode == 2
