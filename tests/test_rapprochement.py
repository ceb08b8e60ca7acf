"""Le moteur de rapprochement : une règle, une raison, pour chaque paiement (SQLite et PostgreSQL)."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select

from rapprochement.moteur import rapprocher
from regie.application import Application
from regie.registre.modeles import Affectation, Anomalie, Paiement
from tests.scenarios import FACTURE, Scenario, autre, facture

F = FACTURE["numero"]  # 77.00 € : cantine 42.00 + crèche 35.00 (éligible CESU)


@pytest.fixture
def sc(app: Application, tmp_path: Path) -> Scenario:
    s = Scenario(app, tmp_path)
    s.factures(facture())
    return s


def anomalie(sc: Scenario, canal: str, reference: str) -> Anomalie:
    with sc.app.sessions() as s:
        a = s.scalars(select(Anomalie).join(Paiement, Paiement.id == Anomalie.paiement_id).where(
            Paiement.canal == canal, Paiement.reference == reference, Anomalie.statut == "ouverte")).one()
        s.expunge(a)
        return a


def test_un_paiement_buraliste_va_a_la_facture_de_son_numero_de_dette(sc: Scenario) -> None:
    sc.buraliste(("PP-1", sc.datamatrix(F, "77.00"), "42.00", "ESPECES"))
    assert sc.paiement("buraliste", "PP-1") == {
        "canal": "buraliste", "reference": "PP-1", "montant": "42.00", "affecte": "42.00", "statut": "affecte",
        "anomalie": None, "affectations": [{"facture": F, "montant": "42.00"}]}
    f = sc.facture(F)
    assert (f["paye"], f["reste"], f["statut"]) == ("42.00", "35.00", "partiellement_payee")
    assert sc.famille("D004512") == {"dossier": "D004512", "du": "35.00", "credit": "0.00"}
    with sc.app.sessions() as s:
        a = s.scalars(select(Affectation)).first()
    assert a is not None and a.regle == "datamatrix_numero_dette"


def test_especes_au_dela_de_300_euros_ne_sont_jamais_affectees(sc: Scenario) -> None:
    sc.factures(autre("F01-26-05-0000500", "450.00"))
    sc.buraliste(("PP-2", sc.datamatrix("F01-26-05-0000500", "450.00"), "300.01", "ESPECES"),
                 ("PP-3", sc.datamatrix("F01-26-05-0000500", "450.00"), "300.00", "ESPECES"),
                 ("PP-4", sc.datamatrix("F01-26-05-0000500", "450.00"), "160.00", "CARTE"))
    p = sc.paiement("buraliste", "PP-2")
    assert (p["statut"], p["anomalie"], p["affecte"]) == ("en_anomalie", "LIMITE_ESPECES", "0.00")
    assert sc.paiement("buraliste", "PP-3")["statut"] == "affecte"
    p = sc.paiement("buraliste", "PP-4")
    assert (p["statut"], p["anomalie"], p["affecte"]) == ("en_anomalie", "TROP_PERCU", "150.00")
    assert sc.facture("F01-26-05-0000500")["statut"] == "payee"


def test_un_chiffre_change_dans_le_datamatrix_met_le_paiement_en_revue_avec_la_facture_suggeree(sc: Scenario) -> None:
    dm = sc.datamatrix(F, "77.00")
    faux = dm[:100] + ("1" if dm[100] != "1" else "2") + dm[101:]
    sc.buraliste(("PP-5", faux, "42.00", "CARTE"))
    p = sc.paiement("buraliste", "PP-5")
    assert (p["statut"], p["anomalie"], p["affecte"]) == ("en_anomalie", "DATAMATRIX_INVALIDE", "0.00")
    a = anomalie(sc, "buraliste", "PP-5")
    assert a.raison.startswith("Datamatrix invalide")
    assert a.preuve["datamatrix"] == faux


def test_trop_percu_est_affecte_jusqu_au_reste_et_l_excedent_attend(sc: Scenario) -> None:
    sc.cheques(("RC-1", "1001", "MARTIN CLAIRE", "80.00", F))
    p = sc.paiement("cheque", "RC-1/1001")
    assert (p["statut"], p["anomalie"], p["affecte"]) == ("en_anomalie", "TROP_PERCU", "77.00")
    assert sc.facture(F)["statut"] == "payee"
    a = anomalie(sc, "cheque", "RC-1/1001")
    assert "affecté jusqu'au reste" in a.raison


def test_une_facture_deja_payee_ou_annulee_ne_recoit_rien(sc: Scenario) -> None:
    sc.factures(autre("F01-26-05-0000600", "10.00"),
                {"type": "avoir", "numero": "A-0000600", "facture": "F01-26-05-0000600", "emise_le": "2026-05-10",
                 "montant": "10.00", "motif": "Annulation"})
    sc.cheques(("RC-2", "1", "MARTIN CLAIRE", "77.00", F), ("RC-2", "2", "MARTIN CLAIRE", "5.00", F),
               ("RC-2", "3", "MARTIN CLAIRE", "10.00", "F01-26-05-0000600"))
    assert sc.paiement("cheque", "RC-2/1")["statut"] == "affecte"
    p = sc.paiement("cheque", "RC-2/2")
    assert (p["anomalie"], p["affecte"]) == ("FACTURE_DEJA_PAYEE", "0.00")
    p = sc.paiement("cheque", "RC-2/3")
    assert (p["anomalie"], p["affecte"]) == ("FACTURE_ANNULEE", "0.00")


def test_plusieurs_paiements_soldent_une_facture_dans_l_ordre_de_reception(sc: Scenario) -> None:
    sc.buraliste(("PP-A", sc.datamatrix(F, "77.00"), "30.00", "ESPECES"), date_heure="2026-05-10T10:00:00+02:00")
    sc.buraliste(("PP-B", sc.datamatrix(F, "47.00"), "47.00", "CARTE"), date_heure="2026-05-11T10:00:00+02:00")
    assert [sc.paiement("buraliste", r)["statut"] for r in ("PP-A", "PP-B")] == ["affecte", "affecte"]
    assert sc.facture(F)["statut"] == "payee"
    assert sc.famille("D004512")["du"] == "0.00"


# --- CESU -------------------------------------------------------------------------------------------

def test_le_cesu_ne_paie_que_les_lignes_eligibles_et_ne_rend_pas_la_monnaie(sc: Scenario) -> None:
    sc.cesu(("R-1", "0412345678901", 2026, "20.00", F, "2026-05-14"))
    assert sc.paiement("cesu", "0412345678901")["statut"] == "affecte"
    sc.cesu(("R-1", "0412345678902", 2026, "20.00", F, "2026-05-14"))
    p = sc.paiement("cesu", "0412345678902")
    assert (p["statut"], p["anomalie"], p["affecte"]) == ("en_anomalie", "CESU_EXCEDENT", "15.00")
    with sc.app.sessions() as s:
        lignes = {rang for a in s.scalars(select(Affectation)) for rang, _ in a.parts}
    assert lignes == {2}  # la seule ligne de crèche
    f = sc.facture(F)
    assert (f["paye"], f["reste"]) == ("35.00", "42.00")  # la cantine reste due


def test_le_cesu_sur_une_facture_sans_ligne_eligible_n_affecte_rien(sc: Scenario) -> None:
    sc.factures(autre("F01-26-05-0000700", "42.00"))
    sc.cesu(("R-2", "0412345678903", 2026, "20.00", "F01-26-05-0000700", "2026-05-14"))
    p = sc.paiement("cesu", "0412345678903")
    assert (p["anomalie"], p["affecte"]) == ("CESU_NON_ELIGIBLE", "0.00")


@pytest.mark.parametrize("millesime, recu_le, attendu", [
    (2025, "2026-01-31", None), (2025, "2026-02-01", "CESU_PERIME"), (2024, "2026-01-15", "CESU_PERIME")])
def test_un_titre_cesu_vaut_jusqu_au_31_janvier_de_l_annee_suivante(sc: Scenario, millesime: int, recu_le: str,
                                                                    attendu: str | None) -> None:
    sc.cesu(("R-3", "0412345678904", millesime, "10.00", F, recu_le))
    assert sc.paiement("cesu", "0412345678904")["anomalie"] == attendu


def test_un_enfant_qui_a_six_ans_au_premier_jour_du_mois_n_ouvre_plus_droit_au_cesu(sc: Scenario) -> None:
    f = facture("F01-26-05-0000800")
    f["lignes"][1]["naissance"] = "2020-05-01"
    sc.factures(f)
    sc.cesu(("R-4", "0412345678905", 2026, "10.00", "F01-26-05-0000800", "2026-05-14"))
    assert sc.paiement("cesu", "0412345678905")["anomalie"] == "CESU_NON_ELIGIBLE"


# --- Chèques ------------------------------------------------------------------------------------------

def test_un_cheque_sans_facture_va_a_la_seule_facture_de_ce_montant_de_la_famille_du_tireur(sc: Scenario) -> None:
    sc.factures(autre("F01-26-05-0000900", "77.00", dossier="D000900", payeur={**FACTURE["payeur"], "nom": "DURAND"}))
    sc.cheques(("RC-3", "77", "MME MARTIN CLAIRE", "77.00", ""))
    p = sc.paiement("cheque", "RC-3/77")
    assert (p["statut"], p["affectations"]) == ("affecte", [{"facture": F, "montant": "77.00"}])
    with sc.app.sessions() as s:
        a = s.scalars(select(Affectation)).first()
    assert a is not None and a.regle == "cheque_tireur_montant"


def test_les_cheques_sans_facture_d_un_meme_lot_trouvent_chacun_la_famille_de_leur_montant(sc: Scenario) -> None:
    """Les candidates sont lues pour tout le lot : chaque montant garde les siennes, statut et reste à jour."""
    durand = {**FACTURE["payeur"], "nom": "DURAND", "prenom": "PAUL"}
    sc.factures(autre("F01-26-05-0000910", "30.00", dossier="D000910", payeur=durand),
                autre("F01-26-05-0000911", "20.00", dossier="D000911", payeur=durand))
    sc.cheques(("RC-6", "1", "DURAND PAUL", "10.00", "F01-26-05-0000910"))  # reste 20.00 : partiellement payée
    sc.cheques(("RC-6", "2", "DURAND PAUL", "20.00", "F01-26-05-0000911"))  # soldée : plus candidate
    sc.cheques(("RC-7", "3", "MARTIN CLAIRE", "77.00", ""), ("RC-7", "4", "M. DURAND PAUL", "20.00", ""),
               ("RC-7", "5", "BERNARD ANNE", "20.00", ""))
    assert sc.paiement("cheque", "RC-7/3")["affectations"] == [{"facture": F, "montant": "77.00"}]
    assert sc.paiement("cheque", "RC-7/4")["affectations"] == [{"facture": "F01-26-05-0000910", "montant": "20.00"}]
    assert sc.paiement("cheque", "RC-7/5")["anomalie"] == "REFERENCE_INCONNUE"
    assert sc.facture("F01-26-05-0000910")["statut"] == "payee"


def test_la_famille_du_tireur_est_cherchee_parmi_toutes_les_factures_du_meme_reste(sc: Scenario) -> None:
    """Au-delà de 200 factures de ce reste (échéance, puis numéro), celle de la famille est encore trouvée."""
    dupont = {**FACTURE["payeur"], "nom": "DUPONT", "prenom": "LUC"}
    sc.factures(*[autre(f"F01-26-05-{1000 + i:07d}", "13.00", dossier=f"D00{1000 + i}") for i in range(200)],
                autre("F01-26-05-0009999", "13.00", dossier="D009999", payeur=dupont),
                autre("F01-26-05-0000999", "14.00", dossier="D000999", payeur=dupont))
    sc.cheques(("RC-8", "1", "DUPONT LUC", "13.00", ""), ("RC-8", "2", "DUPONT LUC", "14.00", ""))
    assert sc.paiement("cheque", "RC-8/1")["affectations"] == [{"facture": "F01-26-05-0009999", "montant": "13.00"}]
    assert sc.paiement("cheque", "RC-8/2")["affectations"] == [{"facture": "F01-26-05-0000999", "montant": "14.00"}]


def test_deux_factures_de_la_famille_du_meme_reste_meme_loin_l_une_de_l_autre_sont_ambigues(sc: Scenario) -> None:
    """Le moteur ne dit « seule facture de ce montant dans la famille » qu'après les avoir toutes vues."""
    dupont = {**FACTURE["payeur"], "nom": "DUPONT", "prenom": "LUC"}
    sc.factures(autre("F01-26-05-0000001", "13.00", dossier="D000001", payeur=dupont),
                *[autre(f"F01-26-05-{1000 + i:07d}", "13.00", dossier=f"D00{1000 + i}") for i in range(250)],
                autre("F01-26-05-0009999", "13.00", dossier="D000001", payeur=dupont))
    sc.cheques(("RC-9", "1", "DUPONT LUC", "13.00", ""))
    p = sc.paiement("cheque", "RC-9/1")
    assert (p["anomalie"], p["affectations"]) == ("AMBIGU", [])


def test_les_factures_entamees_suggerees_sont_les_cinq_de_plus_petit_montant_dont_le_reste_egale_le_paiement(
        sc: Scenario) -> None:
    """Les entamées : celles de plus petit montant (puis de plus petit id), comme l'index les rendait sous SQLite."""
    numeros = [f"F01-26-05-00011{i:02d}" for i in range(7)]
    sc.factures(*[autre(n, f"{80 - 10 * i}.00", dossier=f"D0011{i:02d}") for i, n in enumerate(numeros)])
    sc.cheques(*[("RC-9", str(i), "DUPONT LUC", f"{70 - 10 * i}.00", n) for i, n in enumerate(numeros)])
    assert {sc.facture(n)["reste"] for n in numeros} == {"10.00"}
    sc.cheques(("RC-10", "1", "BERNARD ANNE", "10.00", "F01-26-05-9999999"))
    a = anomalie(sc, "cheque", "RC-10/1")
    assert a.code == "REFERENCE_INCONNUE"
    assert [x["facture"] for x in a.suggestions] == sorted(numeros[2:])
    assert {(x["statut"], x["reste"]) for x in a.suggestions} == {("partiellement_payee", "10.00")}


def test_un_cheque_a_la_facture_inconnue_suggere_d_abord_la_famille_du_tireur_puis_les_autres(sc: Scenario) -> None:
    """La famille du tireur (0,6) avant les autres factures de ce reste (0,3), sans rien affecter."""
    durand = {**FACTURE["payeur"], "nom": "DURAND", "prenom": "PAUL"}
    sc.factures(autre("F01-26-05-0000920", "33.00", dossier="D000920", payeur=durand),
                autre("F01-26-05-0000921", "33.00", dossier="D000921"),
                autre("F01-26-05-0000922", "50.00", dossier="D000922", payeur=durand))
    sc.cheques(("RC-11", "1", "DURAND PAUL", "17.00", "F01-26-05-0000922"))  # reste 33.00 : entamée
    sc.cheques(("RC-12", "1", "M. DURAND PAUL", "33.00", "F01-26-05-9999999"))
    a = anomalie(sc, "cheque", "RC-12/1")
    assert a.code == "REFERENCE_INCONNUE"
    assert [(x["facture"], x["score"], x["reste"]) for x in a.suggestions] == [
        ("F01-26-05-0000920", 0.6, "33.00"), ("F01-26-05-0000922", 0.6, "33.00"),
        ("F01-26-05-0000921", 0.3, "33.00")]
    assert sc.paiement("cheque", "RC-12/1")["affecte"] == "0.00"


def test_un_cheque_sans_facture_avec_deux_factures_possibles_est_propose_pas_applique(sc: Scenario) -> None:
    sc.factures(facture("F01-26-05-0000901"))
    sc.cheques(("RC-4", "78", "MARTIN CLAIRE", "77.00", ""))
    p = sc.paiement("cheque", "RC-4/78")
    assert (p["anomalie"], p["affecte"]) == ("AMBIGU", "0.00")
    a = anomalie(sc, "cheque", "RC-4/78")
    assert sorted(x["facture"] for x in a.suggestions) == [F, "F01-26-05-0000901"]
    assert all(x["pourquoi"] for x in a.suggestions)


def test_un_paiement_sans_facture_connue_est_repris_quand_la_facture_arrive(sc: Scenario) -> None:
    sc.cheques(("RC-5", "79", "DUPONT JEAN", "12.00", "F01-26-06-0000001"))
    assert sc.paiement("cheque", "RC-5/79")["anomalie"] == "REFERENCE_INCONNUE"
    sc.factures(autre("F01-26-06-0000001", "12.00"))
    bilan = rapprocher(sc.app)
    assert bilan.affectes == 1
    assert sc.paiement("cheque", "RC-5/79")["statut"] == "affecte"
    with sc.app.sessions() as s:
        assert s.scalars(select(Anomalie.statut)).all() == ["resolue"]


def test_une_reference_inconnue_n_est_reprise_que_quand_arrive_ce_qui_peut_la_resoudre(sc: Scenario) -> None:
    """Une remise peut résoudre un relevé DFT, pas un chèque ; une facture, le chèque."""
    sc.cheques(("RC-5", "79", "DUPONT JEAN", "12.00", "F01-26-06-0000001"))
    sc.cfonb(("12.00", "REMISE RC-9", ""))
    assert rapprocher(sc.app).examines == 0  # rien de nouveau : personne n'est repris
    sc.cheques(("RC-9", "1", "MARTIN CLAIRE", "12.00", F))  # une remise arrive : seul le relevé DFT est repris
    assert sc.paiement("cfonb", "00012345678/2026-05-15/0000001/1")["statut"] == "confirme"
    assert sc.paiement("cheque", "RC-5/79")["anomalie"] == "REFERENCE_INCONNUE"
    assert anomalie(sc, "cheque", "RC-5/79").reevaluee_le is None
    sc.factures(autre("F01-26-06-0000001", "12.00"))  # une facture arrive : le chèque est repris, et affecté
    assert rapprocher(sc.app).affectes == 1
    assert sc.paiement("cheque", "RC-5/79")["statut"] == "affecte"


# --- Virements et relevé DFT ---------------------------------------------------------------------------

def test_un_virement_est_affecte_a_la_facture_citee_par_son_numero_ou_sa_refdet(sc: Scenario) -> None:
    sc.factures(autre("F01-26-05-0001000", "12.00"))
    sc.cfonb(("77.00", "VIR MARTIN CLAIRE", "FACTURE F0126050000123 MAI"),
             ("12.00", "VIR F01-26-05-0001000", ""))
    etat = sc.etat()
    virements = [p for p in etat["paiements"] if p["canal"] == "virement"]
    assert [(p["statut"], p["affectations"]) for p in virements] == [
        ("affecte", [{"facture": F, "montant": "77.00"}]),
        ("affecte", [{"facture": "F01-26-05-0001000", "montant": "12.00"}])]


def test_un_virement_qui_cite_deux_factures_est_ambigu(sc: Scenario) -> None:
    sc.factures(autre("F01-26-05-0001001", "12.00"))
    sc.cfonb(("50.00", "VIR F01-26-05-0001001", F))
    p = next(p for p in sc.etat()["paiements"] if p["canal"] == "virement")
    assert (p["anomalie"], p["affecte"]) == ("AMBIGU", "0.00")


def test_le_credit_dft_d_une_remise_la_confirme_sans_la_compter_deux_fois(sc: Scenario) -> None:
    sc.factures(autre("F01-26-05-0001100", "20.00"))
    sc.cheques(("RC-6", "1", "MARTIN CLAIRE", "77.00", F), ("RC-6", "2", "MARTIN CLAIRE", "20.00",
                                                               "F01-26-05-0001100"))
    avant = sc.etat()["factures"]
    sc.cfonb(("97.00", "REMISE RC-6", ""))
    apres = sc.etat()
    assert apres["factures"] == avant
    p = next(p for p in apres["paiements"] if p["canal"] == "cfonb")
    assert (p["statut"], p["affecte"], p["anomalie"]) == ("confirme", "0.00", None)


def test_un_credit_dft_different_de_la_remise_est_un_ecart(sc: Scenario) -> None:
    sc.cheques(("RC-7", "1", "MARTIN CLAIRE", "77.00", F))
    sc.cfonb(("70.00", "REMISE RC-7", ""))
    p = next(p for p in sc.etat()["paiements"] if p["canal"] == "cfonb")
    assert (p["statut"], p["anomalie"]) == ("en_anomalie", "REMISE_ECART")


def test_le_crcesu_puis_le_credit_dft_confirment_la_remise_cesu(sc: Scenario) -> None:
    sc.cesu(("R-10", "0412345678910", 2026, "20.00", F, "2026-05-14"),
            ("R-10", "0412345678911", 2026, "15.00", F, "2026-05-14"))
    sc.crcesu("R-10", 2, "35.00", frais="0.70")
    assert sc.paiement("crcesu", "R-10")["statut"] == "confirme"
    sc.cfonb(("34.30", "REMISE R-10 CRCESU", ""))
    p = next(p for p in sc.etat()["paiements"] if p["canal"] == "cfonb")
    assert p["statut"] == "confirme"


def test_un_releve_crcesu_qui_ne_correspond_pas_a_la_remise_est_un_ecart(sc: Scenario) -> None:
    sc.cesu(("R-11", "0412345678912", 2026, "20.00", F, "2026-05-14"))
    sc.crcesu("R-11", 2, "40.00")
    assert sc.paiement("crcesu", "R-11")["anomalie"] == "REMISE_ECART"


# --- Idempotence, déterminisme, doublons -----------------------------------------------------------------

def test_rapprocher_deux_fois_ne_change_rien(sc: Scenario) -> None:
    sc.cheques(("RC-8", "1", "X", "10.00", "F-INCONNUE-1"), ("RC-8", "2", "MARTIN CLAIRE", "20.00", F))
    avant = sc.etat()
    rapprocher(sc.app)
    rapprocher(sc.app)
    assert sc.etat() == avant
    with sc.app.sessions() as s:
        assert len(s.scalars(select(Anomalie)).all()) == 1


def test_la_meme_cle_avec_un_autre_contenu_est_un_doublon_jamais_compte_deux_fois(sc: Scenario) -> None:
    dm = sc.datamatrix(F, "77.00")
    sc.buraliste(("PP-D", dm, "42.00", "CARTE"))
    sc.buraliste(("PP-D", dm, "42.00", "CARTE"), ("PP-E", dm, "5.00", "CARTE"))  # relevé qui chevauche
    sc.buraliste(("PP-D", dm, "24.00", "CARTE"))
    p = sc.paiement("buraliste", "PP-D")
    assert (p["montant"], p["affecte"], p["anomalie"]) == ("42.00", "42.00", "DOUBLON")
    assert sc.facture(F)["paye"] == "47.00"
    a = anomalie(sc, "buraliste", "PP-D")
    assert a.preuve["recu"]["montant"] == 2400


def test_les_memes_donnees_dans_un_autre_ordre_donnent_le_meme_etat(app: Application, tmp_path: Path) -> None:
    resultats = []
    for ordre in (0, 1):
        dossier = tmp_path / f"o{ordre}"
        dossier.mkdir()
        sc = Scenario(app, dossier)
        if ordre:
            _vider(app)
        sc.factures(facture(), autre("F01-26-05-0002000", "30.00"))
        lignes = [("RC-9", "1", "MARTIN CLAIRE", "50.00", F), ("RC-9", "2", "MARTIN CLAIRE", "50.00", F),
                  ("RC-9", "3", "MARTIN CLAIRE", "30.00", "F01-26-05-0002000"),
                  ("RC-9", "4", "MARTIN CLAIRE", "9.00", "F01-26-05-0002000")]
        sc.cheques(*(reversed(lignes) if ordre else lignes))
        resultats.append(sc.etat())
    assert resultats[0] == resultats[1]


def _vider(app: Application) -> None:
    from regie.registre.modeles import Base

    with app.moteur.begin() as c:
        for t in reversed(Base.metadata.sorted_tables):
            if t.name not in ("regie", "prestation", "alembic_version"):
                c.execute(t.delete())


def test_une_reference_inconnue_n_est_relancee_que_si_quelque_chose_est_arrive(sc: Scenario) -> None:
    sc.cheques(("RC-R", "1", "X", "10.00", "F-ATTENDUE-1"))
    assert rapprocher(sc.app).examines == 0  # rien n'est arrivé depuis : rien à relancer
    sc.factures(autre("F-AUTRE-0001", "99.00"))
    assert rapprocher(sc.app).examines == 1  # une facture est arrivée : relancé, toujours inconnue
    assert rapprocher(sc.app).examines == 0  # la relance est notée : pas de seconde relance à vide
    sc.factures(autre("F-ATTENDUE-1", "10.00"))
    bilan = rapprocher(sc.app)
    assert (bilan.examines, bilan.affectes) == (1, 1)
