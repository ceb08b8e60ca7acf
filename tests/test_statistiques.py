"""Après un gros import, PostgreSQL connaît la taille des tables (sinon ses plans sont ceux d'une table vide)."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import text

from regie.application import Application
from regie.jeu_essai import ecrire_jsonl, factures
from regie.registre.statistiques import rafraichir_statistiques
from regie.services.factures import importer_fichier_factures


def _lignes_estimees(app: Application, table: str) -> float:
    with app.moteur.connect() as c:
        return float(c.execute(text("SELECT reltuples FROM pg_class WHERE oid = CAST(:t AS regclass)"),
                               {"t": table}).scalar_one())


def test_un_gros_import_de_factures_rafraichit_les_statistiques(app: Application, tmp_path: Path) -> None:
    chemin = tmp_path / "f.jsonl"
    ecrire_jsonl(chemin, factures(300, nb_lignes=2))
    importer_fichier_factures(app, chemin)
    if app.moteur.dialect.name != "postgresql":
        assert rafraichir_statistiques(app.moteur, ("facture",), 10**6) == []  # SQLite : rien à faire
        return
    # L'autovacuum est coupé sur la base des tests : seul l'import a pu les écrire.
    assert _lignes_estimees(app, "facture") == 300
    assert _lignes_estimees(app, "etat_facture") == 300


def test_un_petit_import_sur_une_grosse_table_ne_relance_pas_l_analyse(app: Application, tmp_path: Path) -> None:
    if app.moteur.dialect.name != "postgresql":
        return
    chemin = tmp_path / "f.jsonl"
    ecrire_jsonl(chemin, factures(1000))
    importer_fichier_factures(app, chemin)
    # La règle de l'autovacuum : 50 lignes + 10 % de la table.
    assert rafraichir_statistiques(app.moteur, ("facture",), 149) == []
    assert rafraichir_statistiques(app.moteur, ("facture",), 150) == ["facture"]
