"""Montants : centimes entiers à l'intérieur, euros à deux décimales aux bords, jamais de float."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from regie.montants import (
    MontantInvalide,
    centimes_en_euros,
    decimal_en_centiemes,
    euros_en_centimes,
    produit_arrondi,
)


@given(st.integers(min_value=0, max_value=10**15 - 1))
def test_lire_puis_ecrire_un_montant_rend_le_meme_nombre_de_centimes(centimes: int) -> None:
    assert euros_en_centimes(centimes_en_euros(centimes)) == centimes


@given(st.integers(min_value=-(10**15) + 1, max_value=10**15 - 1))
def test_un_montant_signe_fait_l_aller_retour_quand_le_signe_est_permis(centimes: int) -> None:
    assert euros_en_centimes(centimes_en_euros(centimes), negatif_permis=True) == centimes


@given(st.from_regex(r"(0|[1-9][0-9]{0,8})\.[0-9]{2}", fullmatch=True))
def test_ecrire_un_montant_lu_rend_le_meme_texte(texte: str) -> None:
    assert centimes_en_euros(euros_en_centimes(texte)) == texte


@given(st.text(max_size=20))
def test_aucune_chaine_ne_fait_lever_autre_chose_que_montant_invalide(texte: str) -> None:
    try:
        valeur = euros_en_centimes(texte)
    except MontantInvalide:
        return
    assert isinstance(valeur, int)


@pytest.mark.parametrize("texte, raison", [
    ("42,00", "virgule"), ("42.001", "plus de deux décimales"), ("4.2e1", "deux décimales"),
    ("42", "deux décimales"), ("42.0", "deux décimales"), ("-5.00", "négatif"), ("+5.00", "deux décimales"),
    (" 42.00", "deux décimales"), ("042.00", "deux décimales"), ("", "deux décimales"),
])
def test_les_montants_mal_ecrits_sont_refuses_avec_la_raison(texte: str, raison: str) -> None:
    with pytest.raises(MontantInvalide, match=raison):
        euros_en_centimes(texte)


def test_un_float_n_est_jamais_accepte_comme_montant() -> None:
    with pytest.raises(TypeError):
        centimes_en_euros(42.0)  # type: ignore[arg-type]
    with pytest.raises(MontantInvalide):
        euros_en_centimes(42.0)  # type: ignore[arg-type]


def test_quantites_et_produit_arrondi_a_la_moitie_superieure() -> None:
    assert decimal_en_centiemes("12") == 1200
    assert decimal_en_centiemes("1.5") == 150
    assert decimal_en_centiemes("0.25") == 25
    assert produit_arrondi(150, 333) == 500  # 1.5 × 3.33 = 4.995 → 5.00
    assert produit_arrondi(25, 2) == 1  # 0.25 × 0.02 = 0.005 → 0.01
    assert produit_arrondi(1200, 350) == 4200
    with pytest.raises(MontantInvalide):
        decimal_en_centiemes("1.234")
