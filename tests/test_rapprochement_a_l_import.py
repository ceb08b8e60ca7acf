"""Décider les paiements d'un fichier avant de les écrire donne exactement ce que donnent l'import puis le moteur."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, text

from connecteurs.buralistes.datamatrix import charge_utile
from rapprochement.moteur import rapprocher
from regie.application import Application
from regie.registre.modeles import Affectation, Anomalie, Base, Dossier, Facture, MouvementCompte, Paiement
from tests.scenarios import FACTURE, Scenario, autre

F = FACTURE["numero"]  # 77 € : cantine 42 € et crèche 35 € (éligible CESU)


def _vider(app: Application) -> None:
    """Le registre remis à neuf, pour rejouer les mêmes fichiers autrement."""
    tables = [t.name for t in reversed(Base.metadata.sorted_tables)]
    with app.moteur.begin() as c:
        if app.moteur.dialect.name == "postgresql":
            c.execute(text("TRUNCATE " + ", ".join(f'"{t}"' for t in tables) + " RESTART IDENTITY CASCADE"))
        else:
            for t in tables:
                c.execute(text(f'DELETE FROM "{t}"'))
    app.synchroniser_referentiel()


def _datamatrix_inconnu(app: Application) -> str:
    col = app.config.collectivite
    return charge_utile(code_etablissement=col.code_etablissement, periode="2026-05", code_produit="043",
                        numero_dette=999_999, codique=col.codique, montant_centimes=2500)


def _demarrer(app: Application, dossier: Path, a_l_import: bool
              ) -> tuple[Scenario, dict[str, Any], Callable[[], None]]:
    """Le scénario, les options d'import et ce qui suit chaque import : rien à l'import, sinon le moteur."""
    dossier.mkdir()
    o: dict[str, Any] = {} if a_l_import else {"rapprocher_ensuite": False}

    def apres() -> None:
        if not a_l_import:
            rapprocher(app)

    return Scenario(app, dossier), o, apres


def _jouer(app: Application, dossier: Path, *, a_l_import: bool) -> None:
    sc, o, apres = _demarrer(app, dossier, a_l_import)
    sc.factures({**FACTURE}, autre("F01-26-05-0000201", "30.00"), autre("F01-26-05-0000202", "30.00"),
                autre("F01-26-05-0000203", "25.00", dossier="D000777"),
                autre("F01-26-05-0000204", "12.50", dossier="D000888",
                      payeur={**FACTURE["payeur"], "nom": "DUPONT", "prenom": "LUC"}))
    # Un relevé DFT qui confirme une remise pas encore arrivée : il attend en revue, et sera repris.
    sc.cfonb(("75.00", "REMISE RC-77", ""), **o)
    apres()
    # Relevé des buralistes : un paiement entier, un partiel, une dette inconnue, des espèces au-delà de 300 €.
    sc.buraliste(("PP-1", sc.datamatrix("F01-26-05-0000201", "30.00"), "30.00", "CARTE"),
                 ("PP-2", sc.datamatrix("F01-26-05-0000202", "30.00"), "10.00", "CARTE"),
                 ("PP-3", _datamatrix_inconnu(app), "25.00", "CARTE"),
                 ("PP-4", sc.datamatrix(F, "77.00"), "400.00", "ESPECES"), **o)
    apres()
    # Chèques hors d'ordre (dates, références) : deux pour la même facture, un trop-perçu, un sans facture
    # qu'on retrouve par la famille du tireur ; leur remise confirme enfin le relevé DFT.
    texte = ("remise;numero_cheque;tireur;banque;montant;facture;recu_le\r\n"
             "RC-77;9;MARTIN CLAIRE;CCM;20.00;F01-26-05-0000202;2026-05-16\r\n"
             "RC-77;10;MARTIN CLAIRE;CCM;15.00;F01-26-05-0000202;2026-05-15\r\n"
             "RC-77;2;DUPONT LUC;CCM;12.50;;2026-05-15\r\n"
             "RC-77;1;MARTIN CLAIRE;CCM;27.50;F01-26-05-0000203;2026-05-14\r\n")
    sc.importer("cheque", texte.encode(), "cheques.csv", **o)
    apres()
    # CESU : l'éligible d'abord, puis un titre qui dépasse ce qui reste d'éligible.
    sc.cesu(("R-1", "0412345678901", 2026, "20.00", F, "2026-05-14"),
            ("R-1", "0412345678902", 2026, "20.00", F, "2026-05-14"), **o)
    apres()
    # Une même référence lue deux fois, avec deux contenus, dans un même fichier : tout est écrit à traiter.
    texte = ("remise;numero_cheque;tireur;banque;montant;facture;recu_le\r\n"
             f"RC-88;1;MARTIN CLAIRE;CCM;5.00;{F};2026-05-20\r\n"
             f"RC-88;2;MARTIN CLAIRE;CCM;6.00;{F};2026-05-20\r\n"
             f"RC-88;1;MARTIN CLAIRE;CCM;7.00;{F};2026-05-20\r\n")
    sc.importer("cheque", texte.encode(), "doublon.csv", **o)
    apres()


def _photo(app: Application) -> dict[str, Any]:
    """Tout ce qui a été décidé, sans les identifiants ni les instants d'écriture."""
    with app.moteur.connect() as c:
        ref = {i: (canal, r) for i, canal, r in c.execute(select(Paiement.id, Paiement.canal, Paiement.reference))}
        num = dict(c.execute(select(Facture.id, Facture.numero)).all())
        dos = dict(c.execute(select(Dossier.id, Dossier.numero)).all())
        return {
            "paiements": sorted((canal, r, statut, anomalie, affecte, dos.get(d), version)
                                for canal, r, statut, anomalie, affecte, d, version in c.execute(select(
                                    Paiement.canal, Paiement.reference, Paiement.statut, Paiement.anomalie,
                                    Paiement.affecte, Paiement.dossier_id, Paiement.version))),
            "affectations": sorted((ref[p], num[f], m, str(parts), regle, str(preuve)) for p, f, m, parts, regle, preuve
                                   in c.execute(select(Affectation.paiement_id, Affectation.facture_id,
                                                       Affectation.montant, Affectation.parts, Affectation.regle,
                                                       Affectation.preuve).where(Affectation.paiement_id.is_not(None)))),
            "anomalies": sorted((ref.get(p), code, statut, raison, str(preuve), str(sugg)) for p, code, statut, raison,
                                preuve, sugg in c.execute(select(Anomalie.paiement_id, Anomalie.code, Anomalie.statut,
                                                                 Anomalie.raison, Anomalie.preuve,
                                                                 Anomalie.suggestions))),
            "mouvements": sorted((dos[d], quand.isoformat(), nature, libelle, m, du, cr, tr, num.get(f), ref.get(p))
                                 for d, quand, nature, libelle, m, du, cr, tr, f, p in c.execute(select(
                                     MouvementCompte.dossier_id, MouvementCompte.quand, MouvementCompte.nature,
                                     MouvementCompte.libelle, MouvementCompte.montant, MouvementCompte.delta_du,
                                     MouvementCompte.delta_credit, MouvementCompte.delta_tresor,
                                     MouvementCompte.facture_id, MouvementCompte.paiement_id))),
        }


@pytest.mark.parametrize("taille_lot", [1000, 2])
def test_a_l_import_ou_en_deux_temps_le_registre_est_le_meme(app: Application, tmp_path: Path, taille_lot: int,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    from rapprochement import moteur

    monkeypatch.setattr(moteur, "TAILLE_LOT", taille_lot)
    monkeypatch.setenv("REGIE_RAPPROCHEMENT_LOT", str(taille_lot))
    _jouer(app, tmp_path / "a_l_import", a_l_import=True)
    a_l_import = _photo(app)
    _vider(app)
    _jouer(app, tmp_path / "en_deux_temps", a_l_import=False)
    en_deux_temps = _photo(app)
    assert a_l_import == en_deux_temps
    # Le scénario passe bien par ce qu'il doit montrer.
    statuts = {(c, r): (s, a) for c, r, s, a, *_ in a_l_import["paiements"]}
    assert statuts[("cfonb", "00012345678/2026-05-15/0000001/1")] == ("confirme", None)  # repris avec les chèques
    assert statuts[("cheque", "RC-77/2")] == ("affecte", None)  # famille du tireur
    assert statuts[("cheque", "RC-77/9")][1] == "TROP_PERCU"  # le 15 mai passe avant le 16
    assert statuts[("buraliste", "PP-3")] == ("en_anomalie", "REFERENCE_INCONNUE")
    assert statuts[("cesu", "0412345678902")][1] == "CESU_EXCEDENT"
    assert statuts[("cheque", "RC-88/1")][1] == "DOUBLON"


def _jouer_croise(app: Application, dossier: Path, *, a_l_import: bool) -> None:
    """Buralistes, chèques et CESU : en lots de deux, chaque décision dépend de ce que les lots précédents
    du même fichier ont écrit (restes, suggestions, famille du tireur)."""
    sc, o, apres = _demarrer(app, dossier, a_l_import)
    dupont = {**FACTURE["payeur"], "nom": "DUPONT", "prenom": "LUC"}
    sc.factures({**FACTURE}, autre("F01-26-05-0000301", "30.00"), autre("F01-26-05-0000302", "30.00"),
                autre("F01-26-05-0000303", "30.00", dossier="D000777"),
                autre("F01-26-05-0000304", "12.50", dossier="D000888", payeur=dupont),
                autre("F01-26-05-0000305", "20.00", dossier="D000888", payeur=dupont))
    a, b, c = "F01-26-05-0000301", "F01-26-05-0000302", "F01-26-05-0000303"
    sc.buraliste(("PP-1", sc.datamatrix(a, "30.00"), "10.00", "CARTE"),
                 ("PP-2", sc.datamatrix(a, "30.00"), "5.00", "CARTE"),
                 ("PP-3", _datamatrix_inconnu(app), "15.00", "CARTE"),  # suggère A, entamée au lot d'avant
                 ("PP-4", sc.datamatrix(b, "30.00"), "30.00", "CARTE"),
                 ("PP-5", _datamatrix_inconnu(app), "30.00", "CARTE"),  # ne suggère plus B, payée au lot d'avant
                 ("PP-6", sc.datamatrix(c, "30.00"), "40.00", "ESPECES"), **o)
    apres()
    texte = ("remise;numero_cheque;tireur;banque;montant;facture;recu_le\r\n"
             f"RC-5;1;MARTIN CLAIRE;CCM;5.00;{a};2026-05-15\r\n"
             "RC-5;2;DUPONT LUC;CCM;12.50;;2026-05-15\r\n"
             "RC-5;3;DUPONT LUC;CCM;12.50;;2026-05-15\r\n"  # la seule de ce montant vient d'être payée
             "RC-5;4;DUPONT LUC;CCM;20.00;;2026-05-15\r\n"
             "RC-5;5;MARTIN CLAIRE;CCM;10.00;;2026-05-15\r\n")  # A, dont le reste vient de passer à 10 €
    sc.importer("cheque", texte.encode(), "cheques.csv", **o)
    apres()
    sc.cesu(("R-1", "0412345678901", 2026, "20.00", FACTURE["numero"], "2026-05-14"),
            ("R-1", "0412345678902", 2026, "10.00", FACTURE["numero"], "2026-05-14"),
            ("R-1", "0412345678903", 2026, "10.00", FACTURE["numero"], "2026-05-14"), **o)
    apres()


def test_lots_croises_a_l_import_comme_en_deux_temps(app: Application, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """Ce qu'un lot écrit (restes, index des familles, suggestions) sert au lot suivant du même fichier."""
    from rapprochement import moteur

    monkeypatch.setattr(moteur, "TAILLE_LOT", 2)
    monkeypatch.setenv("REGIE_RAPPROCHEMENT_LOT", "2")
    _jouer_croise(app, tmp_path / "a_l_import", a_l_import=True)
    a_l_import = _photo(app)
    _vider(app)
    _jouer_croise(app, tmp_path / "en_deux_temps", a_l_import=False)
    assert a_l_import == _photo(app)
    statuts = {(c, r): (s, a, m) for c, r, s, a, m, *_ in a_l_import["paiements"]}
    assert statuts[("buraliste", "PP-6")][1] == "TROP_PERCU"
    assert statuts[("cheque", "RC-5/2")] == ("affecte", None, 1250)
    assert statuts[("cheque", "RC-5/3")][:2] == ("en_anomalie", "REFERENCE_INCONNUE")
    assert statuts[("cheque", "RC-5/4")] == ("affecte", None, 2000)
    assert statuts[("cheque", "RC-5/5")] == ("affecte", None, 1000)
    assert statuts[("cesu", "0412345678903")][1] == "CESU_EXCEDENT"
    suggestions = {a[0]: a[5] for a in a_l_import["anomalies"]}
    assert "F01-26-05-0000301" in suggestions[("buraliste", "PP-3")]
    assert "F01-26-05-0000302" not in suggestions[("buraliste", "PP-5")]
    assert "F01-26-05-0000303" in suggestions[("buraliste", "PP-5")]


def _jouer_famille_apres_lot(app: Application, dossier: Path, *, a_l_import: bool) -> None:
    """Un lot paie par numéro une facture de DUPONT LUC ; le lot suivant cherche la famille du tireur pour un
    chèque sans facture, à un montant qu'aucun lot n'a encore cherché : la base n'a pas encore l'écriture
    du lot d'avant, la décision doit pourtant la voir."""
    sc, o, apres = _demarrer(app, dossier, a_l_import)
    dupont = {**FACTURE["payeur"], "nom": "DUPONT", "prenom": "LUC"}
    sc.factures(autre("F01-26-05-0000401", "12.50", dossier="D000888", payeur=dupont),
                autre("F01-26-05-0000402", "20.00", dossier="D000888", payeur=dupont))
    texte = ("remise;numero_cheque;tireur;banque;montant;facture;recu_le\r\n"
             "RC-6;1;DUPONT LUC;CCM;12.50;F01-26-05-0000401;2026-05-15\r\n"  # solde 401 (reste 12,50 → 0)
             "RC-6;2;DUPONT LUC;CCM;12.50;;2026-05-15\r\n"  # plus aucune facture de ce reste
             "RC-6;3;DUPONT LUC;CCM;12.50;F01-26-05-0000402;2026-05-15\r\n"  # 402 : reste 20 → 7,50
             "RC-6;4;DUPONT LUC;CCM;7.50;;2026-05-15\r\n")  # 402 est maintenant la seule de ce reste
    sc.importer("cheque", texte.encode(), "cheques.csv", **o)
    apres()


@pytest.mark.parametrize("a_l_import", [True, False])
def test_famille_du_tireur_voit_le_lot_precedent_pas_encore_ecrit(app: Application, tmp_path: Path,
                                                                   a_l_import: bool,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    from rapprochement import moteur

    monkeypatch.setattr(moteur, "TAILLE_LOT", 1)
    monkeypatch.setenv("REGIE_RAPPROCHEMENT_LOT", "1")
    # L'écriture de chaque lot retardée : le lot suivant lit et décide avant qu'elle soit faite.
    monkeypatch.setenv("REGIE_PAUSE_AU", "ecriture_lot:0.2")
    _jouer_famille_apres_lot(app, tmp_path / "jeu", a_l_import=a_l_import)
    statuts = {(c, r): (s, a, m) for c, r, s, a, m, *_ in _photo(app)["paiements"]}
    assert statuts[("cheque", "RC-6/1")] == ("affecte", None, 1250)
    # Pas « déjà payée » : la famille n'a plus de facture de 12,50 €, le chèque attend un agent.
    assert statuts[("cheque", "RC-6/2")] == ("en_anomalie", "REFERENCE_INCONNUE", 0)
    assert statuts[("cheque", "RC-6/3")] == ("affecte", None, 1250)
    assert statuts[("cheque", "RC-6/4")] == ("affecte", None, 750)


def test_ecriture_retardee_ou_dans_le_fil_principal_le_registre_est_le_meme(
        app: Application, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Chaque lot se décide pendant que le précédent s'écrit dans un autre fil : retarder cette écriture, ou
    la faire dans le fil principal, ne change aucune décision, suggestion ni mouvement."""
    from rapprochement import moteur

    monkeypatch.setattr(moteur, "TAILLE_LOT", 2)
    monkeypatch.setenv("REGIE_RAPPROCHEMENT_LOT", "2")
    monkeypatch.setenv("REGIE_ECRITURE_PARALLELE", "0")
    _jouer(app, tmp_path / "un_fil", a_l_import=True)
    _jouer_croise(app, tmp_path / "un_fil_croise", a_l_import=True)
    un_fil = _photo(app)
    _vider(app)
    monkeypatch.setenv("REGIE_ECRITURE_PARALLELE", "1")
    monkeypatch.setenv("REGIE_PAUSE_AU", "ecriture_lot:0.1")
    _jouer(app, tmp_path / "deux_fils", a_l_import=True)
    _jouer_croise(app, tmp_path / "deux_fils_croise", a_l_import=True)
    assert _photo(app) == un_fil


def _jouer_retour_sur_une_facture(app: Application, dossier: Path, *, a_l_import: bool) -> None:
    """La même facture payée au premier lot puis au quatrième : entre-temps, la mémoire l'a oubliée."""
    sc, o, apres = _demarrer(app, dossier, a_l_import)
    a, b, c = "F01-26-05-0000501", "F01-26-05-0000502", "F01-26-05-0000503"
    sc.factures(autre(a, "30.00"), autre(b, "30.00"), autre(c, "30.00"))
    sc.buraliste(("PP-1", sc.datamatrix(a, "30.00"), "10.00", "CARTE"),
                 ("PP-2", sc.datamatrix(b, "30.00"), "30.00", "CARTE"),
                 ("PP-3", sc.datamatrix(c, "30.00"), "30.00", "CARTE"),
                 ("PP-4", sc.datamatrix(a, "30.00"), "25.00", "CARTE"), **o)
    apres()


def test_une_facture_payee_puis_oubliee_est_relue_telle_que_l_import_l_a_laissee(
        app: Application, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Oubliée de la mémoire deux lots plus tard, la facture entamée au premier lot est relue dans la
    transaction de l'import, avec son reste de 20 € (à 30 €, les 25 € du quatrième lot seraient tout affectés)."""
    from rapprochement import moteur

    monkeypatch.setattr(moteur, "TAILLE_LOT", 1)
    monkeypatch.setenv("REGIE_PAUSE_AU", "ecriture_lot:0.05")  # les écritures à la traîne des décisions
    _jouer_retour_sur_une_facture(app, tmp_path / "jeu", a_l_import=True)
    photo = _photo(app)
    statuts = {(c, r): (s, a, m) for c, r, s, a, m, *_ in photo["paiements"]}
    assert statuts[("buraliste", "PP-1")] == ("affecte", None, 1000)
    assert statuts[("buraliste", "PP-4")] == ("en_anomalie", "TROP_PERCU", 2000)
    _vider(app)
    monkeypatch.setenv("REGIE_RAPPROCHEMENT_LOT", "1")
    _jouer_retour_sur_une_facture(app, tmp_path / "en_deux_temps", a_l_import=False)
    assert _photo(app) == photo


def _jouer_suggestions_de_la_famille(app: Application, dossier: Path, *, a_l_import: bool) -> None:
    """Une facture de la famille suggérée au premier lot, entamée au troisième, oubliée ensuite, puis suggérée
    de nouveau au sixième."""
    sc, o, apres = _demarrer(app, dossier, a_l_import)
    dupont = {**FACTURE["payeur"], "nom": "DUPONT", "prenom": "LUC"}
    a, b, c = "F01-26-05-0000601", "F01-26-05-0000602", "F01-26-05-0000603"
    sc.factures(autre(a, "30.00", dossier="D000888", payeur=dupont),
                autre(b, "20.00", dossier="D000888", payeur=dupont), autre(c, "40.00"))
    texte = ("remise;numero_cheque;tireur;banque;montant;facture;recu_le\r\n"
             "RC-7;0;DUPONT LUC;CCM;30.00;F01-26-05-9999990;2026-05-15\r\n"  # inconnue : suggère 601
             "RC-7;1;DUPONT LUC;CCM;20.00;F01-26-05-9999991;2026-05-15\r\n"  # et 602
             f"RC-7;2;DUPONT LUC;CCM;10.00;{a};2026-05-15\r\n"  # 601 : reste 30 → 20
             f"RC-7;3;MARTIN CLAIRE;CCM;5.00;{c};2026-05-15\r\n"  # d'autres lots : 601 sort de la mémoire
             f"RC-7;4;MARTIN CLAIRE;CCM;5.00;{c};2026-05-15\r\n"
             "RC-7;5;DUPONT LUC;CCM;20.00;F01-26-05-9999992;2026-05-15\r\n")  # suggère 601 et 602, à 20 €
    sc.importer("cheque", texte.encode(), "cheques.csv", **o)
    apres()


@pytest.mark.parametrize("a_l_import", [True, False])
def test_la_famille_suggeree_montre_l_etat_de_ses_factures_au_moment_de_la_decision(
        app: Application, tmp_path: Path, a_l_import: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    """Les suggestions de la famille du tireur (facture désignée inconnue) disent le reste et le statut de
    chaque facture à l'instant du chèque, même quand un lot d'avant l'a entamée puis que la mémoire l'a oubliée."""
    from rapprochement import moteur

    monkeypatch.setattr(moteur, "TAILLE_LOT", 1)
    monkeypatch.setenv("REGIE_RAPPROCHEMENT_LOT", "1")
    monkeypatch.setenv("REGIE_PAUSE_AU", "ecriture_lot:0.05")
    _jouer_suggestions_de_la_famille(app, tmp_path / "jeu", a_l_import=a_l_import)
    with app.moteur.connect() as c:
        suggestions = dict(c.execute(select(Paiement.reference, Anomalie.suggestions)
                                     .join(Anomalie, Anomalie.paiement_id == Paiement.id)).all())

    def famille(reference: str) -> list[tuple[str, str, str, str, float]]:
        return [(s["facture"], s["montant"], s["reste"], s["statut"], s["score"]) for s in suggestions[reference]
                if s["pourquoi"].startswith("famille du tireur")]

    assert famille("RC-7/0") == [("F01-26-05-0000601", "30.00", "30.00", "emise", 0.6)]
    assert famille("RC-7/1") == [("F01-26-05-0000602", "20.00", "20.00", "emise", 0.6)]
    assert famille("RC-7/5") == [("F01-26-05-0000601", "30.00", "20.00", "partiellement_payee", 0.6),
                                 ("F01-26-05-0000602", "20.00", "20.00", "emise", 0.6)]


def test_aucun_lot_ne_reste_en_memoire_quand_le_ramasse_miettes_est_suspendu(
        app: Application, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Le moteur suspend le ramasse-miettes : un cycle qui tiendrait un lot (ses factures, ses décisions) ne serait
    jamais libéré, et la mémoire grandirait avec le fichier. Compilé, une fonction imbriquée en fait un."""
    import gc

    from rapprochement import moteur

    monkeypatch.setattr(moteur, "TAILLE_LOT", 1)
    monkeypatch.setenv("REGIE_RAPPROCHEMENT_LOT", "1")
    gc.collect()
    gc.disable()
    try:
        _jouer(app, tmp_path / "jeu", a_l_import=True)
        _jouer_croise(app, tmp_path / "croise", a_l_import=False)
        restants = [type(o).__name__ for o in gc.get_objects() if type(o) in (moteur._Lot, moteur._Memoire)]
    finally:
        gc.enable()
    assert restants == []
