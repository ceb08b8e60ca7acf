"""La boîte de réception : relever un dépôt (dossier local et vrai sshd), importer par canal, ranger."""

from __future__ import annotations

import argparse
import json
import os
import sys
import types
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from connecteurs.cfonb.cfonb120 import ecrire_montant
from connecteurs.sftp import CleHoteInconnue, Depot, DepotLocal, DepotSftp, FichierInstable
from regie.application import Application
from regie.commandes_boite import ajouter_commandes
from regie.registre.modeles import Facture, FichierRecu, Paiement
from regie.services import boite_reception
from regie.services.boite_reception import (
    BilanReleve,
    EntreeBoite,
    Issue,
    depot_depuis_configuration,
    detecter_canal,
    relever,
)
from regie.services.fichiers import RapportImport
from tests.pes_schema import exemple
from tests.sshd import ServeurSshd, generer_cle, port_libre, sshd_serveur  # noqa: F401
from tests.test_factures_import import facture

BOM = "\ufeff"
ENTETE_CHEQUES = "remise;numero_cheque;tireur;banque;montant;facture;recu_le"
ENTETE_CESU = "remise;numero_titre;support;emetteur;millesime;valeur;facture;recu_le"
ENTETE_CRCESU = "remise;rembourse_le;nombre_titres;montant_titres;frais;montant_verse"
ENTETE_BURALISTE = "transaction;date_heure;datamatrix;montant;mode;point_de_vente"
COMPTE_DFT = "00012345678"  # régie ENFANCE de exemples/regie.toml


# --- Des fichiers écrits comme les systèmes les écrivent ------------------------------------------


def tableur(*lignes: str) -> bytes:
    """CSV d'un tableur sous Windows : BOM UTF-8 et CR LF."""
    return (BOM + "\r\n".join(lignes) + "\r\n").encode("utf-8")


def factures_jsonl(*numeros: str) -> bytes:
    return "".join(json.dumps(facture(n), ensure_ascii=False) + "\n" for n in numeros).encode("utf-8")


def remise_cheques(remise: str, *cheques: tuple[str, str, str]) -> bytes:
    return tableur(ENTETE_CHEQUES, *(f"{remise};{numero};MARTIN CLAIRE;CCM;{montant};{fac};2026-05-15"
                                     for numero, montant, fac in cheques))


def titres_cesu(remise: str, numero_titre: str, valeur: str, fac: str) -> bytes:
    return tableur(ENTETE_CESU, f"{remise};{numero_titre};PAPIER;EDENRED;2026;{valeur};{fac};2026-05-14")


def _cfonb(code: str, jjmmaa: str, centimes: int) -> str:
    return f"{code}30001    00713EUR2 {COMPTE_DFT}  {jjmmaa}{' ' * 50}{ecrire_montant(centimes)}{' ' * 16}"


def _cfonb_mvt(jjmmaa: str, centimes: int, libelle: str, ecriture: str) -> str:
    return (f"0430001000500713EUR2 {COMPTE_DFT}05{jjmmaa}  {jjmmaa}{libelle:<31.31}  {ecriture}  "
            f"{ecrire_montant(centimes)}{'REF' + jjmmaa:<16}")


def releve_cfonb(*, fins_de_ligne: bool = False) -> bytes:
    """Un relevé DFT en ISO-8859-1, sans fins de ligne comme souvent."""
    enregistrements = [_cfonb("01", "140526", 100_000),
                       _cfonb_mvt("150526", 1_500, "VIR F01-26-05-0000123 FAMILLE", "0000001"),
                       _cfonb("07", "150526", 101_500)]
    return (("\r\n" if fins_de_ligne else "").join(enregistrements)).encode("latin-1")


PES_RETOUR = exemple("PES_Retour_recette_minimal.xml")
PES_ACQUIT = exemple("PES_Acquit_minimal.xml")


# --- Bancs : un dépôt et le chemin local où ses fichiers « distants » se trouvent ----------------


@dataclass
class Banc:
    depot: Depot
    racine: Path
    genre: str
    fabrique: Callable[[], Depot]  # un dépôt neuf sur la même racine (relevé suivant)

    def ecrire(self, chemin: str, contenu: bytes) -> Path:
        fichier = self.racine / chemin
        fichier.parent.mkdir(parents=True, exist_ok=True)
        fichier.write_bytes(contenu)
        return fichier

    def noms(self, dossier: str = "") -> list[str]:
        chemin = self.racine / dossier
        return sorted(p.name for p in chemin.iterdir() if p.is_file()) if chemin.is_dir() else []


def depot_sftp(sshd: ServeurSshd, racine: Path, *, known_hosts: Path | None = None) -> DepotSftp:
    # Attentes minuscules : une coupure se constate vite en test.
    return DepotSftp(sshd.hote, sshd.port, sshd.utilisateur, sshd.cle_client, known_hosts or sshd.known_hosts,
                     delai_s=5, tentatives=2, attente_initiale_s=0.01, racine=str(racine))


@pytest.fixture
def sshd(sshd_serveur: ServeurSshd) -> ServeurSshd:  # noqa: F811
    sshd_serveur.demarrer()  # un test précédent a pu le laisser arrêté
    return sshd_serveur


@pytest.fixture
def banc_sftp(sshd: ServeurSshd) -> Iterator[Banc]:
    racine = sshd.racine / uuid.uuid4().hex[:12]
    racine.mkdir()
    with depot_sftp(sshd, racine) as depot:
        yield Banc(depot, racine, "sftp", lambda: depot_sftp(sshd, racine))


@pytest.fixture(params=["local", "sftp"])
def banc(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Banc]:
    if request.param == "sftp":
        yield request.getfixturevalue("banc_sftp")
        return
    racine = tmp_path / "boite"
    with DepotLocal(racine) as depot:
        yield Banc(depot, racine, "local", lambda: DepotLocal(racine))


@pytest.fixture
def acquits(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """Le service des acquits (exports) remplacé par un témoin : la boîte ne fait que router."""
    recus: list[Path] = []
    module = types.ModuleType(boite_reception.MODULE_ACQUITS)

    def importer_acquit(_app: Application, chemin: Path, origine: str | None = None) -> RapportImport:
        assert origine is not None and chemin.name in origine
        recus.append(chemin)
        return RapportImport(chemin.name, "acquit", importes=1)

    module.importer_acquit = importer_acquit  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, boite_reception.MODULE_ACQUITS, module)
    return recus


def compter(app: Application, modele: Any) -> int:
    with app.moteur.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(modele)).scalar_one())


def fichiers_recus(app: Application) -> list[tuple[str, str, str]]:
    with app.moteur.connect() as conn:
        return sorted((r.nom, r.canal, r.statut) for r in conn.execute(
            select(FichierRecu.nom, FichierRecu.canal, FichierRecu.statut)))


def sorts(bilan: BilanReleve) -> dict[str, tuple[str | None, Issue, str | None]]:
    return {f.nom: (f.canal, f.issue, f.deplace_vers) for f in bilan.fichiers}


RACINE = [EntreeBoite("")]
# Ce qui ne dépend pas du moteur de base ne tourne que sur SQLite (le temps des tests compte).
SQLITE_SEUL = pytest.mark.parametrize("url_base", ["sqlite"], indirect=True)


# --- Reconnaître le canal au contenu (sans base) ----------------------------------------------------


@pytest.mark.parametrize(("contenu", "canal"), [
    (factures_jsonl("F01-26-05-0000123"), "factures"),
    (b'{"type": "avoir", "numero": "A1"}\r\n', "factures"),
    (remise_cheques("RC-1", ("1234567", "42.00", "F1")), "cheque"),
    (titres_cesu("R-1", "0412345678901", "20.00", "F1"), "cesu"),
    (tableur(ENTETE_CRCESU, "R-1;2026-06-10;1;20.00;0.00;20.00"), "crcesu"),
    ((ENTETE_BURALISTE + "\n").encode(), "buraliste"),  # sans BOM, LF
    (releve_cfonb(), "cfonb"),
    (releve_cfonb(fins_de_ligne=True), "cfonb"),
    (releve_cfonb()[:120], "cfonb"),
    (PES_RETOUR, "pes-retour"),
    (PES_ACQUIT, "acquit"),
    (b'\xef\xbb\xbf<?xml version="1.0"?>\n<!-- retour -->\n<PES_Retour><Enveloppe/>', "pes-retour"),
    (b'<!DOCTYPE n:PES_ACQUIT [<!ENTITY e "x">]>\n<n:PES_ACQUIT xmlns:n="urn:x"/>', "acquit"),
])
def test_le_canal_se_reconnait_au_contenu(contenu: bytes, canal: str) -> None:
    assert detecter_canal(contenu).canal == canal


@pytest.mark.parametrize(("contenu", "raison"), [
    (b"bonjour\n", "contenu non reconnu"),
    (b"", "contenu non reconnu"),
    (b'<?xml version="1.0"?><PES_Aller/>', "racine « PES_Aller » : ni PES_Retour ni PES_ACQUIT"),
    (b"<<<", "élément racine est illisible"),
    (b'{"numero": "F1"}\n', "pas un objet à « type »"),
    (b"[1, 2]\n", "contenu non reconnu"),
    ((ENTETE_CHEQUES + ";extra\r\n").encode(), "en-tête CSV connu"),
    (b"01" + b" " * 100 + b"\n", "contenu non reconnu"),  # 01 mais pas 120 caractères
    (releve_cfonb()[:120] + b"XX", "contenu non reconnu"),
])
def test_un_contenu_inconnu_est_nomme_avec_une_raison_en_francais(contenu: bytes, raison: str) -> None:
    detection = detecter_canal(contenu)
    assert detection.canal is None
    assert raison in detection.raison


def test_un_prologue_hostile_ne_bloque_pas_la_reconnaissance() -> None:
    # Avec une expression à retours arrière, ces débuts de fichier prendraient des heures.
    for hostile in (b"<?" + b"a?>" * 300_000 + b"<?", b"<!--" + b"-->" * 300_000 + b"<!-- ",
                    b"<" + b"a" * 1_000_000, b"{" + b"[" * 100_000):
        assert detecter_canal(hostile).canal is None


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400) | st.builds(lambda t, s: t + s, st.sampled_from(
    [b"<", b"{", b"01", b"\xef\xbb\xbf", (ENTETE_CHEQUES + "\r\n").encode(), b"<?xml "]), st.binary(max_size=300)))
def test_la_reconnaissance_ne_leve_jamais(contenu: bytes) -> None:
    detection = detecter_canal(contenu)
    assert detection.canal in (None, *boite_reception.CANAUX)


def test_une_entree_de_canal_inconnu_est_refusee_a_la_configuration() -> None:
    with pytest.raises(ValueError, match="canal « virement » inconnu pour le dossier « retour »"):
        EntreeBoite("retour", "virement")


def test_un_depot_sftp_exige_cle_et_known_hosts() -> None:
    with pytest.raises(ValueError, match="clé privée, known_hosts manquant"):
        depot_depuis_configuration(hote="sftp.example.fr", utilisateur="regie")


# --- Relever, importer, ranger -----------------------------------------------------------------------


def test_les_fichiers_de_plusieurs_canaux_sont_importes_par_leur_canal_et_ranges_dans_traites(
        app: Application, banc: Banc, acquits: list[Path]) -> None:
    banc.ecrire("factures_2026-05.jsonl", factures_jsonl("F01-26-05-0000123", "F01-26-05-0000124"))
    banc.ecrire("bordereau_RC-2026-031.csv", remise_cheques("RC-2026-031", ("1234567", "42.00", "F01-26-05-0000123")))
    banc.ecrire("cesu_2026-05-14.csv", titres_cesu("R-2026-014", "0412345678901", "20.00", "F01-26-05-0000124"))
    banc.ecrire("RELEVE.DFT", releve_cfonb())
    banc.ecrire("PES2R_RCE_001.xml", PES_RETOUR)
    banc.ecrire("ACQUIT_PESALR2_001.xml", PES_ACQUIT)

    bilan = relever(app, banc.depot, RACINE)

    assert sorts(bilan) == {
        "ACQUIT_PESALR2_001.xml": ("acquit", Issue.IMPORTE, "traites/ACQUIT_PESALR2_001.xml"),
        "PES2R_RCE_001.xml": ("pes-retour", Issue.IMPORTE, "traites/PES2R_RCE_001.xml"),
        "RELEVE.DFT": ("cfonb", Issue.IMPORTE, "traites/RELEVE.DFT"),
        "bordereau_RC-2026-031.csv": ("cheque", Issue.IMPORTE, "traites/bordereau_RC-2026-031.csv"),
        "cesu_2026-05-14.csv": ("cesu", Issue.IMPORTE, "traites/cesu_2026-05-14.csv"),
        "factures_2026-05.jsonl": ("factures", Issue.IMPORTE, "traites/factures_2026-05.jsonl"),
    }
    assert bilan.complet and bilan.interruption is None
    assert banc.noms() == []
    assert banc.noms("traites") == sorted(sorts(bilan))
    assert [p.name for p in acquits] == ["ACQUIT_PESALR2_001.xml"]
    assert fichiers_recus(app) == [
        ("PES2R_RCE_001.xml", "pes_retour", "importe"), ("RELEVE.DFT", "cfonb", "importe"),
        ("bordereau_RC-2026-031.csv", "cheque", "importe"), ("cesu_2026-05-14.csv", "cesu", "importe"),
        ("factures_2026-05.jsonl", "factures", "importe")]
    assert compter(app, Facture) == 2
    with app.moteur.connect() as conn:
        canaux = set(conn.execute(select(Paiement.canal)).scalars())
        origine = conn.execute(select(FichierRecu.origine).where(FichierRecu.canal == "cheque")).scalar_one()
    assert {"cheque", "cesu", "virement", "pes_retour"} <= canaux
    assert origine == f"{boite_reception.decrire_depot(banc.depot)}/bordereau_RC-2026-031.csv"
    assert origine.startswith("sftp://" if banc.genre == "sftp" else "local:/")
    assert bilan.rapprochement is not None  # une seule passe de rapprochement, après tous les fichiers
    assert list((app.env.donnees / "recus").rglob("*.*")) == []  # copies de travail effacées


def test_un_second_releve_ne_change_rien_et_un_contenu_deja_importe_est_seulement_range(
        app: Application, banc: Banc) -> None:
    cheques = remise_cheques("RC-2026-031", ("1234567", "42.00", "F01-26-05-0000123"))
    banc.ecrire("bordereau_RC-2026-031.csv", cheques)
    banc.ecrire("factures.jsonl", factures_jsonl("F01-26-05-0000123"))
    relever(app, banc.depot, RACINE)
    avant = (fichiers_recus(app), compter(app, Paiement), compter(app, Facture))

    assert relever(app, banc.depot, RACINE).message() == "Boîte de réception : aucun fichier nouveau"

    banc.ecrire("bordereau_RC-2026-031.csv", cheques)  # le partenaire le redépose
    bilan = relever(app, banc.depot, RACINE)
    assert sorts(bilan) == {"bordereau_RC-2026-031.csv": ("cheque", Issue.DEJA_IMPORTE,
                                                          "traites/bordereau_RC-2026-031-2.csv")}
    assert (fichiers_recus(app), compter(app, Paiement), compter(app, Facture)) == avant
    assert banc.noms("traites") == ["bordereau_RC-2026-031-2.csv", "bordereau_RC-2026-031.csv", "factures.jsonl"]


def test_un_fichier_refuse_est_garde_en_quarantaine_avec_ses_erreurs_et_range_dans_refuses(
        app: Application, banc: Banc) -> None:
    banc.ecrire("bordereau_RC-2026-031.csv", remise_cheques("RC-2026-031", ("1234567", "42,00", "F1"),
                                                            ("7654321", "10.00", "F2")))
    banc.ecrire("bordereau_RC-2026-032.csv", remise_cheques("RC-2026-032", ("2222222", "15.00", "F3")))
    banc.ecrire("lisez-moi.txt", b"Bonjour, voici les fichiers du mois.\n")

    bilan = relever(app, banc.depot, RACINE)

    resultats = {f.nom: f for f in bilan.fichiers}
    refuse = resultats["bordereau_RC-2026-031.csv"]
    assert (refuse.issue, refuse.deplace_vers) == (Issue.REFUSE, "refuses/bordereau_RC-2026-031.csv")
    assert refuse.erreurs and all(e.startswith("bordereau_RC-2026-031.csv:2: montant:") for e in refuse.erreurs)
    assert refuse.quarantaine is not None
    copie = Path(refuse.quarantaine)
    assert copie.parent == app.env.donnees / "quarantaine" / "cheque"
    assert copie.read_bytes() == (banc.racine / "refuses" / "bordereau_RC-2026-031.csv").read_bytes()
    assert "montant" in copie.with_name(copie.name + ".erreurs.txt").read_text(encoding="utf-8")

    inconnu = resultats["lisez-moi.txt"]
    assert (inconnu.canal, inconnu.issue, inconnu.deplace_vers) == ("inconnu", Issue.REFUSE, "refuses/lisez-moi.txt")
    assert "contenu non reconnu" in inconnu.erreurs[0]
    assert inconnu.quarantaine is not None and Path(inconnu.quarantaine).parent.name == "inconnu"

    assert resultats["bordereau_RC-2026-032.csv"].issue is Issue.IMPORTE  # les autres continuent
    assert not bilan.complet
    assert fichiers_recus(app) == [("bordereau_RC-2026-031.csv", "cheque", "refuse"),
                                   ("bordereau_RC-2026-032.csv", "cheque", "importe"),
                                   ("lisez-moi.txt", "inconnu", "refuse")]
    with app.moteur.connect() as conn:
        erreurs = conn.execute(select(FichierRecu.erreurs).where(FichierRecu.statut == "refuse",
                                                                 FichierRecu.canal == "cheque")).scalar_one()
        references = list(conn.execute(select(Paiement.reference)).scalars())
    assert erreurs and erreurs[0]["ligne"] == 2 and erreurs[0]["champ"] == "montant"
    assert references == ["RC-2026-032/2222222"]  # rien du fichier refusé
    assert banc.noms() == []  # rien n'est retéléchargé au quart d'heure suivant
    assert relever(app, banc.depot, RACINE).fichiers == []


def test_un_acquit_va_au_vrai_service_des_acquits_qui_refuse_celui_d_un_envoi_inconnu(
        app: Application, tmp_path: Path) -> None:
    racine = tmp_path / "retour"
    racine.mkdir()
    (racine / "ACQUIT_PESALR2_001.xml").write_bytes(PES_ACQUIT)

    with DepotLocal(racine) as depot:
        bilan = relever(app, depot, RACINE)

    [resultat] = bilan.fichiers
    assert (resultat.canal, resultat.issue, resultat.deplace_vers) == (
        "acquit", Issue.REFUSE, "refuses/ACQUIT_PESALR2_001.xml")
    assert any("NomFic" in e for e in resultat.erreurs)
    assert fichiers_recus(app) == [("ACQUIT_PESALR2_001.xml", "acquit", "refuse")]
    assert resultat.quarantaine is not None and Path(resultat.quarantaine).parent.name == "acquit"


@SQLITE_SEUL
def test_le_canal_et_le_motif_d_une_entree_choisissent_les_fichiers_et_leur_import(
        app: Application, banc: Banc, acquits: list[Path]) -> None:
    banc.ecrire("retour/PES_ACQUIT_001.xml", PES_ACQUIT)
    banc.ecrire("retour/PES2R_002.xml", PES_RETOUR)
    banc.ecrire("retour/notes.txt", b"rien a voir")
    banc.ecrire("cheques/remise.txt", remise_cheques("RC-9", ("1234567", "42.00", "F1")))  # nom sans .csv
    entrees = [EntreeBoite("retour", "acquit", "PES_ACQUIT*"), EntreeBoite("retour", "pes-retour", "*.xml"),
               EntreeBoite("cheques", "cheque")]

    bilan = relever(app, banc.depot, entrees)

    assert sorts(bilan) == {"PES_ACQUIT_001.xml": ("acquit", Issue.IMPORTE, "traites/PES_ACQUIT_001.xml"),
                            "PES2R_002.xml": ("pes-retour", Issue.IMPORTE, "traites/PES2R_002.xml"),
                            "remise.txt": ("cheque", Issue.IMPORTE, "traites/remise.txt")}
    assert banc.noms("retour") == ["notes.txt"]  # d'aucun motif : laissé tel quel
    assert len(acquits) == 1


@SQLITE_SEUL
def test_un_dossier_introuvable_est_signale_sans_arreter_les_autres(app: Application, banc: Banc) -> None:
    banc.ecrire("cheques/remise.csv", remise_cheques("RC-9", ("1234567", "42.00", "F1")))

    bilan = relever(app, banc.depot, [EntreeBoite("retuor"), EntreeBoite("cheques")])

    assert bilan.erreurs_entrees == ["retuor : dossier introuvable dans le dépôt (vérifiez la configuration)"]
    assert sorts(bilan) == {"remise.csv": ("cheque", Issue.IMPORTE, "traites/remise.csv")}


def test_un_fichier_apparu_pendant_le_releve_est_pris_au_passage_suivant(app: Application, banc: Banc) -> None:
    banc.ecrire("a_remise.csv", remise_cheques("RC-1", ("1111111", "10.00", "F1")))
    banc.ecrire("b_remise.csv", remise_cheques("RC-2", ("2222222", "20.00", "F2")))
    espion = Espion(banc.depot)
    espion.avant_telecharger["a_remise.csv"] = lambda: banc.ecrire(
        "c_remise.csv", remise_cheques("RC-3", ("3333333", "30.00", "F3")))

    bilan = relever(app, espion.comme_depot(), RACINE)

    assert sorted(sorts(bilan)) == ["a_remise.csv", "b_remise.csv"]
    assert banc.noms() == ["c_remise.csv"]
    suivant = relever(app, banc.depot, RACINE)
    assert sorts(suivant) == {"c_remise.csv": ("cheque", Issue.IMPORTE, "traites/c_remise.csv")}
    assert compter(app, Paiement) == 3


@SQLITE_SEUL
def test_un_fichier_en_cours_d_ecriture_est_reporte_et_les_autres_continuent(app: Application, banc: Banc) -> None:
    banc.ecrire("a_remise.csv", remise_cheques("RC-1", ("1111111", "10.00", "F1")))
    banc.ecrire("b_remise.csv", remise_cheques("RC-2", ("2222222", "20.00", "F2")))
    espion = Espion(banc.depot)

    def instable() -> None:
        raise FichierInstable("a_remise.csv : le fichier a changé pendant sa lecture")

    espion.avant_telecharger["a_remise.csv"] = instable

    bilan = relever(app, espion.comme_depot(), RACINE)

    assert sorts(bilan) == {"a_remise.csv": (None, Issue.REPORTE, None),
                            "b_remise.csv": ("cheque", Issue.IMPORTE, "traites/b_remise.csv")}
    assert bilan.complet  # reporté n'est pas une faute : il sera pris au passage suivant
    assert banc.noms() == ["a_remise.csv"]


@SQLITE_SEUL
def test_une_erreur_inattendue_laisse_le_fichier_en_place_sans_arreter_les_autres(
        app: Application, banc: Banc, monkeypatch: pytest.MonkeyPatch) -> None:
    banc.ecrire("a_factures.jsonl", factures_jsonl("F01-26-05-0000123"))
    banc.ecrire("b_remise.csv", remise_cheques("RC-2", ("2222222", "20.00", "F2")))

    def en_panne(*_args: object, **_kwargs: object) -> RapportImport:
        raise RuntimeError("base indisponible\ndétail sur plusieurs lignes")

    monkeypatch.setattr("regie.services.factures.importer_fichier_factures", en_panne)
    bilan = relever(app, banc.depot, RACINE)

    resultats = {f.nom: f for f in bilan.fichiers}
    assert resultats["a_factures.jsonl"].issue is Issue.ERREUR
    assert resultats["a_factures.jsonl"].message == ("import en erreur, laissé en place "
                                                     "(RuntimeError: base indisponible)")
    assert resultats["b_remise.csv"].issue is Issue.IMPORTE
    assert banc.noms() == ["a_factures.jsonl"]
    assert not bilan.complet


# --- Le vrai serveur : clé d'hôte et coupures ---------------------------------------------------------


class Espion:
    """Un dépôt réel avec des crochets avant certaines opérations (couper le serveur, déposer...)."""

    def __init__(self, depot: Depot) -> None:
        self.depot = depot
        self.avant_telecharger: dict[str, Callable[[], object]] = {}
        self.avant_deplacer: dict[str, Callable[[], object]] = {}

    def comme_depot(self) -> Depot:
        return cast(Depot, self)

    def __getattr__(self, nom: str) -> Any:
        return getattr(self.depot, nom)

    def telecharger(self, dossier: str, nom: str, destination: Path) -> Any:
        if crochet := self.avant_telecharger.pop(nom, None):
            crochet()
        return self.depot.telecharger(dossier, nom, destination)

    def deplacer(self, dossier: str, nom: str, vers_dossier: str) -> str:
        if crochet := self.avant_deplacer.pop(nom, None):
            crochet()
        return self.depot.deplacer(dossier, nom, vers_dossier)


def test_une_cle_d_hote_inconnue_arrete_le_releve_avant_tout_import(
        app: Application, sshd: ServeurSshd, banc_sftp: Banc, tmp_path: Path) -> None:
    banc_sftp.ecrire("factures.jsonl", factures_jsonl("F01-26-05-0000123"))
    faux = tmp_path / "known_hosts_faux"
    faux.write_text(sshd.ligne_known_hosts(generer_cle(tmp_path / "autre_cle_hote")))

    depot = depot_sftp(sshd, banc_sftp.racine, known_hosts=faux)  # la connexion se fait au premier besoin
    with pytest.raises(CleHoteInconnue, match="la clé d'hôte a changé") as exc:
        relever(app, depot, RACINE)
    depot.fermer()

    assert sshd.empreinte in str(exc.value)
    assert fichiers_recus(app) == [] and compter(app, Facture) == 0
    assert banc_sftp.noms() == ["factures.jsonl"]
    assert not (app.env.donnees / "recus").exists() or list((app.env.donnees / "recus").rglob("*.*")) == []


@pytest.mark.parametrize("moment", ["avant_telecharger", "avant_deplacer"])
def test_une_coupure_du_serveur_en_plein_releve_ne_laisse_rien_a_moitie_et_le_suivant_termine(
        app: Application, sshd: ServeurSshd, banc_sftp: Banc, moment: str) -> None:
    banc_sftp.ecrire("a_remise.csv", remise_cheques("RC-1", ("1111111", "10.00", "F1"), ("1111112", "11.00", "F1")))
    banc_sftp.ecrire("b_remise.csv", remise_cheques("RC-2", ("2222221", "20.00", "F2"), ("2222222", "21.00", "F2")))
    banc_sftp.ecrire("c_remise.csv", remise_cheques("RC-3", ("3333331", "30.00", "F3")))
    espion = Espion(banc_sftp.depot)
    getattr(espion, moment)["b_remise.csv"] = sshd.tuer  # sshd tué net, sessions comprises

    bilan = relever(app, espion.comme_depot(), RACINE)

    assert bilan.interruption is not None and "injoignable" in bilan.interruption
    b_importe = moment == "avant_deplacer"
    attendus: dict[str, tuple[str | None, Issue, str | None]] = {
        "a_remise.csv": ("cheque", Issue.IMPORTE, "traites/a_remise.csv")}
    if b_importe:
        attendus["b_remise.csv"] = ("cheque", Issue.IMPORTE, None)
    assert sorts(bilan) == attendus
    # Chaque fichier entier ou pas du tout : a (2 chèques), b entier seulement s'il a été importé.
    assert compter(app, Paiement) == 2 + (2 if b_importe else 0)
    assert [n for n, _c, _s in fichiers_recus(app)] == ["a_remise.csv", *(["b_remise.csv"] if b_importe else [])]
    assert banc_sftp.noms() == ["b_remise.csv", "c_remise.csv"]

    sshd.demarrer()
    with banc_sftp.fabrique() as depot:
        suivant = relever(app, depot, RACINE)

    assert sorts(suivant) == {
        "b_remise.csv": ("cheque", Issue.DEJA_IMPORTE if b_importe else Issue.IMPORTE, "traites/b_remise.csv"),
        "c_remise.csv": ("cheque", Issue.IMPORTE, "traites/c_remise.csv")}
    # Le même état qu'un seul relevé sans coupure.
    assert compter(app, Paiement) == 5
    assert fichiers_recus(app) == [(n, "cheque", "importe") for n in ("a_remise.csv", "b_remise.csv", "c_remise.csv")]
    assert banc_sftp.noms() == [] and banc_sftp.noms("traites") == ["a_remise.csv", "b_remise.csv", "c_remise.csv"]


# --- La commande -------------------------------------------------------------------------------------


def commande(app: Application, *argv: str) -> int:
    """La commande analysée par l'analyseur de commandes_boite et lancée dans ce processus."""
    analyseur = argparse.ArgumentParser()
    sous = analyseur.add_subparsers(dest="commande", required=True)
    sous_factures = sous.add_parser("factures").add_subparsers(dest="action", required=True)
    ajouter_commandes(sous, sous_factures)
    args = analyseur.parse_args(argv)
    code: int = args.faire(app, args)
    return code


@SQLITE_SEUL
def test_regie_boite_relever_releve_le_dossier_local_par_defaut(app: Application, regie_cli: Any) -> None:
    boite = app.env.donnees / "boite"
    boite.mkdir(parents=True)
    (boite / "factures.jsonl").write_bytes(factures_jsonl("F01-26-05-0000123"))
    (boite / "remise.csv").write_bytes(remise_cheques("RC-1", ("1234567", "42.00", "F01-26-05-0000123")))

    fait = regie_cli("boite", "relever")

    assert fait.returncode == 0, fait.stderr
    assert "factures.jsonl [factures] : factures.jsonl : 1 enregistrement(s) importé(s)" in fait.stdout
    assert "→ traites/remise.csv" in fait.stdout
    assert sorted(os.listdir(boite / "traites")) == ["factures.jsonl", "remise.csv"]
    assert compter(app, Paiement) == 1


@SQLITE_SEUL
def test_regie_boite_relever_sort_en_1_sur_un_refus_avec_chaque_erreur_sur_une_ligne(
        app: Application, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    boite = tmp_path / "arrivee"
    boite.mkdir()
    (boite / "remise.csv").write_bytes(remise_cheques("RC-1", ("1234567", "42,00", "F1"), ("12", "1e3", "F2")))

    code = commande(app, "boite", "relever", "--local", str(boite), "--entree", ":cheque:*.csv")

    sortie = capsys.readouterr()
    assert code == 1
    erreurs = [ligne for ligne in sortie.err.splitlines() if ligne.startswith("remise.csv:")]
    assert len(erreurs) >= 2 and any(ligne.startswith("remise.csv:3:") for ligne in erreurs)
    assert "→ refuses/remise.csv" in sortie.out
    assert commande(app, "boite", "relever", "--local", str(boite)) == 0  # plus rien à relever
    assert capsys.readouterr().out.strip().endswith("aucun fichier nouveau")


@SQLITE_SEUL
def test_regie_boite_relever_sort_en_2_si_le_dossier_local_donne_n_existe_pas(
        app: Application, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert commande(app, "boite", "relever", "--local", str(tmp_path / "absent"), "--entree", "retour") == 2
    assert "retour : dossier introuvable" in capsys.readouterr().err


@SQLITE_SEUL
def test_regie_boite_relever_sort_en_3_si_le_pair_sftp_est_injoignable(
        app: Application, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cle = tmp_path / "cle"
    generer_cle(cle)
    (tmp_path / "known_hosts").write_text("")

    code = commande(app, "boite", "relever", "--hote", "127.0.0.1", "--port", str(port_libre()),
                    "--utilisateur", "regie", "--cle", str(cle), "--known-hosts", str(tmp_path / "known_hosts"),
                    "--tentatives", "1")

    assert code == 3
    assert "injoignable après 1 tentative" in capsys.readouterr().err


@SQLITE_SEUL
def test_regie_boite_relever_sort_en_2_si_la_cle_d_hote_est_inconnue(
        app: Application, sshd: ServeurSshd, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "known_hosts").write_text("")

    code = commande(app, "boite", "relever", "--hote", sshd.hote, "--port", str(sshd.port), "--utilisateur",
                    sshd.utilisateur, "--cle", str(sshd.cle_client), "--known-hosts", str(tmp_path / "known_hosts"))

    assert code == 2
    erreur = capsys.readouterr().err
    assert "clé d'hôte inconnue" in erreur and sshd.empreinte in erreur
    assert fichiers_recus(app) == []


@SQLITE_SEUL
def test_regie_boite_relever_sur_sftp_avec_une_entree_par_canal(
        app: Application, banc_sftp: Banc, sshd: ServeurSshd, capsys: pytest.CaptureFixture[str]) -> None:
    banc_sftp.ecrire("cheques/remise.csv", remise_cheques("RC-1", ("1234567", "42.00", "F1")))

    code = commande(app, "boite", "relever", "--hote", sshd.hote, "--port", str(sshd.port), "--utilisateur",
                    sshd.utilisateur, "--cle", str(sshd.cle_client), "--known-hosts", str(sshd.known_hosts),
                    "--racine-distante", str(banc_sftp.racine), "--entree", "cheques:cheque")

    assert code == 0, capsys.readouterr().err
    assert "cheques/remise.csv [cheque]" in capsys.readouterr().out
    assert banc_sftp.noms("cheques/traites") == ["remise.csv"]
