"""PES_ACQUIT : accepté ou rejeté par bordereau, codes et libellés d'Hélios gardés ; tout le reste refusé."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from exports.acquits import ErreurAcquit, lire_acquit
from regie.erreurs import FichierRefuse
from tests.pes_schema import assert_valide, exemple

EXEMPLE = exemple("PES_Acquit_minimal.xml")


def acquit(elements: str, nom_fic: str = "PESALR2_219400379_261125_001.xml") -> bytes:
    texte = f"""<?xml version="1.0" encoding="ISO-8859-1"?>
<n:PES_ACQUIT xmlns:n="http://www.minefi.gouv.fr/cp/helios/pes_v2/Rev0/retour/v2">
  <Enveloppe>
    <Parametres>
      <Version V="2"/>
      <TypFic V="PESACQUIT"/>
      <NomFic V="{nom_fic}"/>
    </Parametres>
    <Emetteur>
      <Sigle V="DGFIP"/>
      <Adresse V="HELIOS"/>
    </Emetteur>
  </Enveloppe>
  <EnTetePES>
    <DteStr V="2026-11-26"/>
    <IdPost V="094012"/>
    <IdColl V="21940037900019"/>
    <CodCol V="001"/>
    <CodBud V="01"/>
  </EnTetePES>
  <ACQUIT>
    <EnTeteAcquit>
      <IdVer V="2"/>
    </EnTeteAcquit>
{elements}
  </ACQUIT>
</n:PES_ACQUIT>
"""
    return texte.encode("latin-1")


REJET_DETAILLE = """    <ElementACQUIT>
      <DomaineAck V="6"/>
      <EtatAck V="0"/>
      <NumBord V="12"/>
      <ExerciceBord V="2026"/>
      <Erreur>
        <NumAnoAck V="ERREUR_AUTRE"/>
        <LibelleAnoAck V="Tiers invalide : la civilité est obligatoire pour une personne physique"/>
      </Erreur>
      <DetailPiece>
        <NumPiece V="345"/>
        <Erreur>
          <NumAnoAck V="ERREUR_DOUBLON_PIECE"/>
          <LibelleAnoAck V="Pièce 345 : déjà intégrée"/>
        </Erreur>
        <DetailLigne>
          <NumLigne V="2"/>
          <Erreur>
            <LibelleAnoAck V="Ligne 2 : montant à zéro"/>
          </Erreur>
        </DetailLigne>
      </DetailPiece>
      <DetailPiece>
        <NumPiece V="346"/>
      </DetailPiece>
    </ElementACQUIT>"""

ACCEPTE = """    <ElementACQUIT>
      <DomaineAck V="6"/>
      <EtatAck V="1"/>
      <NumBord V="11"/>
      <ExerciceBord V="2026"/>
    </ElementACQUIT>"""


def refus(contenu: bytes) -> FichierRefuse:
    with pytest.raises(FichierRefuse) as exc:
        lire_acquit(contenu, "ACQ.xml")
    return exc.value


def test_l_exemple_officiel_donne_un_bordereau_accepte_et_un_rejete_avec_le_texte_d_helios() -> None:
    lu = lire_acquit(EXEMPLE, "PES_Acquit_minimal.xml")
    assert lu.nom_fic_acquitte == "ACQUIT_PES_Aller_titre_minimal.xml"
    assert lu.date == "2024-03-16"
    accepte, rejete = lu.elements
    assert (accepte.domaine, accepte.accepte, accepte.exercice, accepte.numero_bordereau) == (6, True, 2024, 1)
    assert accepte.erreurs == []
    assert (rejete.accepte, rejete.numero_bordereau) == (False, 2)
    assert rejete.erreurs == [("ERREUR_DOUBLON_BORDEREAU", "Le bordereau 2 de l'exercice 2024 a déjà été intégré")]
    assert [p.numero_piece for p in rejete.pieces_en_erreur] == [1]
    assert not lu.tout_accepte


def test_un_rejet_detaille_garde_les_erreurs_du_bordereau_des_pieces_et_des_lignes() -> None:
    contenu = acquit(ACCEPTE + "\n" + REJET_DETAILLE)
    assert_valide(contenu)
    lu = lire_acquit(contenu, "ACQ.xml")
    assert lu.nom_fic_acquitte == "PESALR2_219400379_261125_001.xml"
    accepte, rejete = lu.elements
    assert accepte.accepte and accepte.numero_bordereau == 11
    assert not rejete.accepte and (rejete.exercice, rejete.numero_bordereau) == (2026, 12)
    (code, libelle), = rejete.erreurs
    assert code == "ERREUR_AUTRE" and libelle is not None and libelle.startswith("Tiers invalide")
    p345, p346 = rejete.pieces_en_erreur
    assert p345.numero_piece == 345
    assert p345.erreurs == [ErreurAcquit("ERREUR_DOUBLON_PIECE", "Pièce 345 : déjà intégrée")]
    assert p345.lignes[0].numero_ligne == 2 and p345.lignes[0].erreurs == [(None, "Ligne 2 : montant à zéro")]
    assert p346.numero_piece == 346 and p346.erreurs == []


def test_un_acquit_tout_accepte() -> None:
    assert lire_acquit(acquit(ACCEPTE), "ACQ.xml").tout_accepte


def test_un_acquit_technique_sans_bordereau_est_lu() -> None:
    element = """    <ElementACQUIT>
      <DomaineAck V="1"/>
      <EtatAck V="0"/>
      <Erreur><NumAnoAck V="ERREUR_ENCODING"/><LibelleAnoAck V="Encodage refusé"/></Erreur>
    </ElementACQUIT>"""
    (lu,) = lire_acquit(acquit(element), "ACQ.xml").elements
    assert (lu.domaine, lu.accepte, lu.numero_bordereau) == (1, False, None)
    assert lu.erreurs == [("ERREUR_ENCODING", "Encodage refusé")]


@pytest.mark.parametrize(("contenu", "chemin", "raison"), [
    (b"<n:PES_ACQUIT", None, "XML mal formé"),
    (b"", None, "fichier vide"),
    (exemple("PES_Aller_titre_minimal.xml"), "/PES_Aller", "un PES_ACQUIT est attendu"),
    (acquit(ACCEPTE).replace(b'<NomFic V="PESALR2_219400379_261125_001.xml"/>', b""),
     "/PES_ACQUIT/Enveloppe/Parametres/NomFic", "élément obligatoire absent"),
    (acquit(ACCEPTE).replace(b'<EtatAck V="1"/>', b'<EtatAck V="2"/>'),
     "/PES_ACQUIT/ACQUIT/ElementACQUIT[1]/EtatAck", "1 (accepté) ou 0 (rejeté)"),
    (acquit(ACCEPTE).replace(b'<NumBord V="11"/>', b'<NumBord V="onze"/>'),
     "/PES_ACQUIT/ACQUIT/ElementACQUIT[1]/NumBord", "n'est pas un nombre entier"),
    (acquit(ACCEPTE).replace(b'<NumBord V="11"/>', b""),
     "/PES_ACQUIT/ACQUIT/ElementACQUIT[1]", "nomme son bordereau"),
    (acquit(REJET_DETAILLE).replace(b'<NumPiece V="346"/>', b"<NumPiece>346</NumPiece>"),
     "/PES_ACQUIT/ACQUIT/ElementACQUIT[1]/DetailPiece[2]/NumPiece", "attribut V absent"),
    (acquit(""), "/PES_ACQUIT/ACQUIT/ElementACQUIT", "aucun élément d'acquit"),
    (acquit(ACCEPTE).replace(b"retour/v2", b"retour/v9"), "/PES_ACQUIT", "espace de noms"),
    (acquit(ACCEPTE).replace(b"ISO-8859-1", b"EBCDIC-FR"), None, "encodage déclaré"),
])
def test_un_acquit_illisible_est_refuse_avec_son_chemin(contenu: bytes, chemin: str | None, raison: str) -> None:
    erreurs = refus(contenu).erreurs
    assert any(e.chemin == chemin and raison in e.raison for e in erreurs), [str(e) for e in erreurs]


def test_toutes_les_erreurs_sont_listees_pas_seulement_la_premiere() -> None:
    contenu = acquit(ACCEPTE + REJET_DETAILLE).replace(b'<EtatAck V="1"/>', b'<EtatAck V="x"/>').replace(
        b'<NumPiece V="345"/>', b'<NumPiece V="abc"/>')
    chemins = {e.chemin for e in refus(contenu).erreurs}
    assert chemins == {"/PES_ACQUIT/ACQUIT/ElementACQUIT[1]/EtatAck",
                       "/PES_ACQUIT/ACQUIT/ElementACQUIT[2]/DetailPiece[1]/NumPiece"}


def test_une_entite_externe_n_est_jamais_resolue() -> None:
    contenu = (b'<?xml version="1.0" encoding="ISO-8859-1"?>\n<!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]>\n'
               + acquit(ACCEPTE).split(b"?>", 1)[1].replace(b"HELIOS", b"&e;"))
    assert any("DOCTYPE" in e.raison or "XML" in e.raison for e in refus(contenu).erreurs)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=2000))
def test_fuzz_octets_quelconques_seul_fichier_refuse_peut_sortir(contenu: bytes) -> None:
    with contextlib.suppress(FichierRefuse):
        lire_acquit(contenu, "fuzz.xml")


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_fuzz_acquit_valide_mute_seul_fichier_refuse_peut_sortir(data: st.DataObject) -> None:
    base = bytearray(acquit(ACCEPTE + REJET_DETAILLE))
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
        lire_acquit(bytes(base), "fuzz.xml")
