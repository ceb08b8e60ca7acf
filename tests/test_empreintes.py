"""L'empreinte d'un paiement reçu est gardée en base : elle ne change pas d'une version à l'autre.

Un fichier importé par une version précédente, reçu de nouveau, doit être reconnu (« déjà importé ») et non
signalé en DOUBLON. Les valeurs ci-dessous sont celles que calculait la première version de l'empreinte.
"""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from connecteurs.modeles import PaiementRecu
from regie.services.paiements import empreinte_paiement

PARIS = ZoneInfo("Europe/Paris")
# L'heure répétée du passage à l'heure d'hiver : même heure affichée, deux instants (fold 0 et 1).
AMBIGUE = datetime(2026, 10, 25, 2, 30, tzinfo=PARIS)

CAS = [
    (PaiementRecu(canal="cheque", reference="RC-1/1234567", montant=4200, recu_le=datetime(2026, 5, 15, tzinfo=PARIS),
                  reference_facture="F01-26-05-0000123", remise="RC-1",
                  details={"tireur": "MARTIN CLAIRE", "banque": None, "recu_le": "2026-05-15"}),
     "1cc90a196c5f538b50c5497c5fade06ac5511d0a09de9b3e4ddf2fe5d11152ef"),
    (PaiementRecu(canal="cheque", reference="RC-1/1234568", montant=4200, recu_le=datetime(2026, 1, 15, tzinfo=PARIS),
                  details={"tireur": "MARTIN CLAIRE"}),
     "b8e346ca3a5cf05abb7191698c264f1981d8839ecb918ea663fa76fecb69ff41"),
    (PaiementRecu(canal="buraliste", reference="PP-1", montant=9450,
                  recu_le=datetime.fromisoformat("2026-06-01T10:00:00+02:00"), reference_facture="1",
                  details={"mode": "CARTE", "numero_dette": 1, "datamatrix_valide": True}),
     "354f446123e85106619ac33ef7e2831eb6747c8f8dc608b455cc6f0ee3665303"),
    # Le même instant que le précédent, écrit en UTC : une autre empreinte.
    (PaiementRecu(canal="buraliste", reference="PP-2", montant=9450,
                  recu_le=datetime.fromisoformat("2026-06-01T08:00:00+00:00"), reference_facture="1",
                  details={"mode": "CARTE"}),
     "afbe33f9c1b31b8dd6789d5ca1c967ec02a9379cbad2ee255f759de915caf657"),
    (PaiementRecu(canal="payfip", reference="P-3", montant=1,
                  recu_le=datetime(2026, 6, 1, 8, 0, 0, 123456, tzinfo=UTC), details={}),
     "c6ad5943d695e482570e732881c3270fefad58a889981f44c684519af4665abb"),
    # Le type de retour décrit le fichier, pas l'encaissement : il n'entre pas dans l'empreinte.
    (PaiementRecu(canal="pes_retour", reference="2026/12/3", montant=500, recu_le=AMBIGUE.replace(fold=1),
                  details={"typ_restit": "1", "x": "y"}),
     "9647af0610125326a157ed42f78c0d8dab2696952d6bbcf6df39416132b9fc05"),
]


@pytest.mark.parametrize("ordre", [1, -1], ids=["dans_l_ordre", "a_rebours"])
def test_l_empreinte_d_un_paiement_ne_change_pas_d_une_version_a_l_autre(ordre: int) -> None:
    # Deux fois chaque cas, dans un ordre puis dans l'autre : une mémoire des dates déjà vues ne confond
    # ni deux fuseaux du même instant, ni les deux 2 h 30 du 25 octobre.
    for recu, attendue in [*CAS[::ordre], *CAS[::ordre]]:
        assert empreinte_paiement(recu) == attendue, recu.reference


def test_les_deux_heures_repetees_du_passage_a_l_heure_d_hiver_ont_deux_empreintes() -> None:
    premiere, seconde = (PaiementRecu(canal="pes_retour", reference="2026/12/3", montant=500,
                                      recu_le=AMBIGUE.replace(fold=f), details={}) for f in (0, 1))
    assert premiere.recu_le == seconde.recu_le  # égales pour Python (même fuseau), pas le même instant
    assert empreinte_paiement(premiere) != empreinte_paiement(seconde)
    assert empreinte_paiement(seconde) != empreinte_paiement(premiere)
