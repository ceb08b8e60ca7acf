"""Le planificateur à horloge simulée : chaque tâche part quand elle doit ; une nuit manquée est rattrapée une fois."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from apscheduler.executors.debug import DebugExecutor
from apscheduler.schedulers.base import BaseScheduler

import scheduler
from regie.application import Application
from regie.parametres import charger_configuration
from tests.conftest import CONFIG_EXEMPLE

PARIS = ZoneInfo("Europe/Paris")


class Horloge:
    def __init__(self, instant: datetime) -> None:
        self.instant = instant

    def avancer(self, **duree: float) -> None:
        self.instant += timedelta(**duree)


class PlanificateurSimule(BaseScheduler):
    """Un planificateur sans fil d'exécution : on fait passer le temps et on lui demande d'agir."""

    def wakeup(self) -> None:
        pass

    def shutdown(self, wait: bool = True) -> None:
        super().shutdown(wait)


@pytest.fixture
def simule(monkeypatch: pytest.MonkeyPatch) -> Any:
    horloge = Horloge(datetime(2026, 3, 2, 1, 0, tzinfo=PARIS))

    class FausseDatetime(datetime):
        @classmethod
        def now(cls, tz: Any = None) -> datetime:  # type: ignore[override]
            return horloge.instant.astimezone(tz) if tz else horloge.instant.replace(tzinfo=None)

    import apscheduler.executors.base as executeurs
    import apscheduler.triggers.interval as intervalle
    from apscheduler.schedulers import base

    for module in (base, executeurs, intervalle):
        monkeypatch.setattr(module, "datetime", FausseDatetime)
    app = Application(charger_configuration(CONFIG_EXEMPLE), url="sqlite://")
    appels: list[tuple[str, datetime]] = []

    def tache(nom: str) -> Any:
        return lambda _app: appels.append((nom, horloge.instant))

    p = PlanificateurSimule(timezone=PARIS, executors={"default": DebugExecutor()})
    scheduler.configurer(p, app, {n: tache(n) for n in ("payfip", "boite", "nuit")})
    p.start()
    yield horloge, p, appels
    p.shutdown()


def _nuits(appels: list[tuple[str, datetime]]) -> list[datetime]:
    return [quand for nom, quand in appels if nom == "nuit"]


def test_les_taches_partent_a_leur_cadence(simule: Any) -> None:
    horloge, p, appels = simule
    for _ in range(12):  # une heure, minute par minute... de cinq en cinq
        horloge.avancer(minutes=5)
        p._process_jobs()
    assert sum(1 for n, _ in appels if n == "payfip") == 12
    assert sum(1 for n, _ in appels if n == "boite") == 4
    assert _nuits(appels) == [datetime(2026, 3, 2, 2, 0, tzinfo=PARIS)]


def test_la_nuit_part_a_deux_heures_de_paris_meme_au_changement_d_heure(simule: Any) -> None:
    horloge, p, appels = simule
    horloge.instant = datetime(2026, 3, 28, 23, 0, tzinfo=PARIS)  # la nuit du passage à l'heure d'été
    p._process_jobs()
    appels.clear()
    for _ in range(6 * 24 * 2):
        horloge.avancer(minutes=10)
        p._process_jobs()
    jours = [q.astimezone(PARIS).day for q in _nuits(appels)]
    assert jours == [29, 30]  # une nuit chaque jour, même celle où 02:00 n'existe pas


def test_une_machine_qui_a_dormi_cinq_nuits_n_en_rattrape_qu_une(simule: Any) -> None:
    horloge, p, appels = simule
    horloge.avancer(days=5, hours=6)
    p._process_jobs()
    assert len(_nuits(appels)) == 1
    assert sum(1 for n, _ in appels if n == "payfip") == 1  # fusionnées, elles aussi
    horloge.avancer(hours=1)
    p._process_jobs()
    assert len(_nuits(appels)) == 1  # la prochaine est la nuit suivante, pas une autre de rattrapage


def test_une_nuit_manquee_au_dela_du_delai_de_grace_laisse_place_a_la_suivante(simule: Any) -> None:
    horloge, p, appels = simule
    horloge.instant = datetime(2026, 3, 3, 1, 30, tzinfo=PARIS)  # 23 h 30 après la nuit du 2 mars
    p._process_jobs()
    assert _nuits(appels) == []  # au-delà du délai de grâce (23 h) : la nuit suivante est proche
    horloge.avancer(minutes=31)
    p._process_jobs()
    assert len(_nuits(appels)) == 1
