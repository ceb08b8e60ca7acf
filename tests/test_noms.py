"""La famille du tireur : la clé du payeur dit la même chose que « chaque mot du payeur est dans le libellé »."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from regie.domaine import MOTS_TIREUR_MAXI, cle_payeur, cles_possibles, mots_du_nom

MOTS = ["MARTIN", "Martín", "CLAIRE", "Claire-Marie", "LEFÈVRE", "roux", "DE", "LA", "Hélène", "O'NEIL", "1", "M.", ""]


def test_accents_casse_et_ponctuation_ne_comptent_pas() -> None:
    assert mots_du_nom("Lefèvre-Roux") == {"LEFEVRE", "ROUX"}
    assert cle_payeur("Lefèvre-Roux", "Hélène") == "HELENE LEFEVRE ROUX"
    assert "HELENE LEFEVRE ROUX" in cles_possibles(mots_du_nom("M. ET MME LEFEVRE ROUX HELENE"))
    assert cle_payeur("MARTIN", "Claire-Marie") not in cles_possibles(mots_du_nom("MARTIN CLAIRE"))


@given(st.lists(st.sampled_from(MOTS), max_size=3), st.lists(st.sampled_from(MOTS), max_size=3),
       st.lists(st.sampled_from(MOTS), max_size=6))
def test_la_cle_est_parmi_les_cles_possibles_si_et_seulement_si_chaque_mot_est_dans_le_libelle(
        nom: list[str], prenom: list[str], tireur: list[str]) -> None:
    n, p, t = " ".join(nom), " ".join(prenom), " ".join(tireur)
    mots = mots_du_nom(t)
    attendu = mots_du_nom(n) <= mots and mots_du_nom(p) <= mots
    assert (cle_payeur(n, p) in cles_possibles(mots)) is attendu


def test_un_libelle_interminable_ne_cherche_que_les_payeurs_de_cinq_mots_au_plus() -> None:
    mots = frozenset(f"M{chr(65 + i)}" for i in range(MOTS_TIREUR_MAXI + 1))
    cles = cles_possibles(mots)
    assert max(len(c.split()) for c in cles if c) == 5
