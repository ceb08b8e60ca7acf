"""Propriété : quelle que soit la suite d'imports et de décisions, les comptes tombent juste.

Après chaque étape : montant = payé + avoirs + reste pour chaque facture, montant = affecté +
excédent pour chaque paiement, et l'historique du compte famille s'accorde avec les factures.
"""

from __future__ import annotations

import itertools
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from rapprochement import decisions
from rapprochement.decisions import DecisionRefusee
from regie.application import Application
from regie.montants import centimes_en_euros as eur
from regie.registre.modeles import Paiement
from tests.scenarios import Scenario, autre
from tests.test_decisions import verifier_paiements
from tests.test_factures_import import verifier_invariants

NUMEROS = [f"F01-26-05-{i:07d}" for i in range(1, 5)]
compteur = itertools.count(1)

etape = st.one_of(
    st.tuples(st.just("cheque"), st.sampled_from([*NUMEROS, ""]), st.integers(1, 9000)),
    st.tuples(st.just("cesu"), st.sampled_from(NUMEROS), st.integers(1, 4000)),
    st.tuples(st.just("avoir"), st.sampled_from(NUMEROS), st.integers(1, 6000)),
    st.tuples(st.just("affecter"), st.sampled_from(NUMEROS), st.integers(1, 3000)),
    st.tuples(st.just("crediter"), st.just(""), st.just(0)),
    st.tuples(st.just("appliquer"), st.just(""), st.just(0)),
    st.tuples(st.just("annuler"), st.just(""), st.just(0)),
    st.tuples(st.just("defaire"), st.sampled_from(NUMEROS), st.just(0)),
    st.tuples(st.just("rembourser"), st.just(""), st.integers(1, 2000)),
)


def _un_paiement(app: Application, n: int) -> tuple[int, int] | None:
    with app.sessions() as s:
        ps = s.scalars(select(Paiement).where(Paiement.canal.in_(("cheque", "cesu"))).order_by(Paiement.id)).all()
        if not ps:
            return None
        p = ps[n % len(ps)]
        return p.id, p.version


@settings(max_examples=12, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.lists(etape, min_size=3, max_size=10))
def test_les_invariants_tiennent_apres_chaque_etape(app: Application, tmp_path: Path, etapes) -> None:  # type: ignore[no-untyped-def]
    dossier = tmp_path / f"essai{next(compteur)}"
    dossier.mkdir()
    from tests.test_rapprochement import _vider

    _vider(app)
    sc = Scenario(app, dossier)
    facture_cesu = autre(NUMEROS[0], "60.00")
    facture_cesu["lignes"][0].update({"prestation": "CRECHE", "naissance": "2024-01-01"})
    sc.factures(facture_cesu, autre(NUMEROS[1], "45.50"), autre(NUMEROS[2], "12.00", dossier="D000777"),
                autre(NUMEROS[3], "80.00"))
    for i, (quoi, numero, montant) in enumerate(etapes):
        try:
            if quoi == "cheque":
                sc.cheques(("RC-P", str(i), "MARTIN CLAIRE", eur(montant), numero))
            elif quoi == "cesu":
                sc.cesu(("R-P", f"{900000 + i}", 2026, eur(montant), numero, "2026-05-14"))
            elif quoi == "avoir":
                sc.factures({"type": "avoir", "numero": f"A-P-{i}", "facture": numero, "emise_le": "2026-05-20",
                             "montant": eur(montant), "motif": "essai"})
            elif (cible := _un_paiement(app, i)) is not None:
                pid, version = cible
                if quoi == "affecter":
                    decisions.affecter(app, pid, [(numero, montant)], qui="prop", motif="essai", version=version)
                elif quoi == "crediter":
                    decisions.garder_en_credit(app, pid, qui="prop", motif="essai", dossier="D004512")
                elif quoi == "appliquer":
                    decisions.appliquer_credit(app, "D004512", qui="prop", motif="essai")
                elif quoi == "annuler":
                    decisions.annuler_paiement(app, pid, qui="prop", motif="essai")
                elif quoi == "defaire":
                    decisions.annuler_affectation(app, pid, numero, qui="prop", motif="essai")
                elif quoi == "rembourser":
                    decisions.rembourser(app, pid, montant, qui="prop", motif="essai")
        except DecisionRefusee:
            pass  # une décision impossible est refusée entière : les invariants doivent tenir quand même
        except Exception as exc:  # un avoir refusé (facture titrée, annulée) est un refus de fichier
            from regie.erreurs import FichierRefuse

            if not isinstance(exc, FichierRefuse):
                raise
        verifier_invariants(app)
        verifier_paiements(app)
