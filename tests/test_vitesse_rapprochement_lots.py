"""Les raccourcis de vitesse du rapprochement ne changent aucun résultat."""

from __future__ import annotations

import dataclasses
import json
import shutil
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, text

from rapprochement import moteur
from regie.application import Application, _tete_des_migrations
from regie.montants import centimes_en_euros as eur
from regie.parametres import Environnement, charger_configuration
from regie.registre.masse import _convertir_colonne
from regie.registre.modeles import Anomalie
from regie.registre.moteur import MIGRATIONS
from tests.conftest import CONFIG_EXEMPLE
from tests.scenarios import Scenario, autre


def _app(modele: Path, dossier: Path) -> Application:
    dossier.mkdir()
    shutil.copyfile(modele, dossier / "regie.db")
    url = f"sqlite:///{dossier / 'regie.db'}"
    env = Environnement(database_url=url, config=CONFIG_EXEMPLE, donnees=dossier / "var")
    app = Application(charger_configuration(CONFIG_EXEMPLE), env, url=url)
    app.synchroniser_referentiel()
    return app


def _rapprocher_par(lots_par_transaction: int, modele: Path, dossier: Path,
                    monkeypatch: pytest.MonkeyPatch) -> tuple[dict[str, Any], list[Any]]:
    app = _app(modele, dossier)
    sc = Scenario(app, dossier)
    numeros = [f"F01-26-05-{i:07d}" for i in range(1, 9)]
    sc.factures(*(autre(n, "50.00", dossier=f"D{i % 3:06d}") for i, n in enumerate(numeros)))
    # Des chèques qui débordent, d'autres sans facture connue (suggestions lues au début de chaque lot).
    lignes = "".join(f"RC-C;{i}{k};MARTIN CLAIRE;CCM;{eur(2000 + k * 1000)};{n};2026-05-15\n"
                     for i, n in enumerate(numeros) for k in range(2))
    lignes += "".join(f"RC-C;9{i};MARTIN CLAIRE;CCM;{eur(3000)};X{i:09d};2026-05-16\n" for i in range(5))
    sc.importer("cheque", ("remise;numero_cheque;tireur;banque;montant;facture;recu_le\n" + lignes).encode(),
                "cheques.csv", rapprocher_ensuite=False)
    monkeypatch.setattr(moteur, "LOTS_PAR_TRANSACTION", lots_par_transaction)
    moteur.rapprocher(app, taille_lot=3)
    with app.moteur.connect() as c:
        suggestions = list(c.execute(select(Anomalie.paiement_id, Anomalie.code, Anomalie.suggestions)
                                     .order_by(Anomalie.id)).all())
    resultat = sc.etat(), [tuple(s) for s in suggestions]
    app.moteur.dispose()
    return resultat


def test_plusieurs_lots_par_transaction_donnent_les_memes_decisions(
        _sqlite_modele: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    un = _rapprocher_par(1, _sqlite_modele, tmp_path / "un", monkeypatch)
    quatre = _rapprocher_par(4, _sqlite_modele, tmp_path / "quatre", monkeypatch)
    assert un == quatre
    assert any(p["statut"] == "en_anomalie" for p in un[0]["paiements"])
    assert any(s for _, _, s in un[1])  # des suggestions, les mêmes


def test_le_point_de_controle_du_wal_revient_a_son_reglage(_sqlite_modele: Path, tmp_path: Path) -> None:
    app = _app(_sqlite_modele, tmp_path / "base")
    moteur.rapprocher(app)
    with app.moteur.connect() as c:
        assert c.execute(text("PRAGMA wal_autocheckpoint")).scalar() == 1000
    app.moteur.dispose()


def test_la_tete_lue_dans_les_migrations_est_celle_d_alembic() -> None:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    assert _tete_des_migrations() == ScriptDirectory.from_config(cfg).get_current_head()


def test_schema_a_jour_par_le_chemin_court_et_par_alembic(_sqlite_modele: Path, tmp_path: Path) -> None:
    app = _app(_sqlite_modele, tmp_path / "base")
    assert app.schema_a_jour()
    with app.moteur.begin() as c:
        c.execute(text("UPDATE alembic_version SET version_num = 'ancienne'"))
    assert not app.schema_a_jour()  # le chemin court doute : Alembic tranche
    app.moteur.dispose()
    vide = Application(charger_configuration(CONFIG_EXEMPLE), url=f"sqlite:///{tmp_path / 'vide.db'}")
    assert not vide.schema_a_jour()
    vide.moteur.dispose()


def test_un_json_partage_par_plusieurs_lignes_est_encode_une_fois() -> None:
    preuve = {"remise": "RC-1", "tireur": "MARTIN CLAIRE"}
    egale = dict(preuve)
    appels: list[object] = []

    def encoder(v: object) -> str:
        appels.append(v)
        return json.dumps(v)

    assert _convertir_colonne([preuve, preuve, egale, None, preuve], encoder) == [
        json.dumps(preuve), json.dumps(preuve), json.dumps(egale), None, json.dumps(preuve)]
    assert len(appels) == 2


def test_la_copie_d_une_facture_pour_refaire_une_regle_garde_chaque_champ_et_ne_partage_rien() -> None:
    """Copiée champ par champ : un champ ajouté à la facture ou à ses lignes doit l'être ici aussi."""
    from rapprochement.moteur import _copie
    from regie.domaine import FactureEtat, LigneEtat

    def valeurs(classe: Any, graine: int) -> dict[str, Any]:
        # Une valeur distincte par champ, de son type (les classes compilées vérifient les types).
        par_type = {"int": lambda k: graine * 100 + k, "str": lambda k: f"v{graine}-{k}", "bool": lambda k: True,
                    "date": lambda k: date(2026, 1, 1) + timedelta(days=graine * 100 + k)}
        # Le nom du type : une chaîne (annotations différées) ou, compilée (regie.natif), la classe.
        types = [(f.name, getattr(f.type, "__name__", f.type)) for f in dataclasses.fields(classe)]
        return {nom: par_type[t](k) for k, (nom, t) in enumerate(types) if t in par_type}

    lignes = [LigneEtat(**valeurs(LigneEtat, i)) for i in (1, 2)]
    facture = FactureEtat(**{**valeurs(FactureEtat, 0), "lignes": lignes})
    assert {f.name for f in dataclasses.fields(FactureEtat)} - set(valeurs(FactureEtat, 0)) == {"lignes"}
    copie = _copie(facture)
    assert copie == facture
    copie.lignes[0].paye = 999
    copie.paye = 999
    assert facture.lignes[0].paye == 102 and facture.paye == 7


# Des chèques dont l'ordre change les suggestions par le reste dû d'un lot à l'autre : X1 voit les cinq premières
# factures de 30 €, deux d'entre elles sont payées avant X2, une facture de 50 € entamée à 30 € avant X3.
_NUMEROS = [f"F01-26-05-{i:07d}" for i in range(1, 11)]
_FACTURES_DE_30 = [*(autre(n, "30.00", dossier=f"D{i:06d}") for i, n in enumerate(_NUMEROS[:8])),
                   autre(_NUMEROS[8], "50.00", dossier="D000008", echeance="2026-05-20"),
                   autre(_NUMEROS[9], "50.00", dossier="D000009")]
_CHEQUES_QUI_CHANGENT_LES_SUGGESTIONS = [
    ("1", "30.00", "X000000001", "2026-05-15"),
    ("2", "30.00", _NUMEROS[0], "2026-05-16"),
    ("3", "30.00", _NUMEROS[1], "2026-05-16"),
    ("4", "30.00", "X000000002", "2026-05-17"),
    ("5", "20.00", _NUMEROS[8], "2026-05-18"),
    ("6", "30.00", "X000000003", "2026-05-19"),
]


def _un_cheque_par_lot(modele: Path, dossier: Path, monkeypatch: pytest.MonkeyPatch, factures: list[dict[str, Any]],
                       cheques: list[tuple[str, str, str, str]], *, a_l_import: bool,
                       lots_par_transaction: int = 1) -> tuple[dict[str, Any], dict[str, list[Any]]]:
    """Les chèques (numéro, montant, facture, reçu le) de DURAND PAUL, un par lot : l'état, et les suggestions
    (facture, score, pourquoi) de chaque anomalie par la facture que le chèque désignait."""
    app = _app(modele, dossier)
    sc = Scenario(app, dossier)
    sc.factures(*factures)
    contenu = "remise;numero_cheque;tireur;banque;montant;facture;recu_le\n" + "".join(
        f"RC-S;{n};DURAND PAUL;CCM;{m};{f};{j}\n" for n, m, f, j in cheques)
    monkeypatch.setattr(moteur, "TAILLE_LOT", 1)  # un paiement par lot : chaque lot suit l'écriture du précédent
    monkeypatch.setattr(moteur, "LOTS_PAR_TRANSACTION", lots_par_transaction)
    sc.importer("cheque", contenu.encode(), "cheques.csv", rapprocher_ensuite=a_l_import)
    if not a_l_import:
        moteur.rapprocher(app, taille_lot=1)
    with app.moteur.connect() as c:
        lignes = c.execute(text("SELECT p.reference_facture, a.suggestions FROM anomalie a "
                                "JOIN paiement p ON p.id = a.paiement_id ORDER BY a.id")).all()
    resultat = sc.etat(), {ref: [(s["facture"], s["score"], s["pourquoi"]) for s in json.loads(sugg)]
                           for ref, sugg in lignes}
    app.moteur.dispose()
    return resultat


def _par_lot_et_d_un_tenant(modele: Path, dossier: Path, monkeypatch: pytest.MonkeyPatch,
                            factures: list[dict[str, Any]], cheques: list[tuple[str, str, str, str]]
                            ) -> tuple[dict[str, Any], dict[str, list[Any]]]:
    """Une transaction par lot (chaque lot relit tout dans la base : la référence), puis une seule (l'import, ou
    tous les lots d'un rapprochement) où la mémoire du moteur garde ce qu'elle a lu : mêmes résultats."""
    relus = _un_cheque_par_lot(modele, dossier / "relus", monkeypatch, factures, cheques, a_l_import=False)
    assert _un_cheque_par_lot(modele, dossier / "import", monkeypatch, factures, cheques, a_l_import=True) == relus
    assert _un_cheque_par_lot(modele, dossier / "gardes", monkeypatch, factures, cheques, a_l_import=False,
                              lots_par_transaction=50) == relus
    return relus


def test_les_suggestions_gardees_d_un_lot_a_l_autre_suivent_les_factures_payees_et_entamees(
        _sqlite_modele: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _, suggestions = _par_lot_et_d_un_tenant(_sqlite_modele, tmp_path, monkeypatch, _FACTURES_DE_30,
                                             _CHEQUES_QUI_CHANGENT_LES_SUGGESTIONS)
    assert {ref: [f for f, _, _ in s] for ref, s in suggestions.items()} == {
        "X000000001": _NUMEROS[0:5],
        "X000000002": _NUMEROS[2:7],  # les deux payées ne sont plus suggérées
        # L'entamée, d'échéance plus proche, passe devant la septième (puis les suggestions vont par numéro).
        "X000000003": [*_NUMEROS[2:6], _NUMEROS[8]],
    }


def test_la_famille_du_tireur_gardee_d_un_lot_a_l_autre_suit_ses_factures_payees_et_entamees(
        _sqlite_modele: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    durand = {"civilite": "M", "nom": "DURAND", "prenom": "Paul", "email": None,
              "adresse": {"ligne1": "1 rue Haute", "ligne2": None, "code_postal": "94250", "ville": "GENTILLY"}}
    f1, f2, f3 = (f"F01-26-05-{i:07d}" for i in (1, 2, 3))
    factures = [autre(f1, "30.00", dossier="D000001", payeur=durand),
                autre(f2, "50.00", dossier="D000001", payeur=durand),
                autre(f3, "30.00", dossier="D000002")]  # même montant, une autre famille
    etat, suggestions = _par_lot_et_d_un_tenant(_sqlite_modele, tmp_path, monkeypatch, factures, [
        ("1", "30.00", "X000000001", "2026-05-15"),  # la famille a F1 à 30 € : suggérée
        ("2", "30.00", f1, "2026-05-16"),  # F1 payée : elle quitte la famille à 30 €
        ("3", "30.00", "X000000002", "2026-05-17"),  # plus rien de la famille à 30 €
        ("4", "20.00", f2, "2026-05-18"),  # F2 entamée : elle entre dans la famille à 30 €
        ("5", "30.00", "X000000003", "2026-05-19"),
        ("6", "30.00", "", "2026-05-20"),  # sans facture : la seule de la famille à ce montant, payée
    ])
    famille = {ref: [f for f, _, pourquoi in s if "tireur" in pourquoi] for ref, s in suggestions.items()}
    assert famille == {"X000000001": [f1], "X000000002": [], "X000000003": [f2]}
    assert {f["numero"]: f["statut"] for f in etat["factures"]} == {f1: "payee", f2: "payee", f3: "emise"}
