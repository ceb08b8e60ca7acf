"""Relevés CFONB 120 du compte DFT : fichiers écrits comme les banques les écrivent."""

from __future__ import annotations

import contextlib
import io
from datetime import date

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connecteurs.cfonb.__main__ import main as diagnostic
from connecteurs.cfonb.cfonb120 import (
    MontantCfonbInvalide,
    ReleveDft,
    ecrire_montant,
    lire_montant,
    lire_releves,
    lire_releves_flux,
    remise_citee,
    remises_citees,
)
from regie.erreurs import FichierRefuse

BANQUE = "30001"
GUICHET = "00713"
COMPTE = "C7510000000"
AUTRE_COMPTE = "C9300000000"


def solde(code: str, jjmmaa: str, centimes: int, compte: str = COMPTE, devise: str = "EUR",
          decimales: str = "2", zone: str | None = None) -> str:
    montant = zone if zone is not None else ecrire_montant(centimes)
    return f"{code}{BANQUE}    {GUICHET}{devise}{decimales} {compte}  {jjmmaa}{' ' * 50}{montant}{' ' * 16}"


def mvt(jjmmaa: str, centimes: int, libelle: str, ecriture: str = "0000000", operation: str = "05",
        valeur: str | None = None, compte: str = COMPTE, zone: str | None = None, devise: str = "EUR") -> str:
    montant = zone if zone is not None else ecrire_montant(centimes)
    valeur = jjmmaa if valeur is None else valeur
    return (f"04{BANQUE}0005{GUICHET}{devise}2 {compte}{operation}{jjmmaa}  {valeur}{libelle:<31.31}  "
            f"{ecriture}  {montant}{'REF' + jjmmaa:<16}")


def complement(jjmmaa: str, info: str, qualifiant: str = "LIB", compte: str = COMPTE) -> str:
    return f"05{BANQUE}0005{GUICHET}EUR2 {compte}05{jjmmaa}     {qualifiant}{info:<70.70}  "


def fichier(*enregistrements: str, fin: str = "\r\n") -> bytes:
    for e in enregistrements:
        assert len(e) == 120, (len(e), e)
    return (fin.join(enregistrements) + fin).encode("latin-1")


def releves(contenu: bytes, comptes: set[str] | None = None) -> list[ReleveDft]:
    return list(lire_releves(contenu, "RELEVE.DFT", comptes))


def refus(contenu: bytes, comptes: set[str] | None = None) -> list[str]:
    with pytest.raises(FichierRefuse) as exc:
        releves(contenu, comptes)
    assert exc.value.fichier == "RELEVE.DFT"
    return [str(e) for e in exc.value.erreurs]


UN_RELEVE = (
    solde("01", "140526", 150_000),
    mvt("150526", 12_340, "REMISE RC-2026-031", ecriture="0001234", operation="02"),
    mvt("150526", 48_438, "VIR SEPA DUPONT MARIE"),
    complement("150526", "F01-26-05-0000123 CANTINE MAI"),
    mvt("150526", -9_200, "CHEQUE 1234567", operation="01"),
    solde("07", "150526", 150_000 + 12_340 + 48_438 - 9_200),
)


# --- Montants -------------------------------------------------------------------------------------

@pytest.mark.parametrize(("zone", "centimes"), [
    ("0000000001234{", 12_340),
    ("0000000004843H", 48_438),
    ("0000000000920}", -9_200),
    ("0000000000000{", 0),
    ("0000000000000R", -9),
    ("9999999999999I", 99_999_999_999_999),
])
def test_les_exemples_de_montant_de_la_norme_se_lisent_en_centimes_signes(zone: str, centimes: int) -> None:
    assert lire_montant(zone) == centimes
    assert ecrire_montant(centimes) == zone or centimes == 0


def test_les_decimales_de_la_position_20_changent_l_echelle_du_montant() -> None:
    assert lire_montant("0000000001234{", 0) == 1_234_000
    assert lire_montant("0000000001234{", 3) == 1_234
    with pytest.raises(MontantCfonbInvalide, match="entier de centimes"):
        lire_montant("0000000001234A", 3)


@pytest.mark.parametrize("zone", ["0000000001234S", "0000000001234 ", "00000000012 4{", "+000000001234{",
                                  "000000000123²{", "0000000001234"])
def test_une_zone_montant_illisible_est_refusee(zone: str) -> None:
    with pytest.raises(MontantCfonbInvalide):
        lire_montant(zone)


@given(st.integers(min_value=-(10**14) + 1, max_value=10**14 - 1))
def test_ecrire_puis_lire_un_montant_rend_les_memes_centimes(centimes: int) -> None:
    zone = ecrire_montant(centimes)
    assert len(zone) == 14
    assert lire_montant(zone) == centimes


# --- Lecture d'un relevé --------------------------------------------------------------------------

def test_un_releve_crlf_donne_ses_mouvements_signes_avec_texte_et_cle_naturelle() -> None:
    [releve] = releves(fichier(*UN_RELEVE), {COMPTE})
    assert (releve.compte, releve.date_debut, releve.solde_debut) == (COMPTE, date(2026, 5, 14), 150_000)
    assert (releve.date_fin, releve.solde_fin) == (date(2026, 5, 15), 201_578)
    assert (releve.ligne_debut, releve.ligne_fin) == (1, 6)
    assert releve.cle == f"{COMPTE}/2026-05-14/150000/2026-05-15/201578"
    remise, virement, cheque = releve.mouvements
    assert remise.montant == 12_340 and remise.code_operation == "02"
    assert remise.reference == f"{COMPTE}/2026-05-15/0001234/1"
    assert remise.numero_ecriture == "0001234"
    assert remise_citee(remise.texte) == "RC-2026-031"
    assert virement.montant == 48_438
    assert virement.libelle == "VIR SEPA DUPONT MARIE"
    assert virement.texte == "VIR SEPA DUPONT MARIE F01-26-05-0000123 CANTINE MAI"
    assert virement.brut == f"{UN_RELEVE[2]}\n{UN_RELEVE[3]}"
    assert virement.ligne == 3
    assert cheque.montant == -9_200 and cheque.ligne == 5
    assert cheque.date_valeur == date(2026, 5, 15)


def test_un_fichier_latin1_sans_fin_de_ligne_se_coupe_tous_les_120_caracteres() -> None:
    enregistrements = (
        solde("01", "310526", 0),
        mvt("010626", 2_050, "VIR PRÉLÈVEMENT CRÈCHE GARÇON"),
        solde("07", "010626", 2_050),
    )
    contenu = fichier(*enregistrements, fin="")
    assert len(contenu) == 360 and "É".encode("latin-1") in contenu
    [releve] = releves(contenu)
    assert releve.mouvements[0].libelle == "VIR PRÉLÈVEMENT CRÈCHE GARÇON"
    assert releve.mouvements[0].ligne == 2


def test_un_fichier_lf_et_un_fichier_crlf_se_lisent_pareil() -> None:
    assert releves(fichier(*UN_RELEVE, fin="\n")) == releves(fichier(*UN_RELEVE))


def test_plusieurs_releves_d_un_meme_fichier_sont_donnes_chacun_une_fois() -> None:
    second = (
        solde("01", "150526", 201_578),
        mvt("180526", 2_000, "VIR SEPA MARTIN", ecriture="0000001"),
        solde("07", "180526", 203_578),
        solde("01", "150526", 0, compte=AUTRE_COMPTE),
        solde("07", "180526", 0, compte=AUTRE_COMPTE),
    )
    lus = releves(fichier(*UN_RELEVE, *second), {COMPTE, AUTRE_COMPTE})
    assert [(r.compte, r.ligne_debut, len(r.mouvements)) for r in lus] == [
        (COMPTE, 1, 3), (COMPTE, 7, 1), (AUTRE_COMPTE, 10, 0)]
    assert len({r.cle for r in lus}) == 3
    assert lus[1].mouvements[0].ligne == 8


def test_deux_lignes_identiques_sont_deux_mouvements_de_rangs_1_et_2() -> None:
    ligne = mvt("150526", 2_000, "VIR SEPA MARTIN")
    [releve] = releves(fichier(solde("01", "140526", 0), ligne, ligne, solde("07", "150526", 4_000)))
    premier, second = releve.mouvements
    assert (premier.rang, second.rang) == (1, 2)
    assert premier.reference == f"{COMPTE}/2026-05-15/0000000/1"
    assert second.reference == f"{COMPTE}/2026-05-15/0000000/2"


def test_le_rang_repart_de_1_pour_un_autre_jour_ou_un_autre_numero_d_ecriture() -> None:
    [releve] = releves(fichier(
        solde("01", "140526", 0),
        mvt("150526", 100, "A"), mvt("160526", 100, "B"), mvt("150526", 100, "C", ecriture="0000007"),
        mvt("150526", 100, "D"),
        solde("07", "160526", 400)))
    assert [m.rang for m in releve.mouvements] == [1, 1, 1, 2]


def test_le_meme_jour_relu_dans_un_releve_chevauchant_donne_les_memes_references() -> None:
    jour = (mvt("150526", 2_000, "VIR SEPA MARTIN"), mvt("150526", 2_000, "VIR SEPA MARTIN"))
    premier = releves(fichier(solde("01", "140526", 0), *jour, solde("07", "150526", 4_000)))
    chevauchant = releves(fichier(solde("01", "140526", 0), *jour, mvt("160526", 5, "X"),
                                  solde("07", "160526", 4_005)))
    assert [m.reference for m in premier[0].mouvements] == [m.reference for m in chevauchant[0].mouvements[:2]]
    assert premier[0].cle != chevauchant[0].cle


def test_une_date_de_valeur_blanche_ou_nulle_est_absente_et_des_decimales_blanches_valent_2() -> None:
    [releve] = releves(fichier(
        solde("01", "140526", 1_000, decimales=" "),
        mvt("150526", 100, "A", valeur="      "), mvt("150526", 100, "B", valeur="000000"),
        solde("07", "150526", 1_200, decimales=" ")))
    assert releve.solde_debut == 1_000
    assert [m.date_valeur for m in releve.mouvements] == [None, None]


def test_les_lignes_vides_et_le_bourrage_blanc_en_fin_de_fichier_sont_ignores() -> None:
    contenu = fichier(*UN_RELEVE) + b"\r\n" + b" " * 120 + b"\r\n\x1a"
    assert len(releves(contenu)[0].mouvements) == 3


def test_un_mouvement_de_debit_est_negatif_et_un_credit_positif() -> None:
    [releve] = releves(fichier(solde("01", "140526", 0), mvt("150526", 0, "X", zone="0000000000920}"),
                               mvt("150526", 0, "Y", zone="0000000004843H"), solde("07", "150526", 39_238)))
    assert [m.montant for m in releve.mouvements] == [-9_200, 48_438]


@settings(max_examples=40, deadline=None)
@given(st.integers(min_value=1, max_value=400), st.sampled_from(["\r\n", "\n", ""]))
def test_la_lecture_par_blocs_ne_depend_pas_de_la_taille_des_blocs(taille: int, fin: str) -> None:
    contenu = fichier(*UN_RELEVE, *UN_RELEVE, fin=fin)
    attendu = releves(contenu)
    assert list(lire_releves_flux(io.BytesIO(contenu), "RELEVE.DFT", None, taille_bloc=taille)) == attendu


# --- Refus : toutes les erreurs, chacune avec sa ligne ----------------------------------------------

def test_des_soldes_qui_ne_s_additionnent_pas_refusent_le_fichier_en_nommant_le_07() -> None:
    erreurs = refus(fichier(*UN_RELEVE[:-1], solde("07", "150526", 201_577)))
    assert erreurs == ["RELEVE.DFT:6: solde de clôture: solde d'ouverture + mouvements ≠ solde de clôture : "
                       "1500.00 + 515.78 = 2015.78 ≠ 2015.77 (relevé ouvert ligne 1 : fichier tronqué ou corrompu ?)"]


def test_un_caractere_de_signe_invalide_est_une_erreur_du_montant_de_sa_ligne() -> None:
    erreurs = refus(fichier(solde("01", "140526", 0), mvt("150526", 0, "X", zone="0000000001234S"),
                            solde("07", "150526", 0)))
    assert len(erreurs) == 1
    assert erreurs[0].startswith("RELEVE.DFT:2: montant: montant « 0000000001234S » : caractère de signe « S »")


def test_un_fichier_sans_fin_de_ligne_coupe_au_milieu_d_un_enregistrement_est_tronque() -> None:
    contenu = fichier(*UN_RELEVE, fin="")[:-57]
    erreurs = refus(contenu)
    assert "RELEVE.DFT:6: enregistrement tronqué : 63 caractères au lieu de 120 (fichier coupé ?)" in erreurs


def test_un_releve_sans_solde_de_cloture_en_fin_de_fichier_est_tronque() -> None:
    erreurs = refus(fichier(*UN_RELEVE[:-1]))
    assert erreurs == ["RELEVE.DFT:5: fichier tronqué : le relevé ouvert ligne 1 n'a pas de solde de clôture (07)"]


def test_un_compte_qui_n_est_celui_d_aucune_regie_est_refuse() -> None:
    erreurs = refus(fichier(*UN_RELEVE), {AUTRE_COMPTE})
    assert erreurs == [f"RELEVE.DFT:1: compte: le compte {COMPTE} n'est le compte DFT d'aucune régie"]


def test_une_date_hors_calendrier_est_refusee() -> None:
    erreurs = refus(fichier(solde("01", "140526", 0), mvt("310226", 100, "X", valeur="150526"),
                            solde("07", "150526", 100)))
    assert erreurs == ["RELEVE.DFT:2: date d'opération: « 310226 » n'est pas une date du calendrier (JJMMAA)"]


def test_toutes_les_erreurs_du_fichier_sont_listees_avec_leur_ligne() -> None:
    contenu = fichier(
        mvt("150526", 100, "HORS RELEVE"),                         # 1
        solde("07", "150526", 0),                                  # 2
        solde("01", "140526", 0),                                  # 3
        mvt("150526", 100, "X", compte=AUTRE_COMPTE),              # 4
        mvt("150526", 100, "Y", devise="USD"),                     # 5
        "03" + "0" * 118,                                          # 6
        mvt("320526", 0, "Z", zone="000000000000AX", valeur="0     "),  # 7 : 2 dates, montant
        solde("07", "150526", 0),                                  # 8
        solde("01", "150526", 0, devise="FRF"),                    # 9
        complement("150526", "SANS 04"),                           # 10
    )
    erreurs = refus(contenu)
    lignes = [e.split(":")[1] for e in erreurs]
    assert lignes == ["1", "2", "4", "5", "6", "7", "7", "7", "9", "10", "10"]
    assert "mouvement (04) hors relevé" in erreurs[0]
    assert "solde de clôture (07) sans solde d'ouverture (01)" in erreurs[1]
    assert "le compte change dans le relevé ouvert ligne 3" in erreurs[2]
    assert "devise « USD » : EUR attendu" in erreurs[3]
    assert "code d'enregistrement « 03 » inconnu" in erreurs[4]
    assert "date d'opération" in erreurs[5] and "date de valeur: « 0      » n'est pas une date JJMMAA" in erreurs[6]
    assert "montant" in erreurs[7]
    assert "devise « FRF »" in erreurs[8]
    assert "complément (05) sans mouvement (04)" in erreurs[9]
    assert "fichier tronqué : le relevé ouvert ligne 9" in erreurs[10]


def test_un_nouveau_01_avant_le_07_du_releve_ouvert_est_signale() -> None:
    erreurs = refus(fichier(*UN_RELEVE[:3], *UN_RELEVE))
    assert erreurs == ["RELEVE.DFT:4: nouveau solde d'ouverture (01) alors que le relevé ouvert ligne 1 "
                       "n'a pas de solde de clôture (07)"]


def test_une_ligne_de_mauvaise_longueur_est_signalee_sans_erreurs_en_cascade() -> None:
    lignes = list(UN_RELEVE)
    lignes[1] = lignes[1][:119]
    contenu = ("\r\n".join(lignes) + "\r\n").encode("latin-1")
    assert refus(contenu) == ["RELEVE.DFT:2: enregistrement de 119 caractères au lieu de 120"]


def test_un_fichier_encode_en_utf8_est_reconnu_et_refuse() -> None:
    contenu = fichier(solde("01", "140526", 0), mvt("150526", 100, "PRÉLÈVEMENT"),
                      solde("07", "150526", 100)).decode("latin-1").encode("utf-8")
    erreurs = refus(contenu)
    assert erreurs[-1] == ("RELEVE.DFT:2: enregistrement de 122 caractères au lieu de 120 "
                           "(le fichier semble encodé en UTF-8 : ISO-8859-1 attendu)")
    assert all(e.startswith("RELEVE.DFT:2: ") and "UTF-8" in e for e in erreurs)


def test_un_octet_de_controle_n_est_pas_du_texte_iso_8859_1() -> None:
    contenu = bytearray(fichier(*UN_RELEVE))
    contenu[122 + 60] = 0x00
    erreurs = refus(bytes(contenu))
    assert erreurs == ["RELEVE.DFT:2: caractère non imprimable 0x00 en position 61 : le fichier n'est pas un "
                       "texte CFONB en ISO-8859-1"]


def test_un_fichier_vide_est_refuse() -> None:
    assert refus(b"") == ["RELEVE.DFT: aucun relevé (01 … 07) dans le fichier : vide ?"]


def test_rien_n_est_donne_apres_la_premiere_erreur() -> None:
    mauvais = (solde("01", "150526", 0), mvt("150526", 0, "X", zone="0000000001234S"), solde("07", "150526", 0))
    lecture = lire_releves(fichier(*UN_RELEVE, *mauvais, *UN_RELEVE), "RELEVE.DFT")
    assert next(lecture).ligne_debut == 1  # donné avant l'erreur : l'importeur annule tout au refus
    with pytest.raises(FichierRefuse) as exc:
        next(lecture)
    assert [e.ligne for e in exc.value.erreurs] == [8]


# --- Remise citée ----------------------------------------------------------------------------------

@pytest.mark.parametrize(("texte", "remise"), [
    ("REMISE RC-2026-031", "RC-2026-031"),
    ("VIR CRCESU REMISE R-2026-014 DU 02/06", "R-2026-014"),
    ("REMISE CHEQUES REMISE RC-2026-031", "RC-2026-031"),
    ("REMISE  ABC_1/2", "ABC_1/2"),
    ("REMISE ABC", "ABC"),
    ("VIR SEPA DUPONT F01-26-05-0000123", None),
    ("PREMISE RC-1", None),
    ("REMISE " + "A" * 21, None),
    ("REMISE", None),
])
def test_la_remise_citee_est_l_identifiant_qui_suit_remise(texte: str, remise: str | None) -> None:
    assert remise_citee(texte) == remise


def test_toutes_les_remises_citees_sont_donnees_dans_l_ordre() -> None:
    assert remises_citees("REMISE CHEQUES REMISE RC-2026-031") == ["CHEQUES", "RC-2026-031"]


# --- Diagnostic ------------------------------------------------------------------------------------

def test_le_diagnostic_affiche_releves_et_mouvements(tmp_path, capsys) -> None:
    chemin = tmp_path / "RELEVE.DFT"
    chemin.write_bytes(fichier(*UN_RELEVE))
    assert diagnostic(["lire", str(chemin), "--compte", COMPTE]) == 0
    sortie = capsys.readouterr().out
    assert f"relevé {COMPTE} lignes 1-6" in sortie
    assert "-92.00" in sortie and "[remise RC-2026-031]" in sortie


def test_le_diagnostic_d_un_fichier_refuse_liste_les_erreurs_et_sort_en_1(tmp_path, capsys) -> None:
    chemin = tmp_path / "RELEVE.DFT"
    chemin.write_bytes(fichier(*UN_RELEVE[:-1]))
    assert diagnostic(["lire", str(chemin)]) == 1
    assert "fichier tronqué" in capsys.readouterr().err


# --- Fuzz ------------------------------------------------------------------------------------------

@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=2_000))
def test_des_octets_quelconques_ne_levent_que_fichier_refuse(contenu: bytes) -> None:
    with contextlib.suppress(FichierRefuse):
        list(lire_releves(contenu, "FUZZ.DFT", {COMPTE}))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(["\r\n", "\n", ""]),
       st.lists(st.tuples(st.integers(min_value=0, max_value=719), st.integers(min_value=0, max_value=255)),
                max_size=6),
       st.integers(min_value=0, max_value=740))
def test_un_releve_abime_octet_par_octet_ne_leve_que_fichier_refuse(fin: str, coups: list[tuple[int, int]],
                                                                    coupe: int) -> None:
    contenu = bytearray(fichier(*UN_RELEVE, fin=fin))
    for position, octet in coups:
        contenu[position % len(contenu)] = octet
    try:
        for releve in lire_releves(bytes(contenu[: len(contenu) - coupe % 50]), "FUZZ.DFT"):
            assert releve.solde_debut + sum(m.montant for m in releve.mouvements) == releve.solde_fin
    except FichierRefuse as exc:
        assert exc.erreurs
