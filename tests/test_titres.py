"""Émission des titres : quelles factures, quels restes par ligne, quels numéros, et rien deux fois.

Chaque fichier écrit est validé contre le schéma officiel ; les sommes sont relues dans le XML.
"""

from __future__ import annotations

import copy
import json
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from lxml import etree
from sqlalchemy import func, select, update

from exports import titres as titres_module
from exports.titres import emettre, emettre_titres, finir_fichiers_interrompus
from regie.application import Application
from regie.montants import euros_en_centimes
from regie.registre.modeles import (
    Anomalie,
    Bordereau,
    Compteur,
    EtatFacture,
    Facture,
    FichierExporte,
    LigneTitre,
    MouvementCompte,
    Titre,
)
from regie.services.etat import etat
from regie.services.factures import importer_fichier_factures
from regie.services.paiements import importer_fichier_paiements
from tests.pes_schema import assert_valide

AUJOURD_HUI = date(2026, 11, 25)

FACTURE: dict[str, Any] = {
    "type": "facture", "numero": "F01-26-05-0000123", "regie": "ENFANCE", "dossier": "D004512",
    "payeur": {"civilite": "MME", "nom": "MARTIN", "prenom": "Hélène", "email": None,
               "adresse": {"ligne1": "12 rue des Écoles", "ligne2": None, "code_postal": "94250",
                           "ville": "GENTILLY"}},
    "emise_le": "2026-04-27", "echeance": "2026-05-27", "periode": "2026-05",
    "lignes": [
        {"prestation": "CANTINE", "libelle": "Repas", "enfant": "Léo MARTIN", "naissance": "2019-03-02",
         "quantite": "12", "prix_unitaire": "3.50", "montant": "42.00"},
        {"prestation": "CRECHE", "libelle": "Heures de crèche", "enfant": "Zoé MARTIN",
         "naissance": "2024-09-14", "quantite": "20", "prix_unitaire": "1.75", "montant": "35.00"}],
    "montant": "77.00"}


# --- Aides partagées par les tests des exports ---------------------------------------------------

def facture(numero: str, **champs: Any) -> dict[str, Any]:
    f = copy.deepcopy(FACTURE)
    f["numero"] = numero
    f.update(champs)
    return f


def importer_factures(app: Application, dossier: Path, objets: list[dict[str, Any]], nom: str = "f.jsonl") -> None:
    chemin = dossier / nom
    chemin.write_text("\n".join(json.dumps(o, ensure_ascii=False) for o in objets) + "\n", encoding="utf-8")
    importer_fichier_factures(app, chemin)


def importer_cheques(app: Application, dossier: Path, lignes: list[str], nom: str = "cheques.csv") -> None:
    chemin = dossier / nom
    chemin.write_text("remise;numero_cheque;tireur;banque;montant;facture;recu_le\n" + "\n".join(lignes) + "\n",
                      encoding="utf-8")
    importer_fichier_paiements(app, "cheque", chemin, aujourd_hui=date(2026, 5, 20))


def importer_cesu(app: Application, dossier: Path, lignes: list[str], nom: str = "cesu.csv") -> None:
    chemin = dossier / nom
    chemin.write_text("remise;numero_titre;support;emetteur;millesime;valeur;facture;recu_le\n"
                      + "\n".join(lignes) + "\n", encoding="utf-8")
    importer_fichier_paiements(app, "cesu", chemin, aujourd_hui=date(2026, 5, 20))


def lire_xml(chemin: Path) -> etree._ElementTree:
    return etree.parse(str(chemin), etree.XMLParser(resolve_entities=False, no_network=True))


def valeurs(element: etree._ElementTree | etree._Element, chemin: str) -> list[str]:
    return [str(e.get("V")) for e in element.iterfind(chemin)]


def pieces_du_xml(chemin: Path) -> dict[str, list[int]]:
    """ObjPce → montants des lignes (centimes), relus dans le fichier."""
    arbre = lire_xml(chemin)
    return {valeurs(p, "BlocPiece/ObjPce")[0]: [euros_en_centimes(v) for v in valeurs(
        p, "LigneDePiece/BlocLignePiece/InfoLignePiece/MtHT")] for p in arbre.iterfind(".//Piece")}


def compter(app: Application, modele: Any) -> int:
    with app.moteur.connect() as c:
        return int(c.execute(select(func.count()).select_from(modele)).scalar_one())


def statuts(app: Application) -> dict[str, str]:
    with app.moteur.connect() as c:
        return {n: s for n, s in c.execute(select(Facture.numero, EtatFacture.statut)
                                           .join(EtatFacture, EtatFacture.facture_id == Facture.id))}


def soldes_famille(app: Application, dossier_id: int | None = None) -> tuple[int, int]:
    with app.moteur.connect() as c:
        req = select(func.coalesce(func.sum(MouvementCompte.delta_du), 0),
                     func.coalesce(func.sum(MouvementCompte.delta_tresor), 0))
        du, tresor = c.execute(req).one()
    return int(du), int(tresor)


# --- Le contrat -------------------------------------------------------------------------------------

def test_apres_cesu_et_cheque_le_titre_porte_le_reste_de_chaque_ligne_et_valide_le_schema(
        app: Application, tmp_path: Path) -> None:
    importer_factures(app, tmp_path, [facture("F01-26-05-0000123"), facture("F01-26-05-0000124"),
                                      facture("F01-26-05-0000125")])
    # CESU d'abord (lignes éligibles seulement : la crèche), puis un chèque dans l'ordre des lignes.
    importer_cesu(app, tmp_path, ["R-2026-014;0412345678901;PAPIER;EDENRED;2026;20.00;F01-26-05-0000123;2026-05-14"])
    importer_cheques(app, tmp_path, ["RC-2026-031;1234567;MARTIN HELENE;CCM;30.00;F01-26-05-0000123;2026-05-15",
                                     "RC-2026-031;1234568;MARTIN HELENE;CCM;77.00;F01-26-05-0000124;2026-05-15",
                                     "RC-2026-031;1234569;MARTIN HELENE;CCM;0.01;F01-26-05-0000125;2026-05-15"])
    du_avant, _ = soldes_famille(app)

    fichiers = emettre_titres(app, AUJOURD_HUI)

    assert len(fichiers) == 1
    (chemin,) = fichiers
    assert chemin.name == "PESALR2_219400999_261125_001.xml"
    assert chemin.parent == app.env.donnees / "sortie"
    assert_valide(chemin)
    assert chemin.read_bytes().startswith(b'<?xml version="1.0" encoding="ISO-8859-1"?>')
    # 123 : cantine 42 - 30 = 12, crèche 35 - 20 = 15 ; 124 soldée : pas de titre ; 125 : un centime de moins.
    assert pieces_du_xml(chemin) == {"Facture F01-26-05-0000123 2026-05": [1200, 1500],
                                     "Facture F01-26-05-0000125 2026-05": [4199, 3500]}
    arbre = lire_xml(chemin)
    assert valeurs(arbre, ".//BlocBordereau/NbrPce") == ["2"]
    assert valeurs(arbre, ".//BlocBordereau/MtBordHt") == ["103.99"]
    assert valeurs(arbre, ".//BlocBordereau/Exer") == ["2026"]
    assert valeurs(arbre, ".//BlocBordereau/IdBord") == ["1"]
    assert valeurs(arbre, ".//BlocPiece/IdPce") == ["1", "2"]
    assert valeurs(arbre, ".//InfoTiers/RefTiers")[:1] == ["D004512"]
    assert valeurs(arbre, ".//InfoTiers/Prenom")[0] == "Hélène"
    assert valeurs(arbre, "EnTetePES/IdColl") == ["21940099900017"]
    assert statuts(app) == {"F01-26-05-0000123": "titree", "F01-26-05-0000124": "payee",
                            "F01-26-05-0000125": "titree"}
    with app.moteur.connect() as c:
        titres = c.execute(select(Titre.piece, Titre.montant, Titre.statut).order_by(Titre.piece)).all()
        assert [tuple(t) for t in titres] == [(1, 2700, "emis"), (2, 7699, "emis")]
        assert c.execute(select(func.sum(LigneTitre.montant))).scalar_one() == 10_399
        fe = c.execute(select(FichierExporte.statut, FichierExporte.nature, FichierExporte.taille)).one()
        assert (fe.statut, fe.nature, fe.taille) == ("ecrit", "pes_aller", chemin.stat().st_size)
    # Le dû de la famille passe au Trésor, au centime.
    du_apres, tresor = soldes_famille(app)
    assert (du_avant - du_apres, tresor) == (10_399, 10_399)
    e = etat(app)
    assert [f["titre"] for f in e["factures"] if f["numero"] == "F01-26-05-0000123"] == [
        {"exercice": 2026, "bordereau": 1, "piece": 1, "statut": "emis"}]


def test_en_mode_regie_le_titre_attend_echeance_plus_delai(app: Application, tmp_path: Path) -> None:
    importer_factures(app, tmp_path, [facture("F-ECHEANCE-1", echeance="2026-10-26"),
                                      facture("F-ECHEANCE-2", echeance="2026-10-25")])
    # 26/10 + 30 jours = 25/11 : pas encore dépassé ; 25/10 + 30 = 24/11 < 25/11 : titrée.
    (chemin,) = emettre_titres(app, AUJOURD_HUI)
    assert list(pieces_du_xml(chemin)) == ["Facture F-ECHEANCE-2 2026-05"]
    assert emettre_titres(app, date(2026, 11, 26)) != []
    assert statuts(app) == {"F-ECHEANCE-1": "titree", "F-ECHEANCE-2": "titree"}


def test_en_mode_titre_chaque_facture_est_titree_des_son_import(app: Application, tmp_path: Path) -> None:
    importer_factures(app, tmp_path, [facture("F-LOISIRS-1", regie="LOISIRS", echeance="2026-12-31",
                                              emise_le="2026-11-20", periode="2026-11"),
                                      facture("F-ENFANCE-1", echeance="2026-12-31", emise_le="2026-11-20")])
    (chemin,) = emettre_titres(app, AUJOURD_HUI)
    assert_valide(chemin)
    assert list(pieces_du_xml(chemin)) == ["Facture F-LOISIRS-1 2026-11"]
    # La lettre Cle2 est celle du datamatrix de la facture.
    from connecteurs.buralistes.datamatrix import lettre_cle2, rang_mod23

    with app.moteur.connect() as c:
        dette = c.execute(select(Facture.numero_dette).where(Facture.numero == "F-LOISIRS-1")).scalar_one()
    assert valeurs(lire_xml(chemin), ".//BlocPiece/Cle2") == [lettre_cle2(rang_mod23("26", 11, dette))]
    assert statuts(app)["F-ENFANCE-1"] == "emise"


def test_une_execution_repetee_ne_titre_jamais_deux_fois_et_numerote_sans_trou(app: Application,
                                                                                tmp_path: Path) -> None:
    importer_factures(app, tmp_path, [facture(f"F-A-{i:06d}") for i in range(3)], "a.jsonl")
    premier = emettre_titres(app, AUJOURD_HUI)
    assert emettre_titres(app, AUJOURD_HUI) == []
    importer_factures(app, tmp_path, [facture(f"F-B-{i:06d}") for i in range(2)], "b.jsonl")
    second = emettre_titres(app, AUJOURD_HUI)
    assert [p.name for p in premier + second] == ["PESALR2_219400999_261125_001.xml",
                                                  "PESALR2_219400999_261125_002.xml"]
    assert valeurs(lire_xml(second[0]), ".//BlocBordereau/IdBord") == ["2"]
    assert valeurs(lire_xml(second[0]), ".//BlocPiece/IdPce") == ["4", "5"]
    with app.moteur.connect() as c:
        assert c.execute(select(func.count(func.distinct(Titre.facture_id)))).scalar_one() == 5
        assert sorted(c.execute(select(Titre.piece)).scalars()) == [1, 2, 3, 4, 5]
    # Un autre jour : le numéro du fichier repart de 001, les IdBord continuent.
    importer_factures(app, tmp_path, [facture("F-C-000000")], "c.jsonl")
    (troisieme,) = emettre_titres(app, date(2026, 11, 26))
    assert troisieme.name == "PESALR2_219400999_261126_001.xml"
    assert valeurs(lire_xml(troisieme), ".//BlocBordereau/IdBord") == ["3"]


def test_un_bordereau_ne_depasse_pas_le_plafond_de_pieces(app: Application, tmp_path: Path) -> None:
    importer_factures(app, tmp_path, [facture(f"F-P-{i:06d}") for i in range(5)])
    bilan = emettre(app, AUJOURD_HUI, max_pieces_par_bordereau=2)
    (chemin,) = bilan.fichiers
    assert_valide(chemin)
    arbre = lire_xml(chemin)
    assert valeurs(arbre, ".//BlocBordereau/IdBord") == ["1", "2", "3"]
    assert valeurs(arbre, ".//BlocBordereau/NbrPce") == ["2", "2", "1"]
    assert valeurs(arbre, ".//BlocPiece/IdPce") == ["1", "2", "3", "4", "5"]
    assert bilan.titres == 5 and bilan.montant == 5 * 7700


def test_un_payeur_sans_adresse_ou_de_civilite_inconnue_va_en_revue_et_le_reste_part(
        app: Application, tmp_path: Path) -> None:
    importer_factures(app, tmp_path, [facture("F-OK-0001"), facture("F-SANS-ADRESSE-0001"), facture("F-MLLE-0001"),
                                      facture("F-CP-0001")])
    # L'import refuse ces payeurs : on simule des données abîmées depuis (reprise d'un ancien logiciel).
    with app.moteur.begin() as c:
        c.execute(update(Facture).where(Facture.numero == "F-SANS-ADRESSE-0001").values(adresse1="  "))
        c.execute(update(Facture).where(Facture.numero == "F-MLLE-0001").values(civilite="MLE"))
        c.execute(update(Facture).where(Facture.numero == "F-CP-0001").values(code_postal="9425"))
    (chemin,) = emettre_titres(app, AUJOURD_HUI)
    assert_valide(chemin)
    assert list(pieces_du_xml(chemin)) == ["Facture F-OK-0001 2026-05"]
    with app.moteur.connect() as c:
        anomalies = c.execute(select(Facture.numero, Anomalie.code, Anomalie.raison).join(
            Facture, Facture.id == Anomalie.facture_id).order_by(Facture.numero)).all()
    assert [(a.numero, a.code) for a in anomalies] == [("F-CP-0001", "TITRE_IMPOSSIBLE"),
                                                       ("F-MLLE-0001", "TITRE_IMPOSSIBLE"),
                                                       ("F-SANS-ADRESSE-0001", "TITRE_IMPOSSIBLE")]
    raisons = {a.numero: a.raison for a in anomalies}
    assert "adresse" in raisons["F-SANS-ADRESSE-0001"] and "MLE" in raisons["F-MLLE-0001"]
    assert "code postal" in raisons["F-CP-0001"]
    assert statuts(app)["F-MLLE-0001"] == "emise"
    # La nuit suivante : pas d'anomalie en double ; corrigée, la facture part et l'anomalie se résout.
    assert emettre_titres(app, AUJOURD_HUI) == []
    assert compter(app, Anomalie) == 3
    with app.moteur.begin() as c:
        c.execute(update(Facture).where(Facture.numero == "F-MLLE-0001").values(civilite="MME"))
    (second,) = emettre_titres(app, AUJOURD_HUI)
    assert list(pieces_du_xml(second)) == ["Facture F-MLLE-0001 2026-05"]
    with app.moteur.connect() as c:
        assert c.execute(select(Anomalie.statut).join(Facture, Facture.id == Anomalie.facture_id).where(
            Facture.numero == "F-MLLE-0001")).scalar_one() == "resolue"


def test_une_ligne_au_reste_negatif_n_est_jamais_ecrite(app: Application, tmp_path: Path) -> None:
    importer_factures(app, tmp_path, [facture("F-NEG-0001")])
    import msgspec

    with app.moteur.begin() as c:
        fid, lignes = c.execute(select(Facture.id, Facture.lignes).where(Facture.numero == "F-NEG-0001")).one()
        # Une incohérence : les lignes ne font plus le montant (une correction à la main dans la base, par exemple).
        c.execute(update(Facture).where(Facture.id == fid).values(
            lignes=(lignes[0], msgspec.structs.replace(lignes[1], montant=0))))
    assert emettre_titres(app, AUJOURD_HUI) == []
    with app.moteur.connect() as c:
        raison = c.execute(select(Anomalie.raison)).scalar_one()
    assert "restes des lignes" in raison
    assert compter(app, Titre) == 0


def test_une_erreur_apres_la_prise_des_numeros_annule_tout_sans_trou(
        app: Application, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    importer_factures(app, tmp_path, [facture("F-UN-00001"), facture("F-DEUX-0002")])

    def panne(*_a: Any, **_k: Any) -> Any:
        raise OSError("disque plein")

    monkeypatch.setattr(titres_module, "ecrire_pes_aller", panne)
    with pytest.raises(OSError, match="disque plein"):
        emettre_titres(app, AUJOURD_HUI)
    assert compter(app, Titre) == compter(app, Bordereau) == compter(app, FichierExporte) == 0
    assert compter(app, Compteur) == 0  # aucun numéro pris (le numéro de dette est l'identifiant de la facture)
    assert statuts(app) == {"F-UN-00001": "emise", "F-DEUX-0002": "emise"}
    assert list((app.env.donnees / "sortie").iterdir()) == []
    monkeypatch.undo()
    (chemin,) = emettre_titres(app, AUJOURD_HUI)
    assert chemin.name.endswith("_001.xml")
    assert valeurs(lire_xml(chemin), ".//BlocBordereau/IdBord") == ["1"]
    assert valeurs(lire_xml(chemin), ".//BlocPiece/IdPce") == ["1", "2"]


@pytest.mark.parametrize("temporaire_perdu", [False, True])
def test_un_arret_apres_validation_est_repris_sans_nouveau_numero(
        app: Application, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, temporaire_perdu: bool) -> None:
    importer_factures(app, tmp_path, [facture("F-UN-00001"), facture("F-DEUX-0002")])

    def arret(temporaire: Path, _chemin: Path) -> None:
        if temporaire_perdu:
            temporaire.unlink()
        raise KeyboardInterrupt  # le processus est tué entre la validation et le renommage

    monkeypatch.setattr(titres_module, "_publier", arret)
    with pytest.raises(KeyboardInterrupt):
        emettre_titres(app, AUJOURD_HUI)
    sortie = app.env.donnees / "sortie"
    assert not (sortie / "PESALR2_219400999_261125_001.xml").exists()
    with app.moteur.connect() as c:
        inscrit = c.execute(select(FichierExporte.statut, FichierExporte.sha256)).one()
    assert inscrit.statut == "en_ecriture" and inscrit.sha256
    monkeypatch.undo()

    fichiers = emettre_titres(app, AUJOURD_HUI)

    assert [p.name for p in fichiers] == ["PESALR2_219400999_261125_001.xml"]
    assert_valide(fichiers[0])
    assert [p.name for p in sortie.iterdir()] == ["PESALR2_219400999_261125_001.xml"]
    with app.moteur.connect() as c:
        fe = c.execute(select(FichierExporte.statut, FichierExporte.sha256, FichierExporte.taille)).one()
        assert fe.statut == "ecrit"
        assert c.execute(select(func.count()).select_from(Titre)).scalar_one() == 2
    from connecteurs.sftp import mesurer

    assert (fe.sha256, fe.taille) == (mesurer(fichiers[0]).sha256, fichiers[0].stat().st_size)
    assert fe.sha256 == inscrit.sha256  # le fichier réécrit depuis la base est le même, octet pour octet
    assert finir_fichiers_interrompus(app) == []
