"""PES_Aller de titres : chaque fichier écrit valide le schéma officiel, les sommes tombent au centime,
chaque invariant violé lève PesInvalide en nommant la pièce, et rien de partiel ne reste sur disque."""

from __future__ import annotations

import hashlib
import io
from collections.abc import Iterator
from dataclasses import replace
from datetime import date
from pathlib import Path

import pytest
from lxml import etree

from exports.pes_aller import (
    NS_ALLER,
    BordereauPes,
    Collectivite,
    LignePes,
    PesInvalide,
    PiecePes,
    ResumePes,
    TiersPes,
    ecrire_pes_aller,
    en_latin1,
    nom_fichier_pes,
    objet_piece,
)
from regie.montants import euros_en_centimes
from tests.pes_schema import assert_valide, erreurs_schema

COLLECTIVITE = Collectivite("21940037900019", "094012", "001", "01", "Ville de Gentilly")
JOUR = date(2026, 11, 25)
HELENE = TiersPes("D004512", "MME", "MARTIN", "Hélène", "12 rue des Écoles", None, "94250", "GENTILLY")
ZOE = TiersPes("D000777", "MME", "CŒUR", "Zoé", "3 allée des Œillets", "Bâtiment B", "94250", "GENTILLY")
NOEL = TiersPes("D000042", "M", "LEFÈVRE", "Noël", "1 place de l'Église", None, "94270", "LE KREMLIN-BICÊTRE")


def ligne(id_ligne: int, montant: int, objet: str = "Repas cantine", code: str = "CANT",
          nature: str = "7067") -> LignePes:
    return LignePes(id_ligne, objet, code, nature, montant)


def piece(id_piece: int, tiers: TiersPes = HELENE, montants: tuple[int, ...] = (4200, 3500),
          **autres: object) -> PiecePes:
    lignes = [ligne(i, m) for i, m in enumerate(montants, 1)]
    valeurs: dict[str, object] = {
        "id_piece": id_piece, "objet": objet_piece(f"F01-26-10-{id_piece:07d}", "2026-10"),
        "numero_dette": 100_000 + id_piece, "tiers": tiers, "lignes": lignes, "montant_centimes": sum(montants),
    }
    valeurs.update(autres)
    return PiecePes(**valeurs)  # type: ignore[arg-type]


def bordereau(pieces: list[PiecePes], id_bordereau: int = 12, **autres: object) -> BordereauPes:
    valeurs: dict[str, object] = {
        "exercice": 2026, "id_bordereau": id_bordereau, "date_emission": JOUR, "nombre_pieces": len(pieces),
        "montant_centimes": sum(sum(lig.montant_centimes for lig in p.lignes) for p in pieces), "pieces": pieces,
    }
    valeurs.update(autres)
    return BordereauPes(**valeurs)  # type: ignore[arg-type]


def ecrire_fichier(dossier: Path, bordereaux: list[BordereauPes], numero: int = 1) -> tuple[Path, ResumePes]:
    """Comme l'appelant réel : fichier temporaire, renommé seulement si l'écriture a réussi."""
    nom = nom_fichier_pes(COLLECTIVITE.siret, JOUR, numero)
    temporaire = dossier / f".{nom}.partiel"
    try:
        with temporaire.open("wb") as sortie:
            resume = ecrire_pes_aller(sortie, COLLECTIVITE, bordereaux, nom_fichier=nom, date_fichier=JOUR)
    except BaseException:
        temporaire.unlink(missing_ok=True)
        raise
    final = dossier / nom
    temporaire.rename(final)
    return final, resume


def lire(chemin: Path) -> etree._ElementTree:
    return etree.parse(str(chemin), etree.XMLParser(resolve_entities=False, no_network=True))


def valeurs(arbre: etree._ElementTree | etree._Element, chemin: str) -> list[str]:
    return [str(e.get("V")) for e in arbre.iterfind(chemin)]


def test_un_bordereau_aux_noms_accentues_valide_le_schema_officiel_et_reste_en_latin1(tmp_path: Path) -> None:
    chemin, resume = ecrire_fichier(tmp_path, [bordereau([piece(1, HELENE), piece(2, ZOE, (1290,)),
                                                          piece(3, NOEL, (4200, 3575, 1290))])])
    assert_valide(chemin)
    brut = chemin.read_bytes()
    assert brut.startswith(b'<?xml version="1.0" encoding="ISO-8859-1"?>')
    assert "Hélène".encode("latin-1") in brut and "Zoé".encode("latin-1") in brut
    assert b"COEUR" in brut and "Œ".encode() not in brut  # œ n'existe pas en Latin-1
    arbre = lire(chemin)
    assert arbre.getroot().tag == f"{{{NS_ALLER}}}PES_Aller"
    assert all(e.tag == etree.QName(e).localname for e in arbre.getroot().iter() if e is not arbre.getroot())
    assert valeurs(arbre, "Enveloppe/Parametres/TypFic") == ["PESALR2"]
    assert valeurs(arbre, "Enveloppe/Parametres/NomFic") == ["PESALR2_219400379_261125_001.xml"]
    assert resume.nombre_pieces == 3 and resume.nombre_lignes == 6


def test_les_lignes_font_la_piece_et_les_pieces_le_bordereau_au_centime(tmp_path: Path) -> None:
    pieces = [piece(1, montants=(1, 2)), piece(2, montants=(3333, 3333, 3334)), piece(3, montants=(99_999_999,))]
    chemin, resume = ecrire_fichier(tmp_path, [bordereau(pieces)])
    arbre = lire(chemin)
    total_pieces = 0
    for element in arbre.iterfind(".//Piece"):
        total_pieces += sum(euros_en_centimes(v) for v in valeurs(element, "LigneDePiece/BlocLignePiece/"
                                                                           "InfoLignePiece/MtHT"))
    (mt_bord,) = valeurs(arbre, ".//BlocBordereau/MtBordHt")
    assert euros_en_centimes(mt_bord) == total_pieces == resume.montant_centimes == 3 + 10_000 + 99_999_999
    assert valeurs(arbre, ".//BlocBordereau/NbrPce") == ["3"]
    assert valeurs(arbre, ".//Piece[1]//MtHT") == ["0.01", "0.02"]
    assert mt_bord == "1000100.02"


def test_ordre_et_codes_des_elements_suivent_le_schema(tmp_path: Path) -> None:
    chemin, _ = ecrire_fichier(tmp_path, [bordereau([piece(7, ZOE, cle1="4", cle2="K")])])
    assert_valide(chemin)
    arbre = lire(chemin)
    bloc = arbre.find(".//Piece/BlocPiece")
    assert bloc is not None
    assert [e.tag for e in bloc] == ["IdPce", "TypPce", "NatPce", "ObjPce", "NumDette", "Cle1", "Cle2"]
    assert valeurs(bloc, "ObjPce") == ["Facture F01-26-10-0000007 2026-10"]
    assert valeurs(bloc, "NumDette") == ["100007"]
    info = arbre.find(".//InfoLignePiece")
    assert info is not None
    assert [e.tag for e in info] == ["IdLigne", "ObjLignePce", "CodProdLoc", "Nature", "Majo", "TvaIntraCom", "MtHT"]
    assert [e.tag for e in arbre.iterfind(".//LigneDePiece[1]/Tiers/Adresse/*")] == [
        "TypAdr", "Adr2", "Adr3", "CP", "Ville", "CodRes"]
    assert valeurs(arbre, ".//LigneDePiece[1]/Tiers/InfoTiers/*") == [
        "D000777", "01", "01", "01", "MME", "COEUR", "Zoé"]
    assert valeurs(arbre, ".//BlocBordereau/TypBord") == ["01"]
    assert valeurs(arbre, ".//EnTeteRecette/*") == ["2", "0"]
    # chaque ligne porte son tiers
    assert len(arbre.findall(".//LigneDePiece/Tiers")) == 2


def test_le_validateur_de_test_detecte_un_fichier_non_conforme(tmp_path: Path) -> None:
    chemin, _ = ecrire_fichier(tmp_path, [bordereau([piece(1)])])
    brut = chemin.read_bytes()
    assert erreurs_schema(brut) == []
    assert erreurs_schema(brut.replace(b'<TypPce V="01"/>', b'<TypPce V="99"/>'))
    assert erreurs_schema(brut.replace(b'<CodRes V="0"/>', b""))


def test_caracteres_hors_latin1_sont_convertis_sans_planter(tmp_path: Path) -> None:
    tiers = replace(HELENE, nom="D’ARTAGNAN “le jeune”", prenom="Chloé 🎉", adresse1="2 rue de l’Œuvre — bât. 3…",
                    ville="SAINT-MAUR-DES-FOSSÉS")
    lignes = [ligne(1, 1000, objet="Séjour été 2026 : 10 € par jour\tœuf"), ligne(2, 500, objet="Ŝkolo")]
    chemin, _ = ecrire_fichier(tmp_path, [bordereau([piece(1, tiers, lignes=lignes, montant_centimes=1500)])])
    assert_valide(chemin)
    arbre = lire(chemin)
    assert valeurs(arbre, ".//LigneDePiece[1]//InfoTiers/Nom") == ["D'ARTAGNAN \"le jeune\""]
    assert valeurs(arbre, ".//LigneDePiece[1]//InfoTiers/Prenom") == ["Chloé"]
    assert valeurs(arbre, ".//LigneDePiece[1]//Adresse/Adr2") == ["2 rue de l'OEuvre - bât. 3..."]
    assert valeurs(arbre, ".//ObjLignePce") == ["Séjour été 2026 : 10 EUR par jour oeuf", "Skolo"]


def test_en_latin1_ne_laisse_que_du_latin1_imprimable() -> None:
    assert en_latin1("  Hélène \n  Zoé ") == "Hélène Zoé"
    assert en_latin1("a\x00b\x85c") == "abc"
    assert en_latin1("Œ€‘’“”–—…") == "OEEUR''\"\"--..."
    assert en_latin1("e\u0301") == "é"  # forme décomposée recomposée


def test_textes_trop_longs_sont_tronques_a_la_longueur_du_schema(tmp_path: Path) -> None:
    tiers = replace(HELENE, nom="N" * 60, prenom="Marie-" + "é" * 50, ville="V" * 50)
    p = piece(1, tiers, objet="Facture " + "x" * 300)
    chemin, _ = ecrire_fichier(tmp_path, [bordereau([p])])
    assert_valide(chemin)
    arbre = lire(chemin)
    assert valeurs(arbre, ".//LigneDePiece[1]//InfoTiers/Nom") == ["N" * 38]
    assert len(valeurs(arbre, ".//LigneDePiece[1]//InfoTiers/Prenom")[0]) == 38
    assert len(valeurs(arbre, ".//ObjPce")[0]) == 160


@pytest.mark.parametrize(("fautive", "attendu"), [
    (piece(2, replace(HELENE, civilite="MLLE")), "civilité « MLLE »"),
    (piece(2, replace(HELENE, code_postal="9425")), "code postal « 9425 »"),
    (piece(2, replace(HELENE, code_postal="94 250")), "code postal"),
    (piece(2, montants=(4200, 0), montant_centimes=4200), "ligne 2 : montant de la ligne 0.00 €"),
    (piece(2, montants=(-100,), montant_centimes=-100), "ligne 1 : montant de la ligne -1.00 €"),
    (piece(2, replace(HELENE, adresse1="  ")), "adresse (numéro et voie) vide"),
    (piece(2, replace(HELENE, nom="")), "nom vide"),
    (piece(2, replace(HELENE, prenom=".")), "prénom vide"),
    (piece(2, replace(HELENE, ville="0")), "ville vide"),
    (piece(2, replace(HELENE, reference="D" * 31)), "30 caractères au plus"),
    (piece(2, montant_centimes=7701), "les lignes font 77.00 € mais la pièce annonce 77.01 €"),
    (piece(2, lignes=[]), "aucune ligne"),
    (piece(2, lignes=[ligne(1, 100), ligne(1, 200)], montant_centimes=300), "IdLigne en double"),
    (piece(2, lignes=[ligne(1, 100, code="CANTINE")], montant_centimes=100), "CodProdLoc"),
    (piece(2, lignes=[ligne(1, 100, nature="70A")], montant_centimes=100), "nature « 70A »"),
    (piece(2, numero_dette=10**15), "numéro de dette"),
    (piece(2, cle1="X"), "Cle1"),
    (piece(100_000_000), "IdPce 100000000"),
])
def test_chaque_invariant_viole_nomme_la_piece_et_ne_laisse_aucun_fichier(
        tmp_path: Path, fautive: PiecePes, attendu: str) -> None:
    pieces = [piece(1), fautive, piece(3)]
    with pytest.raises(PesInvalide) as exc:
        ecrire_fichier(tmp_path, [bordereau(pieces, montant_centimes=7700 * 3)])
    message = str(exc.value)
    assert "bordereau 2026/12" in message
    assert ("pièce 2" in message) or ("IdPce 100000000" in message)
    assert attendu in message
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(("annonce", "attendu"), [
    ({"nombre_pieces": 3}, "2 pièce(s) reçue(s) pour 3 annoncée(s)"),
    ({"nombre_pieces": 1}, "plus de pièces que les 1 annoncées"),
    ({"montant_centimes": 15_401}, "les pièces font 154.00 € mais le bordereau annonce 154.01 €"),
    ({"id_bordereau": 10_000_000}, "IdBord 10000000"),
    ({"nombre_pieces": 0}, "NbrPce"),
])
def test_totaux_annonces_faux_rendent_le_fichier_inutilisable(
        tmp_path: Path, annonce: dict[str, int], attendu: str) -> None:
    with pytest.raises(PesInvalide, match=attendu.replace("(", r"\(").replace(")", r"\)")):
        ecrire_fichier(tmp_path, [bordereau([piece(1), piece(2)], **annonce)])
    assert list(tmp_path.iterdir()) == []


def test_idpce_deja_utilise_dans_l_exercice_est_refuse(tmp_path: Path) -> None:
    with pytest.raises(PesInvalide, match="pièce 5 : IdPce déjà utilisé dans l'exercice 2026"):
        ecrire_fichier(tmp_path, [bordereau([piece(5)], id_bordereau=1), bordereau([piece(5)], id_bordereau=2)])
    with pytest.raises(PesInvalide, match="bordereau en double"):
        ecrire_fichier(tmp_path, [bordereau([piece(5)], id_bordereau=1), bordereau([piece(6)], id_bordereau=1)])


def test_collectivite_invalide_est_refusee_avant_tout_octet_ecrit() -> None:
    sortie = io.BytesIO()
    for fautive, attendu in ((replace(COLLECTIVITE, siret="2194003790001"), "SIRET"),
                             (replace(COLLECTIVITE, code_collectivite="000"), "CodCol"),
                             (replace(COLLECTIVITE, codique="94012"), "IdPost"),
                             (replace(COLLECTIVITE, code_budget="1"), "CodBud")):
        with pytest.raises(PesInvalide, match=attendu):
            ecrire_pes_aller(sortie, fautive, [bordereau([piece(1)])], nom_fichier="X.xml", date_fichier=JOUR)
    assert sortie.getvalue() == b""


def test_un_fichier_sans_bordereau_est_refuse() -> None:
    with pytest.raises(PesInvalide, match="aucun bordereau"):
        ecrire_pes_aller(io.BytesIO(), COLLECTIVITE, [], nom_fichier="X.xml", date_fichier=JOUR)


def test_ecriture_en_flux_de_2000_pieces_valide_et_sans_tout_garder_en_memoire(tmp_path: Path) -> None:
    ecrit_quand_tiree: dict[int, int] = {}
    chemin = tmp_path / "flux.xml"
    prenoms = ("Hélène", "Zoé", "Noël", "Chloé")

    with chemin.open("wb") as fichier:
        def pieces() -> Iterator[PiecePes]:
            for i in range(1, 2001):
                ecrit_quand_tiree[i] = fichier.tell()
                tiers = replace(HELENE, reference=f"D{i:06d}", prenom=prenoms[i % 4],
                                adresse2="Bâtiment C" if i % 5 == 0 else None)
                yield piece(i, tiers, montants=(4200 + i % 7, 3575, 1290)[: 1 + i % 3],
                            montant_centimes=None, numero_dette=None if i % 2 else i)

        total = sum(sum((4200 + i % 7, 3575, 1290)[: 1 + i % 3]) for i in range(1, 2001))
        resume = ecrire_pes_aller(fichier, COLLECTIVITE,
                                  [BordereauPes(2026, 12, JOUR, 2000, total, pieces())],
                                  nom_fichier="flux.xml", date_fichier=JOUR)
    assert resume.nombre_pieces == 2000 and resume.montant_centimes == total
    # Quand la 2000e pièce est demandée, les précédentes sont déjà sur disque : c'est bien un flux.
    assert ecrit_quand_tiree[2000] > 1_000_000
    assert_valide(chemin)
    brut = chemin.read_bytes()
    assert resume.taille_octets == len(brut)
    assert resume.sha256 == hashlib.sha256(brut).hexdigest()
    arbre = lire(chemin)
    assert len(arbre.findall(".//Piece")) == 2000
    assert valeurs(arbre, ".//Piece[5]/LigneDePiece[1]/Tiers/Adresse/Adr3") == ["Bâtiment C"]
    assert valeurs(arbre, ".//Piece[4]/LigneDePiece[1]/Tiers/Adresse/Adr3") == []
    assert valeurs(arbre, ".//Piece[4]/BlocPiece/NumDette") == ["4"]
    assert valeurs(arbre, ".//Piece[3]/BlocPiece/NumDette") == []
    assert valeurs(arbre, ".//Piece[6]/LigneDePiece[1]/Tiers/InfoTiers/RefTiers") == ["D000006"]


def test_nom_du_fichier_suit_la_regle_siren_date_numero_du_jour() -> None:
    assert nom_fichier_pes("21940037900019", date(2026, 1, 5), 1) == "PESALR2_219400379_260105_001.xml"
    assert nom_fichier_pes("21940037900019", date(2026, 11, 25), 42) == "PESALR2_219400379_261125_042.xml"
    for siret, numero in (("2194003790001", 1), ("21940037900019", 0), ("21940037900019", 1000)):
        with pytest.raises(PesInvalide):
            nom_fichier_pes(siret, JOUR, numero)
