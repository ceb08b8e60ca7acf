"""Acquits d'Hélios : accepté, les titres le sont ; rejeté, les factures reviennent en revue puis repartent.

Les acquits sont construits à partir des bordereaux réellement émis, et valident le schéma officiel.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
from sqlalchemy import func, select, update

from exports.service_acquits import importer_acquit
from exports.titres import emettre_titres
from regie.application import Application
from regie.erreurs import FichierRefuse
from regie.registre.modeles import Anomalie, Bordereau, FichierRecu, MouvementCompte, Titre
from regie.services.etat import etat
from tests.pes_schema import assert_valide
from tests.test_titres import (
    AUJOURD_HUI,
    facture,
    importer_cheques,
    importer_factures,
    lire_xml,
    pieces_du_xml,
    statuts,
    valeurs,
)

NS = "http://www.minefi.gouv.fr/cp/helios/pes_v2/Rev0/retour/v2"


def element(exercice: int, bordereau: int, accepte: bool, erreurs: tuple[tuple[str, str], ...] = (),
            pieces: tuple[int, ...] = ()) -> str:
    blocs = "".join(f'<Erreur><NumAnoAck V="{code}"/><LibelleAnoAck V="{texte}"/></Erreur>' for code, texte in erreurs)
    blocs += "".join(f'<DetailPiece><NumPiece V="{p}"/><Erreur><NumAnoAck V="ERREUR_AUTRE"/>'
                     f'<LibelleAnoAck V="Adresse du tiers de la pièce {p} incomplète"/></Erreur></DetailPiece>'
                     for p in pieces)
    return (f'<ElementACQUIT><DomaineAck V="6"/><EtatAck V="{1 if accepte else 0}"/><NumBord V="{bordereau}"/>'
            f'<ExerciceBord V="{exercice}"/>{blocs}</ElementACQUIT>')


def acquit(nom_fic: str, elements: list[str]) -> bytes:
    texte = (f'<?xml version="1.0" encoding="ISO-8859-1"?>\n<n:PES_ACQUIT xmlns:n="{NS}"><Enveloppe><Parametres>'
             f'<Version V="2"/><TypFic V="PESACQUIT"/><NomFic V="{nom_fic}"/></Parametres><Emetteur>'
             '<Sigle V="DGFIP"/><Adresse V="HELIOS"/></Emetteur></Enveloppe><EnTetePES><DteStr V="2026-11-26"/>'
             '<IdPost V="094012"/><IdColl V="21940099900017"/><CodCol V="123"/><CodBud V="01"/></EnTetePES>'
             f'<ACQUIT><EnTeteAcquit><IdVer V="2"/></EnTeteAcquit>{"".join(elements)}</ACQUIT></n:PES_ACQUIT>\n')
    return texte.encode("latin-1")


def ecrire(dossier: Path, nom: str, contenu: bytes) -> Path:
    chemin = dossier / nom
    chemin.write_bytes(contenu)
    if b"PES_ACQUIT xmlns" in contenu:
        assert_valide(chemin)  # nos acquits de test sont ceux qu'Hélios écrirait
    return chemin


def deux_bordereaux(app: Application, tmp_path: Path) -> Path:
    """Un fichier de deux bordereaux : (2026/1 : F-ACC-0001, F-ACC-0002), (2026/2 : F-REJ-0001)."""
    from exports.titres import emettre

    importer_factures(app, tmp_path, [facture("F-ACC-0001"), facture("F-ACC-0002"), facture("F-REJ-0001")])
    (chemin,) = emettre(app, AUJOURD_HUI, max_pieces_par_bordereau=2).fichiers
    assert valeurs(lire_xml(chemin), ".//BlocBordereau/IdBord") == ["1", "2"]
    return chemin


def test_un_acquit_accepte_rend_les_titres_acceptes(app: Application, tmp_path: Path) -> None:
    pes = deux_bordereaux(app, tmp_path)
    chemin = ecrire(tmp_path, "ACQUIT_1.xml", acquit(pes.name, [element(2026, 1, True), element(2026, 2, True)]))
    rapport = importer_acquit(app, chemin)
    assert rapport.comptes == {"bordereaux acceptes": 2, "titres acceptes": 3}
    with app.moteur.connect() as c:
        assert set(c.execute(select(Titre.statut)).scalars()) == {"accepte"}
        assert set(c.execute(select(Bordereau.statut)).scalars()) == {"accepte"}
    assert set(statuts(app).values()) == {"titree"}
    # Le même fichier relu : « déjà importé », rien ne change.
    encore = importer_acquit(app, chemin)
    assert encore.deja_importe and "déjà importé" in encore.message()


def test_un_bordereau_rejete_rend_ses_factures_a_la_regie_avec_les_mots_d_helios(
        app: Application, tmp_path: Path) -> None:
    pes = deux_bordereaux(app, tmp_path)
    # Un chèque arrive pour F-REJ-0001 pendant que son titre est en route : le reste au Trésor baisse.
    importer_cheques(app, tmp_path, ["RC-2026-099;7654321;MARTIN;CCM;10.00;F-REJ-0001;2026-11-25"])
    du_tresor_avant = _soldes(app)
    chemin = ecrire(tmp_path, "ACQUIT_2.xml", acquit(pes.name, [
        element(2026, 1, True),
        element(2026, 2, False, (("ERREUR_CUMUL_MONTANTS", "Bordereau 2 rejeté : tiers invalide"),), pieces=(3,))]))

    rapport = importer_acquit(app, chemin)

    assert rapport.comptes == {"bordereaux acceptes": 1, "bordereaux rejetes": 1, "titres acceptes": 2,
                               "titres rejetes": 1}
    assert "ERREUR_CUMUL_MONTANTS Bordereau 2 rejeté : tiers invalide" in rapport.message()
    with app.moteur.connect() as c:
        rejete = c.execute(select(Titre.statut, Titre.erreurs).where(Titre.piece == 3)).one()
        anomalie = c.execute(select(Anomalie.code, Anomalie.raison, Anomalie.statut)).one()
        bordereau = c.execute(select(Bordereau.statut, Bordereau.erreurs).where(Bordereau.numero == 2)).one()
    assert rejete.statut == "rejete"
    assert [e["code"] for e in rejete.erreurs] == ["ERREUR_CUMUL_MONTANTS", "ERREUR_AUTRE"]
    assert bordereau.statut == "rejete" and bordereau.erreurs[0]["libelle"] == "Bordereau 2 rejeté : tiers invalide"
    assert anomalie.code == "TITRE_REJETE" and anomalie.statut == "ouverte"
    assert "Adresse du tiers de la pièce 3 incomplète" in anomalie.raison and "67.00" in anomalie.raison
    assert statuts(app) == {"F-ACC-0001": "titree", "F-ACC-0002": "titree", "F-REJ-0001": "partiellement_payee"}
    # Le compte famille : les 67.00 dus au Trésor reviennent à la régie.
    du, tresor = _soldes(app)
    assert (du - du_tresor_avant[0], tresor - du_tresor_avant[1]) == (6700, -6700)
    assert [f["titre"]["statut"] for f in etat(app)["factures"] if f["numero"] == "F-REJ-0001"] == ["rejete"]

    # Tant que l'agent n'a pas résolu l'anomalie, la facture ne repart pas ; ensuite, nouveau bordereau.
    assert emettre_titres(app, date(2026, 11, 27)) == []
    with app.moteur.begin() as c:
        c.execute(update(Anomalie).values(statut="resolue", resolue_par="agent", resolution="corrigee"))
    (nouveau,) = emettre_titres(app, date(2026, 11, 27))
    assert pieces_du_xml(nouveau) == {"Facture F-REJ-0001 2026-05": [3200, 3500]}
    assert valeurs(lire_xml(nouveau), ".//BlocBordereau/IdBord") == ["3"]
    assert valeurs(lire_xml(nouveau), ".//BlocPiece/IdPce") == ["4"]
    assert statuts(app)["F-REJ-0001"] == "titree"
    assert _soldes(app)[1] - du_tresor_avant[1] == 0  # de nouveau dû au Trésor, pour le même reste


def _soldes(app: Application) -> tuple[int, int]:
    with app.moteur.connect() as c:
        du, tresor = c.execute(select(func.sum(MouvementCompte.delta_du), func.sum(MouvementCompte.delta_tresor))).one()
    return int(du), int(tresor)


def test_un_rejet_technique_du_flux_rejette_tous_ses_bordereaux(app: Application, tmp_path: Path) -> None:
    pes = deux_bordereaux(app, tmp_path)
    technique = ('<ElementACQUIT><DomaineAck V="1"/><EtatAck V="0"/><Erreur><NumAnoAck V="ERREUR_SIGNATURE_INVALIDE"/>'
                 '<LibelleAnoAck V="Signature absente"/></Erreur></ElementACQUIT>')
    rapport = importer_acquit(app, ecrire(tmp_path, "ACQUIT_T.xml", acquit(pes.name, [technique])))
    assert rapport.comptes == {"bordereaux rejetes": 2, "titres rejetes": 3}
    assert set(statuts(app).values()) == {"emise"}


def test_un_acquit_d_un_fichier_inconnu_est_refuse_et_mis_en_quarantaine(app: Application, tmp_path: Path) -> None:
    pes = deux_bordereaux(app, tmp_path)
    inconnu = ecrire(tmp_path, "ACQUIT_X.xml", acquit("PESALR2_219400999_261124_009.xml", [element(2026, 1, True)]))
    with pytest.raises(FichierRefuse) as refus:
        importer_acquit(app, inconnu)
    assert "n'a pas été émis" in str(refus.value.erreurs[0])
    mauvais_bord = ecrire(tmp_path, "ACQUIT_Y.xml", acquit(pes.name, [element(2026, 1, True), element(2026, 7, False)]))
    with pytest.raises(FichierRefuse) as refus:
        importer_acquit(app, mauvais_bord)
    assert "2026/7" in str(refus.value.erreurs[0])
    with app.moteur.connect() as c:
        # Rien d'appliqué : le bordereau 1 nommé dans le second fichier n'est pas accepté.
        assert set(c.execute(select(Titre.statut)).scalars()) == {"emis"}
        assert c.execute(select(func.count()).select_from(FichierRecu).where(
            FichierRecu.statut == "refuse")).scalar_one() == 2
    assert len(list((app.env.donnees / "quarantaine" / "acquit").glob("*ACQUIT_*.xml"))) == 2


def test_un_acquit_illisible_est_refuse_avec_ses_erreurs(app: Application, tmp_path: Path) -> None:
    chemin = ecrire(tmp_path, "ACQUIT_Z.xml", b"<PES_ACQUIT><pas fini")
    with pytest.raises(FichierRefuse):
        importer_acquit(app, chemin)


@pytest.mark.parametrize("url_base", ["sqlite"], indirect=True)
def test_la_commande_acquits_importer_dit_rejets_refus_et_repetitions(app: Application, tmp_path: Path,
                                                                    regie_cli) -> None:  # type: ignore[no-untyped-def]
    pes = deux_bordereaux(app, tmp_path)
    bon = ecrire(tmp_path, "ACQUIT_C.xml", acquit(pes.name, [element(2026, 1, True), element(
        2026, 2, False, (("ERREUR_DOUBLON_BORDEREAU", "Le bordereau 2 a déjà été intégré"),))]))
    r = regie_cli("acquits", "importer", str(bon))
    assert r.returncode == 0, r.stderr
    assert "ERREUR_DOUBLON_BORDEREAU Le bordereau 2 a déjà été intégré" in r.stdout
    r = regie_cli("acquits", "importer", str(bon))
    assert r.returncode == 0 and "déjà importé" in r.stdout
    mauvais = ecrire(tmp_path, "ACQUIT_D.xml", b"pas du XML")
    r = regie_cli("acquits", "importer", str(mauvais))
    assert r.returncode == 1
    assert "ACQUIT_D.xml" in r.stderr
