"""La progression des longs travaux sur un terminal (comptes et débit) ; muette sans terminal (cron, CI)."""

from __future__ import annotations

import sys
import time
from typing import TextIO


class Progression:
    def __init__(self, libelle: str, unite: str, *, sortie: TextIO | None = None, intervalle_s: float = 1.0,
                 actif: bool | None = None) -> None:
        self.sortie = sortie or sys.stderr
        self.actif = self.sortie.isatty() if actif is None else actif
        self.libelle = libelle
        self.unite = unite
        self.intervalle_s = intervalle_s
        self.n = 0
        self.debut = time.monotonic()
        self.dernier = self.debut

    def avancer(self, n: int = 1) -> None:
        self.n += n
        if not self.actif:
            return
        maintenant = time.monotonic()
        if maintenant - self.dernier >= self.intervalle_s:
            self.dernier = maintenant
            self._ecrire(maintenant, "\r")

    def terminer(self) -> None:
        if self.actif and self.n:
            self._ecrire(time.monotonic(), "\r")
            self.sortie.write("\n")
            self.sortie.flush()

    def _ecrire(self, maintenant: float, debut: str) -> None:
        duree = max(maintenant - self.debut, 1e-9)
        debit = self.n / duree
        self.sortie.write(f"{debut}… {self.libelle} : {self.n:,} {self.unite} ({debit:,.0f}/s, {duree:.0f} s)"
                          .replace(",", " "))
        self.sortie.flush()
