"""Import des factures et avoirs (specs/factures.md) : tout ou rien, idempotent, chaque erreur nommée."""

from __future__ import annotations

import copy
import hashlib
import json
import os
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select, text
from structlog.testing import capture_logs

from regie.application import Application
from regie.erreurs import FichierRefuse
from regie.registre.modeles import (
    Affectation,
    Avoir,
    Dossier,
    EtatFacture,
    Facture,
    FichierRecu,
    MouvementCompte,
    Paiement,
)
from regie.services.compte import journal, soldes_par_dossier
from regie.services.etat import etat
from regie.services.factures import importer_fichier_factures, pousser_objets
from regie.services.fichiers import MARGE_SIGNATURE_NS
from regie.services.verification import verifier

FACTURE: dict[str, Any] = {
    "type": "facture", "numero": "F01-26-05-0000123", "regie": "ENFANCE", "dossier": "D004512",
    "payeur": {"civilite": "MME", "nom": "MARTIN", "prenom": "Claire", "email": "claire.martin@example.fr",
               "adresse": {"ligne1": "12 rue des Écoles", "ligne2": None, "code_postal": "94250",
                           "ville": "GENTILLY"}},
    "emise_le": "2026-04-27", "echeance": "2026-05-27", "periode": "2026-05",
    "lignes": [
        {"prestation": "CANTINE", "libelle": "Repas", "enfant": "Léo MARTIN", "naissance": "2019-03-02",
         "quantite": "12", "prix_unitaire": "3.50", "montant": "42.00"},
        {"prestation": "CRECHE", "libelle": "Heures de crèche", "enfant": "Zoé MARTIN",
         "naissance": "2024-09-14", "quantite": "20", "prix_unitaire": "1.75", "montant": "35.00"}],
    "montant": "77.00"}


def facture(numero: str = "F01-26-05-0000123", **champs: Any) -> dict[str, Any]:
    f = copy.deepcopy(FACTURE)
    f["numero"] = numero
    f.update(champs)
    return f


def avoir(numero: str, facture_numero: str, montant: str, **champs: Any) -> dict[str, Any]:
    a = {"type": "avoir", "numero": numero, "facture": facture_numero, "emise_le": "2026-05-10",
         "montant": montant, "motif": "Absence justifiée"}
    a.update(champs)
    return a


def ecrire(tmp_path: Path, nom: str, objets: list[Any], *, brut: list[str] | None = None) -> Path:
    chemin = tmp_path / nom
    lignes = [json.dumps(o, ensure_ascii=False) for o in objets] + (brut or [])
    chemin.write_text("\n".join(lignes) + "\n", encoding="utf-8")
    return chemin


def compter(app: Application, modele: Any) -> int:
    with app.moteur.connect() as c:
        return int(c.execute(select(func.count()).select_from(modele)).scalar_one())


def par_numero(app: Application) -> dict[str, dict[str, Any]]:
    return {f["numero"]: f for f in etat(app)["factures"]}


def erreurs_de(exc: pytest.ExceptionInfo[FichierRefuse]) -> list[str]:
    return [str(e) for e in exc.value.erreurs]


# --- Le contrat ------------------------------------------------------------------------------

def test_une_facture_importee_apparait_dans_l_etat_avec_son_reste(app: Application, tmp_path: Path) -> None:
    rapport = importer_fichier_factures(app, ecrire(tmp_path, "f.jsonl", [facture()]))
    assert rapport.importes == 1
    e = etat(app)
    assert e["factures"] == [{"numero": "F01-26-05-0000123", "regie": "ENFANCE", "dossier": "D004512",
                              "montant": "77.00", "paye": "0.00", "avoirs": "0.00", "reste": "77.00",
                              "statut": "emise", "titre": None}]
    assert e["paiements"] == []
    assert e["familles"] == [{"dossier": "D004512", "du": "77.00", "credit": "0.00"}]


def test_chaque_facture_recoit_un_numero_de_dette_unique_et_sa_refdet(app: Application, tmp_path: Path) -> None:
    importer_fichier_factures(app, ecrire(tmp_path, "a.jsonl", [facture("F-2026/000001"), facture("F-2026/000002")]))
    importer_fichier_factures(app, ecrire(tmp_path, "b.jsonl", [facture("F-2026/000003")]))
    with app.sessions() as s:
        rows = s.execute(select(Facture.numero, Facture.numero_dette, Facture.refdet).order_by(Facture.numero)).all()
    assert [r.refdet for r in rows] == ["F2026000001", "F2026000002", "F2026000003"]
    dettes = [r.numero_dette for r in rows]
    assert len(set(dettes)) == 3 and all(0 < d < 10**15 for d in dettes)


def test_les_lignes_gardent_montants_et_eligibilite_cesu(app: Application, tmp_path: Path) -> None:
    importer_fichier_factures(app, ecrire(tmp_path, "f.jsonl", [facture()]))
    with app.sessions() as s:
        lignes = s.scalars(select(Facture.lignes)).one()
    assert [(lg.prestation, lg.montant, lg.quantite_centiemes, lg.prix_unitaire, lg.eligible_cesu)
            for lg in lignes] == [("CANTINE", 4200, 1200, 350, False), ("CRECHE", 3500, 2000, 175, True)]


def test_un_enfant_de_six_ans_au_premier_jour_de_la_periode_n_est_plus_eligible_cesu(
        app: Application, tmp_path: Path) -> None:
    f = facture()
    f["lignes"][1]["naissance"] = "2020-05-01"  # 6 ans le 1er mai 2026
    g = facture("F01-26-05-0000124")
    g["lignes"][1]["naissance"] = "2020-05-02"  # 6 ans le lendemain
    importer_fichier_factures(app, ecrire(tmp_path, "f.jsonl", [f, g]))
    with app.sessions() as s:
        eligibles = {numero: lignes[1].eligible_cesu
                     for numero, lignes in s.execute(select(Facture.numero, Facture.lignes))}
    assert eligibles == {"F01-26-05-0000123": False, "F01-26-05-0000124": True}


def test_reimporter_le_meme_fichier_ne_change_rien(app: Application, tmp_path: Path) -> None:
    chemin = ecrire(tmp_path, "f.jsonl", [facture(), facture("F01-26-05-0000124")])
    importer_fichier_factures(app, chemin)
    avant = etat(app)
    rapport = importer_fichier_factures(app, chemin)
    assert rapport.deja_importe
    assert "déjà importé" in rapport.message()
    assert etat(app) == avant
    assert compter(app, Facture) == 2


def test_un_fichier_inchange_est_reconnu_sans_etre_relu_mais_un_contenu_change_est_relu(
        app: Application, tmp_path: Path) -> None:
    """Le fichier de la veille, inchangé, est reconnu par sa signature (sans relire ses Go) ; la moindre
    réécriture, même de même taille et avec sa date de modification remise, est relue."""
    chemin = ecrire(tmp_path, "f.jsonl", [facture("F01-26-05-0000123")])
    time.sleep(MARGE_SIGNATURE_NS / 1e9 + 0.1)  # le fichier ne bouge plus depuis plus d'une seconde
    importer_fichier_factures(app, chemin)
    with capture_logs() as evenements:
        rapport = importer_fichier_factures(app, chemin)
    assert rapport.deja_importe
    (deja,) = [e for e in evenements if e["event"] == "fichier_deja_importe"]
    assert deja["reconnu_par"] == "signature" and deja["sha256"] == hashlib.sha256(chemin.read_bytes()).hexdigest()
    # Même taille, autre contenu, date de modification remise à l'ancienne : le ctime a bougé, il est relu.
    ancien = chemin.stat()
    chemin.write_bytes(chemin.read_bytes().replace(b"0000123", b"0000124"))
    os.utime(chemin, ns=(ancien.st_atime_ns, ancien.st_mtime_ns))
    assert chemin.stat().st_size == ancien.st_size
    rapport = importer_fichier_factures(app, chemin)
    assert not rapport.deja_importe and rapport.importes == 1
    assert compter(app, Facture) == 2


def test_la_commande_reconnait_un_fichier_inchange_d_emblee_et_relit_un_fichier_change(
        app: Application, tmp_path: Path, regie_cli) -> None:  # type: ignore[no-untyped-def]
    """`regie factures importer` et `regie paiements importer` relancées sur des fichiers inchangés (une nuit
    rejouée) : même message, code 0, rien ne change ; un fichier réécrit au même chemin est relu et importé."""
    factures = ecrire(tmp_path, "f.jsonl", [facture("F01-26-05-0000123")])
    cheques = tmp_path / "cheques.csv"
    cheques.write_text("remise;numero_cheque;tireur;banque;montant;facture;recu_le\n"
                       "RC-9;1;MARTIN CLAIRE;CCM;77.00;F01-26-05-0000123;2026-05-15\n", encoding="utf-8")
    time.sleep(MARGE_SIGNATURE_NS / 1e9 + 0.1)  # stables depuis plus d'une seconde : leur signature est gardée
    commandes = (("factures", "importer", str(factures)), ("paiements", "importer", "--canal", "cheque", str(cheques)))
    for commande in commandes:
        assert regie_cli(*commande).returncode == 0
    avant = etat(app)
    for commande, nom in zip(commandes, ("f.jsonl", "cheques.csv"), strict=True):
        res = regie_cli(*commande)
        assert (res.returncode, res.stdout) == (0, f"{nom} : fichier déjà importé (même contenu), rien n'a changé\n")
    assert etat(app) == avant
    cheques.write_text(cheques.read_text(encoding="utf-8") + "RC-9;2;MARTIN CLAIRE;CCM;1.00;;2026-05-15\n",
                       encoding="utf-8")
    res = regie_cli(*commandes[1])
    assert (res.returncode, res.stdout) == (0, "cheques.csv : 1 enregistrement(s) importé(s) (1 paiements), "
                                               "1 déjà importé(s), ignoré(s)\n")


def test_un_fichier_qui_vient_d_etre_ecrit_est_toujours_relu(app: Application, tmp_path: Path) -> None:
    """Écrit dans la seconde qui précède sa lecture : une réécriture dans le même grain d'horloge ne
    changerait pas ses dates ; il ne garde pas de signature et sera relu (reconnu par son SHA-256)."""
    chemin = ecrire(tmp_path, "f.jsonl", [facture()])
    importer_fichier_factures(app, chemin)
    with app.sessions() as s:
        assert s.scalars(select(FichierRecu.signature)).all() == [None]
    with capture_logs() as evenements:
        assert importer_fichier_factures(app, chemin).deja_importe
    assert [e["reconnu_par"] for e in evenements if e["event"] == "fichier_deja_importe"] == ["sha256"]


def test_les_memes_objets_dans_un_autre_fichier_sont_comptes_deja_importes(app: Application, tmp_path: Path) -> None:
    importer_fichier_factures(app, ecrire(tmp_path, "a.jsonl", [facture()]))
    # Même contenu, clés dans un autre ordre : c'est la même facture.
    autre = dict(reversed(list(facture().items())))
    rapport = importer_fichier_factures(app, ecrire(tmp_path, "b.jsonl", [autre, facture("F01-26-05-0000999")]))
    assert (rapport.importes, rapport.ignores) == (1, 1)
    assert "1 déjà importé(s), ignoré(s)" in rapport.message()
    assert compter(app, Facture) == 2


def test_une_facture_d_un_nouveau_dossier_a_cote_d_une_facture_deja_importee_garde_son_dossier(
        app: Application, tmp_path: Path) -> None:
    """Le lot heurte la facture connue et repart facture par facture : le dossier créé pour la nouvelle
    existe toujours (il était perdu avec le point de reprise, la facture pointait dans le vide)."""
    importer_fichier_factures(app, ecrire(tmp_path, "a.jsonl", [facture()]))
    rapport = importer_fichier_factures(app, ecrire(tmp_path, "b.jsonl", [
        facture(), facture("F01-26-05-0000999", dossier="D777777")]))
    assert (rapport.importes, rapport.ignores) == (1, 1)
    assert [f["dossier"] for f in etat(app)["factures"]] == ["D004512", "D777777"]
    assert [d["dossier"] for d in etat(app)["familles"]] == ["D004512", "D777777"]
    assert verifier(app).coherent


@pytest.mark.parametrize("parallele", [False, True])
def test_une_facture_lue_d_un_fichier_est_enregistree_comme_poussee_par_l_api(
        app: Application, tmp_path: Path, parallele: bool) -> None:
    """Un fichier (lu ici ou dans un second processus) et l'API : mêmes valeurs en base, dates et instant de
    création compris (une requête par date les trouve toutes)."""
    importer_fichier_factures(app, ecrire(tmp_path, "f.jsonl", [facture("F01-26-05-0000001")]), parallele=parallele)
    pousser_objets(app, [facture("F01-26-05-0000002")])
    with app.moteur.connect() as conn:
        lignes = conn.execute(text(
            "SELECT f.numero, d.numero, f.emise_le, f.echeance, f.periode, f.montant, f.civilite, f.nom, f.prenom, "
            "f.email, f.adresse1, f.adresse2, f.code_postal, f.ville, f.lignes, f.payeur_cle, f.cree_le, e.statut, "
            "e.reste_du FROM facture f JOIN dossier d ON d.id = f.dossier_id JOIN etat_facture e "
            "ON e.facture_id = f.id WHERE f.emise_le = '2026-04-27' AND f.cree_le > :veille ORDER BY f.numero"),
            {"veille": "2026-01-01"}).all()
    assert [r[0] for r in lignes] == ["F01-26-05-0000001", "F01-26-05-0000002"]
    assert lignes[0][1:16] == lignes[1][1:16] and lignes[0][17:] == lignes[1][17:] == ("emise", 7700)
    assert type(lignes[0][16]) is type(lignes[1][16])
    with app.sessions() as s:  # relus par leurs types : dates et instants bien formés des deux côtés
        relues = s.execute(select(Facture.emise_le, Facture.cree_le).order_by(Facture.numero)).all()
    assert [r.emise_le.isoformat() for r in relues] == ["2026-04-27", "2026-04-27"]
    assert relues[0].cree_le <= relues[1].cree_le and relues[0].cree_le.tzinfo is not None


def test_le_meme_numero_avec_un_autre_contenu_refuse_tout_le_fichier(app: Application, tmp_path: Path) -> None:
    importer_fichier_factures(app, ecrire(tmp_path, "a.jsonl", [facture()]))
    modifiee = facture(echeance="2026-06-27")
    with pytest.raises(FichierRefuse) as exc:
        importer_fichier_factures(app, ecrire(tmp_path, "b.jsonl", [facture("F01-26-05-0000200"), modifiee]))
    assert erreurs_de(exc) == ["b.jsonl:2: numero: la facture F01-26-05-0000123 existe déjà avec un autre "
                               "contenu : une facture ne se modifie pas, émettre un avoir"]
    assert compter(app, Facture) == 1


def test_un_fichier_refuse_ne_laisse_aucune_ligne_et_part_en_quarantaine(app: Application, tmp_path: Path) -> None:
    bons = [facture(f"F01-26-05-{i:07d}") for i in range(1, 30)]
    chemin = ecrire(tmp_path, "mauvais.jsonl", [*bons, facture("F01-26-05-9999999", regie="INCONNUE")])
    with pytest.raises(FichierRefuse):
        importer_fichier_factures(app, chemin)
    for modele in (Facture, EtatFacture, Dossier, MouvementCompte, Affectation, Avoir):
        assert compter(app, modele) == 0, modele.__name__
    with app.sessions() as s:
        recu = s.scalars(select(FichierRecu)).one()
    assert recu.statut == "refuse"
    assert recu.erreurs[0]["ligne"] == 30 and recu.erreurs[0]["champ"] == "regie"
    assert recu.chemin_quarantaine is not None
    assert Path(recu.chemin_quarantaine).read_bytes() == chemin.read_bytes()
    assert "regie" in Path(recu.chemin_quarantaine + ".erreurs.txt").read_text(encoding="utf-8")


# --- Les mauvaises entrées ------------------------------------------------------------------

def _ligne(champ: str, valeur: Any, rang: int = 0) -> dict[str, Any]:
    f = facture()
    f["lignes"][rang][champ] = valeur
    return f


@pytest.mark.parametrize("objet, champ, raison", [
    (facture(regie="SPORTS"), "regie", "n'est pas une régie de la configuration"),
    (_ligne("prestation", "PISCINE"), "lignes[1].prestation", "n'est pas une prestation"),
    (_ligne("montant", "42.000"), "lignes[1].montant", "plus de deux décimales"),
    (_ligne("prix_unitaire", "3,50"), "lignes[1].prix_unitaire", "virgule"),
    (_ligne("montant", "41.00"), "lignes[1].montant", "quantité × prix unitaire"),
    (_ligne("quantite", "0"), "lignes[1].quantite", "strictement positive"),
    (_ligne("montant", 42.0), "lignes[1].montant", "chaîne"),
    (facture(montant="78.00"), "montant", "n'est pas la somme des lignes"),
    (facture(echeance="2026-04-01"), "echeance", "précède la date d'émission"),
    (facture(emise_le="2026-02-31"), "emise_le", "pas une date du calendrier"),
    (facture(periode="2026-13"), "periode", "AAAA-MM"),
    (facture(periode="0000-05"), "periode", "AAAA-MM"),
    (facture("F-123"), "numero", "de 6 à 30 lettres ou chiffres"),
    (facture("F 2026 0001"), "numero", "1 à 30 caractères"),
    (facture(dossier=""), "dossier", "vide"),
    (facture(lignes=[]), "lignes", "au moins une ligne"),
    ({k: v for k, v in facture().items() if k != "echeance"}, "echeance", "obligatoire manquant"),
    (facture(remise="10%"), "remise", "champ inconnu"),
    (facture(payeur={**FACTURE["payeur"], "civilite": "MLLE"}), "payeur.civilite", "M ou MME"),
    (facture(payeur={k: v for k, v in FACTURE["payeur"].items() if k != "adresse"}), "payeur.adresse",
     "obligatoire"),
    ({"type": "devis", "numero": "X"}, "type", "« facture » ou « avoir »"),
    (avoir("A01-26-05-0000007", "F01-26-05-0000123", "-7.00"), "montant", "négatif"),
])
def test_chaque_mauvais_champ_refuse_le_fichier_en_nommant_ligne_et_champ(
        app: Application, tmp_path: Path, objet: dict[str, Any], champ: str, raison: str) -> None:
    chemin = ecrire(tmp_path, "f.jsonl", [facture("F01-26-05-0000001"), objet])
    with pytest.raises(FichierRefuse) as exc:
        importer_fichier_factures(app, chemin)
    lignes = erreurs_de(exc)
    assert any(e.startswith(f"f.jsonl:2: {champ}: ") and raison in e for e in lignes), lignes
    assert compter(app, Facture) == 0


def test_toutes_les_erreurs_sont_listees_pas_seulement_la_premiere(app: Application, tmp_path: Path) -> None:
    chemin = ecrire(tmp_path, "f.jsonl", [facture("F01-26-05-0000001", regie="X"), facture("F01-26-05-0000002"),
                                          facture("F01-26-05-0000003", montant="1.00")],
                    brut=['{"type": "facture", "numero": ', "pas du json"])
    with pytest.raises(FichierRefuse) as exc:
        importer_fichier_factures(app, chemin)
    lieux = [e.split(": ")[0] for e in erreurs_de(exc)]
    assert lieux == ["f.jsonl:1", "f.jsonl:3", "f.jsonl:4", "f.jsonl:5"]
    assert "JSON invalide" in erreurs_de(exc)[2]


def test_un_fichier_vide_est_refuse(app: Application, tmp_path: Path) -> None:
    chemin = tmp_path / "vide.jsonl"
    chemin.write_bytes(b"\n\n")
    with pytest.raises(FichierRefuse) as exc:
        importer_fichier_factures(app, chemin)
    assert erreurs_de(exc) == ["vide.jsonl: fichier vide : aucune facture ni aucun avoir"]


def test_un_fichier_en_latin1_avec_accents_est_refuse_en_nommant_la_ligne(app: Application, tmp_path: Path) -> None:
    chemin = tmp_path / "latin1.jsonl"
    texte = json.dumps(facture("F01-26-05-0000001")) + "\n" + json.dumps(facture(), ensure_ascii=False) + "\n"
    chemin.write_bytes(texte.encode("latin-1"))
    with pytest.raises(FichierRefuse) as exc:
        importer_fichier_factures(app, chemin)
    assert erreurs_de(exc) == ["latin1.jsonl:2: la ligne n'est pas en UTF-8 (fichier en Latin-1 ? "
                               "encodage attendu : UTF-8)"]


def test_un_bom_et_des_fins_de_ligne_crlf_sont_acceptes(app: Application, tmp_path: Path) -> None:
    chemin = tmp_path / "bom.jsonl"
    chemin.write_bytes(b"\xef\xbb\xbf" + json.dumps(facture(), ensure_ascii=False).encode() + b"\r\n")
    assert importer_fichier_factures(app, chemin).importes == 1


# --- Avoirs ----------------------------------------------------------------------------------

def test_un_avoir_reduit_ce_qui_reste_du(app: Application, tmp_path: Path) -> None:
    importer_fichier_factures(app, ecrire(tmp_path, "f.jsonl", [facture(), avoir("A-2026-0007", FACTURE["numero"],
                                                                                 "7.00")]))
    f = par_numero(app)[FACTURE["numero"]]
    assert (f["avoirs"], f["reste"], f["statut"]) == ("7.00", "70.00", "emise")
    assert etat(app)["familles"] == [{"dossier": "D004512", "du": "70.00", "credit": "0.00"}]
    with app.sessions() as s:
        parts = s.execute(select(Affectation.avoir_id.is_not(None), Affectation.parts)).all()
    assert [tuple(p) for p in parts] == [(True, [[1, 700]])]


def test_un_avoir_egal_a_la_facture_impayee_l_annule(app: Application, tmp_path: Path) -> None:
    importer_fichier_factures(app, ecrire(tmp_path, "f.jsonl", [facture(), avoir("A-2026-0007", FACTURE["numero"],
                                                                                 "77.00")]))
    f = par_numero(app)[FACTURE["numero"]]
    assert (f["avoirs"], f["reste"], f["statut"]) == ("77.00", "0.00", "annulee")
    assert etat(app)["familles"][0]["du"] == "0.00"


def test_un_avoir_plus_grand_que_le_reste_devient_credit_de_la_famille(app: Application, tmp_path: Path) -> None:
    importer_fichier_factures(app, ecrire(tmp_path, "f.jsonl", [facture()]))
    importer_fichier_factures(app, ecrire(tmp_path, "a.jsonl", [avoir("A-2026-0001", FACTURE["numero"], "50.00"),
                                                                avoir("A-2026-0002", FACTURE["numero"], "40.00")]))
    f = par_numero(app)[FACTURE["numero"]]
    assert (f["avoirs"], f["reste"]) == ("77.00", "0.00")
    assert etat(app)["familles"] == [{"dossier": "D004512", "du": "0.00", "credit": "13.00"}]


def test_un_avoir_sur_une_facture_inconnue_ou_titree_est_refuse(app: Application, tmp_path: Path) -> None:
    importer_fichier_factures(app, ecrire(tmp_path, "f.jsonl", [facture()]))
    with app.sessions() as s, s.begin():
        s.execute(EtatFacture.__table__.update().values(statut="titree"))
    with pytest.raises(FichierRefuse) as exc:
        importer_fichier_factures(app, ecrire(tmp_path, "a.jsonl", [
            avoir("A-2026-0001", FACTURE["numero"], "5.00"), avoir("A-2026-0002", "F-INCONNUE-1", "5.00")]))
    assert erreurs_de(exc) == [
        "a.jsonl:1: facture: la facture F01-26-05-0000123 est titrée : la réduction doit passer par le Trésor "
        "(titre d'annulation)",
        "a.jsonl:2: facture: la facture F-INCONNUE-1 est inconnue"]
    assert compter(app, Avoir) == 0


def test_les_factures_poussees_par_l_api_suivent_les_memes_regles(app: Application) -> None:
    assert pousser_objets(app, [facture()]).importes == 1
    assert pousser_objets(app, [facture()]).ignores == 1
    with pytest.raises(FichierRefuse):
        pousser_objets(app, [facture("F01-26-05-0000555"), facture("F01-26-05-0000556", montant="0.00")])
    assert compter(app, Facture) == 1


# --- L'historique du compte famille ---------------------------------------------------------

def test_l_historique_de_chaque_famille_egale_ses_factures_moins_ses_avoirs(app: Application, tmp_path: Path) -> None:
    from regie.jeu_essai import ecrire_jsonl, factures

    chemin = tmp_path / "jeu.jsonl"
    ecrire_jsonl(chemin, factures(400, dossiers=60))
    importer_fichier_factures(app, chemin)
    numeros = [f["numero"] for f in etat(app)["factures"]][:40]
    importer_fichier_factures(app, ecrire(tmp_path, "avoirs.jsonl", [
        avoir(f"A-2026-{i:04d}", n, f"{(i % 9) * 7 + 1}.50", emise_le="2026-05-20") for i, n in enumerate(numeros)]))
    verifier_invariants(app)


def verifier_invariants(app: Application) -> None:
    """montant = payé + avoirs + reste ; lignes = facture ; compte famille = factures − avoirs − payé."""
    with app.moteur.connect() as c:
        for fid, montant, lignes, montant_etat, paye, avoirs in c.execute(select(
                Facture.id, Facture.montant, Facture.lignes, EtatFacture.montant, EtatFacture.paye, EtatFacture.avoirs)
                .join(EtatFacture, EtatFacture.facture_id == Facture.id)):
            assert 0 <= paye + avoirs <= montant == montant_etat == sum(lg.montant for lg in lignes)
            # Chaque ligne : ce que ses parts lui apportent, jamais au-delà de son montant.
            par_ligne = [[0, 0] for _ in lignes]
            for parts, de_paiement in c.execute(select(Affectation.parts, Affectation.paiement_id.is_not(None))
                                                .where(Affectation.facture_id == fid)):
                for rang, m in parts:
                    par_ligne[rang - 1][0 if de_paiement else 1] += m
            assert all(p >= 0 and a >= 0 and p + a <= lg.montant for (p, a), lg in zip(par_ligne, lignes, strict=True))
            assert (sum(p for p, _ in par_ligne), sum(a for _, a in par_ligne)) == (paye, avoirs)
            for montant_aff, parts in c.execute(select(Affectation.montant, Affectation.parts)
                                                .where(Affectation.facture_id == fid)):
                assert montant_aff == sum(m for _, m in parts)
            affecte = c.execute(select(func.coalesce(func.sum(Affectation.montant), 0))
                                .where(Affectation.facture_id == fid, Affectation.avoir_id.is_not(None))).scalar()
            assert affecte == avoirs
        reste = EtatFacture.montant - EtatFacture.paye - EtatFacture.avoirs
        du_attendu = dict(c.execute(select(Facture.dossier_id, func.sum(reste))
                                    .join(EtatFacture, EtatFacture.facture_id == Facture.id)
                                    .where(EtatFacture.statut != "titree").group_by(Facture.dossier_id)).all())
        # Le journal, tel que le lisent `regie etat` et les pages (émissions, affectations du moteur,
        # mouvements), et, dossier par dossier, tel que le déroule `regie compte`.
        soldes = soldes_par_dossier()
        du_journal = {d: int(du) for d, du in c.execute(select(soldes.c.dossier_id, soldes.c.du))}
        assert {k: v for k, v in du_journal.items() if v} == {k: v for k, v in du_attendu.items() if v}
        for dossier_id in sorted(du_journal)[:50]:
            lignes = journal(c, dossier_id)
            assert lignes[-1].du == du_journal[dossier_id]
        # Le crédit : avoirs au-delà des factures et excédents de paiements gardés pour la famille.
        credit_attendu: dict[int, int] = {}
        for dossier_id, credit in [*c.execute(select(Avoir.dossier_id, func.sum(Avoir.montant - Avoir.affecte))
                                              .group_by(Avoir.dossier_id)).all(),
                                   *c.execute(select(Paiement.dossier_id, func.sum(Paiement.en_credit))
                                              .where(Paiement.dossier_id.is_not(None))
                                              .group_by(Paiement.dossier_id)).all()]:
            credit_attendu[dossier_id] = credit_attendu.get(dossier_id, 0) + int(credit)
        credit_journal = dict(c.execute(select(MouvementCompte.dossier_id, func.sum(MouvementCompte.delta_credit))
                                        .group_by(MouvementCompte.dossier_id)).all())
        assert {k: v for k, v in credit_journal.items() if v} == {k: v for k, v in credit_attendu.items() if v}
    # Le contrôle de `regie verifier` dit de même.
    bilan = verifier(app)
    assert bilan.coherent, bilan.ecarts


# --- La commande ------------------------------------------------------------------------------

def test_la_commande_dit_ce_qu_elle_a_fait_et_sort_avec_les_codes_du_contrat(regie_cli, tmp_path: Path) -> None:
    bon = ecrire(tmp_path, "bon.jsonl", [facture()])
    res = regie_cli("factures", "importer", str(bon))
    assert res.returncode == 0, res.stderr
    assert "bon.jsonl : 1 enregistrement(s) importé(s) (1 factures)" in res.stdout
    res = regie_cli("factures", "importer", str(bon))
    assert res.returncode == 0 and "déjà importé" in res.stdout
    mauvais = ecrire(tmp_path, "mauvais.jsonl", [facture("F01-26-05-0000002", regie="X"),
                                                 facture("F01-26-05-0000003", montant="1,00")])
    res = regie_cli("factures", "importer", str(mauvais))
    assert res.returncode == 1
    lignes = res.stderr.strip().splitlines()
    assert "mauvais.jsonl:1: regie: « X » n'est pas une régie de la configuration" in lignes
    assert any(x.startswith("mauvais.jsonl:2: montant: ") and "virgule" in x for x in lignes)
    assert regie_cli("factures", "importer", str(tmp_path / "absent.jsonl")).returncode == 2
    assert regie_cli("factures").returncode == 2
    res = regie_cli("etat", "--json")
    assert res.returncode == 0
    assert json.loads(res.stdout)["factures"][0]["numero"] == "F01-26-05-0000123"


def test_la_commande_sort_sans_rien_perdre_ni_laisser_derriere_elle(app: Application, regie_cli,  # type: ignore[no-untyped-def]
                                                                    tmp_path: Path) -> None:
    """La commande sort sans démonter l'interprète (`regie.cli.programme`) : sa sortie arrive entière, son code
    est celui de la commande, et sous SQLite la dernière connexion fermée range le journal (plus de WAL)."""
    objets = [facture(f"F01-26-05-{i:07d}") for i in range(1, 301)]
    res = regie_cli("factures", "importer", str(ecrire(tmp_path, "f.jsonl", objets)))
    assert res.returncode == 0, res.stderr
    app.moteur.dispose()  # celle du test fermée : la commande est seule sur la base
    res = regie_cli("etat", "--json")
    assert res.returncode == 0
    assert len(json.loads(res.stdout)["factures"]) == 300  # des dizaines de Kio, vidés avant la sortie
    if app.moteur.dialect.name == "sqlite":
        base = Path(app.moteur.url.database or "")
        assert base.exists() and not base.with_name(base.name + "-wal").exists()
    assert regie_cli("factures", "importer", str(ecrire(tmp_path, "m.jsonl", [facture(regie="X")]))).returncode == 1


@pytest.fixture
def empreinte_pendant_l_import(monkeypatch: pytest.MonkeyPatch) -> None:
    """Chaque fichier traité comme un gros : son SHA-256 calculé dans un fil pendant l'import."""
    from regie.services import fichiers

    monkeypatch.setattr(fichiers, "SEUIL_EMPREINTE_PENDANT_L_IMPORT", 0)


@pytest.mark.usefixtures("empreinte_pendant_l_import")
def test_un_gros_fichier_recoit_a_la_fin_l_empreinte_calculee_pendant_son_import(
        app: Application, tmp_path: Path) -> None:
    """Inscrit sous une empreinte provisoire, il garde la sienne ; le même contenu sous un autre nom, reconnu
    une fois son empreinte connue, est annulé en entier : rien ne change, pas même la liste des fichiers."""
    chemin = ecrire(tmp_path, "f.jsonl", [facture(), facture("F01-26-05-0000124")])
    rapport = importer_fichier_factures(app, chemin)
    assert (rapport.deja_importe, rapport.importes) == (False, 2)
    with app.sessions() as s:
        assert [tuple(r) for r in s.execute(select(FichierRecu.nom, FichierRecu.sha256, FichierRecu.taille,
                                                   FichierRecu.statut))] == [
            ("f.jsonl", hashlib.sha256(chemin.read_bytes()).hexdigest(), chemin.stat().st_size, "importe")]
    avant = etat(app)
    copie = tmp_path / "copie.jsonl"
    copie.write_bytes(chemin.read_bytes())
    with capture_logs() as evenements:
        rapport = importer_fichier_factures(app, copie)
    assert rapport.deja_importe and "déjà importé" in rapport.message()
    assert [e["reconnu_par"] for e in evenements if e["event"] == "fichier_deja_importe"] == ["sha256"]
    assert etat(app) == avant
    assert (compter(app, Facture), compter(app, FichierRecu)) == (2, 1)


@pytest.mark.usefixtures("empreinte_pendant_l_import")
def test_un_gros_fichier_refuse_est_mis_en_quarantaine_sous_sa_propre_empreinte(
        app: Application, tmp_path: Path) -> None:
    chemin = ecrire(tmp_path, "f.jsonl", [facture()], brut=["{pas du json"])
    with pytest.raises(FichierRefuse):
        importer_fichier_factures(app, chemin)
    with app.sessions() as s:
        assert [tuple(r) for r in s.execute(select(FichierRecu.sha256, FichierRecu.statut))] == [
            (hashlib.sha256(chemin.read_bytes()).hexdigest(), "refuse")]
    assert compter(app, Facture) == 0
