"""PES_Retour recette : états des titres et encaissements, avec une clé naturelle stable d'un retour à l'autre."""

from __future__ import annotations

import contextlib
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connecteurs.pes_retour.recette import lire_pes_retour
from regie.erreurs import FichierRefuse
from tests.pes_schema import assert_valide, exemple

EXEMPLE = exemple("PES_Retour_recette_minimal.xml")
RACINE = "/PES_Retour/PES_RecetteRetour[1]"


def encaissement(org: str = "04", date: str = "2026-11-10", montant: str = "42.00") -> str:
    return f"""          <EncaissementEmargement>
            <OrgEma V="{org}"/>
            <DteReco V="{date}"/>
            <MtReco V="{montant}"/>
          </EncaissementEmargement>
"""


def ligne(id_ligne: int, *encaissements: str, etat: str = "05", montant: str = "42.00") -> str:
    return f"""        <LigneDePiece>
          <BlocLignePiece>
            <InfoLignePiece>
              <IdLigne V="{id_ligne}"/>
              <CodProdLoc V="CANT"/>
              <EtatLigPce V="{etat}"/>
              <MtHT V="{montant}"/>
            </InfoLignePiece>
          </BlocLignePiece>
          <Tiers>
            <InfoTiers>
              <RefTiers V="D004512"/>
              <CatTiers V="01"/>
              <NatJur V="01"/>
              <Civilite V="MME"/>
              <Nom V="MARTIN"/>
              <Prenom V="Hélène"/>
            </InfoTiers>
          </Tiers>
{"".join(encaissements)}        </LigneDePiece>
"""


def piece(id_piece: int, *lignes: str, etat: str = "02") -> str:
    return f"""      <Piece>
        <BlocPiece>
          <IdPce V="{id_piece}"/>
          <TypPce V="01"/>
          <NatPce V="01"/>
          <DtePcePec V="2026-10-02"/>
          <EtatPce V="{etat}"/>
        </BlocPiece>
{"".join(lignes)}      </Piece>
"""


def bordereau(id_bord: int, *pieces: str, exer: str = "2026") -> str:
    return f"""    <Bordereau>
      <BlocBordereau>
        <Exer V="{exer}"/>
        <IdBord V="{id_bord}"/>
        <TypBord V="01"/>
      </BlocBordereau>
{"".join(pieces)}    </Bordereau>
"""


def retour(*bordereaux: str, typ_restit: str = "02", encodage: str = "ISO-8859-1") -> bytes:
    texte = f"""<?xml version="1.0" encoding="{encodage}"?>
<n:PES_Retour xmlns:n="http://www.minefi.gouv.fr/cp/helios/pes_v2/Rev0/retour">
  <Enveloppe>
    <Parametres>
      <Version V="1"/>
      <TypFic V="PES2R_RCE"/>
      <NomFic V="PES2R_RCE__P_001_01_094012_20261130_20261201_20261201063000.xml"/>
    </Parametres>
  </Enveloppe>
  <EnTetePES>
    <DteStr V="2026-11-30"/>
    <IdPost V="094012"/>
    <IdColl V="21940037900019"/>
    <CodColl V="001"/>
    <CodBud V="01"/>
  </EnTetePES>
  <PES_RecetteRetour>
    <EnTeteRecette>
      <TypRestit V="{typ_restit}"/>
      <IdVer V="2"/>
      <NatInf V="{'1' if typ_restit == '03' else '2'}"/>
    </EnTeteRecette>
{"".join(bordereaux)}  </PES_RecetteRetour>
</n:PES_Retour>
"""
    return texte.encode("latin-1" if encodage == "ISO-8859-1" else "utf-8")


PERIODIQUE = retour(bordereau(12, piece(345, ligne(1, encaissement()), ligne(2, encaissement(montant="35.00"),
                                                                              montant="35.00")),
                              piece(346, ligne(1, etat="04"), etat="04")))


def refus(contenu: bytes) -> list[tuple[str | None, str | None, str]]:
    with pytest.raises(FichierRefuse) as exc:
        lire_pes_retour(contenu, "RET.xml")
    return [(e.chemin, e.champ, e.raison) for e in exc.value.erreurs]


def test_l_exemple_officiel_donne_un_titre_pris_en_charge_et_un_encaissement() -> None:
    lu = lire_pes_retour(EXEMPLE, "PES_Retour_recette_minimal.xml")
    assert lu.type_restitution == "02"
    assert lu.nom_fic == "PES2R_RCE__P_001_01_034000_20240331_20240401_20240401063000.xml"
    (titre,) = lu.pieces
    assert (titre.exercice, titre.id_bordereau, titre.id_piece, titre.etat) == (2024, 1, 1, "02")
    assert [(lig.id_ligne, lig.etat, lig.montant_ht_centimes, lig.recouvre_centimes) for lig in titre.lignes] == [
        (1, "05", 12050, 12050)]
    (paiement,) = lu.encaissements
    assert paiement.canal == "pes_retour"
    assert paiement.reference == "2024/1/1/1/2024-03-28/120.50/10/1"
    assert paiement.montant == 12050
    assert paiement.recu_le == datetime(2024, 3, 28, tzinfo=ZoneInfo("Europe/Paris"))
    assert paiement.recu_le.utcoffset() is not None
    assert paiement.reference_facture == "2024/1/1"
    assert paiement.details == {"exercice": 2024, "id_bordereau": 1, "id_piece": 1, "id_ligne": 1, "org_ema": "10",
                                "dte_reco": "2024-03-28", "typ_restit": "02"}
    assert paiement.ligne == 60
    assert paiement.brut == ('<EncaissementEmargement><OrgEma V="10"/><DteReco V="2024-03-28"/>'
                             '<MtReco V="120.50"/></EncaissementEmargement>')


def test_un_retour_periodique_valide_donne_etats_et_encaissements_par_ligne() -> None:
    assert_valide(PERIODIQUE)
    lu = lire_pes_retour(PERIODIQUE, "RET.xml")
    assert [(p.reference_titre, p.etat) for p in lu.pieces] == [("2026/12/345", "02"), ("2026/12/346", "04")]
    assert [p.reference for p in lu.encaissements] == ["2026/12/345/1/2026-11-10/42.00/04/1",
                                                       "2026/12/345/2/2026-11-10/35.00/04/1"]
    assert sum(p.montant for p in lu.encaissements) == 7700
    assert {p.reference_facture for p in lu.encaissements} == {"2026/12/345"}


def test_un_retour_stock_qui_liste_de_nouveau_les_encaissements_redonne_les_memes_references() -> None:
    stock = retour(bordereau(12, piece(345, ligne(1, encaissement()), ligne(2, encaissement(montant="35.00"),
                                                                             montant="35.00"))),
                   bordereau(13, piece(400, ligne(1, encaissement(org="06", date="2026-11-20", montant="10.00")))),
                   typ_restit="03")
    assert_valide(stock)
    periodique = {p.reference for p in lire_pes_retour(PERIODIQUE, "P.xml").encaissements}
    lu_stock = lire_pes_retour(stock, "S.xml")
    assert periodique < {p.reference for p in lu_stock.encaissements}
    assert {p.details["typ_restit"] for p in lu_stock.encaissements} == {"03"}


def test_deux_encaissements_identiques_sous_la_meme_ligne_ont_les_rangs_1_et_2() -> None:
    contenu = retour(bordereau(12, piece(345, ligne(1, encaissement(montant="21.00"), encaissement(montant="21.00"),
                                                    encaissement(montant="21.00", date="2026-11-11")))))
    assert_valide(contenu)
    references = [p.reference for p in lire_pes_retour(contenu, "RET.xml").encaissements]
    assert references == ["2026/12/345/1/2026-11-10/21.00/04/1", "2026/12/345/1/2026-11-10/21.00/04/2",
                          "2026/12/345/1/2026-11-11/21.00/04/1"]
    # relu : mêmes clés, dans le même ordre
    assert references == [p.reference for p in lire_pes_retour(contenu, "RET.xml").encaissements]


def test_la_meme_ligne_listee_deux_fois_dans_un_fichier_ne_fait_qu_un_encaissement() -> None:
    bloc = piece(345, ligne(1, encaissement()))
    lu = lire_pes_retour(retour(bordereau(12, bloc), bordereau(12, bloc), typ_restit="03"), "RET.xml")
    assert [p.reference for p in lu.encaissements] == ["2026/12/345/1/2026-11-10/42.00/04/1"]
    assert lu.doublons_ignores == 1


def test_un_fichier_declare_utf8_se_lit_comme_le_latin1() -> None:
    latin1 = lire_pes_retour(PERIODIQUE, "L.xml")
    utf8 = lire_pes_retour(PERIODIQUE.decode("latin-1").replace("ISO-8859-1", "UTF-8").encode("utf-8"), "U.xml")
    assert [p.reference for p in utf8.encaissements] == [p.reference for p in latin1.encaissements]
    assert utf8.pieces == latin1.pieces


@pytest.mark.parametrize(("contenu", "chemin", "champ", "raison"), [
    (PERIODIQUE[:-40], None, None, "XML mal formé"),
    (b"", None, None, "fichier vide"),
    (exemple("PES_Aller_titre_minimal.xml"), "/PES_Aller", None, "c'est un fichier que nous envoyons"),
    (exemple("PES_Acquit_minimal.xml"), "/PES_ACQUIT", None, "un PES_Retour est attendu"),
    (PERIODIQUE.replace(b"/Rev0/retour", b"/Rev0/aller"), "/PES_Retour", None, "espace de noms"),
    (retour(bordereau(12, piece(345, ligne(1, encaissement(montant="-42.00"))))),
     f"{RACINE}/Bordereau[1]/Piece[1]/LigneDePiece[1]/EncaissementEmargement[1]/MtReco", "MtReco",
     "montant négatif (-42.00) : une annulation"),
    (retour(bordereau(12, piece(345, ligne(1, encaissement(montant="0.00"))))),
     f"{RACINE}/Bordereau[1]/Piece[1]/LigneDePiece[1]/EncaissementEmargement[1]/MtReco", "MtReco", "montant nul"),
    (retour(bordereau(12, piece(345, ligne(1, encaissement(montant="42,00"))))),
     f"{RACINE}/Bordereau[1]/Piece[1]/LigneDePiece[1]/EncaissementEmargement[1]/MtReco", "MtReco", "virgule"),
    (retour(bordereau(12, piece(345, ligne(1, encaissement(date="2026-02-30"))))),
     f"{RACINE}/Bordereau[1]/Piece[1]/LigneDePiece[1]/EncaissementEmargement[1]/DteReco", "DteReco",
     "n'est pas une date"),
    (retour(bordereau(12, piece(345, ligne(1, encaissement(date="20261110"))))),
     f"{RACINE}/Bordereau[1]/Piece[1]/LigneDePiece[1]/EncaissementEmargement[1]/DteReco", "DteReco",
     "n'est pas une date"),
    (retour(bordereau(12, piece(345, ligne(1, encaissement(org="4"))))),
     f"{RACINE}/Bordereau[1]/Piece[1]/LigneDePiece[1]/EncaissementEmargement[1]/OrgEma", "OrgEma", "deux chiffres"),
    (retour(bordereau(12, piece(345, ligne(1), etat="09"))),
     f"{RACINE}/Bordereau[1]/Piece[1]/BlocPiece/EtatPce", "EtatPce", "« 09 »"),
    (retour(bordereau(12, piece(345, ligne(1)), exer="26")),
     f"{RACINE}/Bordereau[1]/BlocBordereau[1]/Exer", "Exer", "n'est pas une année"),
    (retour(bordereau(12, piece(1, ligne(1)), piece(2, ligne(1, encaissement().replace('<MtReco V="42.00"/>', ""))))),
     f"{RACINE}/Bordereau[1]/Piece[2]/LigneDePiece[1]/EncaissementEmargement[1]/MtReco", "MtReco",
     "élément obligatoire absent"),
    (PERIODIQUE.replace(b'<MtReco V="35.00"/>', b"<MtReco>35.00</MtReco>"),
     f"{RACINE}/Bordereau[1]/Piece[1]/LigneDePiece[2]/EncaissementEmargement[1]/MtReco", "MtReco", "attribut V"),
    (retour(typ_restit="07"), f"{RACINE}/EnTeteRecette[1]/TypRestit", "TypRestit", "« 07 »"),
    (PERIODIQUE.replace(b"<PES_RecetteRetour>", b"<PES_DepenseRetour>").replace(
        b"</PES_RecetteRetour>", b"</PES_DepenseRetour>"), "/PES_Retour/PES_RecetteRetour", "PES_RecetteRetour",
     "ne porte pas de retour de recette"),
    (PERIODIQUE.replace(b"ISO-8859-1", b"windows-1252"), None, "encoding", "encodage déclaré"),
])
def test_un_retour_illisible_est_refuse_en_nommant_chemin_et_champ(
        contenu: bytes, chemin: str | None, champ: str | None, raison: str) -> None:
    erreurs = refus(contenu)
    assert any(c == chemin and ch == champ and raison in r for c, ch, r in erreurs), erreurs


def test_toutes_les_erreurs_du_fichier_sont_listees() -> None:
    contenu = retour(bordereau(12, piece(1, ligne(1, encaissement(montant="-1.00"))),
                               piece(2, ligne(1, encaissement(date="hier")))))
    champs = [(c, ch) for c, ch, _ in refus(contenu)]
    assert champs == [(f"{RACINE}/Bordereau[1]/Piece[1]/LigneDePiece[1]/EncaissementEmargement[1]/MtReco", "MtReco"),
                      (f"{RACINE}/Bordereau[1]/Piece[2]/LigneDePiece[1]/EncaissementEmargement[1]/DteReco", "DteReco")]


def test_une_entite_externe_ou_une_dtd_est_refusee_sans_etre_lue() -> None:
    corps = PERIODIQUE.split(b"?>", 1)[1].replace(b"MARTIN", b"&xxe;")
    contenu = (b'<?xml version="1.0" encoding="ISO-8859-1"?>\n'
               b'<!DOCTYPE n:PES_Retour [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>' + corps)
    assert any("DOCTYPE" in r for _, _, r in refus(contenu))
    # Derrière un commentaire et une instruction, toujours dans le prologue : refusée aussi, à sa ligne.
    contenu = (b'<?xml version="1.0" encoding="ISO-8859-1"?>\n<!-- retour -->\n<?pi x?>\n'
               b'<!DOCTYPE n:PES_Retour [<!ENTITY xxe "x">]>' + corps)
    with pytest.raises(FichierRefuse) as exc:
        lire_pes_retour(contenu, "RET.xml")
    assert [(e.ligne, e.raison) for e in exc.value.erreurs] == [
        (4, "déclaration DOCTYPE interdite dans un fichier PES")]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=2000))
def test_fuzz_octets_quelconques_seul_fichier_refuse_peut_sortir(contenu: bytes) -> None:
    with contextlib.suppress(FichierRefuse):
        lire_pes_retour(contenu, "fuzz.xml")


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_fuzz_retour_valide_mute_seul_fichier_refuse_peut_sortir(data: st.DataObject) -> None:
    base = bytearray(PERIODIQUE)
    for _ in range(data.draw(st.integers(1, 4))):
        position = data.draw(st.integers(0, len(base) - 1))
        action = data.draw(st.sampled_from(("remplacer", "supprimer", "inserer")))
        octet = data.draw(st.sampled_from(list(b'<>/"=V0123456789 -.&;\xe9\x00abc')))
        if action == "remplacer":
            base[position] = octet
        elif action == "supprimer":
            del base[position]
        else:
            base.insert(position, octet)
    with contextlib.suppress(FichierRefuse):
        lu = lire_pes_retour(bytes(base), "fuzz.xml")
        assert all(p.montant > 0 for p in lu.encaissements)
