"""Envoi des PES au Trésor contre un vrai OpenSSH sur la boucle locale : chaque fichier arrive une fois,
entier, malgré les coupures ; les pannes de configuration sont claires ; un pair éteint donne le code 3."""

from __future__ import annotations

import hashlib
import os
import uuid
from datetime import date
from pathlib import Path
from typing import Any

import paramiko
import pytest
from sqlalchemy import select

from connecteurs.sftp import (
    AuthentificationRefusee,
    CleHoteInconnue,
    DepotLocal,
    DepotSftp,
    PairInjoignable,
    est_temporaire,
)
from exports.envoi import envoyer_fichiers
from exports.titres import emettre_titres
from regie.application import Application
from regie.registre.modeles import Bordereau, FichierExporte, Titre
from tests.sshd import ServeurSshd, generer_cle, sshd_serveur  # noqa: F401
from tests.test_titres import facture, importer_factures

pytestmark = pytest.mark.sftp
JOURS = (date(2026, 11, 25), date(2026, 11, 26))


@pytest.fixture
def sshd(sshd_serveur: ServeurSshd) -> ServeurSshd:  # noqa: F811
    sshd_serveur.demarrer()  # un test précédent a pu le laisser arrêté
    return sshd_serveur


@pytest.fixture
def distant(sshd: ServeurSshd) -> Path:
    """Le dossier de dépôt sur le serveur (aussi lisible localement pour vérifier ce qu'il a reçu)."""
    racine = sshd.racine / uuid.uuid4().hex[:12]
    (racine / "depot").mkdir(parents=True)
    return racine


def depot_sftp(sshd: ServeurSshd, racine: Path, **options: Any) -> DepotSftp:
    valeurs: dict[str, Any] = {"delai_s": 5, "tentatives": 2, "attente_initiale_s": 0.01, "racine": str(racine)}
    cle = options.pop("cle", sshd.cle_client)
    known_hosts = options.pop("known_hosts", sshd.known_hosts)
    valeurs.update(options)
    return DepotSftp(sshd.hote, sshd.port, sshd.utilisateur, cle, known_hosts, **valeurs)


def deux_fichiers(app: Application, tmp_path: Path) -> list[Path]:
    """Deux PES_Aller dans la boîte d'envoi (deux nuits)."""
    fichiers = []
    for n, jour in enumerate(JOURS):
        importer_factures(app, tmp_path, [facture(f"F-ENV-{n}-{i:04d}") for i in range(3)], f"f{n}.jsonl")
        fichiers.extend(emettre_titres(app, jour))
    assert len(fichiers) == 2
    return fichiers


def sha256(chemin: Path) -> str:
    return hashlib.sha256(chemin.read_bytes()).hexdigest()


def statuts_fichiers(app: Application) -> list[str]:
    with app.moteur.connect() as c:
        return list(c.execute(select(FichierExporte.statut).order_by(FichierExporte.id)).scalars())


def assert_chaque_fichier_une_fois_entier(dossier: Path, fichiers: list[Path]) -> None:
    assert sorted(os.listdir(dossier)) == sorted(f.name for f in fichiers)
    for f in fichiers:
        assert sha256(dossier / f.name) == sha256(f)


def test_les_pes_sont_deposes_une_fois_inscrits_et_leurs_titres_transmis(
        app: Application, tmp_path: Path, sshd: ServeurSshd, distant: Path) -> None:
    fichiers = deux_fichiers(app, tmp_path)
    with depot_sftp(sshd, distant) as depot:
        bilan = envoyer_fichiers(app, depot, dossier_distant="depot")
        assert bilan.deposes == [f.name for f in fichiers]
        assert envoyer_fichiers(app, depot, dossier_distant="depot").deposes == []  # rien deux fois
    assert_chaque_fichier_une_fois_entier(distant / "depot", fichiers)
    assert statuts_fichiers(app) == ["depose", "depose"]
    with app.moteur.connect() as c:
        inscrits = c.execute(select(FichierExporte.nom, FichierExporte.sha256, FichierExporte.taille,
                                    FichierExporte.destination, FichierExporte.depot_commence_le,
                                    FichierExporte.depose_le).order_by(FichierExporte.id)).all()
        assert set(c.execute(select(Titre.statut)).scalars()) == {"transmis"}
        assert set(c.execute(select(Bordereau.statut)).scalars()) == {"transmis"}
    for f, inscrit in zip(fichiers, inscrits, strict=True):
        assert (inscrit.sha256, inscrit.taille) == (sha256(f), f.stat().st_size)
        assert inscrit.destination == f"depot/{f.name}"
        assert inscrit.depot_commence_le <= inscrit.depose_le


def test_le_motif_de_nom_distant_porte_les_donnees_de_routage(app: Application, tmp_path: Path) -> None:
    importer_factures(app, tmp_path, [facture("F-MOTIF-0001")])
    (pes,) = emettre_titres(app, JOURS[0])
    depot = DepotLocal(tmp_path / "pair")
    (tmp_path / "pair" / "aller").mkdir()
    envoyer_fichiers(app, depot, dossier_distant="aller", motif="TDT_{siren}_{date}_{nom}")
    assert os.listdir(tmp_path / "pair" / "aller") == [f"TDT_219400999_20261125_{pes.name}"]


def test_une_coupure_franche_en_plein_envoi_se_reprend_sans_doublon_ni_fichier_tronque(
        app: Application, tmp_path: Path, sshd: ServeurSshd, distant: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fichiers = deux_fichiers(app, tmp_path)
    putfo = paramiko.SFTPClient.putfo

    def putfo_coupe(self: paramiko.SFTPClient, fl: Any, remotepath: str, *args: Any, **kwargs: Any) -> Any:
        class Lecteur:
            """La moitié du fichier part, puis le serveur est tué (sessions comprises)."""

            def __init__(self) -> None:
                self.lus = 0

            def read(self, n: int) -> bytes:
                if self.lus:
                    sshd.tuer()
                    return bytes(fl.read(n))
                self.lus += 1
                return bytes(fl.read(min(n, fichiers[0].stat().st_size // 2)))

        return putfo(self, Lecteur(), remotepath, *args, **kwargs)

    monkeypatch.setattr(paramiko.SFTPClient, "putfo", putfo_coupe)
    with pytest.raises(PairInjoignable), depot_sftp(sshd, distant) as depot:
        envoyer_fichiers(app, depot, dossier_distant="depot")
    monkeypatch.undo()
    restes = os.listdir(distant / "depot")
    assert len(restes) == 1 and est_temporaire(restes[0])  # rien de publié à moitié
    assert statuts_fichiers(app) == ["depot_en_cours", "ecrit"]

    sshd.demarrer()
    with depot_sftp(sshd, distant) as depot:
        bilan = envoyer_fichiers(app, depot, dossier_distant="depot")
    assert bilan.temporaires_nettoyes == restes
    assert bilan.deposes == [f.name for f in fichiers]
    assert_chaque_fichier_une_fois_entier(distant / "depot", fichiers)
    assert statuts_fichiers(app) == ["depose", "depose"]


def test_un_arret_entre_le_depot_et_son_inscription_ne_renvoie_rien(
        app: Application, tmp_path: Path, sshd: ServeurSshd, distant: Path) -> None:
    fichiers = deux_fichiers(app, tmp_path)

    class DepotQuiMeurt(DepotSftp):
        def deposer(self, chemin_local: Path, dossier: str, nom_final: str) -> Any:
            resultat = super().deposer(chemin_local, dossier, nom_final)
            raise KeyboardInterrupt  # tué juste après la publication, avant l'inscription « depose »
            return resultat

    mourant = DepotQuiMeurt(sshd.hote, sshd.port, sshd.utilisateur, sshd.cle_client, sshd.known_hosts,
                            racine=str(distant), tentatives=1)
    with pytest.raises(KeyboardInterrupt), mourant:
        envoyer_fichiers(app, mourant, dossier_distant="depot")
    assert statuts_fichiers(app) == ["depot_en_cours", "ecrit"]

    with depot_sftp(sshd, distant) as depot:
        bilan = envoyer_fichiers(app, depot, dossier_distant="depot")
    assert bilan.deja_deposes == [fichiers[0].name]
    assert bilan.deposes == [fichiers[1].name]
    assert_chaque_fichier_une_fois_entier(distant / "depot", fichiers)
    assert statuts_fichiers(app) == ["depose", "depose"]


def test_un_autre_contenu_sous_le_meme_nom_distant_n_est_pas_ecrase_et_les_autres_partent(
        app: Application, tmp_path: Path, sshd: ServeurSshd, distant: Path) -> None:
    fichiers = deux_fichiers(app, tmp_path)
    intrus = distant / "depot" / fichiers[0].name
    intrus.write_bytes(b"<autre/>")
    with depot_sftp(sshd, distant) as depot:
        bilan = envoyer_fichiers(app, depot, dossier_distant="depot")
    assert not bilan.complet and fichiers[0].name in bilan.en_conflit[0]
    assert bilan.deposes == [fichiers[1].name]
    assert intrus.read_bytes() == b"<autre/>"
    assert statuts_fichiers(app) == ["depot_en_cours", "depose"]


def test_une_cle_d_hote_inconnue_ou_une_cle_client_refusee_arretent_tout_avant_le_moindre_envoi(
        app: Application, tmp_path: Path, sshd: ServeurSshd, distant: Path) -> None:
    deux_fichiers(app, tmp_path)
    autre_hote = tmp_path / "known_hosts_autre"
    autre_hote.write_text(sshd.ligne_known_hosts(generer_cle(tmp_path / "cle_autre_hote")))
    with pytest.raises(CleHoteInconnue, match="la clé d'hôte a changé"):
        envoyer_fichiers(app, depot_sftp(sshd, distant, known_hosts=autre_hote), dossier_distant="depot")
    vide = tmp_path / "known_hosts_vide"
    vide.write_text("")
    with pytest.raises(CleHoteInconnue, match="inconnue"):
        envoyer_fichiers(app, depot_sftp(sshd, distant, known_hosts=vide), dossier_distant="depot")
    intrus = tmp_path / "cle_intruse"
    generer_cle(intrus)
    with pytest.raises(AuthentificationRefusee):
        envoyer_fichiers(app, depot_sftp(sshd, distant, cle=intrus), dossier_distant="depot")
    assert os.listdir(distant / "depot") == []
    assert statuts_fichiers(app) == ["ecrit", "ecrit"]


@pytest.mark.parametrize("url_base", ["sqlite"], indirect=True)
def test_la_commande_envoyer_sort_en_3_quand_le_serveur_est_eteint_puis_reprend(
        app: Application, tmp_path: Path, sshd: ServeurSshd, distant: Path, regie_cli: Any) -> None:
    fichiers = deux_fichiers(app, tmp_path)

    def options(known_hosts: Path = sshd.known_hosts) -> list[str]:
        return ["--sftp-hote", sshd.hote, "--sftp-port", str(sshd.port), "--sftp-utilisateur", sshd.utilisateur,
                "--sftp-cle", str(sshd.cle_client), "--sftp-known-hosts", str(known_hosts),
                "--dossier-distant", str(distant / "depot"), "--tentatives", "2", "--attente", "0.01",
                "--delai", "5"]

    sshd.arreter()
    r = regie_cli("titres", "envoyer", *options())
    assert r.returncode == 3, r.stderr
    assert "injoignable" in r.stderr
    sshd.demarrer()
    r = regie_cli("titres", "envoyer", *options())
    assert r.returncode == 0, r.stderr
    assert "2 fichier(s) déposé(s)" in r.stdout
    assert_chaque_fichier_une_fois_entier(distant / "depot", fichiers)
    vide = tmp_path / "known_hosts_vide"
    vide.write_text("")
    importer_factures(app, tmp_path, [facture("F-ENV-9-0001")], "f9.jsonl")
    r = regie_cli("titres", "emettre", "--date", "2026-11-27")
    assert r.returncode == 0 and r.stdout.strip().endswith("PESALR2_219400999_261127_001.xml")
    r = regie_cli("titres", "envoyer", *options(vide))
    assert r.returncode == 2 and "clé d'hôte inconnue" in r.stderr
