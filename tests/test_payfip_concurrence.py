"""La notification et la consultation périodique se disputent le même idOp : il n'est crédité qu'une fois.

Vraie concurrence, sur PostgreSQL : un vrai uvicorn reçoit des notifications (GET et POST, de plusieurs
fils), pendant que d'autres fils lancent la consultation périodique et le traitement direct de
l'idOp, tous relâchés ensemble par une barrière, sur de nombreuses manches.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from sqlalchemy import func, select

from connecteurs.payfip import TransportPayfip
from connecteurs.payfip.simulateur import Scenario, SimulateurPayfip
from regie.api.app import creer_app
from regie.application import Application
from regie.registre.modeles import Affectation, Dossier, EtatFacture, OperationPayfip, Paiement
from regie.services.compte import journal
from regie.services.etat import etat
from regie.services.factures import pousser_objets
from regie.services.payfip import (
    DemandePaiement,
    FactureDemandee,
    PasserellePayfip,
    consulter_operations_en_attente,
    demarrer_paiement,
    traiter_notification,
)
from tests.test_payfip_parcours import facture_json

MANCHES = 12
pytestmark = pytest.mark.postgresql


@pytest.fixture
def url_base(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Ce module ne tourne que sur PostgreSQL (SQLite sérialise tout, il n'y a pas de course à voir)."""
    from tests.conftest import _vider_postgresql

    url: str = request.getfixturevalue("_pg_initialisee")
    _vider_postgresql(url)
    return url


@pytest.fixture
def simulateur() -> Iterator[SimulateurPayfip]:
    with SimulateurPayfip(graine=11) as sim:
        yield sim


def fabrique(app: Application, simulateur: SimulateurPayfip) -> Callable[[], PasserellePayfip]:
    def nouvelle() -> PasserellePayfip:
        transport = TransportPayfip(simulateur.endpoint, delai_s=5.0, tentatives=2, attente_initiale_s=0.01)
        return PasserellePayfip(app, transport, base_page=simulateur.url_page)

    return nouvelle


@pytest.fixture
def serveur(app: Application, simulateur: SimulateurPayfip) -> Iterator[str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    passerelle = fabrique(app, simulateur)()
    srv = uvicorn.Server(uvicorn.Config(creer_app(app, passerelle), host="127.0.0.1", port=port,
                                        log_level="warning", access_log=False))
    fil = threading.Thread(target=srv.run, daemon=True)
    fil.start()
    limite = time.monotonic() + 10
    while not srv.started:
        assert time.monotonic() < limite
        time.sleep(0.02)
    yield f"http://127.0.0.1:{port}"
    srv.should_exit = True
    fil.join(timeout=15)
    passerelle.close()


def test_notifications_et_consultations_simultanees_ne_creditent_qu_une_fois(
        app: Application, simulateur: SimulateurPayfip, serveur: str) -> None:
    assert app.moteur.dialect.name == "postgresql"
    objets = []
    for m in range(MANCHES):
        objets += [facture_json(f"F2611-{m:03d}0001", dossier=f"D{m:06d}"),
                   facture_json(f"F2611-{m:03d}0002", dossier=f"D{m:06d}", quantite="3")]
    pousser_objets(app, objets)
    nouvelle = fabrique(app, simulateur)
    passerelles = [nouvelle() for _ in range(4)]
    erreurs: list[BaseException] = []
    id_ops = []
    for m in range(MANCHES):
        simulateur.prevoir_suivant(Scenario(notification_perdue=True))
        demarre = demarrer_paiement(app, passerelles[0], DemandePaiement(
            f"D{m:06d}", (FactureDemandee(f"F2611-{m:03d}0001"), FactureDemandee(f"F2611-{m:03d}0002"))))
        id_ops.append(demarre.id_op)
        simulateur.payer(demarre.id_op, "P")
        barriere = threading.Barrier(8)

        def garder(action: Callable[[], Any], barriere: threading.Barrier = barriere) -> Callable[[], None]:
            def lancer() -> None:
                try:
                    barriere.wait(timeout=10)
                    action()
                except BaseException as exc:
                    erreurs.append(exc)
            return lancer

        id_op = demarre.id_op
        actions: list[Callable[[], Any]] = [
            lambda id_op=id_op: httpx.post(f"{serveur}/payfip/notification", data={"idOp": id_op}, timeout=10),
            lambda id_op=id_op: httpx.get(f"{serveur}/payfip/notification", params={"idop": id_op}, timeout=10),
            lambda id_op=id_op: httpx.post(f"{serveur}/payfip/notification?idOp={id_op}", timeout=10),
            lambda id_op=id_op: httpx.get(f"{serveur}/payfip/retour", params={"idOp": id_op}, timeout=10),
            lambda: consulter_operations_en_attente(app, passerelles[1]),
            lambda: consulter_operations_en_attente(app, passerelles[2]),
            lambda id_op=id_op: traiter_notification(app, passerelles[3], id_op),
            lambda id_op=id_op: traiter_notification(app, passerelles[3], id_op),
        ]
        fils = [threading.Thread(target=garder(a)) for a in actions]
        for f in fils:
            f.start()
        for f in fils:
            f.join(timeout=30)
        assert not erreurs, erreurs
    # Les tâches de fond du serveur (après la réponse) finissent avant qu'on compte.
    limite = time.monotonic() + 20
    with app.moteur.connect() as conn:
        while conn.execute(select(func.count()).select_from(OperationPayfip).where(
                OperationPayfip.statut != "payee")).scalar_one():
            assert time.monotonic() < limite
            time.sleep(0.1)
    time.sleep(0.5)
    for p in passerelles:
        p.close()

    with app.moteur.connect() as conn:
        paiements = conn.execute(select(Paiement.reference, Paiement.montant, Paiement.affecte,
                                        Paiement.statut)).all()
        assert sorted(p.reference for p in paiements) == sorted(id_ops)
        assert all((p.montant, p.affecte, p.statut) == (5250, 5250, "affecte") for p in paiements)
        ops = conn.execute(select(OperationPayfip.statut, OperationPayfip.paiement_id)).all()
        assert {o.statut for o in ops} == {"payee"} and len({o.paiement_id for o in ops}) == MANCHES
        factures = conn.execute(select(EtatFacture.montant, EtatFacture.paye, EtatFacture.statut)).all()
        assert all((f.paye, f.statut) == (f.montant, "payee") for f in factures)
        assert conn.execute(select(func.sum(Affectation.montant))).scalar_one() == 5250 * MANCHES
        # Au compte de chaque famille : le panier une seule fois (une ligne par facture payée), quelle que
        # soit la voie gagnante.
        for (dossier_id,) in conn.execute(select(Dossier.id)):
            lignes = [x for x in journal(conn, dossier_id) if x.paiement_id is not None]
            assert {x.nature for x in lignes} == {"paiement"} and len({x.paiement_id for x in lignes}) == 1
            assert sorted(x.delta_du for x in lignes) == [-4200, -1050]
    familles = etat(app)["familles"]
    assert [(f["du"], f["credit"]) for f in familles] == [("0.00", "0.00")] * MANCHES
    assert simulateur.operations()[0].consultations >= 2  # la course a bien eu lieu
