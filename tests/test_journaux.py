"""Journaux et états : au centime, et d'accord avec le registre (paiements, affectations)."""

from __future__ import annotations

import csv
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from exports.journaux import LigneRemboursement, Periode, Rapports, calculer, ecrire_journaux, html
from regie.application import Application
from regie.montants import euros_en_centimes
from regie.registre.modeles import Affectation, Paiement
from tests.test_titres import facture, importer_cesu, importer_cheques, importer_factures


def scenario(app: Application, tmp_path: Path) -> None:
    importer_factures(app, tmp_path, [facture("F-JRN-0001"), facture("F-JRN-0002", regie="LOISIRS")])
    importer_cesu(app, tmp_path, ["R-2026-014;0412345678901;PAPIER;EDENRED;2026;20.00;F-JRN-0001;2026-05-14"])
    importer_cheques(app, tmp_path, [
        "RC-2026-031;1000001;MARTIN HELENE;CCM;30.00;F-JRN-0001;2026-05-15",
        "RC-2026-031;1000002;MARTIN HELENE;CCM;100.00;F-JRN-0002;2026-05-15",  # 23.00 de trop
        "RC-2026-031;1000003;INCONNU PAUL;CCM;12.34;F-INCONNUE-99;2026-05-15"])


def lire_csv(chemin: Path) -> list[dict[str, str]]:
    with chemin.open(encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f, delimiter=";"))


def test_le_journal_du_jour_ventile_chaque_encaissement_par_regie_et_canal(app: Application, tmp_path: Path) -> None:
    scenario(app, tmp_path)
    chemins = ecrire_journaux(app, Periode.jour(date(2026, 5, 15)))
    assert [c.name for c in chemins] == ["journal_encaissements_2026-05-15.csv", "etat_rapprochement_2026-05-15.csv",
                                         "remboursements_2026-05-15.csv", "journaux_2026-05-15.html"]
    journal = lire_csv(chemins[0])
    totaux = {(r["regie"], r["canal"]): r["montant"] for r in journal if r["type"] == "total"}
    assert totaux == {("ENFANCE", "cheque"): "30.00", ("LOISIRS", "cheque"): "77.00", ("", "cheque"): "35.34",
                      ("TOTAL", ""): "142.34"}
    details = [r for r in journal if r["type"] == "detail"]
    assert sum(euros_en_centimes(r["montant"]) for r in details) == 14_234
    assert {r["reference"] for r in details} == {"RC-2026-031/1000001", "RC-2026-031/1000002", "RC-2026-031/1000003"}
    assert [r["factures"] for r in details if r["regie"] == "LOISIRS"] == ["F-JRN-0002"]
    # Le CESU du 14 n'est pas dans le journal du 15.
    assert all(r["canal"] != "cesu" for r in journal)


def test_l_etat_du_mois_tombe_juste_et_s_accorde_avec_le_registre(app: Application, tmp_path: Path) -> None:
    scenario(app, tmp_path)
    rapports = calculer(app, Periode.mois(2026, 5))
    par_canal = {e.canal: e for e in rapports.etat}
    cheque, cesu, total = par_canal["cheque"], par_canal["cesu"], par_canal["TOTAL"]
    assert (cheque.nombre, cheque.recu, cheque.affecte, cheque.en_anomalie) == (3, 14_234, 10_700, 3534)
    assert (cesu.nombre, cesu.recu, cesu.affecte) == (1, 2000, 2000)
    for e in rapports.etat:
        assert e.recu == e.affecte + e.en_credit + e.rembourse + e.en_anomalie + e.en_attente + e.annule
    assert total.recu == cheque.recu + cesu.recu
    with app.moteur.connect() as c:
        assert c.execute(select(func.sum(Paiement.montant))).scalar_one() == total.recu
        assert c.execute(select(func.sum(Affectation.montant)).where(
            Affectation.paiement_id.is_not(None))).scalar_one() == total.affecte
    # Rien n'est encore confirmé par le relevé DFT.
    assert total.confirme == 0 and total.non_confirme == total.recu
    # Un autre mois : vide, mais la ligne TOTAL est là, à zéro.
    assert [(e.canal, e.recu) for e in calculer(app, Periode.mois(2026, 6)).etat] == [("TOTAL", 0)]


def test_les_remboursements_a_faire_listent_les_excedents_en_attente(app: Application, tmp_path: Path) -> None:
    scenario(app, tmp_path)
    chemins = ecrire_journaux(app, Periode.jour(date(2026, 5, 15)), tmp_path / "sortie")
    lignes = lire_csv(chemins[2])
    assert lignes == [{"nature": "excedent_paiement", "dossier": "D004512", "canal": "cheque",
                       "reference": "RC-2026-031/1000002", "recu_le": "2026-05-15", "montant": "23.00",
                       "motif": "TROP_PERCU"}]
    page = chemins[3].read_text(encoding="utf-8")
    assert "<!DOCTYPE html>" in page and "Ville de Jolieville" in page
    assert "Remboursements à faire" in page and "23.00" in page and "142.34" in page


def test_une_valeur_venue_d_un_fichier_est_echappee_dans_la_page() -> None:
    rapports = Rapports(Periode.jour(date(2026, 5, 15)), remboursements=[
        LigneRemboursement("excedent_paiement", "D<b>1", "cheque", "R<script>/1", "2026-05-15", 500, "TROP_PERCU")])
    page = html(rapports, "Ville & Co")
    assert "R&lt;script&gt;/1" in page and "<script>" not in page and "Ville &amp; Co" in page
    assert "5.00" in page


@pytest.mark.parametrize("url_base", ["sqlite"], indirect=True)
def test_la_commande_journaux_ecrit_les_fichiers_du_jour_ou_du_mois(app: Application, tmp_path: Path,
                                                                 regie_cli: Any) -> None:
    scenario(app, tmp_path)
    r = regie_cli("journaux", "--mois", "2026-05")
    assert r.returncode == 0, r.stderr
    chemins = [Path(x) for x in r.stdout.split()]
    assert [c.name for c in chemins][:1] == ["journal_encaissements_2026-05.csv"]
    assert all(c.is_file() for c in chemins)
    r = regie_cli("journaux", "--mois", "2026-13")
    assert r.returncode == 2
