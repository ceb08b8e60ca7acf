"""Lire dans un second processus : le fichier est lu et contrôlé pendant que le registre écrit.

Sur une machine de deux cœurs, un gros import de factures passe autant de temps à lire et contrôler
le JSON qu'à écrire : le second cœur lit pendant que le premier écrit. Le processus enfant est une
copie (fork) du parent : il ne touche jamais à la base (les connexions héritées ne sont pas
utilisées, et il se termine sans rien fermer). Les lots arrivent dans l'ordre ; le tube, borné,
retient l'enfant quand l'écriture prend du retard : la mémoire ne grandit pas avec le fichier.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Iterator
from multiprocessing.connection import Connection
from typing import Any, TypeVar

T = TypeVar("T")


class LectureInterrompue(RuntimeError):
    """Le processus de lecture s'est arrêté sans finir (tué, mémoire épuisée)."""


def en_parallele(produire: Callable[[], Iterator[T]], *, parallele: bool = True) -> Iterator[T]:
    """Les éléments de `produire()`, calculés dans un processus enfant si `parallele`.

    Une exception de l'enfant est relevée ici, telle quelle si elle se transmet ; quitter la boucle
    avant la fin arrête l'enfant.
    """
    if not parallele:
        yield from produire()
        return
    contexte = multiprocessing.get_context("fork")
    lecture, ecriture = contexte.Pipe(duplex=False)
    enfant = contexte.Process(target=_enfant, args=(produire, ecriture), name="regie-lecture", daemon=True)
    enfant.start()
    ecriture.close()
    try:
        while True:
            try:
                genre, valeur = lecture.recv()
            except EOFError:
                raise LectureInterrompue(f"le processus de lecture s'est arrêté (code {enfant.exitcode})") from None
            if genre == "lot":
                yield valeur
            elif genre == "fin":
                return
            else:
                raise valeur
    finally:
        lecture.close()
        if enfant.is_alive():
            enfant.terminate()
        enfant.join()


def _enfant(produire: Callable[[], Iterator[Any]], ecriture: Connection) -> None:
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
        if os.environ.get("REGIE_DEBUG_ENFANT"):
            import resource
            import sys
            r = resource.getrusage(resource.RUSAGE_SELF)
            print(f"enfant: user {r.ru_utime:.1f} sys {r.ru_stime:.1f}", file=sys.stderr)
        # Sans finaliseurs : les connexions à la base héritées du parent ne doivent pas être fermées ici.
        os._exit(0)
