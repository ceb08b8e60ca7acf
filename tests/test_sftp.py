"""Le transport de fichiers : un vrai sshd sur la boucle locale, et le dossier local, même contrat."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import paramiko
import pytest
from structlog.testing import capture_logs

from connecteurs.sftp import (
    AuthentificationRefusee,
    CleHoteInconnue,
    Depot,
    DepotLocal,
    DepotSftp,
    DossierIntrouvable,
    ErreurDepot,
    FichierAbsent,
    FichierDejaPresent,
    FichierInstable,
    PairInjoignable,
    StatutEnvoi,
    appliquer_motif,
    est_temporaire,
)
from connecteurs.sftp import local as local_module
from connecteurs.sftp import sftp as sftp_module
from connecteurs.sftp.__main__ import main as diagnostic
from tests import sshd as sshd_module
from tests.sshd import ServeurSshd, generer_cle, port_libre, sshd_serveur  # noqa: F401

pytestmark = pytest.mark.sftp

ACQUIT = (b'<?xml version="1.0" encoding="ISO-8859-1"?>\n<PES_ACQUIT><Enveloppe><Parametres>'
          b'<NomFic V="PESALR2_219400999_261125_001.xml"/></Parametres></Enveloppe></PES_ACQUIT>\n')


@dataclass
class Banc:
    """Un dépôt et le chemin local où ses fichiers « distants » se trouvent réellement."""

    depot: Depot
    racine: Path
    genre: str

    def ecrire(self, chemin: str, contenu: bytes) -> Path:
        fichier = self.racine / chemin
        fichier.parent.mkdir(parents=True, exist_ok=True)
        fichier.write_bytes(contenu)
        return fichier

    def noms(self, dossier: str) -> list[str]:
        return sorted(os.listdir(self.racine / dossier))


def depot_sftp(sshd: ServeurSshd, racine: Path, *, cle: Path | None = None, known_hosts: Path | None = None,
               tentatives: int = 2) -> DepotSftp:
    # Attentes minuscules : les pannes se constatent vite en test.
    return DepotSftp(sshd.hote, sshd.port, sshd.utilisateur, cle or sshd.cle_client, known_hosts or sshd.known_hosts,
                     delai_s=5, tentatives=tentatives, attente_initiale_s=0.01, racine=str(racine))


@pytest.fixture
def sshd(sshd_serveur: ServeurSshd) -> ServeurSshd:  # noqa: F811
    sshd_serveur.demarrer()  # un test précédent a pu le laisser arrêté
    return sshd_serveur


@pytest.fixture
def racine_distante(sshd: ServeurSshd) -> Path:
    racine = sshd.racine / uuid.uuid4().hex[:12]
    racine.mkdir()
    return racine


@pytest.fixture(params=["local", "sftp"])
def banc(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Banc]:
    if request.param == "local":
        racine = tmp_path / "depot"
        with DepotLocal(racine) as depot:
            yield Banc(depot, racine, "local")
    else:
        sshd: ServeurSshd = request.getfixturevalue("sshd")
        racine = request.getfixturevalue("racine_distante")
        with depot_sftp(sshd, racine) as depot:
            yield Banc(depot, racine, "sftp")


@pytest.fixture
def fichier_local(tmp_path: Path) -> Path:
    chemin = tmp_path / "local" / "PESALR2_219400999_261125_001.xml"
    chemin.parent.mkdir()
    chemin.write_bytes(ACQUIT * 50)
    return chemin


def sha256(contenu: bytes) -> str:
    return hashlib.sha256(contenu).hexdigest()


# --- Le contrat commun : DepotLocal et DepotSftp ---------------------------------------------------


def test_les_deux_depots_suivent_le_protocole(banc: Banc) -> None:
    assert isinstance(banc.depot, Depot)


def test_lister_rend_les_fichiers_ordinaires_tries_par_nom_sans_dossiers_ni_temporaires(banc: Banc) -> None:
    banc.ecrire("retour/PES_Retour_002.xml", b"deux")
    banc.ecrire("retour/PES_Acquit_001.xml", b"un fichier")
    banc.ecrire("retour/.PESALR2_x.xml.part-0a1b2c3d", b"temporaire d'un envoi")
    banc.ecrire("retour/traites/ancien.xml", b"ancien")
    (banc.racine / "retour" / "lien.xml").symlink_to(banc.racine / "retour" / "PES_Retour_002.xml")

    fichiers = banc.depot.lister("retour")

    assert [(f.nom, f.taille) for f in fichiers] == [("PES_Acquit_001.xml", 10), ("PES_Retour_002.xml", 4)]
    assert all(f.modifie_le.utcoffset() is not None for f in fichiers)
    assert abs(fichiers[0].modifie_le.timestamp() - time.time()) < 60


def test_lister_un_dossier_absent_est_une_erreur_de_configuration(banc: Banc) -> None:
    with pytest.raises(DossierIntrouvable, match="retuor : dossier introuvable"):
        banc.depot.lister("retuor")


def test_lire_et_telecharger_rendent_le_contenu_exact_avec_son_sha256(banc: Banc, tmp_path: Path) -> None:
    contenu = ACQUIT + os.urandom(300_000)
    banc.ecrire("retour/PES_Acquit_001.xml", contenu)

    assert banc.depot.lire("retour", "PES_Acquit_001.xml") == contenu
    recu = banc.depot.telecharger("retour", "PES_Acquit_001.xml", tmp_path / "recus" / "PES_Acquit_001.xml")

    assert (recu.nom, recu.taille, recu.sha256) == ("PES_Acquit_001.xml", len(contenu), sha256(contenu))
    assert recu.chemin.read_bytes() == contenu
    assert os.listdir(tmp_path / "recus") == ["PES_Acquit_001.xml"]  # aucun temporaire local laissé


def test_lire_un_fichier_disparu_leve_fichier_absent(banc: Banc, tmp_path: Path) -> None:
    banc.ecrire("retour/autre.xml", b"x")
    with pytest.raises(FichierAbsent, match=re.escape("retour/PES_Acquit_001.xml : fichier introuvable")):
        banc.depot.lire("retour", "PES_Acquit_001.xml")
    with pytest.raises(FichierAbsent):
        banc.depot.telecharger("retour", "PES_Acquit_001.xml", tmp_path / "x.xml")
    assert not (tmp_path / "x.xml").exists()


def test_un_fichier_qui_change_pendant_son_telechargement_est_laisse_pour_plus_tard(
        banc: Banc, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    distant = banc.ecrire("retour/PES_Retour_001.xml", ACQUIT)
    module = sftp_module if banc.genre == "sftp" else local_module
    copier = module.copier_vers

    def copier_pendant_que_le_pair_ecrit(flux, destination, nom):
        recu = copier(flux, destination, nom)
        with distant.open("ab") as suite:
            suite.write(b"<!-- suite -->")
        return recu

    monkeypatch.setattr(module, "copier_vers", copier_pendant_que_le_pair_ecrit)

    with pytest.raises(FichierInstable, match="a changé pendant sa lecture"):
        banc.depot.telecharger("retour", "PES_Retour_001.xml", tmp_path / "PES_Retour_001.xml")
    assert not (tmp_path / "PES_Retour_001.xml").exists()
    assert [f.nom for f in banc.depot.lister("retour")] == ["PES_Retour_001.xml"]


def test_un_nom_qui_sort_du_dossier_est_refuse(banc: Banc, fichier_local: Path) -> None:
    banc.ecrire("envoi/x", b"")
    for nom in ("../x", "a/b", "", ".."):
        with pytest.raises(ErreurDepot, match="nom de fichier invalide"):
            banc.depot.deposer(fichier_local, "envoi", nom)
        with pytest.raises(ErreurDepot, match="nom de fichier invalide"):
            banc.depot.lire("envoi", nom)


def test_deplacer_vers_traites_cree_le_dossier_et_garde_les_deux_si_le_nom_y_est_pris(banc: Banc) -> None:
    banc.ecrire("retour/PES_Acquit_001.xml", b"nouveau")
    banc.ecrire("retour/PES_Acquit_002.xml", b"second")

    assert banc.depot.deplacer("retour", "PES_Acquit_002.xml", "traites") == "PES_Acquit_002.xml"
    banc.ecrire("retour/traites/PES_Acquit_001.xml", b"ancien")
    assert banc.depot.deplacer("retour", "PES_Acquit_001.xml", "traites") == "PES_Acquit_001-2.xml"

    assert banc.noms("retour") == ["traites"]
    traites = banc.racine / "retour" / "traites"
    assert sorted(os.listdir(traites)) == ["PES_Acquit_001-2.xml", "PES_Acquit_001.xml", "PES_Acquit_002.xml"]
    assert (traites / "PES_Acquit_001.xml").read_bytes() == b"ancien"
    assert (traites / "PES_Acquit_001-2.xml").read_bytes() == b"nouveau"
    with pytest.raises(FichierAbsent):
        banc.depot.deplacer("retour", "PES_Acquit_001.xml", "traites")


def test_un_fichier_arrive_pendant_la_releve_est_pris_au_passage_suivant(banc: Banc, tmp_path: Path) -> None:
    banc.ecrire("retour/a.xml", b"a")
    banc.ecrire("retour/b.xml", b"b")

    listes = banc.depot.lister("retour")
    banc.ecrire("retour/c.xml", b"c")  # déposé par le pair pendant la relève
    for fichier in listes:
        banc.depot.telecharger("retour", fichier.nom, tmp_path / fichier.nom)
        banc.depot.deplacer("retour", fichier.nom, "traites")

    assert [f.nom for f in listes] == ["a.xml", "b.xml"]
    assert [f.nom for f in banc.depot.lister("retour")] == ["c.xml"]
    assert sorted(os.listdir(banc.racine / "retour" / "traites")) == ["a.xml", "b.xml"]


def test_deposer_publie_le_fichier_entier_sous_son_nom_final_et_ne_laisse_aucun_temporaire(
        banc: Banc, fichier_local: Path) -> None:
    banc.ecrire("envoi/.keep", b"")
    contenu = fichier_local.read_bytes()

    with capture_logs() as journaux:
        resultat = banc.depot.deposer(fichier_local, "envoi", "PESALR2_219400999_261125_001.xml")

    assert resultat.statut is StatutEnvoi.DEPOSE and not resultat.deja_depose
    assert (resultat.nom, resultat.taille, resultat.sha256) == (
        "PESALR2_219400999_261125_001.xml", len(contenu), sha256(contenu))
    assert banc.noms("envoi") == [".keep", "PESALR2_219400999_261125_001.xml"]
    assert (banc.racine / "envoi" / "PESALR2_219400999_261125_001.xml").read_bytes() == contenu
    assert banc.depot.taille("envoi", "PESALR2_219400999_261125_001.xml") == len(contenu)
    assert banc.depot.empreinte("envoi", "PESALR2_219400999_261125_001.xml") == sha256(contenu)
    assert banc.depot.taille("envoi", "absent.xml") is None
    assert banc.depot.empreinte("envoi", "absent.xml") is None
    depose = [j for j in journaux if j["event"] == "fichier_depose"]
    assert depose and depose[0]["sha256"] == sha256(contenu) and depose[0]["taille"] == len(contenu)


def test_deposer_ecrit_sous_un_nom_temporaire_avant_de_renommer_sans_ecraser(
        banc: Banc, fichier_local: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    banc.ecrire("envoi/.keep", b"")
    final = banc.racine / "envoi" / "PESALR2_219400999_261125_001.xml"
    vus: list[tuple[str, bool, int]] = []  # (nom temporaire, final déjà là ?, taille du temporaire)

    if banc.genre == "sftp":
        renommer = paramiko.SFTPClient.rename

        def espion(self: paramiko.SFTPClient, ancien: str, nouveau: str) -> None:
            vus.append((os.path.basename(ancien), final.exists(), os.path.getsize(ancien)))
            renommer(self, ancien, nouveau)

        monkeypatch.setattr(paramiko.SFTPClient, "rename", espion)
    else:
        lier = os.link

        def espion_lien(source: Path, cible: Path) -> None:
            vus.append((os.path.basename(source), final.exists(), os.path.getsize(source)))
            lier(source, cible)

        monkeypatch.setattr(os, "link", espion_lien)

    banc.depot.deposer(fichier_local, "envoi", final.name)

    assert len(vus) == 1
    nom_temporaire, final_deja_la, taille = vus[0]
    assert est_temporaire(nom_temporaire) and nom_temporaire.startswith(f".{final.name}.part-")
    assert not final_deja_la
    assert taille == fichier_local.stat().st_size
    assert final.read_bytes() == fichier_local.read_bytes()


def test_un_fichier_deja_depose_a_l_identique_n_est_pas_renvoye(banc: Banc, fichier_local: Path) -> None:
    # Le cas d'un arrêt entre le dépôt et son enregistrement : la reprise trouve le fichier là.
    banc.ecrire("envoi/.keep", b"")
    premier = banc.depot.deposer(fichier_local, "envoi", fichier_local.name)
    distant = banc.racine / "envoi" / fichier_local.name
    avant = distant.stat()

    second = banc.depot.deposer(fichier_local, "envoi", fichier_local.name)

    assert second.statut is StatutEnvoi.DEJA_DEPOSE and second.deja_depose
    assert (second.taille, second.sha256) == (premier.taille, premier.sha256)
    apres = distant.stat()
    assert (apres.st_ino, apres.st_mtime_ns) == (avant.st_ino, avant.st_mtime_ns)  # rien de réécrit
    assert banc.noms("envoi") == [".keep", fichier_local.name]


@pytest.mark.parametrize("autre_contenu", [b"tout autre chose", None], ids=["autre_taille", "meme_taille"])
def test_un_autre_contenu_sous_le_meme_nom_n_est_jamais_ecrase(
        banc: Banc, fichier_local: Path, autre_contenu: bytes | None) -> None:
    contenu = fichier_local.read_bytes()
    occupant = autre_contenu if autre_contenu is not None else contenu[:-1] + b"!"
    distant = banc.ecrire(f"envoi/{fichier_local.name}", occupant)

    with pytest.raises(FichierDejaPresent, match="contenu différent est déjà déposé"):
        banc.depot.deposer(fichier_local, "envoi", fichier_local.name)

    assert distant.read_bytes() == occupant
    assert banc.noms("envoi") == [fichier_local.name]


def test_deposer_dans_un_dossier_absent_ne_le_cree_pas(banc: Banc, fichier_local: Path) -> None:
    banc.ecrire("envoi/.keep", b"")
    with pytest.raises(DossierIntrouvable, match="evnoi"):
        banc.depot.deposer(fichier_local, "evnoi", fichier_local.name)
    assert not (banc.racine / "evnoi").exists()


def test_nettoyer_temporaires_ne_supprime_que_les_restes_d_envois_interrompus(banc: Banc) -> None:
    banc.ecrire("envoi/PES_ok.xml", b"publie")
    vieux = banc.ecrire("envoi/.PES_a.xml.part-0123abcd", b"moitie")
    os.utime(vieux, (time.time() - 7200, time.time() - 7200))
    banc.ecrire("envoi/.PES_b.xml.part-89abcdef", b"en cours")
    banc.ecrire("envoi/.cache", b"pas a nous")

    assert banc.depot.nettoyer_temporaires("envoi", age_min_s=3600) == [".PES_a.xml.part-0123abcd"]
    assert banc.depot.nettoyer_temporaires("envoi") == [".PES_b.xml.part-89abcdef"]
    assert banc.noms("envoi") == [".cache", "PES_ok.xml"]


# --- SFTP : clés, pannes, coupures -----------------------------------------------------------------


def test_une_cle_d_hote_inconnue_arrete_tout_avant_le_moindre_transfert(
        sshd: ServeurSshd, racine_distante: Path, tmp_path: Path, fichier_local: Path) -> None:
    (racine_distante / "envoi").mkdir()
    vide = tmp_path / "known_hosts_vide"
    vide.write_text("")
    depot = depot_sftp(sshd, racine_distante, known_hosts=vide)

    debut = time.monotonic()
    with pytest.raises(CleHoteInconnue) as erreur:
        depot.deposer(fichier_local, "envoi", fichier_local.name)

    assert sshd.empreinte in str(erreur.value) and "clé d'hôte inconnue" in str(erreur.value)
    assert erreur.value.empreinte_recue == sshd.empreinte
    assert time.monotonic() - debut < 2  # pas de nouvelles tentatives : ce n'est pas une panne
    assert vide.read_text() == ""  # jamais acceptée
    assert os.listdir(racine_distante / "envoi") == []


def test_une_cle_d_hote_changee_est_refusee_avec_les_deux_empreintes(
        sshd: ServeurSshd, racine_distante: Path, tmp_path: Path) -> None:
    (racine_distante / "retour").mkdir()
    (racine_distante / "retour" / "PES_Acquit.xml").write_bytes(ACQUIT)
    usurpee = generer_cle(tmp_path / "autre_cle")
    known_hosts = tmp_path / "known_hosts_change"
    known_hosts.write_text(sshd.ligne_known_hosts(usurpee))
    attendue = paramiko.PKey.from_path(tmp_path / "autre_cle").fingerprint
    depot = DepotSftp(sshd.hote, sshd.port, sshd.utilisateur, sshd.cle_client, known_hosts,
                      racine=str(racine_distante), attente_initiale_s=0.01)

    with pytest.raises(CleHoteInconnue, match="la clé d'hôte a changé") as erreur:
        depot.lister("retour")

    assert sshd.empreinte in str(erreur.value) and attendue in str(erreur.value)
    assert known_hosts.read_text() == sshd.ligne_known_hosts(usurpee)


def test_une_cle_client_non_autorisee_leve_authentification_refusee(
        sshd: ServeurSshd, racine_distante: Path, tmp_path: Path) -> None:
    generer_cle(tmp_path / "intrus")
    depot = depot_sftp(sshd, racine_distante, cle=tmp_path / "intrus")

    with pytest.raises(AuthentificationRefusee, match="authentification refusée"):
        depot.lister(".")


def test_un_fichier_known_hosts_ou_une_cle_absents_sont_des_erreurs_claires(
        sshd: ServeurSshd, racine_distante: Path, tmp_path: Path) -> None:
    sans_known_hosts = DepotSftp(sshd.hote, sshd.port, sshd.utilisateur, sshd.cle_client, tmp_path / "absent")
    with pytest.raises(ErreurDepot, match="known_hosts illisible"):
        sans_known_hosts.lister(str(racine_distante))
    sans_cle = DepotSftp(sshd.hote, sshd.port, sshd.utilisateur, tmp_path / "id_absent", sshd.known_hosts)
    with pytest.raises(ErreurDepot, match="clé privée illisible"):
        sans_cle.lister(str(racine_distante))


def test_un_serveur_eteint_leve_pair_injoignable_apres_les_tentatives(sshd: ServeurSshd, tmp_path: Path) -> None:
    depot = DepotSftp("127.0.0.1", port_libre(), sshd.utilisateur, sshd.cle_client, sshd.known_hosts,
                      tentatives=3, attente_initiale_s=0.01, delai_s=2)

    with capture_logs() as journaux, pytest.raises(PairInjoignable, match="injoignable après 3 tentatives") as e:
        depot.lister("retour")

    reprises = [j for j in journaux if j["event"] == "sftp_nouvelle_tentative"]
    assert [j["attente_s"] for j in reprises] == [0.01, 0.02]  # attente qui double
    assert e.value.code_sortie == 3


def test_un_serveur_muet_leve_pair_injoignable_une_fois_le_delai_depasse(sshd: ServeurSshd) -> None:
    with socket.socket() as muet:  # accepte la connexion TCP, ne dit jamais rien
        muet.bind(("127.0.0.1", 0))
        muet.listen(8)
        depot = DepotSftp("127.0.0.1", muet.getsockname()[1], sshd.utilisateur, sshd.cle_client, sshd.known_hosts,
                          delai_s=0.3, tentatives=2, attente_initiale_s=0.01)
        debut = time.monotonic()
        with capture_logs(), pytest.raises(PairInjoignable, match="injoignable après 2 tentatives"):
            depot.lister(".")
    assert time.monotonic() - debut < 5


def test_une_coupure_franche_pendant_un_gros_envoi_se_reprend_au_passage_suivant(
        sshd: ServeurSshd, racine_distante: Path, tmp_path: Path) -> None:
    envoi = racine_distante / "envoi"
    envoi.mkdir()
    gros = tmp_path / "PESALR2_219400999_261125_002.xml"
    gros.write_bytes(os.urandom(20 * 1024 * 1024))
    coupe = threading.Event()

    def couper_quand_le_temporaire_grossit() -> None:
        limite = time.monotonic() + 20
        while time.monotonic() < limite:
            for entree in os.scandir(envoi):
                if est_temporaire(entree.name) and entree.stat().st_size > 1024 * 1024:
                    sshd.tuer()
                    coupe.set()
                    return
            time.sleep(0.001)

    guetteur = threading.Thread(target=couper_quand_le_temporaire_grossit)
    guetteur.start()
    try:
        with pytest.raises(PairInjoignable):
            depot_sftp(sshd, racine_distante).deposer(gros, "envoi", gros.name)
    finally:
        guetteur.join()
    assert coupe.is_set()

    restes = os.listdir(envoi)
    assert gros.name not in restes  # rien de publié à moitié
    assert len(restes) == 1 and est_temporaire(restes[0])
    assert os.path.getsize(envoi / restes[0]) < gros.stat().st_size

    sshd.demarrer()
    with depot_sftp(sshd, racine_distante) as depot:
        assert depot.nettoyer_temporaires("envoi") == restes
        resultat = depot.deposer(gros, "envoi", gros.name)

    assert resultat.statut is StatutEnvoi.DEPOSE
    assert os.listdir(envoi) == [gros.name]
    assert sha256((envoi / gros.name).read_bytes()) == sha256(gros.read_bytes())


def test_une_connexion_coupee_en_plein_envoi_est_reprise_sans_doublon(
        sshd: ServeurSshd, racine_distante: Path, tmp_path: Path) -> None:
    envoi = racine_distante / "envoi"
    envoi.mkdir()
    gros = tmp_path / "PESALR2_219400999_261125_003.xml"
    gros.write_bytes(os.urandom(20 * 1024 * 1024))
    coupe = threading.Event()

    def couper_la_session() -> None:
        limite = time.monotonic() + 20
        while time.monotonic() < limite:
            for entree in os.scandir(envoi):
                if est_temporaire(entree.name) and entree.stat().st_size > 1024 * 1024:
                    sshd.couper_sessions()  # le serveur écoute toujours : la reprise aboutit
                    coupe.set()
                    return
            time.sleep(0.001)

    guetteur = threading.Thread(target=couper_la_session)
    guetteur.start()
    try:
        with capture_logs() as journaux:
            resultat = depot_sftp(sshd, racine_distante, tentatives=3).deposer(gros, "envoi", gros.name)
    finally:
        guetteur.join()

    assert coupe.is_set()
    assert any(j["event"] == "sftp_nouvelle_tentative" for j in journaux)
    assert resultat.statut is StatutEnvoi.DEPOSE
    assert os.listdir(envoi) == [gros.name]  # le même temporaire a été réécrit puis renommé
    assert sha256((envoi / gros.name).read_bytes()) == resultat.sha256 == sha256(gros.read_bytes())


def test_le_gestionnaire_de_contexte_se_connecte_a_l_entree_et_ferme_a_la_sortie(
        sshd: ServeurSshd, racine_distante: Path) -> None:
    depot = depot_sftp(sshd, racine_distante)
    with capture_logs() as journaux, depot:
        assert [j["event"] for j in journaux] == ["connexion_sftp"]
        assert journaux[0]["cle_hote"] == sshd.empreinte
        depot.lister(".")
        depot.lister(".")
        assert [j["event"] for j in journaux] == ["connexion_sftp"]  # une seule session
    assert depot._sftp is None and depot._client is None
    assert "phrase" not in repr(depot)


# --- Le motif de nom distant ------------------------------------------------------------------------


def test_le_motif_de_nom_distant_met_les_donnees_de_routage_dans_le_nom() -> None:
    assert appliquer_motif("{nom}", nom="PESALR2_219400999_261125_001.xml") == "PESALR2_219400999_261125_001.xml"
    assert appliquer_motif("ROUTAGE_{siren}_{nom}", nom="F.xml", siren="219400999") == "ROUTAGE_219400999_F.xml"


@pytest.mark.parametrize("motif", ["{nom.__class__}", "{inconnu}_{nom}", "{0}", "../{nom}"])
def test_un_motif_de_nom_distant_douteux_est_refuse(motif: str) -> None:
    with pytest.raises(ErreurDepot):
        appliquer_motif(motif, nom="F.xml")


# --- Le diagnostic en ligne de commande ----------------------------------------------------------


def test_le_diagnostic_montre_la_cle_d_hote_sans_l_accepter(
        sshd: ServeurSshd, capsys: pytest.CaptureFixture[str]) -> None:
    known_hosts_avant = sshd.known_hosts.read_text()

    assert diagnostic(["cle-hote", "--hote", sshd.hote, "--port", str(sshd.port)]) == 0

    sortie = capsys.readouterr().out
    assert sshd.empreinte in sortie
    assert sshd.ligne_known_hosts(sshd.cle_hote_publique).strip() in sortie
    assert sshd.known_hosts.read_text() == known_hosts_avant


def test_le_diagnostic_liste_un_dossier_et_sort_en_3_si_le_pair_est_injoignable(
        sshd: ServeurSshd, racine_distante: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (racine_distante / "PES_Acquit_001.xml").write_bytes(ACQUIT)
    commun = ["--utilisateur", sshd.utilisateur, "--cle", str(sshd.cle_client),
              "--known-hosts", str(sshd.known_hosts)]

    assert diagnostic(["lister", "--hote", sshd.hote, "--port", str(sshd.port), *commun, str(racine_distante)]) == 0
    assert f"PES_Acquit_001.xml\t{len(ACQUIT)}\t" in capsys.readouterr().out

    injoignable = ["lister", "--hote", "127.0.0.1", "--port", str(port_libre()), "--tentatives", "1", *commun, "."]
    with capture_logs():
        assert diagnostic(injoignable) == 3
    assert "injoignable" in capsys.readouterr().err


# --- L'absence de sshd : sautée sur un poste, échec en CI ------------------------------------------


def test_sans_sshd_le_test_est_saute_hors_ci_et_echoue_en_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sshd_module, "CHEMINS_SSHD", ("/nulle/part/sshd",))
    monkeypatch.setattr(shutil, "which", lambda _nom: None)

    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match=r"installer_sshd\.sh"):
        sshd_module.trouver_sshd()
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="en CI, son absence est une erreur"):
        sshd_module.trouver_sshd()
