"""PES_Retour : une collecte déjà connue confirme, une collecte nouvelle paie le titre, un rejet rend la facture."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
from sqlalchemy import select

from exports.titres import emettre_titres
from regie.application import Application
from regie.registre.modeles import Bordereau, Titre
from regie.services.compte import historique
from tests.scenarios import Scenario, autre
from tests.test_decisions import verifier_paiements
from tests.test_factures_import import verifier_invariants

NUMERO = "F01-26-05-0000777"


def retour(exercice: int, bordereau: int, piece: int, encaissements: list[tuple[str, str, str]],
           etat: str = "02") -> bytes:
    blocs = "".join(f'<EncaissementEmargement><OrgEma V="{org}"/><DteReco V="{jour}"/><MtReco V="{m}"/>'
                    "</EncaissementEmargement>" for org, jour, m in encaissements)
    return f"""<?xml version="1.0" encoding="ISO-8859-1"?>
<n:PES_Retour xmlns:n="http://www.minefi.gouv.fr/cp/helios/pes_v2/Rev0/retour">
<Enveloppe><Parametres><Version V="1"/><TypFic V="PES2R_RCE"/><NomFic V="PES2R_RCE_essai.xml"/></Parametres>
</Enveloppe>
<EnTetePES><DteStr V="2026-06-30"/><IdPost V="094012"/><IdColl V="21940099900017"/><CodColl V="123"/>
<CodBud V="01"/></EnTetePES>
<PES_RecetteRetour><EnTeteRecette><TypRestit V="02"/><IdVer V="2"/><NatInf V="2"/></EnTeteRecette>
<Bordereau><BlocBordereau><Exer V="{exercice}"/><IdBord V="{bordereau}"/><TypBord V="01"/></BlocBordereau>
<Piece><BlocPiece><IdPce V="{piece}"/><TypPce V="01"/><NatPce V="01"/><DtePcePec V="2026-06-02"/>
<EtatPce V="{etat}"/></BlocPiece>
<LigneDePiece><BlocLignePiece><InfoLignePiece><IdLigne V="1"/><EtatLigPce V="04"/><MtHT V="60.00"/>
</InfoLignePiece></BlocLignePiece>
<Tiers><InfoTiers><RefTiers V="D004512"/><CatTiers V="01"/><NatJur V="01"/><Civilite V="MME"/><Nom V="MARTIN"/>
</InfoTiers></Tiers>{blocs}</LigneDePiece></Piece></Bordereau></PES_RecetteRetour></n:PES_Retour>""".encode("latin-1")


@pytest.fixture
def titre(app: Application, tmp_path: Path) -> tuple[Scenario, tuple[int, int, int]]:
    sc = Scenario(app, tmp_path)
    sc.factures(autre(NUMERO, "60.00", regie="LOISIRS"))  # régie en mode titre : titrée dès l'émission
    assert emettre_titres(app, date(2026, 6, 1))
    with app.sessions() as s:
        t = s.execute(select(Titre.exercice, Bordereau.numero, Titre.piece).join(Bordereau)).one()
    assert sc.facture(NUMERO)["statut"] == "titree"
    return sc, (t[0], t[1], t[2])


def test_une_collecte_deja_connue_par_le_buraliste_confirme_sans_compter_deux_fois(titre) -> None:  # type: ignore[no-untyped-def]
    sc, (exer, bord, piece) = titre
    dm = sc.datamatrix(NUMERO, "60.00")
    sc.buraliste(("PP-T1", dm, "60.00", "CARTE"),
                 date_heure="2026-06-05T11:00:00+02:00")
    f = sc.facture(NUMERO)
    assert (f["paye"], f["statut"]) == ("60.00", "payee")
    assert sc.famille("D004512") == {"dossier": "D004512", "du": "0.00", "credit": "0.00"}
    sc.importer("pes-retour", retour(exer, bord, piece, [("07", "2026-06-09", "60.00")]), "retour.xml")
    p = next(x for x in sc.etat()["paiements"] if x["canal"] == "pes_retour")
    assert (p["statut"], p["affecte"]) == ("confirme", "0.00")
    assert sc.facture(NUMERO)["paye"] == "60.00"
    verifier_invariants(sc.app)
    verifier_paiements(sc.app)


def test_une_collecte_que_personne_n_a_signalee_est_un_nouveau_paiement_du_titre(titre) -> None:  # type: ignore[no-untyped-def]
    sc, (exer, bord, piece) = titre
    contenu = retour(exer, bord, piece, [("02", "2026-06-12", "25.00"), ("02", "2026-06-20", "35.00")])
    sc.importer("pes-retour", contenu, "retour.xml")
    f = sc.facture(NUMERO)
    assert (f["paye"], f["statut"]) == ("60.00", "payee")
    assert f["titre"]["piece"] == piece
    # Un retour « stock » relu donne les mêmes collectes : rien ne change.
    avant = sc.etat()
    sc.importer("pes-retour", contenu.replace(b'TypRestit V="02"', b'TypRestit V="03"'), "stock.xml")
    assert sc.etat() == avant
    # Au compte famille : la facture passe au Trésor avec son titre, puis chaque collecte réduit ce qui
    # y est dû, à sa date ; rien n'est dû à la régie.
    lignes = historique(sc.app, "D004512")
    assert [(x.nature, x.delta_du, x.delta_tresor, x.du, x.tresor) for x in lignes][-2:] == [
        ("paiement", 0, -2500, 0, 3500), ("paiement", 0, -3500, 0, 0)]
    assert [x.quand.date().isoformat() for x in lignes[-2:]] == ["2026-06-11", "2026-06-19"]
    assert sc.famille("D004512") == {"dossier": "D004512", "du": "0.00", "credit": "0.00"}
    verifier_invariants(sc.app)


def test_une_piece_rejetee_par_le_comptable_rend_la_facture_a_la_regie(titre) -> None:  # type: ignore[no-untyped-def]
    sc, (exer, bord, piece) = titre
    assert sc.famille("D004512")["du"] == "0.00"
    sc.importer("pes-retour", retour(exer, bord, piece, [], etat="04"), "rejet.xml")
    f = sc.facture(NUMERO)
    assert f["statut"] == "emise"
    assert f["titre"]["statut"] == "rejete"
    assert sc.famille("D004512")["du"] == "60.00"
    verifier_invariants(sc.app)
