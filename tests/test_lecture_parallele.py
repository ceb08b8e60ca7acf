"""La lecture dans un second processus : même résultat qu'en ligne, erreurs remontées, enfant arrêté."""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import structlog.testing
from sqlalchemy import select

from regie.application import Application
from regie.erreurs import FichierRefuse
from regie.lecture_parallele import LectureInterrompue, en_parallele
from regie.registre.modeles import Facture
from regie.services.etat import etat
from regie.services.factures import importer_fichier_factures
from tests.test_factures_import import FACTURE, compter, ecrire, facture, verifier_invariants


def _nombres(n: int) -> Iterator[list[int]]:
    for i in range(n):
        yield [i, os.getpid()]


def test_les_lots_arrivent_tous_dans_l_ordre_depuis_un_autre_processus() -> None:
    recus = list(en_parallele(lambda: _nombres(500), avance=3))
    assert [i for i, _ in recus] == list(range(500))
    assert {pid for _, pid in recus} != {os.getpid()}  # calculés ailleurs


def _priorite() -> Iterator[int]:
    yield os.getpriority(os.PRIO_PROCESS, 0)


def test_un_processus_de_lecture_cede_le_processeur_a_celui_qui_ecrit_quand_on_le_lui_demande() -> None:
    """Sur deux cœurs, lecteurs, processus qui écrit et serveur se les disputent : le lecteur des factures passe
    après ; un lecteur que le processus principal attend (lecture d'avance) garde la priorité de celui-ci."""
    from regie.lecture_parallele import PRIORITE_LECTEUR, en_parallele_entrelace

    ici = os.getpriority(os.PRIO_PROCESS, 0)
    cedee = min(ici + PRIORITE_LECTEUR, 19)
    assert cedee > ici
    assert list(en_parallele(_priorite, priorite=PRIORITE_LECTEUR)) == [cedee]
    assert list(en_parallele_entrelace(lambda rang, processus: _priorite(), priorite=PRIORITE_LECTEUR)) == [
        cedee, cedee]
    assert list(en_parallele(_priorite)) == [ici]
    assert os.getpriority(os.PRIO_PROCESS, 0) == ici  # celui qui écrit garde la sienne


def test_sans_parallele_tout_se_fait_ici() -> None:
    assert {pid for _, pid in en_parallele(lambda: _nombres(5), parallele=False)} == {os.getpid()}


class Panne(Exception):
    pass


def _puis_panne() -> Iterator[int]:
    yield 1
    raise Panne("disque illisible")


def test_une_exception_de_l_enfant_remonte_telle_quelle_apres_les_lots_deja_lus() -> None:
    recus: list[int] = []
    with pytest.raises(Panne, match="disque illisible"):
        for x in en_parallele(_puis_panne):
            recus.append(x)
    assert recus == [1]


def _tue_toi() -> Iterator[int]:
    yield 1
    os.kill(os.getpid(), signal.SIGKILL)
    yield 2  # jamais atteint


def test_un_enfant_tue_en_pleine_lecture_est_une_lecture_interrompue() -> None:
    with pytest.raises(LectureInterrompue, match="sans finir"):
        list(en_parallele(_tue_toi))


def _sans_fin() -> Iterator[int]:
    i = 0
    while True:
        i += 1
        yield i


def test_quitter_la_boucle_avant_la_fin_arrete_l_enfant() -> None:
    flux = en_parallele(_sans_fin, avance=2)
    assert [next(flux) for _ in range(10)] == list(range(1, 11))
    flux.close()  # le générateur fermé : l'enfant est arrêté, rien ne reste derrière
    time.sleep(0.1)
    import multiprocessing

    assert multiprocessing.active_children() == []


_CHARGE_APRES: list[int] = []


def _ce_que_voit_l_enfant(n: int) -> Iterator[tuple[int, int]]:
    yield n, len(_CHARGE_APRES)


def test_une_lecture_sur_commande_nait_avant_ce_que_le_parent_charge_ensuite() -> None:
    """Le processus de lecture d'avance naît avant le chargement des paiements : il n'en partage pas les pages,
    que le parent recopierait alors une à une en les touchant (copie à l'écriture)."""
    from regie.lecture_parallele import LectureSurCommande

    lecture = LectureSurCommande(_ce_que_voit_l_enfant)
    _CHARGE_APRES.extend(range(100_000))  # chargé après la naissance de l'enfant
    try:
        assert list(lecture.lancer(7)) == [(7, 0)]
    finally:
        _CHARGE_APRES.clear()
    lecture.fermer()  # sans effet après la fin
    import multiprocessing

    assert multiprocessing.active_children() == []


def test_une_lecture_sur_commande_jamais_lancee_s_arrete_a_la_fermeture() -> None:
    from regie.lecture_parallele import LectureSurCommande

    lecture = LectureSurCommande(_ce_que_voit_l_enfant)
    lecture.fermer()
    import multiprocessing

    assert multiprocessing.active_children() == []


def _panne_sur_commande(n: int) -> Iterator[int]:
    yield n
    raise Panne(f"lot {n + 1} illisible")


def test_une_lecture_sur_commande_remonte_l_exception_de_l_enfant() -> None:
    from regie.lecture_parallele import LectureSurCommande

    recus: list[int] = []
    with pytest.raises(Panne, match="lot 4 illisible"):
        for x in LectureSurCommande(_panne_sur_commande).lancer(3):
            recus.append(x)
    assert recus == [3]


def test_un_import_lu_en_parallele_donne_le_meme_registre_qu_en_ligne(app: Application, tmp_path: Path) -> None:
    objets = [facture(f"F01-26-05-{i:07d}") for i in range(1, 40)] + [
        {"type": "avoir", "numero": "A-2026-0001", "facture": "F01-26-05-0000003", "emise_le": "2026-05-10",
         "montant": "7.00", "motif": "Absence"}]
    rapport = importer_fichier_factures(app, ecrire(tmp_path, "a.jsonl", objets), parallele=True)
    assert (rapport.importes, rapport.comptes) == (40, {"factures": 39, "avoirs": 1})
    e = etat(app)
    assert len(e["factures"]) == 39
    f3 = next(f for f in e["factures"] if f["numero"] == "F01-26-05-0000003")
    assert (f3["avoirs"], f3["reste"]) == ("7.00", "70.00")
    # Les mêmes objets dans un autre fichier, en parallèle : déjà importés, rien ne change.
    rapport = importer_fichier_factures(app, ecrire(tmp_path, "b.jsonl", [*objets, facture("F01-26-05-0000999")]),
                                        parallele=True)
    assert (rapport.importes, rapport.ignores) == (1, 40)
    assert etat(app)["familles"] == [{"dossier": "D004512", "du": f"{77 * 40 - 7}.00", "credit": "0.00"}]


def test_un_fichier_refuse_en_parallele_dit_les_memes_erreurs_qu_en_ligne(
        app: Application, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Deux lecteurs se partagent le fichier par lots de trois lignes : les erreurs des lignes 5 et 30 sont lues
    par l'un, celles des lignes 21 et 31 par l'autre ; elles sont dites dans l'ordre du fichier, comme en ligne."""
    monkeypatch.setattr("regie.services.factures.TAILLE_LOT", 3)
    objets = [facture(f"F01-26-05-{i:07d}") for i in range(1, 30)]
    objets[4] = facture("F01-26-05-0000005", regie="INCONNUE")
    objets[20] = facture("F01-26-05-0000021", montant="1,00")
    chemin = tmp_path / "mauvais.jsonl"
    chemin.write_bytes(b"".join(json.dumps(o, ensure_ascii=False).encode() + b"\n" for o in objets)
                       + b"{pas du json\n" + json.dumps(FACTURE, ensure_ascii=False).encode("latin-1") + b"\n")
    erreurs = []
    for parallele in (False, True):
        with pytest.raises(FichierRefuse) as exc:
            importer_fichier_factures(app, chemin, parallele=parallele)
        erreurs.append([str(e) for e in exc.value.erreurs])
    assert erreurs[0] == erreurs[1]
    assert [e.split(":")[1] for e in erreurs[1]] == ["5", "21", "30", "31"]
    assert compter(app, Facture) == 0


def _cheques(lignes: list[str]) -> bytes:
    return ("remise;numero_cheque;tireur;banque;montant;facture;recu_le\r\n" + "".join(
        ligne + "\r\n" for ligne in lignes)).encode()


def test_des_paiements_lus_en_parallele_donnent_le_meme_registre_qu_en_ligne(app: Application,
                                                                             tmp_path: Path) -> None:
    from regie.services.paiements import importer_fichier_paiements
    from tests.test_rapprochement_a_l_import import _photo, _vider

    factures = [facture(f"F01-26-05-{i:07d}") for i in range(1, 30)]
    cheques = _cheques([f"RC-1;{i};MARTIN CLAIRE;CCM;{'77.00' if i % 3 else '20.00'};F01-26-05-{i:07d};2026-05-15"
                        for i in range(1, 30)] + ["RC-1;99;MARTIN CLAIRE;CCM;77.00;F01-26-05-9999999;2026-05-15"])
    photos = []
    for parallele in (False, True):
        importer_fichier_factures(app, ecrire(tmp_path, f"f{parallele}.jsonl", factures))
        chemin = tmp_path / f"cheques{parallele}.csv"
        chemin.write_bytes(cheques)
        rapport = importer_fichier_paiements(app, "cheque", chemin, parallele=parallele)
        assert (rapport.importes, rapport.ignores) == (30, 0)
        # Le même fichier une seconde fois : rien ne change.
        assert importer_fichier_paiements(app, "cheque", chemin, parallele=parallele).importes == 0
        photos.append(_photo(app))
        _vider(app)
    assert photos[0] == photos[1]
    statuts = {r: (s, a) for c, r, s, a, *_ in photos[1]["paiements"]}
    assert statuts["RC-1/3"] == ("affecte", None)
    assert statuts["RC-1/99"] == ("en_anomalie", "REFERENCE_INCONNUE")


def test_les_factures_lues_d_avance_donnent_les_memes_decisions(app: Application, tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """Un gros fichier fait lire les factures des lots à venir par un second processus, hors de la transaction :
    une facture que la transaction a déjà changée doit être relue par elle, une absente le rester."""
    from regie.services.paiements import importer_fichier_paiements
    from tests.test_rapprochement_a_l_import import _photo, _vider

    monkeypatch.setattr("rapprochement.moteur.TAILLE_LOT", 3)  # des lots de trois : beaucoup de lots
    factures = [facture(f"F01-26-05-{i:07d}") for i in range(1, 13)]
    # Chaque facture payée en deux fois, par deux chèques de lots différents (le second, d'un autre tireur que le
    # payeur, voit l'état laissé par le premier, que la base validée ne dit pas), et des références inconnues.
    avant = _cheques([f"RC-0;{i};MARTIN CLAIRE;CCM;10.00;F01-26-05-99{i:05d};2026-05-14" for i in range(1, 5)])
    cheques = _cheques([f"RC-1;{i:02d};MARTIN CLAIRE;CCM;40.00;F01-26-05-{i:07d};2026-05-15" for i in range(1, 13)]
                       + [f"RC-2;{i:02d};DURAND PAUL;CCM;37.00;F01-26-05-{i:07d};2026-05-16" for i in range(1, 13)]
                       + [f"RC-2;9{i};MARTIN CLAIRE;CCM;77.00;X{i};2026-05-16" for i in range(1, 5)])
    photos = []
    for parallele in (False, True):
        importer_fichier_factures(app, ecrire(tmp_path, f"f{parallele}.jsonl", factures))
        (tmp_path / "avant.csv").write_bytes(avant)
        importer_fichier_paiements(app, "cheque", tmp_path / "avant.csv")
        chemin = tmp_path / f"cheques{parallele}.csv"
        chemin.write_bytes(cheques)
        assert importer_fichier_paiements(app, "cheque", chemin, parallele=parallele).importes == 28
        photos.append(_photo(app))
        verifier_invariants(app)
        _vider(app)
    assert photos[0] == photos[1]
    statuts = {r: (s, a, m) for c, r, s, a, m, *_ in photos[1]["paiements"]}
    assert statuts["RC-1/01"] == ("affecte", None, 4000)
    assert statuts["RC-2/01"] == ("affecte", None, 3700)  # le reste exact, lu après le premier chèque
    assert statuts["RC-2/91"][:2] == ("en_anomalie", "REFERENCE_INCONNUE")
    assert statuts["RC-0/1"][:2] == ("en_anomalie", "REFERENCE_INCONNUE")


def _refus_en_ligne_et_en_parallele(app: Application, canal: str, chemin: Path) -> list[list[str]]:
    """Les erreurs d'un fichier refusé, lu en ligne puis en parallèle."""
    from regie.services.paiements import importer_fichier_paiements

    erreurs = []
    for parallele in (False, True):
        with pytest.raises(FichierRefuse) as exc:
            importer_fichier_paiements(app, canal, chemin, parallele=parallele)
        erreurs.append([str(e) for e in exc.value.erreurs])
    return erreurs


def test_un_fichier_de_paiements_refuse_en_parallele_dit_les_memes_erreurs(app: Application,
                                                                          tmp_path: Path) -> None:
    from regie.registre.modeles import Paiement

    chemin = tmp_path / "cheques.csv"
    chemin.write_bytes(_cheques(["RC-1;1;MARTIN CLAIRE;CCM;77.00;F01;2026-05-15",
                                 "RC-1;2;MARTIN CLAIRE;CCM;77,00;F01;2026-05-15",
                                 "RC-1;3;MARTIN CLAIRE;CCM;77.00;F01;2026-02-31",
                                 "RC-1;4;MARTIN CLAIRE;CCM;77.00;F01"]))
    erreurs = _refus_en_ligne_et_en_parallele(app, "cheque", chemin)
    assert erreurs[0] == erreurs[1]
    assert len(erreurs[1]) == 3
    assert compter(app, Paiement) == 0


def _paiements_lus(app: Application) -> list[tuple[Any, ...]]:
    """Chaque paiement tel que lu (ligne, texte brut, détails, empreinte), sa décision, et chaque remise."""
    from regie.registre.modeles import Paiement, Remise

    with app.moteur.connect() as c:
        paiements = c.execute(select(Paiement.canal, Paiement.reference, Paiement.montant, Paiement.recu_le,
                                     Paiement.reference_facture, Paiement.ligne, Paiement.brut, Paiement.details,
                                     Paiement.empreinte, Paiement.statut, Paiement.anomalie, Paiement.affecte)
                              .order_by(Paiement.ligne)).all()
        remises = c.execute(select(Remise.identifiant, Remise.montant, Remise.nombre).order_by(Remise.identifiant))
        return [tuple(r) for r in paiements] + [tuple(r) for r in remises]


def _fichiers_des_trois_canaux(sc: Any) -> dict[str, bytes]:
    """Un fichier de chaque canal lu à deux : lignes vides, fin de ligne CR LF, BOM, une facture inconnue."""
    numeros = [f"F01-26-05-{i:07d}" for i in range(1, 15)]
    cheques = [f"RC-{i // 5};{i};MARTIN CLAIRE;CCM;{'77.00' if i % 4 else '20.00'};{n};2026-05-15"
               for i, n in enumerate(numeros, 1)]
    cheques[6:6] = ["", "  "]
    cesu = [f"R-{i // 4};04123456789{i:02d};PAPIER;EDENRED;2026;20.00;{n};2026-05-14" for i, n in enumerate(numeros, 1)]
    cesu[3] = cesu[3].replace(numeros[3], "F01-26-05-9999999")
    releve = [f'PP-{i};2026-05-12T17:42:1{i % 10}+02:00;"{sc.datamatrix(n, "77.00")}";77.00;CARTE;TAB-94-0117'
              for i, n in enumerate(numeros, 1)]
    return {
        "cheque": _cheques(cheques),
        "cesu": ("remise;numero_titre;support;emetteur;millesime;valeur;facture;recu_le\r\n"
                 + "".join(ligne + "\r\n" for ligne in cesu)).encode(),
        "buraliste": ("\ufefftransaction;date_heure;datamatrix;montant;mode;point_de_vente\r\n"
                      + "".join(ligne + "\r\n" for ligne in releve) + "\r\n").encode(),
    }


@pytest.fixture
def lots_de_trois_lignes(monkeypatch: pytest.MonkeyPatch) -> None:
    """Des lots de trois lignes : chacun des deux lecteurs en lit plusieurs, à tour de rôle."""
    monkeypatch.setattr("regie.services.paiements.LIGNES_PAR_LOT_LU", 3)


@pytest.mark.usefixtures("lots_de_trois_lignes")
@pytest.mark.parametrize("canal", ["cheque", "cesu", "buraliste"])
def test_un_fichier_de_paiements_lu_par_deux_processus_donne_les_memes_paiements(
        app: Application, tmp_path: Path, canal: str) -> None:
    """Lignes, textes bruts, détails, empreintes, remises et décisions : ceux de la lecture en ligne, sans relire."""
    from regie.services.paiements import importer_fichier_paiements
    from tests.scenarios import Scenario
    from tests.test_rapprochement_a_l_import import _vider

    vus = []
    for parallele in (False, True):
        importer_fichier_factures(app, ecrire(tmp_path, f"f{parallele}.jsonl",
                                              [facture(f"F01-26-05-{i:07d}") for i in range(1, 15)]))
        chemin = tmp_path / f"{canal}{parallele}.csv"
        chemin.write_bytes(_fichiers_des_trois_canaux(Scenario(app, tmp_path / f"s{parallele}"))[canal])
        with structlog.testing.capture_logs() as journal:
            assert importer_fichier_paiements(app, canal, chemin, parallele=parallele).importes == 14
        assert "fichier_relu_en_ligne" not in [e["event"] for e in journal]
        vus.append(_paiements_lus(app))
        verifier_invariants(app)
        _vider(app)
    assert vus[0] == vus[1]
    lignes = [r[5] for r in vus[1] if len(r) > 3]
    assert lignes == sorted(lignes) and lignes[-1] == (17 if canal == "cheque" else 15)


@pytest.mark.usefixtures("lots_de_trois_lignes")
def test_un_cheque_sur_deux_lignes_fait_relire_le_fichier_en_ligne(app: Application, tmp_path: Path) -> None:
    """Un champ entre guillemets qui court sur deux lignes ne se lit pas lot par lot : ce qui a été enregistré
    (remises des premiers lots) est annulé, le fichier relu par un seul lecteur, comme en ligne."""
    from regie.services.paiements import importer_fichier_paiements
    from tests.test_rapprochement_a_l_import import _vider

    lignes = [f"RC-{i // 4};{i};MARTIN CLAIRE;CCM;77.00;F01-26-05-{i:07d};2026-05-15" for i in range(1, 15)]
    lignes[8] = 'RC-2;9;"MARTIN\r\nCLAIRE";CCM;77.00;F01-26-05-0000009;2026-05-15'
    vus = []
    for parallele in (False, True):
        importer_fichier_factures(app, ecrire(tmp_path, f"f{parallele}.jsonl",
                                              [facture(f"F01-26-05-{i:07d}") for i in range(1, 15)]))
        chemin = tmp_path / f"cheques{parallele}.csv"
        chemin.write_bytes(_cheques(lignes))
        with structlog.testing.capture_logs() as journal:
            assert importer_fichier_paiements(app, "cheque", chemin, parallele=parallele).importes == 14
        assert ("fichier_relu_en_ligne" in [e["event"] for e in journal]) == parallele
        vus.append(_paiements_lus(app))
        _vider(app)
    assert vus[0] == vus[1]
    # Les remises des deux premiers lots, enregistrées avant la relecture, ne comptent pas leurs chèques deux fois.
    assert ("RC-0", 3 * 7700, 3) in vus[1] and ("RC-1", 4 * 7700, 4) in vus[1]


@pytest.mark.usefixtures("lots_de_trois_lignes")
@pytest.mark.parametrize("fautes", ["transaction en double", "erreurs"])
def test_un_releve_refuse_lu_par_deux_processus_dit_les_erreurs_de_la_lecture_en_ligne(
        app: Application, tmp_path: Path, fautes: str) -> None:
    """Une transaction revenue trois lots plus loin (chaque lecteur n'en voit qu'une), ou des erreurs dans des
    lots de l'un et de l'autre : le relevé est refusé avec les erreurs de la lecture en ligne, dans l'ordre."""
    from regie.registre.modeles import Paiement
    from tests.scenarios import Scenario

    importer_fichier_factures(app, ecrire(tmp_path, "f.jsonl", [facture(f"F01-26-05-{i:07d}") for i in range(1, 15)]))
    texte = _fichiers_des_trois_canaux(Scenario(app, tmp_path / "s"))["buraliste"].decode()
    lignes = texte.split("\r\n")
    if fautes == "transaction en double":
        lignes[12] = lignes[12].replace("PP-12;", "PP-3;")
    else:
        lignes[4] = lignes[4].replace(";77.00;", ";77,00;")
        lignes[8] = lignes[8].replace("CARTE", "CHEQUE")
    chemin = tmp_path / "releve.csv"
    chemin.write_text("\r\n".join(lignes), encoding="utf-8")
    erreurs = _refus_en_ligne_et_en_parallele(app, "buraliste", chemin)
    assert erreurs[0] == erreurs[1]
    assert [e.split(":")[1] for e in erreurs[1]] == (["13"] if fautes == "transaction en double" else ["5", "9"])
    assert compter(app, Paiement) == 0


_PARENT_TUE = """
import os, signal, sys
from regie.lecture_parallele import en_parallele

def produire():
    while True:
        yield os.getpid()

flux = en_parallele(produire, avance=2)
print(next(flux), flush=True)
os.kill(os.getpid(), signal.SIGKILL)
"""


def test_un_parent_tue_n_abandonne_pas_son_enfant_de_lecture(tmp_path: Path) -> None:
    import subprocess
    import sys

    sortie = subprocess.run([sys.executable, "-c", _PARENT_TUE], check=False, capture_output=True, text=True,
                            timeout=20)
    assert sortie.returncode == -signal.SIGKILL
    enfant = int(sortie.stdout.split()[0])
    # Son tube rompu, l'enfant s'arrête (il ne reste au plus qu'un zombie que personne n'a encore attendu).
    fin = time.monotonic() + 10
    while time.monotonic() < fin and _vivant(enfant):
        time.sleep(0.05)
    assert not _vivant(enfant)


def _vivant(pid: int) -> bool:
    try:
        etat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return etat not in ("Z", "X")


def _par_rang(rang: int, processus: int) -> Iterator[tuple[int, int]]:
    # 11 éléments répartis entre les processus : le rang k rend k, k + processus…
    for i in range(rang, 11, processus):
        yield i, os.getpid()


def _panne_au_rang_1(rang: int, processus: int) -> Iterator[int]:
    yield rang
    if rang == 1:
        raise Panne("rang 1")
    yield rang + processus


def test_plusieurs_processus_a_tour_de_role_rendent_tout_dans_l_ordre() -> None:
    from regie.lecture_parallele import en_parallele_entrelace

    for processus in (2, 3):
        recus = list(en_parallele_entrelace(_par_rang, processus=processus, avance=2))
        assert [i for i, _ in recus] == list(range(11))
        assert len({pid for _, pid in recus}) == processus and os.getpid() not in {pid for _, pid in recus}
    with pytest.raises(Panne, match="rang 1"):
        list(en_parallele_entrelace(_panne_au_rang_1))
    flux = en_parallele_entrelace(lambda rang, processus: _sans_fin(), avance=1)
    assert [next(flux) for _ in range(4)] == [1, 1, 2, 2]
    flux.close()
    time.sleep(0.1)
    import multiprocessing

    assert multiprocessing.active_children() == []


def test_un_gros_fichier_mis_en_copie_par_deux_processus_donne_le_meme_registre(
        app: Application, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Sous PostgreSQL, deux processus mettent les lots au format de COPY à tour de rôle ; les dossiers qu'ils ne
    connaissent pas sont réécrits à leur place. Même registre qu'une lecture en ligne : identifiants des factures
    (l'ordre du fichier), dossiers de chaque facture, états, avoir ; des lignes vides remplissent un lot entier.
    (Les dossiers nouveaux sont numérotés lot par lot : les lots de la lecture en ligne comptent des factures,
    ceux de la copie des lignes.)"""
    from sqlalchemy import select

    from regie.registre.modeles import Dossier, EtatFacture
    from tests.test_rapprochement_a_l_import import _vider

    monkeypatch.setattr("regie.services.factures.TAILLE_LOT", 4)
    avant = [facture("F01-26-04-0000001", dossier="D000002")]
    objets = [facture(f"F01-26-05-{i:07d}", dossier=f"D{i % 7:06d}") for i in range(1, 24)]
    lignes = [json.dumps(o, ensure_ascii=False) for o in objets]
    lignes[9:9] = ["", "  ", "", ""]  # un lot de quatre lignes vides
    lignes.insert(20, json.dumps({"type": "avoir", "numero": "A-2026-0001", "facture": "F01-26-05-0000003",
                                  "emise_le": "2026-05-10", "montant": "7.00", "motif": "Absence"}))
    photos = []
    for parallele in (False, True):
        importer_fichier_factures(app, ecrire(tmp_path, f"avant{parallele}.jsonl", avant))
        chemin = tmp_path / f"gros{parallele}.jsonl"
        chemin.write_text("\n".join(lignes) + "\n", encoding="utf-8")
        rapport = importer_fichier_factures(app, chemin, parallele=parallele)
        assert (rapport.importes, rapport.comptes) == (24, {"factures": 23, "avoirs": 1})
        with app.moteur.connect() as c:
            photos.append((
                c.execute(select(Facture.id, Facture.numero, Dossier.numero, Facture.empreinte,
                                 EtatFacture.statut, EtatFacture.paye, EtatFacture.avoirs)
                          .join(Dossier, Dossier.id == Facture.dossier_id)
                          .join(EtatFacture, EtatFacture.facture_id == Facture.id).order_by(Facture.id)).all(),
                sorted(c.execute(select(Dossier.numero)).scalars()), etat(app)))
        verifier_invariants(app)
        _vider(app)
    assert photos[0] == photos[1]
    assert [i for i, *_ in photos[1][0]] == list(range(1, 25))
    assert photos[1][1] == [f"D{i:06d}" for i in range(7)]


def test_un_gros_fichier_sans_rien_a_importer_est_refuse_comme_en_ligne(app: Application, tmp_path: Path) -> None:
    chemin = tmp_path / "blanc.jsonl"
    chemin.write_text("\n  \n\n", encoding="utf-8")
    with pytest.raises(FichierRefuse) as exc:
        importer_fichier_factures(app, chemin, parallele=True)
    assert [str(e) for e in exc.value.erreurs] == ["blanc.jsonl: fichier vide : aucune facture ni aucun avoir"]


def test_un_gros_import_de_factures_tue_entre_deux_lots_ne_laisse_rien_et_se_refait(
        app: Application, tmp_path: Path) -> None:
    """Tué (SIGKILL) après son deuxième lot écrit : la transaction n'est jamais validée, ni facture ni dossier ne
    reste, les processus de lecture s'arrêtent ; relancé, l'import est entier (sous PostgreSQL, par la copie à
    deux processus : un fichier de plus de 4 Mo)."""
    import subprocess
    import sys

    from regie.jeu_essai import ecrire_jsonl, factures
    from regie.registre.modeles import Dossier
    from tests.conftest import CONFIG_EXEMPLE

    chemin = tmp_path / "gros.jsonl"
    assert ecrire_jsonl(chemin, factures(12_000)) == 12_000
    env = dict(os.environ, REGIE_DATABASE_URL=str(app.url), REGIE_CONFIG=str(CONFIG_EXEMPLE),
               REGIE_DONNEES=str(app.env.donnees), REGIE_LOG_NIVEAU="error")
    regie = [sys.executable, "-m", "regie.cli", "factures", "importer", str(chemin)]
    tue = subprocess.run(regie, env={**env, "REGIE_TUER_AU": "import_factures_lot@2"}, capture_output=True,
                         text=True, timeout=300, check=False)
    assert tue.returncode == -signal.SIGKILL, tue.stdout + tue.stderr
    assert (compter(app, Facture), compter(app, Dossier)) == (0, 0)
    refait = subprocess.run(regie, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert refait.returncode == 0, refait.stdout + refait.stderr
    assert compter(app, Facture) == 12_000
    assert len(etat(app)["factures"]) == 12_000
    verifier_invariants(app)


def test_une_facture_connue_au_milieu_d_un_gros_fichier_fait_tout_reprendre_sans_rien_garder(
        app: Application, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Plusieurs lots déjà écrits (avec leurs dossiers nouveaux) quand un lot heurte une facture connue : tout est
    annulé et le chemin ordinaire reprend le fichier ; rien n'est compté deux fois, aucun dossier ne reste
    en double ou orphelin, et une facture connue au contenu changé est refusée comme en ligne."""
    from regie.registre.modeles import Dossier

    monkeypatch.setattr("regie.services.factures.TAILLE_LOT", 4)
    connues = [facture(f"F01-26-05-{i:07d}", dossier=f"D1{i:05d}") for i in range(1, 4)]
    importer_fichier_factures(app, ecrire(tmp_path, "avant.jsonl", connues), parallele=True)
    nouvelles = [facture(f"F01-26-06-{i:07d}", dossier=f"D2{i % 9:05d}") for i in range(1, 21)]
    rapport = importer_fichier_factures(app, ecrire(tmp_path, "apres.jsonl", [*nouvelles[:14], connues[1],
                                                                              *nouvelles[14:]]), parallele=True)
    assert (rapport.importes, rapport.ignores) == (20, 1)
    assert (compter(app, Facture), compter(app, Dossier)) == (23, 3 + 9)
    verifier_invariants(app)
    change = facture("F01-26-05-0000002", dossier="D199999")  # un autre dossier : un autre contenu
    with pytest.raises(FichierRefuse) as exc:
        importer_fichier_factures(app, ecrire(tmp_path, "change.jsonl", [*nouvelles, change]), parallele=True)
    assert [str(e) for e in exc.value.erreurs] == [
        "change.jsonl:21: numero: la facture F01-26-05-0000002 existe déjà avec un autre contenu : une facture "
        "ne se modifie pas, émettre un avoir"]
    assert compter(app, Facture) == 23
