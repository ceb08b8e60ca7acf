"""Lire dans un second processus : le fichier est lu et contrôlé pendant que le registre écrit.

Sur une machine de deux cœurs, un gros import de factures passe autant de temps à lire et contrôler
le JSON qu'à écrire : le second cœur lit pendant que le premier écrit. Le processus enfant est une
copie (fork) du parent : il ne touche jamais à la base (les connexions héritées ne sont pas
utilisées, et il se termine sans rien fermer). Les lots arrivent dans l'ordre. Un fil du parent les
reçoit d'avance, jusqu'à `avance` lots : l'enfant lit encore pendant que le parent attend la base,
et la mémoire reste bornée quelle que soit la taille du fichier.
"""

from __future__ import annotations

import multiprocessing
import os
import queue
import threading
from collections.abc import Callable, Generator, Iterator
from multiprocessing.connection import Connection
from typing import Any, TypeVar

T = TypeVar("T")
_FIN = object()


class LectureInterrompue(RuntimeError):
    """Le processus de lecture s'est arrêté sans finir (tué, mémoire épuisée)."""


def en_parallele(produire: Callable[[], Iterator[T]], *, parallele: bool = True,
                 avance: int = 8) -> Generator[T, None, None]:
    """Les éléments de `produire()`, calculés dans un processus enfant si `parallele`.

    Une exception de l'enfant est relevée ici, telle quelle si elle se transmet ; quitter la boucle
    avant la fin arrête l'enfant.
    """
    if not parallele:
        yield from produire()
        return
    contexte = multiprocessing.get_context("fork")
    lecture, ecriture = contexte.Pipe(duplex=False)
    enfant = contexte.Process(target=_enfant, args=(produire, ecriture, lecture), name="regie-lecture",
                              daemon=True)
    enfant.start()
    ecriture.close()
    recus: queue.Queue[Any] = queue.Queue(maxsize=avance)
    arret = threading.Event()
    fil = threading.Thread(target=_recevoir, args=(lecture, recus, arret, enfant), name="regie-reception",
                           daemon=True)
    fil.start()
    try:
        while (message := recus.get()) is not _FIN:
            genre, valeur = message
            if genre == "lot":
                yield valeur
            elif genre == "erreur":
                raise valeur
    finally:
        arret.set()
        if enfant.is_alive():
            enfant.terminate()
        fil.join()
        enfant.join()
        lecture.close()


def _recevoir(lecture: Connection, recus: queue.Queue[Any], arret: threading.Event,
              enfant: multiprocessing.process.BaseProcess) -> None:
    """Le fil de réception : du tube à la file bornée, jusqu'à la fin, une erreur ou l'arrêt demandé."""
    def deposer(message: Any) -> bool:
        while not arret.is_set():
            try:
                recus.put(message, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    while True:
        try:
            message = lecture.recv()
        except (EOFError, OSError):
            if not arret.is_set():
                deposer(("erreur", LectureInterrompue(
                    f"le processus de lecture s'est arrêté sans finir (code {enfant.exitcode})")))
            deposer(_FIN)
            return
        if message[0] == "fin":
            deposer(_FIN)
            return
        if not deposer(message):
            return


def _enfant(produire: Callable[[], Iterator[Any]], ecriture: Connection, lecture: Connection) -> None:
    # Le bout de lecture hérité du parent, fermé : si le parent meurt, écrire échoue (tube rompu) et
    # l'enfant s'arrête, au lieu d'attendre sans fin qu'on lise un tube plein.
    lecture.close()
    try:
        for element in produire():
            ecriture.send(("lot", element))
        ecriture.send(("fin", None))
    except BaseException as exc:  # tout remonte au parent, qui décide
        try:
            ecriture.send(("erreur", exc))
        except Exception:  # l'exception ne se transmet pas telle quelle : son texte suffit
            ecriture.send(("erreur", LectureInterrompue(repr(exc))))
    finally:
        ecriture.close()
        # Sans finaliseurs : les connexions à la base héritées du parent ne doivent pas être fermées ici.
        os._exit(0)
