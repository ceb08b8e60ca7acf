"""CESU : titres reçus au guichet, remboursements du CRCESU, règles pures (validité, éligibilité)."""

from __future__ import annotations

import contextlib
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from connecteurs.cesu.crcesu import lire_remboursements_crcesu
from connecteurs.cesu.titres import (
    age_au,
    date_limite_validite,
    est_perime,
    ligne_eligible_cesu,
    lire_titres_cesu,
    naissance_limite_cesu,
)
from connecteurs.modeles import PaiementRecu
from regie.erreurs import FichierRefuse
from regie.montants import centimes_en_euros
from tests.paiements_recus import assert_comme_valide

PARIS = ZoneInfo("Europe/Paris")
ENTETE_TITRES = "remise;numero_titre;support;emetteur;millesime;valeur;facture;recu_le"
ENTETE_CRCESU = "remise;rembourse_le;nombre_titres;montant_titres;frais;montant_verse"
BOM = "\ufeff"


def csv_tableur(*lignes: str) -> bytes:
    """Comme l'écrit un tableur sous Windows : BOM UTF-8 et CR LF."""
    return (BOM + "\r\n".join(lignes) + "\r\n").encode("utf-8")


def titres(*lignes: str) -> list[PaiementRecu]:
    return list(lire_titres_cesu(csv_tableur(ENTETE_TITRES, *lignes), "cesu_2026-05-14.csv"))


def refus_titres(*lignes: str, entete: str = ENTETE_TITRES) -> list[str]:
    with pytest.raises(FichierRefuse) as exc:
        list(lire_titres_cesu(csv_tableur(entete, *lignes), "cesu_2026-05-14.csv"))
    return [str(e) for e in exc.value.erreurs]


def remboursements(*lignes: str) -> list[PaiementRecu]:
    return list(lire_remboursements_crcesu(csv_tableur(ENTETE_CRCESU, *lignes), "crcesu_2026-06.csv"))


def refus_crcesu(*lignes: str) -> list[str]:
    with pytest.raises(FichierRefuse) as exc:
        remboursements(*lignes)
    return [str(e) for e in exc.value.erreurs]


# --- Titres ----------------------------------------------------------------------------------------

def test_un_titre_papier_devient_un_paiement_cesu_recu_a_minuit_heure_de_paris() -> None:
    [titre] = titres("R-2026-014;0412345678901;PAPIER;EDENRED;2026;20.00;F01-26-05-0000123;2026-05-14")
    assert titre.canal == "cesu"
    assert titre.reference == "0412345678901"
    assert titre.montant == 2000
    assert titre.reference_facture == "F01-26-05-0000123"
    assert titre.remise == "R-2026-014"
    assert titre.recu_le == datetime(2026, 5, 14, tzinfo=PARIS)
    assert titre.recu_le.utcoffset() == timedelta(hours=2)
    assert titre.details == {"support": "PAPIER", "emetteur": "EDENRED", "millesime": 2026, "recu_le": "2026-05-14"}
    assert titre.ligne == 2
    assert titre.brut == "R-2026-014;0412345678901;PAPIER;EDENRED;2026;20.00;F01-26-05-0000123;2026-05-14"


def test_plusieurs_titres_dont_un_e_cesu_sont_donnes_dans_l_ordre_du_fichier() -> None:
    lus = titres("R-2026-014;0412345678901;PAPIER;EDENRED;2025;20.00;F01-26-01-0000007;2026-01-31",
                 "R-2026-014;9900000000000001;ELECTRONIQUE;UP;2026;15.50;F01-26-01-0000007;2026-01-31")
    assert [(t.reference, t.details["support"], t.ligne) for t in lus] == [
        ("0412345678901", "PAPIER", 2), ("9900000000000001", "ELECTRONIQUE", 3)]


def test_un_millesime_posterieur_a_l_annee_de_reception_est_une_erreur_du_fichier() -> None:
    erreurs = refus_titres("R-2026-014;0412345678901;PAPIER;EDENRED;2027;20.00;F01;2026-12-31")
    assert erreurs == ["cesu_2026-05-14.csv:2: millesime: millésime dans le futur : 2027 pour un titre reçu "
                       "le 2026-12-31"]


def test_un_numero_de_titre_avec_des_lettres_est_refuse() -> None:
    erreurs = refus_titres("R-2026-014;04123456789AB;PAPIER;EDENRED;2026;20.00;F01;2026-05-14")
    assert erreurs == ["cesu_2026-05-14.csv:2: numero_titre: « 04123456789AB » : le numéro de titre ne contient "
                       "que des chiffres"]


@pytest.mark.parametrize("numero", ["12345", "123456789012345678901"])
def test_un_numero_de_titre_hors_6_a_20_chiffres_est_refuse(numero: str) -> None:
    erreurs = refus_titres(f"R-1;{numero};PAPIER;UP;2026;20.00;F01;2026-05-14")
    assert len(erreurs) == 1 and "numero_titre" in erreurs[0]


def test_une_date_hors_calendrier_est_refusee() -> None:
    erreurs = refus_titres("R-1;0412345678901;PAPIER;UP;2026;20.00;F01;2026-02-31")
    assert erreurs == ["cesu_2026-05-14.csv:2: recu_le: « 2026-02-31 » n'est pas une date du calendrier"]


@pytest.mark.parametrize(("valeur", "raison"), [("42,00", "virgule"), ("42.001", "plus de deux décimales"),
                                                ("0.00", "strictement positif"), ("-5.00", "négatif")])
def test_une_valeur_qui_n_est_pas_en_euros_a_deux_decimales_est_refusee(valeur: str, raison: str) -> None:
    [erreur] = refus_titres(f"R-1;0412345678901;PAPIER;UP;2026;{valeur};F01;2026-05-14")
    assert erreur.startswith("cesu_2026-05-14.csv:2: valeur: ") and raison in erreur


def test_une_colonne_manquante_ou_en_trop_est_signalee_a_sa_ligne() -> None:
    erreurs = refus_titres("R-1;0412345678901;PAPIER;UP;2026;20.00;2026-05-14",
                           "R-1;0412345678902;PAPIER;UP;2026;20.00;F01;2026-05-14;en trop")
    assert erreurs == ["cesu_2026-05-14.csv:2: 7 colonne(s) au lieu de 8",
                       "cesu_2026-05-14.csv:3: 9 colonne(s) au lieu de 8"]


def test_un_en_tete_sans_la_colonne_millesime_rend_le_fichier_illisible() -> None:
    erreurs = refus_titres("R-1;0412345678901;PAPIER;UP;20.00;F01;2026-05-14",
                           entete="remise;numero_titre;support;emetteur;valeur;facture;recu_le")
    assert len(erreurs) == 1 and "colonne(s) manquante(s) : millesime" in erreurs[0]


def test_toutes_les_erreurs_d_une_ligne_et_du_fichier_sont_listees() -> None:
    erreurs = refus_titres("R 1;0412345678901;CARTE;UP;26;20.00;;2026-05-14",
                           "R-1;0412345678901;PAPIER;UP;2026;20.00;F01;2026-05-14",
                           "R-1;0412345678901;PAPIER;UP;2026;1e3;F01;14/05/2026")
    champs = [e.split(": ")[1] for e in erreurs]
    assert champs == ["remise", "support", "millesime", "facture", "valeur", "recu_le"]


def test_rien_n_est_donne_apres_la_premiere_ligne_fautive() -> None:
    contenu = csv_tableur(ENTETE_TITRES, "R-1;0412345678901;PAPIER;UP;2026;20.00;F01;2026-05-14",
                          "R-1;0412345678902;PAPIER;UP;2026;20,00;F01;2026-05-14",
                          "R-1;0412345678903;PAPIER;UP;2026;20.00;F01;2026-05-14")
    lecture = lire_titres_cesu(contenu, "cesu.csv")
    assert next(lecture).reference == "0412345678901"
    with pytest.raises(FichierRefuse):
        next(lecture)


def test_un_fichier_qui_n_est_pas_en_utf8_est_refuse() -> None:
    contenu = (ENTETE_TITRES + "\r\nR-1;0412345678901;PAPIER;CHÈQUE DÉJEUNER;2026;20.00;F01;2026-05-14\r\n")
    with pytest.raises(FichierRefuse) as exc:
        list(lire_titres_cesu(contenu.encode("latin-1"), "cesu.csv"))
    assert "UTF-8" in str(exc.value.erreurs[0]) and exc.value.erreurs[0].ligne == 2


# --- Règles pures ----------------------------------------------------------------------------------

def test_un_titre_vaut_jusqu_au_31_janvier_de_l_annee_suivante_inclus() -> None:
    assert date_limite_validite(2025) == date(2026, 1, 31)
    assert not est_perime(2025, date(2026, 1, 31))
    assert est_perime(2025, date(2026, 2, 1))
    assert not est_perime(2026, date(2026, 1, 1))


def test_la_peremption_d_une_date_heure_se_juge_au_jour_de_paris() -> None:
    # 31/01 23h30 à Paris = 22h30 UTC : encore le 31 ; 00h30 le 1er février à Paris = 23h30 UTC le 31.
    assert not est_perime(2025, datetime(2026, 1, 31, 22, 30, tzinfo=UTC))
    assert est_perime(2025, datetime(2026, 1, 31, 23, 30, tzinfo=UTC))


def test_l_age_se_compte_en_annees_revolues() -> None:
    assert age_au(date(2020, 9, 1), date(2026, 8, 31)) == 5
    assert age_au(date(2020, 9, 1), date(2026, 9, 1)) == 6
    assert age_au(date(2020, 2, 29), date(2026, 2, 28)) == 5
    assert age_au(date(2020, 2, 29), date(2026, 3, 1)) == 6


def test_un_enfant_qui_a_6_ans_le_premier_jour_de_la_periode_n_est_plus_eligible() -> None:
    assert ligne_eligible_cesu(True, date(2020, 9, 2), "2026-09")
    assert not ligne_eligible_cesu(True, date(2020, 9, 1), "2026-09")
    assert not ligne_eligible_cesu(True, date(2020, 8, 31), "2026-09")


@given(st.dates(), st.integers(7, 9999), st.integers(1, 12))
def test_la_date_limite_de_naissance_dit_la_meme_eligibilite_que_l_age(naissance: date, annee: int, mois: int) -> None:
    """La lecture des factures compare la naissance à une date limite au lieu de calculer un âge : même règle,
    29 février et veille du sixième anniversaire compris."""
    periode = f"{annee:04d}-{mois:02d}"
    assert (naissance > naissance_limite_cesu(periode)) == ligne_eligible_cesu(True, naissance, periode)


def test_la_date_limite_de_naissance_est_le_jour_des_6_ans_au_premier_de_la_periode() -> None:
    assert naissance_limite_cesu("2026-09") == date(2020, 9, 1)
    assert naissance_limite_cesu("2026-03") == date(2020, 3, 1)  # né le 29 février 2020 : 6 ans le 1er mars
    assert not ligne_eligible_cesu(True, date(2020, 2, 29), "2026-03")
    for periode in ("0006-01", "2026-13"):
        with pytest.raises(ValueError):
            naissance_limite_cesu(periode)


def test_une_prestation_non_cesu_ou_un_enfant_sans_naissance_n_est_pas_eligible() -> None:
    assert not ligne_eligible_cesu(False, date(2024, 1, 1), "2026-09")
    assert not ligne_eligible_cesu(True, None, "2026-09")


@pytest.mark.parametrize("periode", ["2026-13", "2026-9", "09/2026", ""])
def test_une_periode_mal_formee_est_une_erreur(periode: str) -> None:
    with pytest.raises(ValueError):
        ligne_eligible_cesu(True, date(2024, 1, 1), periode)


# --- CRCESU ----------------------------------------------------------------------------------------

def test_un_remboursement_crcesu_confirme_une_remise_avec_ses_chiffres() -> None:
    [r] = remboursements("R-2026-014;2026-06-02;3;55.00;0.00;55.00")
    assert (r.canal, r.reference, r.remise, r.montant) == ("crcesu", "R-2026-014", "R-2026-014", 5500)
    assert r.recu_le == datetime(2026, 6, 2, tzinfo=PARIS)
    assert r.details == {"nombre_titres": 3, "montant_titres": 5500, "frais": 0, "rembourse_le": "2026-06-02"}


def test_des_frais_retenus_diminuent_le_montant_verse() -> None:
    [r] = remboursements("R-2026-015;2026-06-02;2;40.00;1.20;38.80")
    assert r.montant == 3880 and r.details["frais"] == 120


def test_un_montant_verse_qui_n_est_pas_titres_moins_frais_est_une_erreur_du_fichier() -> None:
    erreurs = refus_crcesu("R-2026-014;2026-06-02;3;55.00;1.00;55.00")
    assert erreurs == ["crcesu_2026-06.csv:2: montant_verse: montant_verse 55.00 ≠ montant_titres 55.00 - "
                       "frais 1.00 = 54.00"]


@pytest.mark.parametrize(("ligne", "champ"), [
    ("R-1;2026-06-31;3;55.00;0.00;55.00", "rembourse_le"),
    ("R-1;2026-06-02;0;55.00;0.00;55.00", "nombre_titres"),
    ("R-1;2026-06-02;trois;55.00;0.00;55.00", "nombre_titres"),
    ("R-1;2026-06-02;3;55.00;0,50;54.50", "frais"),
    ("R-1;2026-06-02;3;55.001;0.00;55.00", "montant_titres"),
    ("R-1;2026-06-02;3;55.00;55.00;0.00", "montant_verse"),
    ("REMISE-BEAUCOUP-TROP-LONGUE;2026-06-02;3;55.00;0.00;55.00", "remise"),
])
def test_un_champ_crcesu_fautif_est_nomme(ligne: str, champ: str) -> None:
    erreurs = refus_crcesu(ligne)
    assert erreurs and all(e.startswith(f"crcesu_2026-06.csv:2: {champ}: ") for e in erreurs)


# --- Fuzz ------------------------------------------------------------------------------------------

_CHAMP = st.text(alphabet=st.sampled_from("0123456789.,-;AZé \"\r\n"), max_size=14)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=600))
def test_des_octets_quelconques_ne_levent_que_fichier_refuse_titres(contenu: bytes) -> None:
    for entete in (b"", ENTETE_TITRES.encode() + b"\r\n"):
        with contextlib.suppress(FichierRefuse):
            list(lire_titres_cesu(entete + contenu, "fuzz.csv"))


@settings(max_examples=300, deadline=None)
@given(st.lists(st.lists(_CHAMP, min_size=5, max_size=9), max_size=4))
def test_des_lignes_quelconques_ne_levent_que_fichier_refuse(lignes: list[list[str]]) -> None:
    for entete, lire in ((ENTETE_TITRES, lire_titres_cesu), (ENTETE_CRCESU, lire_remboursements_crcesu)):
        contenu = csv_tableur(entete, *(";".join(champs) for champs in lignes))
        try:
            for paiement in lire(contenu, "fuzz.csv"):
                assert paiement.montant > 0
        except FichierRefuse:
            pass


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=600))
def test_des_octets_quelconques_ne_levent_que_fichier_refuse_crcesu(contenu: bytes) -> None:
    with contextlib.suppress(FichierRefuse):
        list(lire_remboursements_crcesu(ENTETE_CRCESU.encode() + b"\n" + contenu, "fuzz.csv"))


@settings(max_examples=60, deadline=None)
@given(numero=st.integers(10**5, 10**20 - 1), support=st.sampled_from(["PAPIER", "ELECTRONIQUE"]),
       centimes=st.integers(1, 10**6), millesime=st.integers(2000, 2026))
def test_un_titre_lu_sans_revalidation_vaut_le_meme_valide_par_pydantic(numero: int, support: str, centimes: int,
                                                                        millesime: int) -> None:
    """La lecture construit le paiement sans repasser par pydantic : rien ne doit le distinguer d'un validé."""
    [t] = titres(f"R-2026-014;{numero};{support};ÉDENRED;{millesime};{centimes_en_euros(centimes)};"
                 "F01-26-05-0000123;2026-10-25")
    assert_comme_valide(t)
