"""La lecture dans un second processus : même résultat qu'en ligne, erreurs remontées, enfant arrêté."""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from regie.application import Application
from regie.erreurs import FichierRefuse
from regie.lecture_parallele import LectureInterrompue, en_parallele
from regie.registre.modeles import Facture
from regie.services.etat import etat
from regie.services.factures import importer_fichier_factures
from tests.test_factures_import import FACTURE, compter, ecrire, facture


def _nombres(n: int) -> Iterator[list[int]]:
    for i in range(n):
        yield [i, os.getpid()]


def test_les_lots_arrivent_tous_dans_l_ordre_depuis_un_autre_processus() -> None:
    recus = list(en_parallele(lambda: _nombres(500), avance=3))
    assert [i for i, _ in recus] == list(range(500))
    assert {pid for _, pid in recus} != {os.getpid()}  # calculés ailleurs


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


def test_un_fichier_refuse_en_parallele_dit_les_memes_erreurs_qu_en_ligne(app: Application, tmp_path: Path) -> None:
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
