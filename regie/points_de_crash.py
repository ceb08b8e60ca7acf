"""Points d'arrêt brutal pour les tests de reprise : `REGIE_TUER_AU=nom` ou `nom@n` (n-ième passage).

`REGIE_PAUSE_AU=nom:secondes` fait attendre à ce point (tests de verrou).

En production la variable n'existe pas et chaque point ne coûte qu'une lecture d'environnement.
"""

from __future__ import annotations

import os
import signal
import time

_passages: dict[str, int] = {}


def point(nom: str) -> None:
    pause = os.environ.get("REGIE_PAUSE_AU")
    if pause and pause.partition(":")[0] == nom:
        time.sleep(float(pause.partition(":")[2] or 1))  # pour tenir un verrou pendant un test
    cible = os.environ.get("REGIE_TUER_AU")
    if not cible:
        return
    voulu, _, rang = cible.partition("@")
    if voulu != nom:
        return
    _passages[nom] = _passages.get(nom, 0) + 1
    if _passages[nom] >= int(rang or 1):
        os.kill(os.getpid(), signal.SIGKILL)
