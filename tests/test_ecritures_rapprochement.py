"""Les écritures en masse du moteur : UPDATE paramétré au pilote, ramasse-miettes suspendu (SQLite et PostgreSQL)."""

from __future__ import annotations

import gc
from pathlib import Path

import pytest
from sqlalchemy import select

from rapprochement.ecritures import mettre_a_jour
from regie.application import Application
from regie.registre.masse import sans_ramasse_miettes
from regie.registre.modeles import EtatFacture, Facture
from tests.scenarios import Scenario, autre


def test_mettre_a_jour_applique_chaque_ligne_a_sa_cle_et_les_expressions_sur_l_ancienne_valeur(
        app: Application, tmp_path: Path) -> None:
    sc = Scenario(app, tmp_path)
    sc.factures(autre("F01-26-05-0000001", "30.00"), autre("F01-26-05-0000002", "20.00"),
                autre("F01-26-05-0000003", "10.00"))
    with app.moteur.begin() as c:
        ids = dict(c.execute(select(Facture.numero, Facture.id)).all())
        mettre_a_jour(c, "etat_facture", ["paye = paye + {}", "statut = coalesce({}, statut)"],
                      "facture_id",
                      [(1000, "partiellement_payee", ids["F01-26-05-0000001"]),
                       (2000, None, ids["F01-26-05-0000002"])], ("bigint", "text", "bigint"))
        # Rien à faire : aucune requête.
        mettre_a_jour(c, "etat_facture", ["paye = {}"], "facture_id", [], ("bigint", "bigint"))
    with app.moteur.connect() as c:
        lignes = c.execute(select(Facture.numero, EtatFacture.paye, EtatFacture.statut, EtatFacture.reste_du)
                           .join(EtatFacture, EtatFacture.facture_id == Facture.id).order_by(Facture.numero)).all()
    assert [tuple(r) for r in lignes] == [("F01-26-05-0000001", 1000, "partiellement_payee", 2000),
                                          ("F01-26-05-0000002", 2000, "emise", 0),
                                          ("F01-26-05-0000003", 0, "emise", 1000)]


@pytest.mark.parametrize("actif", [True, False])
def test_le_ramasse_miettes_retrouve_son_etat_meme_apres_une_erreur(actif: bool) -> None:
    avant = gc.isenabled()
    try:
        gc.enable() if actif else gc.disable()
        with pytest.raises(RuntimeError), sans_ramasse_miettes():
            assert not gc.isenabled()
            raise RuntimeError("lot interrompu")
        assert gc.isenabled() is actif
    finally:
        gc.enable() if avant else gc.disable()


def test_mettre_a_jour_par_paquets_pleins_et_reste_n_oublie_aucune_ligne(app: Application, tmp_path: Path) -> None:
    """Plus de lignes qu'un paquet (SQLite : 200 rangées par instruction) : chaque ligne reçoit sa valeur."""
    sc = Scenario(app, tmp_path)
    sc.factures(*(autre(f"F01-26-05-{i:07d}", "30.00") for i in range(1, 451)))
    with app.moteur.begin() as c:
        ids = sorted(c.execute(select(Facture.id)).scalars())
        mettre_a_jour(c, "etat_facture", ["paye = {}"], "facture_id", [(k + 1, fid) for k, fid in enumerate(ids)],
                      ("bigint", "bigint"))
    with app.moteur.connect() as c:
        payes = dict(c.execute(select(EtatFacture.facture_id, EtatFacture.paye)).all())
    assert [payes[fid] for fid in ids] == list(range(1, 451))


def test_une_insertion_en_masse_ecrit_null_ou_tout_le_lot_est_vide_et_chaque_valeur_ailleurs(app: Application) -> None:
    """Une colonne vide dans tout le lot (NULL écrit dans l'instruction sous SQLite), une autre vide par endroits :
    chaque rangée relue telle qu'écrite, paquets pleins et reste compris."""
    from datetime import UTC, date, datetime

    from regie.registre.masse import inserer_tuples, table_de
    from regie.registre.modeles import Remise

    instant = datetime(2026, 6, 1, 8, 30, tzinfo=UTC)
    rangees = [(f"RC-T{i:04d}", "cheque", i, 1, "en_attente", date(2026, 6, 1) if i % 3 else None, None, instant)
               for i in range(451)]
    with app.moteur.begin() as c:
        inserer_tuples(c, table_de(Remise), ("identifiant", "canal", "montant", "nombre", "statut", "deposee_le",
                                             "confirmee_le", "cree_le"), rangees)
    with app.moteur.connect() as c:
        relues = c.execute(select(Remise.identifiant, Remise.montant, Remise.deposee_le, Remise.confirmee_le,
                                  Remise.cree_le).where(Remise.identifiant.like("RC-T%"))
                           .order_by(Remise.identifiant)).all()
    assert [tuple(r) for r in relues] == [(i, m, d, None, instant) for i, _, m, _, _, d, _, _ in rangees]
