# ruff: noqa: B023  (les fermetures sont exécutées et attendues dans la même manche de la boucle)
"""Schemathesis contre l'OpenAPI publié : aucune requête générée ne provoque d'erreur 500, chaque réponse
est conforme au schéma publié. Borné à quelques secondes (peu d'exemples par opération)."""

from __future__ import annotations

from typing import Any

import pytest

schemathesis = pytest.importorskip("schemathesis")

from hypothesis import HealthCheck, settings  # noqa: E402

from regie.api.app import creer_app  # noqa: E402
from regie.api.securite import creer_cle  # noqa: E402
from regie.application import Application  # noqa: E402
from regie.services.factures import pousser_objets  # noqa: E402
from tests.test_payfip_parcours import facture_json  # noqa: E402


@pytest.fixture
def url_base(tmp_path: Any, _sqlite_modele: Any) -> str:
    """SQLite seulement : il s'agit du contrat HTTP, pas de la base."""
    import shutil

    shutil.copyfile(_sqlite_modele, tmp_path / "regie.db")
    return f"sqlite:///{tmp_path / 'regie.db'}"


def test_l_api_respecte_son_openapi_sur_des_requetes_generees(app: Application) -> None:
    from hypothesis import given
    from schemathesis import openapi
    from schemathesis.specs.openapi.checks import positive_data_acceptance

    pousser_objets(app, [facture_json("F2611-0000001")])
    cle = creer_cle(app, "schemathesis").cle
    schema = openapi.from_asgi("/openapi.json", creer_app(app))
    vus = 0
    for resultat in schema.get_all_operations():
        operation = resultat.ok()
        if operation.method.upper() == "POST" and operation.path == "/api/v1/paiements/payfip":
            continue  # appellerait PayFiP (injoignable ici) : couvert par ses propres tests

        @settings(max_examples=8, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        @given(case=operation.as_strategy())
        def verifier(case: Any) -> None:
            case.headers = {**(case.headers or {}), "X-Api-Key": cle}
            # Vérifications par défaut : pas d'erreur 500, statut et corps conformes au schéma publié. Sauf
            # « donnée valide acceptée » pour POST /factures : le schéma publié dit « tableau d'objets », les
            # règles de specs/factures.md (montant = somme des lignes...) ne s'écrivent pas en JSON Schema.
            exclus = [positive_data_acceptance] if operation.path == "/api/v1/factures" else []
            case.call_and_validate(excluded_checks=exclus)

        verifier()
        vus += 1
    assert vus >= 6
