"""Le planificateur (APScheduler 3) : les tâches et leur cadence, rien d'autre.

- résultats PayFiP en attente : toutes les `payfip_minutes` (5 par défaut) ;
- boîte de réception : toutes les `boite_minutes` (15) ;
- la nuit : chaque jour à `nuit` (02:00), heure de Paris.

Fusion des exécutions manquées et délai de grâce : une machine qui a dormi rattrape une nuit
manquée une fois, pas cinq. Chaque tâche prend un verrou en base : plusieurs planificateurs
(une grappe) peuvent tourner, un seul exécute.
"""

from __future__ import annotations

import signal
from collections.abc import Callable
from typing import Any

import structlog
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.base import BaseScheduler
from apscheduler.schedulers.blocking import BlockingScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from regie.application import Application

log = structlog.get_logger()


def tache_payfip(app: Application) -> None:
    from regie.services.payfip import PasserellePayfip, consulter_operations_en_attente
    from regie.services.verrou import tache_exclusive

    with tache_exclusive(app, "payfip") as obtenu:
        if not obtenu:
            log.info("tache_ignoree", tache="payfip", raison="verrou tenu ailleurs")
            return
        passerelle = PasserellePayfip(app)
        try:
            consulter_operations_en_attente(app, passerelle)
        finally:
            passerelle.close()


def tache_boite(app: Application) -> None:
    from regie.services.boite_reception import EntreeBoite, relever
    from regie.services.nuit import _depot
    from regie.services.verrou import tache_exclusive

    # Même verrou que la nuit : on ne relève pas pendant qu'elle tourne.
    with tache_exclusive(app, "nuit") as obtenu:
        if not obtenu:
            log.info("tache_ignoree", tache="boite", raison="la nuit ou un autre relevé tourne")
            return
        entrees = [EntreeBoite(dossier=x.dossier, canal=x.canal, motif=x.motif) for x in app.config.depot.entree]
        with _depot(app) as depot:
            relever(app, depot, entrees)


def tache_nuit(app: Application) -> None:
    from regie.services.nuit import executer_nuit

    rapport = executer_nuit(app)
    log.info("nuit_planifiee_terminee", code=rapport.code_sortie, ignoree=rapport.ignoree)


def configurer(planificateur: BaseScheduler, app: Application,
               taches: dict[str, Callable[[Application], None]] | None = None) -> BaseScheduler:
    """Ajoute les trois tâches au planificateur donné (tests : un planificateur à horloge simulée)."""
    t = {"payfip": tache_payfip, "boite": tache_boite, "nuit": tache_nuit, **(taches or {})}
    p = app.config.planificateur
    heure, minute = (int(x) for x in p.nuit.split(":"))
    communs: dict[str, Any] = {"coalesce": True, "max_instances": 1, "args": [app], "replace_existing": True}
    planificateur.add_job(t["payfip"], IntervalTrigger(minutes=p.payfip_minutes, timezone=p.fuseau), id="payfip",
                          name="résultats PayFiP", misfire_grace_time=p.payfip_minutes * 60, **communs)
    planificateur.add_job(t["boite"], IntervalTrigger(minutes=p.boite_minutes, timezone=p.fuseau), id="boite",
                          name="boîte de réception", misfire_grace_time=p.boite_minutes * 60, **communs)
    planificateur.add_job(t["nuit"], CronTrigger(hour=heure, minute=minute, timezone=p.fuseau), id="nuit",
                          name="la nuit", misfire_grace_time=p.grace_minutes * 60, **communs)
    return planificateur


def lancer(app: Application) -> None:
    """`regie planificateur` : au premier plan ; SIGTERM ou SIGINT arrêtent proprement.

    La tâche en cours se termine (shutdown attend) ; si le processus est tué quand même, chaque
    tâche est sûre à reprendre.
    """
    planificateur = BlockingScheduler(timezone=app.config.planificateur.fuseau,
                                      executors={"default": ThreadPoolExecutor(3)})
    configurer(planificateur, app)

    def arreter(signum: int, _frame: Any) -> None:
        log.info("planificateur_arret_demande", signal=signal.Signals(signum).name)
        planificateur.shutdown(wait=True)

    signal.signal(signal.SIGTERM, arreter)
    signal.signal(signal.SIGINT, arreter)
    for job in planificateur.get_jobs():
        log.info("tache_planifiee", tache=job.id, nom=job.name, declencheur=str(job.trigger))
    planificateur.start()
    log.info("planificateur_arrete")
