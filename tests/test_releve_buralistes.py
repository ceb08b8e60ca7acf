"""Relevé des paiements de proximité : lu en flux, refusé entier s'il est illisible, jamais pour un datamatrix."""

from __future__ import annotations

import io
import random
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connecteurs.buralistes import releve
from connecteurs.buralistes.datamatrix import charge_utile
from connecteurs.buralistes.releve import LIMITE_ESPECES_CENTIMES, lire_releve
from connecteurs.modeles import PaiementRecu
from regie.erreurs import FichierRefuse
from tests.paiements_recus import assert_comme_valide

VECTEUR = ("                                                                "
           "019504300265940033000160 94230000000000001230940124964806     4200")
ENTETE = "transaction;date_heure;datamatrix;montant;mode;point_de_vente"
LIGNE = f'PP-2026-0000981;2026-05-12T17:42:10+02:00;"{VECTEUR}";42.00;ESPECES;TAB-94-0117'


def fichier(*lignes: str, bom: bool = True, fin: str = "\r\n") -> bytes:
    """Comme l'écrit le partenaire : BOM, CR LF, datamatrix entre guillemets."""
    texte = fin.join((ENTETE, *lignes)) + fin
    return (b"\xef\xbb\xbf" if bom else b"") + texte.encode("utf-8")


def ligne(transaction: str = "PP-2026-0000981", date_heure: str = "2026-05-12T17:42:10+02:00",
          datamatrix: str = VECTEUR, montant: str = "42.00", mode: str = "ESPECES",
          point_de_vente: str = "TAB-94-0117") -> str:
    return f'{transaction};{date_heure};"{datamatrix}";{montant};{mode};{point_de_vente}'


def lire(contenu: bytes, nom: str = "releve.csv") -> list[PaiementRecu]:
    return list(lire_releve(contenu, nom))


def refus(contenu: bytes, nom: str = "releve.csv") -> list[str]:
    with pytest.raises(FichierRefuse) as exc:
        lire(contenu, nom)
    assert exc.value.fichier == nom
    return [str(e) for e in exc.value.erreurs]


# --- lecture -----------------------------------------------------------------------------------

def test_un_releve_ecrit_comme_le_partenaire_donne_le_paiement_avec_son_numero_de_dette():
    (p,) = lire(fichier(LIGNE))
    assert p.canal == "buraliste" and p.reference == "PP-2026-0000981"
    assert p.montant == 4200 and p.reference_facture == "123"
    assert p.recu_le == datetime(2026, 5, 12, 17, 42, 10, tzinfo=timezone(timedelta(hours=2)))
    assert p.details == {"mode": "ESPECES", "point_de_vente": "TAB-94-0117", "datamatrix": VECTEUR,
                         "datamatrix_valide": True, "datamatrix_erreurs": "", "montant_du": 4200,
                         "numero_dette": 123}
    assert p.ligne == 2 and p.brut == LIGNE


@pytest.mark.parametrize(("bom", "fin"), [(True, "\r\n"), (False, "\n"), (False, "\r")])
def test_bom_et_fins_de_ligne_ne_changent_rien(bom, fin):
    (p,) = lire(fichier(LIGNE, bom=bom, fin=fin))
    assert p.details["datamatrix"] == VECTEUR and p.details["datamatrix_valide"]


def test_les_espaces_de_tete_du_datamatrix_entre_guillemets_sont_gardes():
    (p,) = lire(fichier(LIGNE))
    datamatrix = str(p.details["datamatrix"])
    assert len(datamatrix) == 130 and datamatrix.startswith(" " * 64) and datamatrix == VECTEUR


def test_un_paiement_partiel_garde_le_montant_paye_et_le_montant_du():
    (p,) = lire(fichier(ligne(montant="15.50", mode="CARTE")))
    assert p.montant == 1550 and p.details["montant_du"] == 4200 and p.details["mode"] == "CARTE"


def test_un_datamatrix_invalide_est_un_paiement_donne_avec_la_raison_pas_un_refus():
    faux = VECTEUR[:116] + "63" + VECTEUR[118:]  # clé 1 fausse
    (p,) = lire(fichier(ligne(datamatrix=faux)))
    assert p.montant == 4200  # l'argent a été encaissé
    assert p.details["datamatrix_valide"] is False
    assert p.details["datamatrix_erreurs"] == "cle1: positions 117-118 : clé 64 attendue, 63 lue"
    assert p.reference_facture == "123" and p.details["numero_dette"] == 123


def test_un_datamatrix_illisible_donne_un_paiement_sans_reference_de_facture():
    (p,) = lire(fichier(ligne(datamatrix="PAS UN DATAMATRIX")))
    assert p.details["datamatrix_valide"] is False and "longueur: 17 caractères" in str(p.details["datamatrix_erreurs"])
    assert p.reference_facture is None and p.details["numero_dette"] is None and p.details["montant_du"] is None


def test_un_datamatrix_sans_guillemets_ni_espaces_de_tete_est_signale_mais_garde_sa_dette():
    brute = f"PP-1;2026-05-12T17:42:10+02:00;{VECTEUR.strip()};42.00;CARTE;TAB-94-0117"
    (p,) = lire(fichier(brute))
    assert p.details["datamatrix_valide"] is False
    assert str(p.details["datamatrix_erreurs"]).startswith("longueur: 66 caractères au lieu de 130")
    assert p.reference_facture == "123"


def test_des_especes_au_dela_de_300_euros_sont_lues_la_regle_est_celle_du_moteur():
    assert LIMITE_ESPECES_CENTIMES == 30000
    (p,) = lire(fichier(ligne(montant="350.00")))
    assert p.montant == 35000 and p.details["mode"] == "ESPECES"


def test_un_releve_sans_paiement_est_lu_sans_erreur():
    assert lire(fichier()) == []


def test_une_date_heure_en_utc_z_est_acceptee():
    (p,) = lire(fichier(ligne(date_heure="2026-05-12T15:42:10Z")))
    assert p.recu_le == datetime(2026, 5, 12, 15, 42, 10, tzinfo=UTC)


def test_les_paiements_sont_donnes_au_fil_de_la_lecture():
    contenu = fichier(*(ligne(transaction=f"PP-{i}") for i in range(5)))
    lecteur = lire_releve(contenu, "releve.csv")
    assert next(lecteur).reference == "PP-0"  # avant d'avoir lu la suite


# --- refus du fichier entier -----------------------------------------------------------------------

def test_un_fichier_tronque_au_milieu_d_un_datamatrix_est_refuse():
    contenu = fichier(LIGNE, ligne(transaction="PP-2"))
    erreurs = refus(contenu[: len(contenu) - 60])
    assert erreurs and all(e.startswith("releve.csv:3") for e in erreurs), erreurs


def test_un_fichier_en_latin1_est_refuse_avec_la_ligne_fautive():
    contenu = fichier(LIGNE, bom=False).decode() + ligne(transaction="PP-2", point_de_vente="TAB-Hôtel-de-ville")
    erreurs = refus(contenu.encode("latin-1"))
    assert len(erreurs) == 1 and erreurs[0].startswith("releve.csv:3:") and "UTF-8" in erreurs[0]


def test_rien_n_est_donne_d_un_fichier_refuse_des_la_premiere_erreur():
    contenu = fichier(LIGNE, ligne(transaction="PP-2", montant="42,00"), ligne(transaction="PP-3"))
    lus = []
    with pytest.raises(FichierRefuse):
        for p in lire_releve(contenu, "releve.csv"):
            lus.append(p.reference)
    assert lus == ["PP-2026-0000981"]  # la ligne d'avant l'erreur, rien après


@pytest.mark.parametrize(("entete", "attendu"), [
    ("transaction;date_heure;datamatrix;montant;mode", "colonne(s) manquante(s) : point_de_vente"),
    (ENTETE + ";commentaire", "colonne(s) inattendue(s) : commentaire"),
    ("transaction;datamatrix;date_heure;montant;mode;point_de_vente", "colonnes dans le désordre"),
])
def test_un_en_tete_incorrect_refuse_le_fichier(entete, attendu):
    contenu = (entete + "\r\n" + LIGNE + "\r\n").encode()
    (erreur,) = refus(contenu)
    assert erreur.startswith("releve.csv:1:") and attendu in erreur


def test_une_colonne_en_trop_ou_en_moins_sur_une_ligne_refuse_le_fichier():
    erreurs = refus(fichier(LIGNE + ";X", ligne(transaction="PP-2").rsplit(";", 1)[0]))
    assert erreurs == ["releve.csv:2: 7 colonne(s) au lieu de 6", "releve.csv:3: 5 colonne(s) au lieu de 6"]


def test_un_fichier_vide_est_refuse():
    (erreur,) = refus(b"")
    assert "fichier vide" in erreur


@pytest.mark.parametrize(("changement", "champ", "raison"), [
    ({"date_heure": "2026-02-31T10:00:00+01:00"}, "date_heure", "n'est pas une date-heure du calendrier"),
    ({"date_heure": "2026-05-12T17:42:10"}, "date_heure", "ISO 8601 avec fuseau"),
    ({"date_heure": "12/05/2026 17:42"}, "date_heure", "ISO 8601 avec fuseau"),
    ({"montant": "42,00"}, "montant", "le séparateur décimal est le point"),
    ({"montant": "42.001"}, "montant", "plus de deux décimales"),
    ({"montant": "-5.00"}, "montant", "montant négatif interdit"),
    ({"montant": "0.00"}, "montant", "strictement positif"),
    ({"montant": "42"}, "montant", "deux décimales"),
    ({"mode": "CB"}, "mode", "ESPECES ou CARTE attendu"),
    ({"mode": "especes"}, "mode", "ESPECES ou CARTE attendu"),
    ({"transaction": ""}, "transaction", "de 1 à 40 caractères"),
    ({"transaction": "T" * 41}, "transaction", "de 1 à 40 caractères"),
    ({"point_de_vente": " "}, "point_de_vente", "de 1 à 200 caractères"),
])
def test_un_champ_illisible_refuse_le_fichier_en_nommant_ligne_et_champ(changement, champ, raison):
    (erreur,) = refus(fichier(LIGNE.replace("PP-2026-0000981", "PP-1"), ligne(**changement)))
    assert erreur.startswith(f"releve.csv:3: {champ}: ") and raison in erreur, erreur


def test_une_transaction_en_double_refuse_le_fichier():
    (erreur,) = refus(fichier(LIGNE, ligne(montant="10.00"), ligne(transaction="PP-3")))
    assert erreur == "releve.csv:3: transaction: « PP-2026-0000981 » figure déjà ligne 2"


def test_toutes_les_erreurs_sont_listees_avec_leur_ligne():
    contenu = fichier(
        ligne(transaction="PP-1"),
        ligne(transaction="PP-2", montant="42,00"),
        ligne(transaction="PP-3"),
        ligne(transaction="PP-4", date_heure="2026-02-31T10:00:00+01:00", mode="CB"),
        ligne(transaction="PP-5").replace(";", ",", 1),
        ligne(transaction="PP-6", datamatrix="invalide mais pas une erreur de fichier"),
        ligne(transaction="PP-7", montant="-5.00"),
    )
    erreurs = refus(contenu)
    assert [e.split(": ")[0:2] for e in erreurs] == [
        ["releve.csv:3", "montant"], ["releve.csv:5", "date_heure"], ["releve.csv:5", "mode"],
        ["releve.csv:6", "5 colonne(s) au lieu de 6"], ["releve.csv:8", "montant"],
    ]


# --- deux chemins, un résultat ; robustesse ----------------------------------------------------------

def lire_les_deux(contenu: bytes) -> tuple[object, object]:
    def par(rapide: bool) -> object:
        lus = []
        try:
            for p in releve._lire(contenu, "r.csv", rapide=rapide):
                lus.append(p)
        except FichierRefuse as exc:
            return lus, [str(e) for e in exc.erreurs]
        return lus, None
    return par(True), par(False)


def test_le_chemin_rapide_et_le_chemin_de_reference_donnent_le_meme_resultat_sur_les_cas_connus():
    cas = [
        fichier(LIGNE),
        fichier(LIGNE, "", "   ", ligne(transaction="PP-2")),
        fichier(LIGNE, ligne(transaction="PP-2", montant="0.00"), ligne(transaction="PP-3")),
        fichier(LIGNE, ligne(transaction="PP-2", point_de_vente="TAB 94"), ligne(transaction="PP-3", mode="CB")),
        fichier(LIGNE, ligne(date_heure="2026-02-30T00:00:00Z")),
        fichier(LIGNE, LIGNE),
        fichier(LIGNE, fin="\r"),
        (ENTETE + "\n" + LIGNE).encode(),
        fichier(LIGNE, ligne(transaction="PP-2", datamatrix='a"b')),
    ]
    for contenu in cas:
        rapide, reference = lire_les_deux(contenu)
        assert rapide == reference, contenu


def lignes_presque_canoniques() -> st.SearchStrategy[str]:
    charges = st.builds(
        lambda d, m, mo: charge_utile(code_etablissement="019", periode=f"2026-{mo:02d}", code_produit="043",
                                      numero_dette=d, codique="094012", montant_centimes=m),
        st.integers(1, 10**15 - 1), st.integers(1, 99_999_999), st.integers(1, 12))
    champ = st.text(alphabet=st.characters(codec="utf-8", exclude_characters="\r\n"), max_size=6)
    return st.builds(
        ligne,
        transaction=st.one_of(st.sampled_from(["PP-1", "PP-2", "PP-3"]), champ),
        date_heure=st.one_of(st.sampled_from(["2026-05-12T17:42:10+02:00", "2026-02-31T00:00:00Z",
                                              "2026-05-12T17:42+24:00", "2026-05-12 17:42:10+02:00"]), champ),
        datamatrix=st.one_of(charges, st.just(VECTEUR), champ),
        montant=st.one_of(st.sampled_from(["42.00", "0.00", "1.5", "-1.00", "300.01"]), champ),
        mode=st.one_of(st.sampled_from(["ESPECES", "CARTE", "CB"]), champ),
        point_de_vente=st.one_of(st.just("TAB-94-0117"), champ),
    )


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.one_of(lignes_presque_canoniques(), st.sampled_from(["", " ", '""', "\x85", LIGNE])),
                max_size=6),
       st.sampled_from(["\r\n", "\n", "\r"]), st.booleans())
def test_les_deux_chemins_s_accordent_sur_des_lignes_presque_canoniques(lignes, fin, bom):
    rapide, reference = lire_les_deux(fichier(*lignes, bom=bom, fin=fin))
    assert rapide == reference


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(
    st.binary(max_size=400),
    st.builds(lambda lignes, queue: fichier(*lignes) + queue,
              st.lists(lignes_presque_canoniques(), max_size=3), st.binary(max_size=20)),
    st.builds(lambda n, b: fichier(LIGNE, ligne(transaction="PP-2"))[:n] + b, st.integers(0, 420),
              st.binary(max_size=4)),
))
def test_lire_releve_ne_laisse_echapper_que_fichier_refuse(contenu):
    try:
        for p in lire_releve(contenu, "fuzz.csv"):
            assert p.montant > 0 and p.recu_le.tzinfo is not None
            assert isinstance(p.details["datamatrix_valide"], bool)
    except FichierRefuse as exc:
        assert exc.erreurs and all(e.fichier == "fuzz.csv" for e in exc.erreurs)


# --- lecture en flux, par blocs, et contrôle en bloc ------------------------------------------------

def releve_de(n: int, fin: str = "\r\n", invalides: int = 7) -> bytes:
    """n lignes canoniques (une sur `invalides` avec un datamatrix faux), mois variés (code période « 1 » compris)."""
    lignes = []
    for i in range(n):
        charge = charge_utile(code_etablissement="019", periode=f"2026-{1 + i % 12:02d}", code_produit="043",
                              numero_dette=1 + i * 7919, codique="094012", montant_centimes=1 + i * 37)
        if i % invalides == invalides - 1:
            charge = charge[:-1] + ("1" if charge[-1] != "1" else "2")
        lignes.append(ligne(transaction=f"PP-{i}", date_heure=f"2026-05-{1 + i % 28:02d}T10:00:00+02:00",
                            datamatrix=charge, montant=f"{1 + i % 400}.{i % 100:02d}", mode=MODES[i % 2],
                            point_de_vente=f"TAB-{i % 5}"))
    return fichier(*lignes, fin=fin)


MODES = ("ESPECES", "CARTE")


@pytest.mark.parametrize("taille_bloc", [1, 7, 200, 1000, 1 << 20])
@pytest.mark.parametrize("fin", ["\r\n", "\n", "\r"])
def test_la_lecture_par_blocs_donne_ce_que_donne_le_chemin_de_reference(taille_bloc, fin):
    contenu = releve_de(60, fin=fin)
    par_blocs = list(releve.lire_releve_flux(io.BytesIO(contenu), "r.csv", taille_bloc=taille_bloc))
    _, reference = lire_les_deux(contenu)
    assert reference == (par_blocs, None)
    assert len(par_blocs) == 60 and sum(not p.details["datamatrix_valide"] for p in par_blocs) == 8


def test_un_fichier_ouvert_est_lu_en_flux(tmp_path):
    chemin = tmp_path / "releve.csv"
    chemin.write_bytes(releve_de(30))
    with chemin.open("rb") as flux:
        lus = list(releve.lire_releve_flux(flux, "releve.csv", taille_bloc=500))
    assert [p.reference for p in lus] == [f"PP-{i}" for i in range(30)]
    assert lus == lire(releve_de(30))


@pytest.mark.parametrize("taille_bloc", [300, 1 << 20])
def test_un_doublon_d_un_bloc_a_l_autre_est_refuse_avec_la_ligne_de_la_premiere(taille_bloc):
    contenu = releve_de(40) + (ligne(transaction="PP-3") + "\r\n").encode()
    with pytest.raises(FichierRefuse) as exc:
        list(releve.lire_releve_flux(io.BytesIO(contenu), "r.csv", taille_bloc=taille_bloc))
    assert [str(e) for e in exc.value.erreurs] == ["r.csv:42: transaction: « PP-3 » figure déjà ligne 5"]


@pytest.mark.parametrize("taille_bloc", [250, 1 << 20])
def test_une_ligne_fautive_apres_plusieurs_blocs_refuse_le_fichier_et_rien_n_est_donne_apres(taille_bloc):
    contenu = releve_de(30) + (ligne(transaction="PP-X", montant="1,00") + "\r\n").encode() + \
        (ligne(transaction="PP-Y") + "\r\n").encode()
    lus = []
    with pytest.raises(FichierRefuse) as exc:
        for p in releve.lire_releve_flux(io.BytesIO(contenu), "r.csv", taille_bloc=taille_bloc):
            lus.append(p.reference)
    assert [e.ligne for e in exc.value.erreurs] == [32]
    assert lus == [f"PP-{i}" for i in range(30)]


def test_un_paiement_du_chemin_rapide_est_celui_que_pydantic_validerait():
    for p in lire(releve_de(24)):
        assert p == PaiementRecu.model_validate(p.model_dump(exclude_unset=True))
        assert p.model_fields_set == PaiementRecu.model_validate(p.model_dump(exclude_unset=True)).model_fields_set
        assert p.model_dump_json() == PaiementRecu.model_validate_json(p.model_dump_json()).model_dump_json()


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.one_of(lignes_presque_canoniques(), st.sampled_from(["", " ", LIGNE])), min_size=1, max_size=12),
       st.integers(1, 400), st.sampled_from(["\r\n", "\n", "\r"]))
def test_les_blocs_ne_changent_rien_au_resultat(lignes, taille_bloc, fin):
    # Transactions uniques : sinon presque tout s'arrête au premier doublon.
    lignes = [x.replace("PP-1;", f"PP-{i}-1;", 1) for i, x in enumerate(lignes)]
    contenu = fichier(*lignes, fin=fin)

    def par_blocs() -> tuple[list[PaiementRecu], list[str] | None]:
        lus: list[PaiementRecu] = []
        try:
            for p in releve.lire_releve_flux(io.BytesIO(contenu), "r.csv", taille_bloc=taille_bloc):
                lus.append(p)
        except FichierRefuse as exc:
            return lus, [str(e) for e in exc.erreurs]
        return lus, None

    rapide, reference = lire_les_deux(contenu)
    assert par_blocs() == rapide == reference


# --- empreintes des transactions, contrôle en bloc sur des relevés tirés au hasard ---------------------

def test_une_collision_d_empreintes_ne_fait_perdre_aucun_paiement(monkeypatch):
    # Toutes les transactions ont la même empreinte : le chemin rapide croit voir des doublons et rend la
    # main au chemin de référence, qui compare les transactions elles-mêmes ; rien n'est perdu ni refusé.
    contenu = releve_de(50)
    attendu = list(releve.lire_releve_flux(io.BytesIO(contenu), "r.csv", taille_bloc=700))
    monkeypatch.setattr(releve, "_empreinte", lambda transaction: 42)
    for taille_bloc in (700, 1 << 20):
        lus = list(releve.lire_releve_flux(io.BytesIO(contenu), "r.csv", taille_bloc=taille_bloc))
        assert lus == attendu and len(lus) == 50
    _, reference = lire_les_deux(contenu)
    assert reference == (attendu, None)


def test_une_collision_d_empreintes_laisse_voir_le_vrai_doublon(monkeypatch):
    monkeypatch.setattr(releve, "_empreinte", len)  # toutes les « PP-n » d'un chiffre se confondent
    contenu = releve_de(30) + (ligne(transaction="PP-7") + "\r\n").encode()
    with pytest.raises(FichierRefuse) as exc:
        list(releve.lire_releve_flux(io.BytesIO(contenu), "r.csv", taille_bloc=500))
    assert [str(e) for e in exc.value.erreurs] == ["r.csv:32: transaction: « PP-7 » figure déjà ligne 9"]


def test_les_empreintes_refusent_un_lot_avec_doublon_sans_rien_garder():
    vues = releve.Empreintes()
    assert vues.ajouter_si_nouvelles(["A", "B"]) and len(vues) == 2
    assert not vues.ajouter_si_nouvelles(["C", "D", "C"]) and len(vues) == 2
    assert not vues.ajouter_si_nouvelles(["E", "A"]) and len(vues) == 2
    assert vues.ajouter_si_nouvelles(["C", "D", "E"]) and len(vues) == 5
    assert not vues.ajouter_si_nouvelle("D") and vues.ajouter_si_nouvelle("F") and len(vues) == 6


@pytest.mark.parametrize("graine", range(4))
def test_un_gros_releve_abime_au_hasard_donne_ce_que_donne_le_chemin_de_reference(graine):
    # Des datamatrix abîmés d'un caractère (clés, fixes, rang, montant, longueur), tous les mois (code
    # période « 1 » compris), des blocs de tailles diverses : mêmes paiements, mêmes raisons.
    hasard = random.Random(graine)
    lignes = []
    for i in range(1500):
        charge = charge_utile(code_etablissement=f"{hasard.randrange(1000):03d}",
                              periode=f"20{hasard.randrange(10, 99)}-{hasard.randrange(1, 13):02d}",
                              code_produit=f"{hasard.randrange(1000):03d}", numero_dette=hasard.randrange(1, 10**15),
                              codique=f"{hasard.randrange(10**6):06d}", montant_centimes=hasard.randrange(1, 10**8))
        tirage = hasard.random()
        if tirage < 0.15:
            position = hasard.randrange(40, 130)
            charge = charge[:position] + hasard.choice("0123456789 A~") + charge[position + 1:]
        elif tirage < 0.17:
            charge = charge[hasard.randrange(1, 64):]
        lignes.append(ligne(transaction=f"PP-{graine}-{i}", datamatrix=charge,
                            montant=f"{hasard.randrange(0, 500)}.{hasard.randrange(100):02d}".replace("0.00", "0.01"),
                            mode=MODES[i % 2], point_de_vente=f"TAB-{hasard.randrange(50)}"))
    contenu = fichier(*lignes)
    _, reference = lire_les_deux(contenu)
    assert reference[1] is None
    for taille_bloc in (hasard.randrange(300, 5000), 1 << 16, 1 << 20):
        par_blocs = list(releve.lire_releve_flux(io.BytesIO(contenu), "r.csv", taille_bloc=taille_bloc))
        assert par_blocs == reference[0]
    assert sum(not p.details["datamatrix_valide"] for p in reference[0]) > 100


def test_la_lecture_est_un_iterateur_qui_finit_par_le_refus():
    contenu = fichier(LIGNE, ligne(transaction="PP-2", montant="1,00"))
    lecteur = releve.lire_releve_flux(io.BytesIO(contenu), "r.csv")
    assert iter(lecteur) is lecteur and next(lecteur).reference == "PP-2026-0000981"
    with pytest.raises(FichierRefuse):
        next(lecteur)


def test_un_datamatrix_invalide_hors_du_controle_en_bloc_donne_le_paiement_que_pydantic_validerait():
    # Un « ; » dans une charge utile fait lire le bloc ligne à ligne, puis au caractère près (ligne blanche
    # comprise) : chaque paiement à datamatrix faux y est construit sans revalidation, comme celui du bloc.
    faux = VECTEUR[:-1] + "1"
    lignes = [ligne(transaction="PP-1", datamatrix=faux), ligne(transaction="PP-2"),
              ligne(transaction="PP-3", datamatrix=VECTEUR[:-4] + ";;;;"), "",
              ligne(transaction="PP-4", datamatrix=faux), ligne(transaction="PP-5", datamatrix="court")]
    contenu = (ENTETE + "\r\n" + "\r\n".join(lignes) + "\r\n").encode()
    rapide, reference = lire_les_deux(contenu)
    assert rapide == reference and rapide[1] is None
    paiements = rapide[0]
    assert [p.details["datamatrix_valide"] for p in paiements] == [False, True, False, False, False]
    for p in paiements:
        assert_comme_valide(p)
