"""La progression : des comptes et un débit sur un terminal, rien du tout sans terminal (cron, CI)."""

from __future__ import annotations

import io

from regie.progression import Progression


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_sur_un_terminal_la_progression_donne_le_compte_et_le_debit() -> None:
    sortie = Terminal()
    p = Progression("import des factures", "factures", sortie=sortie, intervalle_s=0)
    p.avancer(1500)
    p.avancer(2500)
    p.terminer()
    texte = sortie.getvalue()
    assert "… import des factures : 4 000 factures (" in texte
    assert "/s" in texte and texte.endswith("\n")


def test_sans_terminal_la_progression_se_tait() -> None:
    sortie = io.StringIO()
    p = Progression("rapprochement", "paiements", sortie=sortie, intervalle_s=0)
    p.avancer(10)
    p.terminer()
    assert sortie.getvalue() == ""
