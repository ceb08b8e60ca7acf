"""Lire dans un second processus : le fichier est lu et contrôlé pendant que le registre écrit.

Sur une machine de deux cœurs, un gros import de factures passe autant de temps à lire et contrôler
le JSON qu'à écrire : le second cœur lit pendant que le premier écrit. Le processus enfant est une
copie (fork) du parent : il ne touche jamais à la base (les connexions héritées ne sont pas
utilisées, et il se termine sans rien fermer). Les lots arrivent dans l'ordre. Un fil du parent les
reçoit d'avance, jusqu'à `avance` lots : l'enfant lit encore pendant que le parent attend la base,
et la mémoire reste bornée quelle que soit la taille du fichier.
"""

from __future__ import annotations

import functools
import itertools
import multiprocessing
import os
import queue
import threading
from collections.abc import Callable, Generator, Iterator
from multiprocessing.connection import Connection
from typing import Any, Generic, TypeVar

T = TypeVar("T")
A = TypeVar("A")
# De combien (nice) un lecteur en avance sur celui qui écrit lui cède le processeur (et au serveur PostgreSQL) :
# il prend ce qui reste. Pas un lecteur que le processus principal attend (lecture d'avance des factures d'un
# lot de paiements) : le ralentir, c'est ralentir le moteur.
PRIORITE_LECTEUR = 10
_FIN = object()


class LectureInterrompue(RuntimeError):
    """Le processus de lecture s'est arrêté sans finir (tué, mémoire épuisée)."""


def en_parallele(produire: Callable[[], Iterator[T]], *, parallele: bool = True,
                 avance: int = 8, priorite: int = 0) -> Generator[T, None, None]:
    """Les éléments de `produire()`, calculés dans un processus enfant si `parallele`.

    Une exception de l'enfant est relevée ici, telle quelle si elle se transmet ; quitter la boucle
    avant la fin arrête l'enfant.
    """
    if not parallele:
        yield from produire()
        return
    yield from _entrelacer([produire], avance, priorite)


def en_parallele_entrelace(produire: Callable[[int, int], Iterator[T]], *, processus: int = 2,
                           avance: int = 4, priorite: int = 0) -> Generator[T, None, None]:
    """Les éléments de plusieurs processus, pris à tour de rôle : `produire(rang, processus)` donne les éléments
    de rang, rang + processus, rang + 2 × processus… ; le premier processus qui n'a plus rien à son tour
    termine la suite. Quand un seul processus de lecture ne suffit plus à celui qui écrit.
    """
    yield from _entrelacer([functools.partial(produire, rang, processus) for rang in range(processus)], avance,
                           priorite)


def _entrelacer(producteurs: list[Callable[[], Iterator[T]]], avance: int,
                priorite: int) -> Generator[T, None, None]:
    yield from _Lecteurs(producteurs, avance, priorite).elements()


class _Lecteurs(Generic[T]):
    """Les processus de lecture, créés dès la construction, et les fils qui reçoivent leurs lots."""

    def __init__(self, producteurs: list[Callable[[], Iterator[T]]], avance: int, priorite: int) -> None:
        contexte = multiprocessing.get_context("fork")
        self.enfants: list[tuple[multiprocessing.process.BaseProcess, Connection]] = []
        self.recus: list[queue.Queue[Any]] = []
        self.fils: list[threading.Thread] = []
        self.arret = threading.Event()
        try:
            # Tous les enfants d'abord, les fils de réception ensuite : un fork ne copie jamais un fil en cours.
            for produire in producteurs:
                lecture, ecriture = contexte.Pipe(duplex=False)
                processus = contexte.Process(target=_enfant, args=(produire, ecriture, lecture, priorite),
                                             name="regie-lecture", daemon=True)
                processus.start()
                ecriture.close()
                self.enfants.append((processus, lecture))
            for enfant, lecture in self.enfants:
                file: queue.Queue[Any] = queue.Queue(maxsize=avance)
                fil = threading.Thread(target=_recevoir, args=(lecture, file, self.arret, enfant),
                                       name="regie-reception", daemon=True)
                fil.start()
                self.recus.append(file)
                self.fils.append(fil)
        except BaseException:
            self.arreter()
            raise

    def elements(self) -> Generator[T, None, None]:
        try:
            for file in itertools.cycle(self.recus):
                message = file.get()
                if message is _FIN:
                    return
                genre, valeur = message
                if genre == "lot":
                    yield valeur
                elif genre == "erreur":
                    raise valeur
        finally:
            self.arreter()

    def arreter(self) -> None:
        self.arret.set()
        for enfant, _ in self.enfants:
            if enfant.is_alive():
                enfant.terminate()
        for fil in self.fils:
            fil.join()
        for enfant, lecture in self.enfants:
            enfant.join()
            lecture.close()
        self.enfants, self.fils = [], []


class LectureSurCommande(Generic[A, T]):
    """Un processus de lecture créé tout de suite, qui attend ce qu'il doit lire (`lancer`).

    Un fork partage les pages du parent, copiées dès que l'un des deux y écrit. Créé après le chargement de
    centaines de milliers d'objets, l'enfant ferait recopier au parent chaque page qu'il touche ensuite (le
    compteur de références d'un objet lu s'écrit) : un quart de cœur perdu à copier, sous SQLite, pendant un
    rapprochement. Créé avant, l'enfant ne partage qu'un processus encore petit.
    """

    def __init__(self, produire: Callable[[A], Iterator[T]], *, avance: int = 8, priorite: int = 0) -> None:
        commande, self._commande = multiprocessing.get_context("fork").Pipe(duplex=False)
        try:
            self._lecteurs: _Lecteurs[T] = _Lecteurs(
                [functools.partial(_sur_commande, produire, commande, self._commande)], avance, priorite)
        finally:
            commande.close()

    def lancer(self, argument: A) -> Generator[T, None, None]:
        """Les éléments de `produire(argument)`, lus dans le processus de lecture ; le quitter l'arrête."""
        self._commande.send(argument)
        self._commande.close()
        return self._lecteurs.elements()

    def fermer(self) -> None:
        """Le processus arrêté sans avoir rien lu (ou fini) : à appeler si `lancer` ne l'a pas été."""
        self._commande.close()
        self._lecteurs.arreter()


def _sur_commande(produire: Callable[[A], Iterator[T]], commande: Connection, envoi: Connection) -> Iterator[T]:
    # Le bout d'envoi hérité, fermé : le parent parti sans rien envoyer, la lecture finit (EOFError).
    envoi.close()
    try:
        argument = commande.recv()
    except EOFError:
        return
    yield from produire(argument)


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


def _enfant(produire: Callable[[], Iterator[Any]], ecriture: Connection, lecture: Connection,
            priorite: int) -> None:
    # Le bout de lecture hérité du parent, fermé : si le parent meurt, écrire échoue (tube rompu) et
    # l'enfant s'arrête, au lieu d'attendre sans fin qu'on lise un tube plein.
    lecture.close()
    if priorite:
        os.nice(priorite)
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
