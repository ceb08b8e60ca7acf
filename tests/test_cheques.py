"""Bordereaux de remise de chèques du guichet."""

from __future__ import annotations

import contextlib
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from connecteurs.cfonb.cfonb120 import remise_citee
from connecteurs.cheques.remises import lire_remise_cheques
from connecteurs.modeles import PaiementRecu
from regie.erreurs import FichierRefuse
from regie.montants import centimes_en_euros
from tests.paiements_recus import assert_comme_valide

ENTETE = "remise;numero_cheque;tireur;banque;montant;facture;recu_le"
FICHIER = "bordereau_RC-2026-031.csv"


def csv_tableur(*lignes: str, bom: bool = True, fin: str = "\r\n") -> bytes:
    return (("\ufeff" if bom else "") + fin.join([ENTETE, *lignes]) + fin).encode("utf-8")


def cheques(*lignes: str, **options: bool | str) -> list[PaiementRecu]:
    return list(lire_remise_cheques(csv_tableur(*lignes, **options), FICHIER))  # type: ignore[arg-type]


def refus(*lignes: str) -> list[str]:
    with pytest.raises(FichierRefuse) as exc:
        cheques(*lignes)
    assert exc.value.fichier == FICHIER
    return [str(e) for e in exc.value.erreurs]


def test_un_cheque_du_bordereau_devient_un_paiement_de_cle_remise_numero() -> None:
    [c] = cheques("RC-2026-031;1234567;MARTIN CLAIRE;CCM;42.00;F01-26-05-0000123;2026-05-15")
    assert (c.canal, c.reference, c.montant, c.remise) == ("cheque", "RC-2026-031/1234567", 4200, "RC-2026-031")
    assert c.reference_facture == "F01-26-05-0000123"
    assert c.recu_le == datetime(2026, 5, 15, tzinfo=ZoneInfo("Europe/Paris"))
    assert c.details == {"tireur": "MARTIN CLAIRE", "banque": "CCM", "recu_le": "2026-05-15"}
    assert (c.ligne, c.brut) == (2, "RC-2026-031;1234567;MARTIN CLAIRE;CCM;42.00;F01-26-05-0000123;2026-05-15")


def test_une_date_ou_un_montant_faux_repete_est_signale_a_chaque_ligne_meme_apres_des_valeurs_justes() -> None:
    # Chaque champ lu est mémorisé par texte : une erreur revenue est notée à chaque ligne où elle revient.
    lignes = ["RC-2026-031;1;A;B;42.00;F1;2026-05-15", "RC-2026-031;2;A;B;42.00;F2;2026-05-15",
              "RC-2026-031;3;A;B;42,00;F3;2026-02-30", "RC-2026-031;4;A;B;42,00;F4;2026-02-30",
              "RC-2026-031;5;A;B;42.00;F5;2026-05-15 "]
    erreurs = refus(*lignes)
    assert [e for e in erreurs if "recu_le" in e] == [
        f"{FICHIER}:{n}: recu_le: « 2026-02-30 » n'est pas une date du calendrier" for n in (4, 5)]
    assert len([e for e in erreurs if "montant" in e]) == 2
    assert not any(e.startswith((f"{FICHIER}:2:", f"{FICHIER}:3:", f"{FICHIER}:6:")) for e in erreurs)
    [c] = cheques(lignes[4])  # la même date suivie d'une espace : lue comme la première
    assert c.recu_le == datetime(2026, 5, 15, tzinfo=ZoneInfo("Europe/Paris"))


def test_une_facture_vide_laisse_le_moteur_chercher_la_famille_du_tireur() -> None:
    [c] = cheques("RC-2026-031;0000042;BÉRANGER ÉLODIE;;42.00;;2026-05-15")
    assert c.reference_facture is None
    assert c.details["banque"] is None and c.details["tireur"] == "BÉRANGER ÉLODIE"
    assert c.reference == "RC-2026-031/0000042"  # le numéro tel qu'écrit, zéros compris


def test_un_bordereau_lf_sans_bom_et_un_bordereau_tableur_se_lisent_pareil() -> None:
    lignes = ("RC-2026-031;1;A;B;1.00;F1;2026-05-15", "RC-2026-031;2;A;B;2.00;F2;2026-05-15")
    assert cheques(*lignes, bom=False, fin="\n") == cheques(*lignes)


def test_la_remise_du_bordereau_est_celle_que_le_releve_dft_citera() -> None:
    [c] = cheques("RC-2026-031;1234567;MARTIN CLAIRE;CCM;42.00;F01;2026-05-15")
    assert remise_citee(f"REMISE {c.remise}") == c.remise


@pytest.mark.parametrize(("numero", "raison"), [("1234567890123", "de 1 à 12 caractères"),
                                                ("12A4567", "de 1 à 12 chiffres"), ("", "de 1 à 12 caractères")])
def test_un_numero_de_cheque_hors_1_a_12_chiffres_est_refuse(numero: str, raison: str) -> None:
    [erreur] = refus(f"RC-1;{numero};A;B;42.00;F1;2026-05-15")
    assert erreur.startswith(f"{FICHIER}:2: numero_cheque: ") and raison in erreur


@pytest.mark.parametrize(("montant", "raison"), [("42,00", "virgule"), ("42.001", "plus de deux décimales"),
                                                 ("42", "deux décimales"), ("0.00", "strictement positif")])
def test_un_montant_mal_ecrit_est_refuse(montant: str, raison: str) -> None:
    [erreur] = refus(f"RC-1;1;A;B;{montant};F1;2026-05-15")
    assert erreur.startswith(f"{FICHIER}:2: montant: ") and raison in erreur


def test_une_colonne_manquante_ou_en_trop_et_une_date_impossible_sont_toutes_listees() -> None:
    erreurs = refus("RC-1;1;A;B;42.00;2026-05-15",
                    "RC-1;2;A;B;42.00;F1;2026-05-15;x",
                    "RC-1;3;A;B;42.00;F1;2026-02-31",
                    "RC 1;4;;B;42.00;F1;2026-05-15")
    assert erreurs == [
        f"{FICHIER}:2: 6 colonne(s) au lieu de 7",
        f"{FICHIER}:3: 8 colonne(s) au lieu de 7",
        f"{FICHIER}:4: recu_le: « 2026-02-31 » n'est pas une date du calendrier",
        f"{FICHIER}:5: remise: « RC 1 » : format invalide",
        f"{FICHIER}:5: tireur: «  » : de 1 à 100 caractères attendus",
    ]


def test_un_fichier_sans_en_tete_est_refuse() -> None:
    with pytest.raises(FichierRefuse) as exc:
        list(lire_remise_cheques(b"RC-1;1;A;B;42.00;F1;2026-05-15\r\n", FICHIER))
    assert "en-tête incorrect" in str(exc.value.erreurs[0])


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=600))
def test_des_octets_quelconques_ne_levent_que_fichier_refuse(contenu: bytes) -> None:
    for entete in (b"", ENTETE.encode() + b"\r\n"):
        with contextlib.suppress(FichierRefuse):
            list(lire_remise_cheques(entete + contenu, "fuzz.csv"))


@settings(max_examples=300, deadline=None)
@given(st.lists(st.lists(st.text(alphabet=st.sampled_from("0129.,-;RCé \"\r\n"), max_size=12),
                         min_size=6, max_size=8), max_size=4))
def test_des_lignes_quelconques_ne_levent_que_fichier_refuse(lignes: list[list[str]]) -> None:
    try:
        for paiement in lire_remise_cheques(csv_tableur(*(";".join(c) for c in lignes)), "fuzz.csv"):
            assert paiement.reference.startswith(f"{paiement.remise}/")
    except FichierRefuse:
        pass


_TEXTE = st.text(st.sampled_from("ABCDEÉÈÇ éàz0123456789-'"), min_size=1, max_size=30).map(str.strip).filter(bool)


@settings(max_examples=60, deadline=None)
@given(tireur=_TEXTE, banque=st.one_of(st.just(""), _TEXTE), facture=st.one_of(st.just(""), _TEXTE),
       centimes=st.integers(1, 10**8), numero=st.integers(0, 10**12 - 1))
def test_un_cheque_lu_sans_revalidation_vaut_le_meme_valide_par_pydantic(tireur: str, banque: str, facture: str,
                                                                         centimes: int, numero: int) -> None:
    """La lecture construit le paiement sans repasser par pydantic : rien ne doit le distinguer d'un validé."""
    [c] = cheques(f"RC-2026-031;{numero};{tireur};{banque};{centimes_en_euros(centimes)};{facture};2026-03-29")
    assert_comme_valide(c)
