"""Le vrai client PayFiP contre le simulateur, sur la boucle locale : rien de notre code n'est simulé."""

from __future__ import annotations

import io
import re
import socket
import uuid
from datetime import UTC, datetime, timedelta
from importlib.resources import files

import pytest
import structlog
from hypothesis import given, settings
from hypothesis import strategies as st
from lxml import etree

from connecteurs.modeles import PaiementRecu
from connecteurs.payfip import (
    DemandeInvalide,
    ErreurPayfip,
    EtatPayfip,
    PayfipInjoignable,
    PayfipRegie,
    ReponseInvalide,
    TransportPayfip,
    date_transaction,
    extraire_id_op,
    masquer_mel,
    nettoyer_objet,
    url_paiement,
)
from connecteurs.payfip.__main__ import main as diagnostic
from connecteurs.payfip.client import NS_SERVICE, detail_depuis_champs
from connecteurs.payfip.simulateur import Scenario, SimulateurPayfip

MEL = "jeanne.dupont@example.org"
NUMCLI = "123456"


@pytest.fixture
def simulateur():
    with SimulateurPayfip(graine=7) as sim:
        yield sim


@pytest.fixture
def transport(simulateur):
    with TransportPayfip(simulateur.endpoint, delai_s=2.0, tentatives=3, attente_initiale_s=0.01) as t:
        yield t


@pytest.fixture
def regie(transport):
    # urlnotif vers un port fermé : ces tests-ci n'écoutent pas la notification (voir test_payfip_simulateur).
    return PayfipRegie(transport, numcli=NUMCLI, saisie="T",
                       urlnotif="http://127.0.0.1:9/notification", urlredirect="http://127.0.0.1:9/retour")


def creer(regie: PayfipRegie, refdet: str = "FACT2026000123", montant: int = 4200) -> str:
    return regie.creer_paiement(refdet, montant, MEL, "Cantine d'octobre – Léa", 2026)


def schema_service() -> etree.XMLSchema:
    chemin = files("connecteurs.payfip") / "wsdl" / "PaiementSecuriseService.xsd"
    return etree.XMLSchema(etree.parse(str(chemin)))


def operation_soap(corps: bytes) -> etree._Element:
    """L'élément opération (premier enfant de soap:Body) d'une requête reçue."""
    body = etree.fromstring(corps).find("{http://schemas.xmlsoap.org/soap/envelope/}Body")
    assert body is not None
    return body[0]


def port_ferme() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# -- création et résultats ------------------------------------------------------------------------


def test_la_creation_renvoie_un_idop_uuid_et_l_adresse_de_la_page_de_paiement(regie):
    id_op = creer(regie)

    assert len(id_op) == 36
    assert str(uuid.UUID(id_op)) == id_op
    assert regie.url_paiement(id_op) == f"https://www.payfip.gouv.fr/tpa/paiementws.web?idop={id_op}"
    assert url_paiement(id_op, "http://127.0.0.1:8089/tpa/paiementws.web").endswith(f"paiementws.web?idop={id_op}")


@pytest.mark.parametrize(
    ("resultrans", "etat", "paye"),
    [
        ("P", EtatPayfip.PAYE, True),
        ("V", EtatPayfip.PAYE, True),
        ("R", EtatPayfip.REFUSE, False),
        ("Z", EtatPayfip.REFUSE, False),
        ("A", EtatPayfip.ABANDONNE, False),
    ],
)
def test_chaque_resultat_de_la_dgfip_devient_un_etat_final(simulateur, regie, resultrans, etat, paye):
    simulateur.prevoir("FACT2026000123", Scenario(resultat=resultrans))
    id_op = creer(regie)

    resultat = regie.resultat(id_op)

    assert resultat.etat is etat
    assert resultat.est_final
    assert resultat.est_paye is paye
    detail = resultat.detail
    assert detail is not None
    assert detail.id_op == id_op
    assert detail.resultat == resultrans
    assert detail.montant_centimes == 4200
    assert detail.refdet == "FACT2026000123"
    assert detail.numcli == NUMCLI
    assert detail.saisie == "T"
    assert detail.mel == MEL
    assert detail.objet == "Cantine d octobre Lea"
    assert detail.est_paye is paye
    assert (detail.numauto is not None) is paye
    assert detail.paye_le is not None and detail.paye_le.utcoffset() == timedelta(0)


def test_une_operation_pas_encore_terminee_est_en_cours_avec_le_code_p5(regie):
    id_op = creer(regie)

    resultat = regie.resultat(id_op)

    assert resultat.etat is EtatPayfip.EN_COURS
    assert resultat.code == "P5"
    assert not resultat.est_final
    assert resultat.detail is None


def test_p5_pendant_deux_consultations_puis_paye(simulateur, regie):
    simulateur.prevoir("FACT2026000123", Scenario(resultat="P", p5_avant=2))
    id_op = creer(regie)

    etats = [regie.resultat(id_op).etat for _ in range(3)]

    assert etats == [EtatPayfip.EN_COURS, EtatPayfip.EN_COURS, EtatPayfip.PAYE]


def test_le_scenario_de_la_prochaine_creation_s_applique_sans_connaitre_le_refdet(simulateur, regie):
    simulateur.prevoir_suivant(Scenario(resultat="V"))
    premier = creer(regie, refdet="AAAAAA111")
    second = creer(regie, refdet="BBBBBB222")

    assert regie.resultat(premier).detail.resultat == "V"
    assert regie.resultat(second).etat is EtatPayfip.EN_COURS


def test_p1_dit_que_l_operation_est_purgee_ou_inconnue_et_finie_impayee(simulateur, regie):
    simulateur.prevoir("FACT2026000123", Scenario(purge=True))
    purgee = creer(regie)

    resultat = regie.resultat(purgee)
    inconnue = regie.resultat(str(uuid.uuid4()))

    assert resultat.etat is EtatPayfip.PURGE_OU_INCONNU and resultat.code == "P1"
    assert resultat.est_final and not resultat.est_paye
    assert inconnue.etat is EtatPayfip.PURGE_OU_INCONNU


def test_la_purge_de_nuit_rend_p1_une_operation_jamais_payee(simulateur, regie):
    id_op = creer(regie)
    assert regie.resultat(id_op).etat is EtatPayfip.EN_COURS

    simulateur.purger(id_op)

    assert regie.resultat(id_op).etat is EtatPayfip.PURGE_OU_INCONNU


def test_un_abandon_lu_moins_de_vingt_minutes_apres_la_creation_reste_en_cours(simulateur, regie):
    simulateur.prevoir("FACT2026000123", Scenario(resultat="A"))
    id_op = creer(regie)
    cree_le = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)

    recent = regie.resultat(id_op, cree_le=cree_le, maintenant=cree_le + timedelta(minutes=5))
    ancien = regie.resultat(id_op, cree_le=cree_le, maintenant=cree_le + timedelta(minutes=21))

    assert recent.etat is EtatPayfip.EN_COURS and recent.detail is not None
    assert ancien.etat is EtatPayfip.ABANDONNE


def test_un_paiement_paye_devient_un_paiement_recu_du_canal_payfip(simulateur, regie):
    simulateur.prevoir("FACT2026000123", Scenario(resultat="P"))
    id_op = creer(regie)

    paiement = regie.resultat(id_op).detail.vers_paiement_recu()

    assert isinstance(paiement, PaiementRecu)
    assert paiement.canal == "payfip"
    assert paiement.reference == id_op
    assert paiement.montant == 4200
    assert paiement.reference_facture == "FACT2026000123"
    assert paiement.recu_le.tzinfo is not None
    assert paiement.details["resultrans"] == "P"
    assert MEL not in repr(paiement)


def test_un_paiement_refuse_ne_devient_jamais_un_paiement_recu(simulateur, regie):
    simulateur.prevoir("FACT2026000123", Scenario(resultat="R"))
    id_op = creer(regie)

    with pytest.raises(ValueError, match="pas payée"):
        regie.resultat(id_op).detail.vers_paiement_recu()


# -- fautes, délais, pannes -------------------------------------------------------------------------


@pytest.mark.parametrize("code", ["R3", "A2"])
def test_une_faute_fonctionnelle_devient_erreur_payfip_avec_son_code_sans_nouvel_essai(simulateur, regie, code):
    simulateur.prevoir("FACT2026000123", Scenario(faute_creation=code))

    with pytest.raises(ErreurPayfip) as erreur:
        creer(regie)

    assert erreur.value.code == code
    assert erreur.value.classe == "FonctionnelleErreur"
    assert erreur.value.libelle
    assert erreur.value.severite == "2"
    assert not erreur.value.transitoire
    assert len(simulateur.requetes) == 1


def test_une_faute_technique_passagere_est_retentee_puis_la_creation_reussit(simulateur, regie):
    simulateur.faute_technique("TechIndisponibiliteErreur", appels=2)

    id_op = creer(regie)

    assert len(id_op) == 36
    assert [r.operation for r in simulateur.requetes] == ["creerPaiementSecurise"] * 3


def test_une_faute_technique_qui_dure_remonte_apres_toutes_les_tentatives(simulateur, regie):
    simulateur.faute_technique("TechDysfonctionnementErreur", appels=5)

    with pytest.raises(ErreurPayfip) as erreur:
        creer(regie)

    assert erreur.value.classe == "TechDysfonctionnementErreur"
    assert erreur.value.transitoire
    assert len(simulateur.requetes) == 3


def test_une_faute_protocolaire_n_est_pas_retentee(simulateur, regie):
    simulateur.faute_technique("TechProtocolaireErreur", appels=5)

    with pytest.raises(ErreurPayfip) as erreur:
        creer(regie)

    assert erreur.value.classe == "TechProtocolaireErreur"
    assert len(simulateur.requetes) == 1


def test_un_delai_depasse_est_retente_et_la_seconde_tentative_reussit(simulateur):
    simulateur.prevoir("FACT2026000123", Scenario(resultat="P"))
    simulateur.ralentir(duree_s=1.5, appels=1)
    with TransportPayfip(simulateur.endpoint, delai_s=0.3, tentatives=3, attente_initiale_s=0.01) as transport:
        regie = PayfipRegie(transport, numcli=NUMCLI, saisie="T",
                            urlnotif="http://127.0.0.1:9/n", urlredirect="http://127.0.0.1:9/r")
        id_op = creer(regie)
        assert regie.resultat(id_op).etat is EtatPayfip.PAYE

    assert [r.operation for r in simulateur.requetes][:2] == ["creerPaiementSecurise"] * 2


def test_un_pair_qui_ne_repond_jamais_a_temps_devient_injoignable(simulateur):
    simulateur.ralentir(duree_s=2.0, appels=2)
    with TransportPayfip(simulateur.endpoint, delai_s=0.2, tentatives=2, attente_initiale_s=0.01) as transport, \
            pytest.raises(PayfipInjoignable) as erreur:
        transport.recuperer_detail_client(NUMCLI)

    assert erreur.value.tentatives == 2
    assert "Timeout" in erreur.value.cause


def test_un_503_du_mandataire_est_retente_puis_devient_injoignable_s_il_dure(simulateur, transport):
    simulateur.panne_http(503, appels=1)
    assert transport.recuperer_detail_client(NUMCLI).numcli == NUMCLI

    simulateur.panne_http(503, appels=3)
    with pytest.raises(PayfipInjoignable) as erreur:
        transport.recuperer_detail_client(NUMCLI)
    assert erreur.value.cause == "HTTP 503"
    assert len(simulateur.requetes) == 5


def test_un_statut_http_inattendu_sans_enveloppe_est_une_reponse_invalide_non_retentee(simulateur, transport):
    simulateur.panne_http(404, appels=3)

    with pytest.raises(ReponseInvalide, match="404"):
        transport.recuperer_detail_client(NUMCLI)
    assert len(simulateur.requetes) == 1


def test_un_pair_eteint_devient_payfip_injoignable_apres_les_tentatives():
    endpoint = f"http://127.0.0.1:{port_ferme()}/tpa/services/securite"
    with TransportPayfip(endpoint, delai_s=0.5, tentatives=3, attente_initiale_s=0.001) as transport, \
            pytest.raises(PayfipInjoignable) as erreur:
        transport.recuperer_detail_paiement(str(uuid.uuid4()))

    assert erreur.value.tentatives == 3
    assert erreur.value.endpoint == endpoint
    assert "injoignable" in str(erreur.value)


# -- règles des champs, vérifiées avant tout appel --------------------------------------------------


@pytest.mark.parametrize(
    ("champ", "valeurs"),
    [
        ("refdet", {"refdet": "F123"}),
        ("refdet", {"refdet": "FACTURE-2026-1"}),
        ("refdet", {"refdet": "FACTÉ20261"}),
        ("refdet", {"refdet": "A" * 31}),
        ("montant", {"montant": 99}),
        ("montant", {"montant": 42.0}),
        ("montant", {"montant": "4200"}),
        ("montant", {"montant": True}),
        ("mel", {"mel": "a@b.f"}),
        ("mel", {"mel": "jeanne.dupont.example.org"}),
        ("mel", {"mel": "jeanne@" + "x" * 70 + ".org"}),
        ("mel", {"mel": "jeanne dupont@example.org"}),
        ("exer", {"exer": "26"}),
        ("exer", {"exer": "deux"}),
        ("numcli", {"numcli": "12345"}),
        ("numcli", {"numcli": "12345a"}),
        ("saisie", {"saisie": "P"}),
        ("urlnotif", {"urlnotif": "ftp://exemple.fr/n"}),
    ],
)
def test_un_champ_invalide_est_refuse_avant_tout_appel(simulateur, transport, champ, valeurs):
    demande = {
        "numcli": NUMCLI, "exer": 2026, "refdet": "FACT2026000123", "montant": 4200, "mel": MEL,
        "saisie": "T", "urlnotif": "http://127.0.0.1:9/n", "urlredirect": "http://127.0.0.1:9/r",
    } | valeurs

    with pytest.raises(DemandeInvalide) as erreur:
        transport.creer_paiement_securise(**demande)

    assert erreur.value.champ == champ
    assert erreur.value.raison
    assert simulateur.requetes == []


def test_les_consultations_verifient_aussi_leurs_champs_avant_l_appel(simulateur, transport):
    with pytest.raises(DemandeInvalide):
        transport.recuperer_detail_client("12 456")
    with pytest.raises(DemandeInvalide):
        transport.recuperer_detail_paiement("")
    assert simulateur.requetes == []


def test_l_adaptateur_refuse_une_configuration_de_regie_invalide(transport):
    with pytest.raises(DemandeInvalide, match="saisie"):
        PayfipRegie(transport, numcli=NUMCLI, saisie="Z", urlnotif="http://a.fr/n", urlredirect="http://a.fr/r")


@pytest.mark.parametrize(
    ("texte", "attendu"),
    [
        ("Cantine d'octobre – Léa & Noé", "Cantine d octobre Lea Noe"),
        ("Cœur de ville : séjour été 2026 !", "Coeur de ville sejour ete 2026"),
        ("  Crèche   « Les P'tits Loups »  ", "Creche Les P tits Loups"),
        ("Facture n°42", "Facture n 42"),
        ("漢字", ""),
    ],
)
def test_nettoyer_objet_ne_garde_que_lettres_sans_accent_chiffres_et_espaces(texte, attendu):
    assert nettoyer_objet(texte) == attendu


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=300))
def test_nettoyer_objet_rend_toujours_un_objet_sur_pour_payfip(texte):
    propre = nettoyer_objet(texte)

    assert re.fullmatch(r"(?:[A-Za-z0-9]+(?: [A-Za-z0-9]+)*)?", propre)
    assert len(propre) <= 100
    assert nettoyer_objet(propre) == propre


# -- ce qui part vraiment sur le fil ----------------------------------------------------------------


def test_la_requete_de_creation_porte_ses_champs_non_qualifies_dans_arg0(simulateur, regie):
    creer(regie)

    operation = operation_soap(simulateur.requetes[0].corps)
    assert operation.tag == f"{{{NS_SERVICE}}}creerPaiementSecurise"
    arg0 = operation.find("arg0")
    assert arg0 is not None
    champs = {enfant.tag: enfant.text for enfant in arg0}
    assert all(etree.QName(enfant).namespace is None for enfant in arg0)
    assert champs == {
        "exer": "2026", "mel": MEL, "montant": "4200", "numcli": NUMCLI, "objet": "Cantine d octobre Lea",
        "refdet": "FACT2026000123", "saisie": "T",
        "urlnotif": "http://127.0.0.1:9/notification", "urlredirect": "http://127.0.0.1:9/retour",
    }
    schema_service().assertValid(etree.ElementTree(operation))


def test_la_consultation_envoie_idop_avec_un_o_majuscule(simulateur, regie, transport):
    id_op = creer(regie)
    regie.resultat(id_op)
    transport.recuperer_detail_client(NUMCLI)

    operation = operation_soap(simulateur.requetes[1].corps)
    client = operation_soap(simulateur.requetes[2].corps)
    assert operation.tag == f"{{{NS_SERVICE}}}recupererDetailPaiementSecurise"
    assert [enfant.tag for enfant in operation.iterfind("arg0/*")] == ["idOp"]
    assert operation.findtext("arg0/idOp") == id_op
    assert b"<idop>" not in simulateur.requetes[1].corps
    assert client.findtext("arg0/numCli") == NUMCLI
    for requete in simulateur.requetes:
        schema_service().assertValid(etree.ElementTree(operation_soap(requete.corps)))


def test_le_courriel_n_apparait_jamais_en_entier_dans_le_journal(simulateur, regie):
    simulateur.prevoir("FACT2026000123", Scenario(resultat="P"))
    with structlog.testing.capture_logs() as evenements:
        id_op = creer(regie)
        regie.resultat(id_op)

    assert evenements
    assert MEL not in repr(evenements)
    assert any("j***@e***.org" in repr(e) for e in evenements)


def test_masquer_mel_garde_de_quoi_reconnaitre_sans_l_adresse():
    assert masquer_mel("jeanne.dupont@example.org") == "j***@e***.org"
    assert masquer_mel("x@localhost") == "x***@l***"
    assert masquer_mel(None) == ""


# -- dates de transaction ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("dattrans", "heurtrans", "utc"),
    [
        ("15012026", "1430", datetime(2026, 1, 15, 13, 30, tzinfo=UTC)),  # hiver, UTC+1
        ("15072026", "1430", datetime(2026, 7, 15, 12, 30, tzinfo=UTC)),  # été, UTC+2
        ("28032026", "0300", datetime(2026, 3, 28, 2, 0, tzinfo=UTC)),  # veille du passage à l'heure d'été
        ("29032026", "0300", datetime(2026, 3, 29, 1, 0, tzinfo=UTC)),  # jour du passage : déjà UTC+2
        ("25102026", "0330", datetime(2026, 10, 25, 2, 30, tzinfo=UTC)),  # retour à l'heure d'hiver : UTC+1
        ("31122026", "2359", datetime(2026, 12, 31, 22, 59, tzinfo=UTC)),
    ],
)
def test_dattrans_heurtrans_de_paris_deviennent_un_instant_utc(dattrans, heurtrans, utc):
    instant = date_transaction(dattrans, heurtrans)

    assert instant == utc
    assert instant.utcoffset() == timedelta(0)


@pytest.mark.parametrize(("dattrans", "heurtrans"), [("2026-01-1", "1430"), ("32012026", "1430"), ("15012026", "2460")])
def test_une_date_de_transaction_illisible_est_une_reponse_invalide(dattrans, heurtrans):
    with pytest.raises(ReponseInvalide):
        date_transaction(dattrans, heurtrans)


def test_l_instant_de_paiement_passe_par_le_fil_en_heure_de_paris_un_jour_de_changement_d_heure(simulateur, regie):
    id_op = creer(regie)
    instant = datetime(2026, 3, 29, 1, 30, tzinfo=UTC)  # 03:30 à Paris, une heure après le passage à l'été

    simulateur.payer(id_op, "P", le=instant)
    detail = regie.resultat(id_op).detail

    assert detail.paye_le == instant
    corps = simulateur.requetes[-1].corps
    assert b"recupererDetailPaiementSecurise" in corps


def test_un_detail_au_montant_en_euros_est_une_reponse_invalide():
    champs = {"idOp": "x" * 36, "resultrans": "P", "montant": "42.00", "dattrans": "15012026", "heurtrans": "1430"}
    with pytest.raises(ReponseInvalide, match="montant"):
        detail_depuis_champs(champs)
    with pytest.raises(ReponseInvalide, match="resultrans"):
        detail_depuis_champs(champs | {"montant": "4200", "resultrans": "X"})
    with pytest.raises(ReponseInvalide, match="dattrans"):
        detail_depuis_champs({"idOp": "x" * 36, "resultrans": "V", "montant": "4200"})


# -- notification, client, diagnostic ---------------------------------------------------------------


def test_extraire_id_op_accepte_idop_et_idOp_de_la_requete_ou_du_formulaire():
    id_op = str(uuid.uuid4())
    assert extraire_id_op({"idOp": id_op}) == id_op
    assert extraire_id_op({}, {"idop": id_op}) == id_op
    assert extraire_id_op({"autre": "x"}, {}) is None
    assert extraire_id_op({"idop": "<script>"}) is None


def test_recuperer_detail_client_rend_les_libelles_et_un_numcli_inconnu_une_faute(transport):
    detail = transport.recuperer_detail_client(NUMCLI)

    assert detail.numcli == NUMCLI
    assert detail.libelle_n1 == "COMMUNE DE DEMONSTRATION"
    assert detail.libelle_n3 is None
    with pytest.raises(ErreurPayfip) as erreur:
        transport.recuperer_detail_client("999999")
    assert erreur.value.classe == "FonctionnelleErreur"


def test_le_diagnostic_info_paiement_affiche_le_resultat_en_francais(simulateur, regie):
    simulateur.prevoir("FACT2026000123", Scenario(resultat="P"))
    id_op = creer(regie)
    sortie = io.StringIO()

    code = diagnostic(["info-paiement", id_op, "--endpoint", simulateur.endpoint], sortie)

    texte = sortie.getvalue()
    assert code == 0
    assert "P (payé par carte)" in texte
    assert "42.00 €" in texte
    assert "FACT2026000123" in texte
    assert MEL not in texte and "j***@e***.org" in texte


def test_le_diagnostic_dit_p1_pour_une_operation_inconnue_et_sort_en_1(simulateur):
    sortie = io.StringIO()

    code = diagnostic(["info-paiement", str(uuid.uuid4()), "--endpoint", simulateur.endpoint], sortie)

    assert code == 1
    assert "P1" in sortie.getvalue()


def test_le_diagnostic_info_client_affiche_les_libelles(simulateur):
    sortie = io.StringIO()

    code = diagnostic(["info-client", NUMCLI, "--endpoint", simulateur.endpoint], sortie)

    assert code == 0
    assert "COMMUNE DE DEMONSTRATION" in sortie.getvalue()


def test_le_diagnostic_sort_en_3_quand_payfip_est_injoignable():
    sortie = io.StringIO()
    endpoint = f"http://127.0.0.1:{port_ferme()}/tpa/services/securite"

    code = diagnostic(["info-client", NUMCLI, "--endpoint", endpoint, "--tentatives", "1"], sortie)

    assert code == 3
    assert "injoignable" in sortie.getvalue()


def test_le_diagnostic_refuse_un_numcli_malforme_sans_appeler(simulateur):
    sortie = io.StringIO()

    code = diagnostic(["info-client", "12", "--endpoint", simulateur.endpoint], sortie)

    assert code == 2
    assert simulateur.requetes == []
