"""Paiements en ligne PayFiP côté registre : démarrer un paiement, suivre son résultat.

Trois cas d'usage, un seul chemin pour le résultat :

- `demarrer_paiement` : contrôle le panier (factures d'UN dossier, d'une régie, payables), enregistre
  l'opération et son panier AVANT d'appeler PayFiP (statut `creee`), puis l'idOp (`en_attente`).
  Une faute ou un délai dépassé à la création termine l'opération en `echec_creation` : les factures
  sont libres de nouveau, rien n'est à moitié enregistré.
- `traiter_notification` : la notification (urlnotif) ne porte que l'idOp, non signé ; elle ne fait
  que déclencher une consultation.
- `consulter_operations_en_attente` : le travail périodique qui rattrape les notifications perdues.

Les deux derniers passent par `traiter_operation` : consultation de la DGFiP HORS transaction, puis
une transaction qui verrouille la ligne de l'opération (SELECT ... FOR UPDATE sur PostgreSQL ;
SQLite sérialise les écrivains par BEGIN IMMEDIATE) et relit son statut : si la notification et le
travail périodique arrivent ensemble, un seul enregistre le paiement ; l'autre trouve l'opération
finie. La clé unique (canal, référence) du paiement garde la base même en cas d'erreur de code.

Règles de temps (décidées ici, spec payfip.md) :

- un idOp sert 15 minutes ; tant qu'une opération a moins de `DELAI_TENTATIVE` (20 min), ou qu'elle
  a répondu P5 (« paiement en cours »), ses factures ne peuvent pas entrer dans une nouvelle tentative ;
- P5 : consultée à chaque passage pendant `DUREE_P5` (2 h), puis au plus une fois par heure, jusqu'à
  un résultat définitif (la purge de nuit finit par répondre P1) : jamais abandonnée tant que
  l'argent peut encore arriver ;
- P1 : l'opération est `expiree` (finie, impayée) si elle a plus de `DELAI_TENTATIVE` ; avant, un P1
  est tenu pour passager et l'opération reste en attente ;
- une opération restée `creee` plus de `DELAI_CREATION_ORPHELINE` (processus tué pendant l'appel)
  passe en `echec_creation` : son idOp, s'il existe chez la DGFiP, n'a jamais été montré à la famille.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from enum import StrEnum
from typing import Final
from zoneinfo import ZoneInfo

import structlog
from sqlalchemy import Connection, insert, or_, select, update

from connecteurs.payfip import (
    DemandeInvalide,
    ErreurConnecteurPayfip,
    EtatPayfip,
    PayfipInjoignable,
    PayfipRegie,
    ResultatPayfip,
    TransportPayfip,
    masquer_mel,
)
from connecteurs.payfip.client import verifier_mel
from regie.application import Application
from regie.montants import centimes_en_euros
from regie.registre.modeles import (
    Dossier,
    EtatFacture,
    Facture,
    LignePanierPayfip,
    OperationPayfip,
    Paiement,
    Regie,
)
from regie.registre.types import maintenant as _maintenant

__all__ = [
    "DELAI_TENTATIVE",
    "BilanConsultation",
    "DemandePaiement",
    "FactureDemandee",
    "IssueTraitement",
    "PaiementDemarre",
    "PasserellePayfip",
    "PayfipIndisponible",
    "RefusPaiement",
    "consulter_operations_en_attente",
    "demarrer_paiement",
    "factures_en_cours",
    "raison_non_payable",
    "traiter_notification",
    "traiter_operation",
]

journal = structlog.get_logger()
PARIS: Final = ZoneInfo("Europe/Paris")

DELAI_TENTATIVE: Final = timedelta(minutes=20)  # 15 min de validité de l'idOp + 5 min de marge
DUREE_P5: Final = timedelta(hours=2)
INTERVALLE_P5_PROLONGE: Final = timedelta(hours=1)
DELAI_CREATION_ORPHELINE: Final = timedelta(minutes=5)  # bien plus que 3 tentatives de 10 s
STATUTS_OUVERTS: Final = ("creee", "en_attente")
PREFIXE_PANIER: Final = "PANIER"


# --------------------------------------------------------------------------------------------
# Erreurs (valeurs avec un code stable et un message en français)
# --------------------------------------------------------------------------------------------


class RefusPaiement(Exception):
    """Le paiement ne peut pas être démarré. `introuvable` : dossier ou facture inconnus (404)."""

    def __init__(self, code: str, message: str, *, introuvable: bool = False,
                 factures: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.introuvable = introuvable
        self.factures = list(factures)


class PayfipIndisponible(Exception):
    """PayFiP n'a pas répondu ou a refusé la création : l'opération est en `echec_creation`."""

    def __init__(self, message: str, *, code_dgfip: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.code_dgfip = code_dgfip


# --------------------------------------------------------------------------------------------
# Accès à PayFiP : un transport, un adaptateur par régie (numcli)
# --------------------------------------------------------------------------------------------


class PasserellePayfip:
    """Les clients PayFiP de l'application : un transport (l'adresse vient de l'environnement,
    `REGIE_PAYFIP_ENDPOINT`), un `PayfipRegie` par régie de la configuration (son numcli)."""

    def __init__(self, app: Application, transport: TransportPayfip | None = None, *,
                 base_page: str | None = None) -> None:
        self.app = app
        self.transport = transport if transport is not None else TransportPayfip(app.env.payfip_endpoint)
        self.base_page = base_page
        self._regies: dict[str, PayfipRegie] = {}

    def pour(self, regie_code: str) -> PayfipRegie:
        client = self._regies.get(regie_code)
        if client is None:
            rc = self.app.config.regies[regie_code]
            p = self.app.config.payfip
            options = {"base_page": self.base_page} if self.base_page else {}
            client = PayfipRegie(self.transport, numcli=rc.payfip_numcli, saisie=p.saisie,
                                 urlnotif=p.url_notification, urlredirect=p.url_retour, **options)
            self._regies[regie_code] = client
        return client

    def close(self) -> None:
        self.transport.close()


# --------------------------------------------------------------------------------------------
# Payable en ligne ? (règle commune à la liste des factures et au démarrage)
# --------------------------------------------------------------------------------------------

RAISONS: Final[dict[str, str]] = {
    "FACTURE_ANNULEE": "la facture est annulée",
    "FACTURE_PAYEE": "la facture est déjà payée : il ne reste rien à payer",
    "FACTURE_TITREE": "la facture a été transmise au Trésor public (titre) : la payer avec l'avis "
                      "des sommes à payer",
    "REGIE_MODE_TITRE": "cette régie encaisse par titre : payer avec l'avis des sommes à payer",
    "ECHEANCE_DEPASSEE": "l'échéance et le délai avant titre sont dépassés : la facture part au Trésor "
                         "public, elle se paiera avec l'avis des sommes à payer",
    "PAIEMENT_EN_COURS": "un paiement est déjà en cours pour cette facture : attendre son résultat "
                         "(au plus 20 minutes) avant d'en commencer un autre",
}


def raison_non_payable(*, statut: str, reste: int, echeance: date, mode_regie: str, delai_titre_jours: int,
                       en_cours: bool, aujourd_hui: date) -> str | None:
    """Le code de la raison pour laquelle une facture ne peut pas être payée en ligne, ou None.

    Règle : payable tant qu'il reste à payer, qu'elle n'est ni titrée ni d'une régie en mode titre,
    qu'aucune tentative ne peut encore aboutir, et jusqu'au jour où elle devient titrable
    (échéance + délai avant titre de la régie) : passé ce jour le titre part à la prochaine nuit et
    un paiement à la régie le croiserait.
    """
    if statut == "annulee":
        return "FACTURE_ANNULEE"
    if statut == "titree":
        return "FACTURE_TITREE"
    if reste <= 0 or statut == "payee":
        return "FACTURE_PAYEE"
    if mode_regie == "titre":
        return "REGIE_MODE_TITRE"
    if aujourd_hui > echeance + timedelta(days=delai_titre_jours):
        return "ECHEANCE_DEPASSEE"
    if en_cours:
        return "PAIEMENT_EN_COURS"
    return None


def factures_en_cours(conn: Connection, facture_ids: Sequence[int]) -> set[int]:
    """Les factures (parmi celles-ci) d'une opération PayFiP encore ouverte (creee ou en_attente)."""
    if not facture_ids:
        return set()
    req = (select(LignePanierPayfip.facture_id)
           .join(OperationPayfip, OperationPayfip.id == LignePanierPayfip.operation_id)
           .where(LignePanierPayfip.facture_id.in_(facture_ids), OperationPayfip.statut.in_(STATUTS_OUVERTS)))
    return set(conn.execute(req).scalars())


def aujourd_hui_paris(instant: datetime | None = None) -> date:
    return (instant or _maintenant()).astimezone(PARIS).date()


# --------------------------------------------------------------------------------------------
# Démarrer un paiement
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FactureDemandee:
    numero: str
    montant: int | None = None  # ce que le portail croit devoir : contrôlé contre le registre


@dataclass(frozen=True, slots=True)
class DemandePaiement:
    dossier: str
    factures: tuple[FactureDemandee, ...]
    mel: str | None = None  # par défaut, l'adresse du payeur de la facture
    montant_total: int | None = None


@dataclass(frozen=True, slots=True)
class PaiementDemarre:
    operation_id: int
    id_op: str
    refdet: str
    montant: int
    url: str
    factures: tuple[tuple[str, int], ...]


@dataclass(frozen=True, slots=True)
class _Panier:
    operation_id: int
    refdet: str
    montant: int
    regie_code: str
    mel: str
    objet: str
    lignes: tuple[tuple[str, int], ...]


def demarrer_paiement(app: Application, passerelle: PasserellePayfip, demande: DemandePaiement, *,
                      maintenant: datetime | None = None) -> PaiementDemarre:
    """Crée un paiement PayFiP pour une facture ou un panier de factures d'un dossier.

    Lève `RefusPaiement` (code stable, message en français ; `introuvable` pour un dossier ou une
    facture inconnus) ou `PayfipIndisponible` (l'opération finit en `echec_creation`).
    """
    instant = maintenant or _maintenant()
    _verifier_forme(demande)
    # Une tentative ancienne encore ouverte sur ces factures : la DGFiP seule dit si elle a abouti.
    for operation_id, id_op in _tentatives_anciennes(app, demande, instant):
        if id_op is not None:
            traiter_operation(app, passerelle, id_op, maintenant=instant)
        else:
            _clore_orpheline(app, operation_id, instant)
    panier = _enregistrer_panier(app, demande, instant)
    client = passerelle.pour(panier.regie_code)
    exer = instant.astimezone(PARIS).year
    try:
        id_op = client.creer_paiement(panier.refdet, panier.montant, panier.mel, panier.objet, exer)
    except DemandeInvalide as exc:
        _echec_creation(app, panier.operation_id, instant, str(exc))
        if exc.champ == "mel":
            raise RefusPaiement("MEL_INVALIDE", f"adresse électronique refusée : {exc.raison}") from exc
        raise RefusPaiement("DEMANDE_INVALIDE", f"demande refusée avant l'envoi à PayFiP : {exc}") from exc
    except ErreurConnecteurPayfip as exc:
        _echec_creation(app, panier.operation_id, instant, str(exc))
        code = getattr(exc, "code", None)
        if code == "A2":
            raise RefusPaiement("MEL_INVALIDE", "PayFiP refuse l'adresse électronique (A2)") from exc
        raise PayfipIndisponible("le service de paiement en ligne ne répond pas ou a refusé la demande ; "
                                 "réessayer dans quelques minutes", code_dgfip=code) from exc
    except BaseException:
        # Toute autre panne (y compris une interruption) : rien ne doit rester « creee ».
        _echec_creation(app, panier.operation_id, instant, "interruption pendant la création")
        raise
    with app.moteur.begin() as conn:
        conn.execute(update(OperationPayfip).where(OperationPayfip.id == panier.operation_id)
                     .values(id_op=id_op, statut="en_attente"))
    journal.info("payfip.paiement_demarre", operation_id=panier.operation_id, id_op=id_op, refdet=panier.refdet,
                 montant=panier.montant, factures=len(panier.lignes), dossier=demande.dossier,
                 mel=masquer_mel(panier.mel))
    return PaiementDemarre(panier.operation_id, id_op, panier.refdet, panier.montant, client.url_paiement(id_op),
                           panier.lignes)


def _verifier_forme(demande: DemandePaiement) -> None:
    numeros = [f.numero for f in demande.factures]
    if not numeros:
        raise RefusPaiement("PANIER_VIDE", "choisir au moins une facture")
    doubles = sorted({n for n in numeros if numeros.count(n) > 1})
    if doubles:
        raise RefusPaiement("FACTURE_EN_DOUBLE", f"facture présente deux fois dans le panier : {', '.join(doubles)}",
                            factures=doubles)
    if demande.mel is not None:
        try:
            verifier_mel(demande.mel)
        except DemandeInvalide as exc:
            raise RefusPaiement("MEL_INVALIDE", f"adresse électronique refusée : {exc.raison}") from exc


def _tentatives_anciennes(app: Application, demande: DemandePaiement,
                          instant: datetime) -> list[tuple[int, str | None]]:
    numeros = [f.numero for f in demande.factures]
    with app.moteur.connect() as conn:
        req = (select(OperationPayfip.id, OperationPayfip.id_op).distinct()
               .join(LignePanierPayfip, LignePanierPayfip.operation_id == OperationPayfip.id)
               .join(Facture, Facture.id == LignePanierPayfip.facture_id)
               .where(Facture.numero.in_(numeros), OperationPayfip.statut.in_(STATUTS_OUVERTS),
                      OperationPayfip.cree_le < instant - DELAI_TENTATIVE))
        return [(i, o) for i, o in conn.execute(req).all()]


def _verrouiller(conn: Connection, modele: type[Dossier] | type[OperationPayfip], id_: int) -> None:
    """SELECT ... FOR UPDATE sur PostgreSQL ; sur SQLite, BEGIN IMMEDIATE a déjà tout sérialisé."""
    conn.execute(select(modele.id).where(modele.id == id_).with_for_update())


def _enregistrer_panier(app: Application, demande: DemandePaiement, instant: datetime) -> _Panier:
    with app.moteur.begin() as conn:
        dossier_id = conn.execute(select(Dossier.id).where(Dossier.numero == demande.dossier)).scalar()
        if dossier_id is None:
            raise RefusPaiement("DOSSIER_INCONNU", f"le dossier {demande.dossier} est inconnu", introuvable=True)
        # Deux démarrages simultanés pour le même dossier passent l'un après l'autre : le second voit
        # le panier du premier et refuse (PAIEMENT_EN_COURS).
        _verrouiller(conn, Dossier, dossier_id)
        numeros = [f.numero for f in demande.factures]
        lignes = {r.numero: r for r in conn.execute(
            select(Facture.id, Facture.numero, Facture.dossier_id, Facture.regie_code, EtatFacture.statut,
                   Facture.montant, EtatFacture.paye, EtatFacture.avoirs, Facture.echeance, Facture.refdet,
                   Facture.email, Facture.periode)
            .join(EtatFacture, EtatFacture.facture_id == Facture.id)
            .where(Facture.numero.in_(numeros)))}
        inconnues = [n for n in numeros if n not in lignes]
        if inconnues:
            raise RefusPaiement("FACTURE_INCONNUE", f"facture inconnue : {', '.join(inconnues)}",
                                introuvable=True, factures=inconnues)
        autres = [n for n in numeros if lignes[n].dossier_id != dossier_id]
        if autres:
            raise RefusPaiement("FACTURE_AUTRE_DOSSIER",
                                f"facture d'un autre dossier que {demande.dossier} : {', '.join(autres)}",
                                factures=autres)
        regies_codes = {lignes[n].regie_code for n in numeros}
        regies = {r.code: r for r in conn.execute(
            select(Regie.code, Regie.mode, Regie.payfip_numcli, Regie.delai_titre_jours)
            .where(Regie.code.in_(regies_codes)))}
        if len({regies[c].payfip_numcli for c in regies_codes}) > 1:
            raise RefusPaiement("REGIES_MELEES", "le panier mêle des factures de régies différentes "
                                f"({', '.join(sorted(regies_codes))}) : un paiement par régie")
        en_cours = factures_en_cours(conn, [lignes[n].id for n in numeros])
        jour = aujourd_hui_paris(instant)
        for n in numeros:
            f = lignes[n]
            r = regies[f.regie_code]
            raison = raison_non_payable(statut=f.statut, reste=f.montant - f.paye - f.avoirs, echeance=f.echeance,
                                        mode_regie=r.mode, delai_titre_jours=r.delai_titre_jours,
                                        en_cours=f.id in en_cours, aujourd_hui=jour)
            if raison is not None:
                raise RefusPaiement(raison, f"facture {n} : {RAISONS[raison]}", factures=[n])
        desaccords = [f"{d.numero} (demandé {centimes_en_euros(d.montant)} €, reste "
                      f"{centimes_en_euros(_reste(lignes[d.numero]))} €)"
                      for d in demande.factures if d.montant is not None and d.montant != _reste(lignes[d.numero])]
        if desaccords:
            raise RefusPaiement("MONTANT_DIFFERENT", "le montant demandé diffère de ce qui reste à payer : "
                                + ", ".join(desaccords), factures=[d.split(" ")[0] for d in desaccords])
        total = sum(_reste(lignes[n]) for n in numeros)
        if demande.montant_total is not None and demande.montant_total != total:
            raise RefusPaiement("MONTANT_DIFFERENT", f"le total demandé ({centimes_en_euros(demande.montant_total)} €) "
                                f"diffère de ce qui reste à payer ({centimes_en_euros(total)} €)")
        if total < 100:
            raise RefusPaiement("MONTANT_TROP_FAIBLE", f"PayFiP n'accepte pas un paiement de moins de 1.00 € "
                                f"(reste {centimes_en_euros(total)} €)")
        mel = demande.mel or next((lignes[n].email for n in numeros if lignes[n].email), None)
        if not mel:
            raise RefusPaiement("MEL_MANQUANT", "aucune adresse électronique : PayFiP en exige une pour le reçu")
        regie_code = lignes[numeros[0]].regie_code
        numcli = regies[regie_code].payfip_numcli
        refdet_unique = lignes[numeros[0]].refdet if len(numeros) == 1 else None
        operation_id = conn.execute(insert(OperationPayfip).returning(OperationPayfip.id), {
            "id_op": None, "refdet": refdet_unique or PREFIXE_PANIER, "numcli": numcli, "regie_code": regie_code,
            "dossier_id": dossier_id, "montant": total, "statut": "creee", "resultat": None, "paiement_id": None,
            "consultations": 0, "cree_le": instant}).scalar_one()
        refdet = refdet_unique or f"{PREFIXE_PANIER}{operation_id:012d}"  # 18 caractères, unique par opération
        if refdet_unique is None:
            conn.execute(update(OperationPayfip).where(OperationPayfip.id == operation_id).values(refdet=refdet))
        conn.execute(insert(LignePanierPayfip), [
            {"operation_id": operation_id, "facture_id": lignes[n].id, "montant": _reste(lignes[n])}
            for n in numeros])
    if len(numeros) == 1:
        objet = f"Facture {numeros[0]} periode {lignes[numeros[0]].periode}"
    else:
        objet = f"{len(numeros)} factures dossier {demande.dossier}"
    return _Panier(operation_id, refdet, total, regie_code, mel, objet,
                   tuple((n, _reste(lignes[n])) for n in numeros))


def _reste(ligne: object) -> int:
    return int(ligne.montant - ligne.paye - ligne.avoirs)  # type: ignore[attr-defined]


def _echec_creation(app: Application, operation_id: int, instant: datetime, cause: str) -> None:
    with app.moteur.begin() as conn:
        conn.execute(update(OperationPayfip).where(OperationPayfip.id == operation_id,
                                                   OperationPayfip.statut == "creee")
                     .values(statut="echec_creation", terminee_le=max(instant, _maintenant())))
    journal.warning("payfip.echec_creation", operation_id=operation_id, cause=cause)


def _clore_orpheline(app: Application, operation_id: int, instant: datetime) -> None:
    _echec_creation(app, operation_id, instant, "opération restée « creee » : création interrompue")


# --------------------------------------------------------------------------------------------
# Résultat : notification et consultation périodique
# --------------------------------------------------------------------------------------------


class IssueTraitement(StrEnum):
    INCONNUE = "inconnue"  # idOp absent du registre
    DEJA_TERMINEE = "deja_terminee"
    PAYEE = "payee"
    REFUSEE = "refusee"
    ABANDONNEE = "abandonnee"
    EXPIREE = "expiree"
    EN_COURS = "en_cours"
    ERREUR = "erreur"  # PayFiP injoignable ou réponse illisible : on réessaiera
    INJOIGNABLE = "injoignable"


_STATUT_DE_L_ETAT: Final = {EtatPayfip.PAYE: "payee", EtatPayfip.REFUSE: "refusee",
                            EtatPayfip.ABANDONNE: "abandonnee"}


def traiter_notification(app: Application, passerelle: PasserellePayfip, id_op: str | None, *,
                         maintenant: datetime | None = None) -> IssueTraitement:
    """urlnotif : ne croit rien de ce qu'elle reçoit, déclenche seulement une consultation."""
    if id_op is None:
        journal.warning("payfip.notification_sans_id_op")
        return IssueTraitement.INCONNUE
    issue = traiter_operation(app, passerelle, id_op, maintenant=maintenant, rapprocher_ensuite=True)
    journal.info("payfip.notification_traitee", id_op=id_op, issue=issue.value)
    return issue


def traiter_operation(app: Application, passerelle: PasserellePayfip, id_op: str, *,
                      maintenant: datetime | None = None, rapprocher_ensuite: bool = True) -> IssueTraitement:
    """Consulte la DGFiP pour un idOp et applique le résultat, une seule fois quoi qu'il arrive."""
    with app.moteur.connect() as conn:
        op = conn.execute(select(OperationPayfip.id, OperationPayfip.statut, OperationPayfip.regie_code,
                                 OperationPayfip.cree_le).where(OperationPayfip.id_op == id_op)).first()
    if op is None:
        journal.warning("payfip.id_op_inconnu", id_op=id_op)
        return IssueTraitement.INCONNUE
    if op.statut not in STATUTS_OUVERTS:
        return IssueTraitement.DEJA_TERMINEE
    instant = maintenant or _maintenant()
    try:
        resultat = passerelle.pour(op.regie_code).resultat(id_op, cree_le=op.cree_le, maintenant=instant)
    except PayfipInjoignable as exc:
        journal.warning("payfip.consultation_impossible", id_op=id_op, cause=str(exc))
        _noter_consultation(app, op.id, instant, None)
        return IssueTraitement.INJOIGNABLE
    except ErreurConnecteurPayfip as exc:
        journal.warning("payfip.consultation_en_erreur", id_op=id_op, cause=str(exc))
        _noter_consultation(app, op.id, instant, getattr(exc, "code", None))
        return IssueTraitement.ERREUR
    issue = _appliquer(app, op.id, resultat, instant)
    if issue is IssueTraitement.PAYEE and rapprocher_ensuite:
        _rapprocher(app, instant)
    return issue


def _noter_consultation(app: Application, operation_id: int, instant: datetime, code: str | None) -> None:
    with app.moteur.begin() as conn:
        valeurs: dict[str, object] = {"consultations": OperationPayfip.consultations + 1, "consultee_le": instant}
        if code is not None:
            valeurs["resultat"] = code[:2]
        conn.execute(update(OperationPayfip).where(OperationPayfip.id == operation_id,
                                                   OperationPayfip.statut.in_(STATUTS_OUVERTS)).values(**valeurs))


def _appliquer(app: Application, operation_id: int, resultat: ResultatPayfip, instant: datetime) -> IssueTraitement:
    from regie.services.paiements import enregistrer_paiements

    with app.moteur.begin() as conn:
        _verrouiller(conn, OperationPayfip, operation_id)
        op = conn.execute(select(OperationPayfip.statut, OperationPayfip.cree_le, OperationPayfip.montant,
                                 OperationPayfip.numcli, OperationPayfip.refdet, OperationPayfip.id_op)
                          .where(OperationPayfip.id == operation_id)).one()
        if op.statut not in STATUTS_OUVERTS:
            return IssueTraitement.DEJA_TERMINEE  # l'autre chemin (notification ou consultation) est passé
        base = update(OperationPayfip).where(OperationPayfip.id == operation_id)
        consultation = {"consultations": OperationPayfip.consultations + 1, "consultee_le": instant}
        etat = resultat.etat
        if etat is EtatPayfip.EN_COURS:
            code = resultat.code or (resultat.detail.resultat if resultat.detail else None)
            conn.execute(base.values(statut="en_attente", resultat=code, **consultation))
            return IssueTraitement.EN_COURS
        if etat is EtatPayfip.PURGE_OU_INCONNU:
            if instant - op.cree_le < DELAI_TENTATIVE:
                # Trop tôt pour conclure : un P1 juste après la création n'est pas une purge.
                conn.execute(base.values(resultat="P1", **consultation))
                return IssueTraitement.EN_COURS
            conn.execute(base.values(statut="expiree", resultat="P1", terminee_le=instant, **consultation))
            journal.info("payfip.operation_expiree", operation_id=operation_id, id_op=op.id_op)
            return IssueTraitement.EXPIREE
        detail = resultat.detail
        assert detail is not None  # un résultat P, V, R, Z, A porte toujours son détail
        if etat is not EtatPayfip.PAYE:
            conn.execute(base.values(statut=_STATUT_DE_L_ETAT[etat], resultat=detail.resultat, terminee_le=instant,
                                     **consultation))
            journal.info("payfip.operation_terminee", operation_id=operation_id, id_op=op.id_op,
                         resultat=detail.resultat)
            return IssueTraitement.REFUSEE if etat is EtatPayfip.REFUSE else IssueTraitement.ABANDONNEE
        if detail.montant_centimes != op.montant or detail.numcli != op.numcli or detail.refdet != op.refdet:
            # La DGFiP fait foi sur l'argent reçu ; le moteur le rapprochera (ou le mettra en revue).
            journal.warning("payfip.reponse_differente", operation_id=operation_id, id_op=op.id_op,
                            montant_attendu=op.montant, montant_recu=detail.montant_centimes,
                            numcli_recu=detail.numcli, refdet_recu=detail.refdet)
        recu = detail.vers_paiement_recu()
        enregistrer_paiements(conn, [recu])
        paiement_id = conn.execute(select(Paiement.id).where(Paiement.canal == recu.canal,
                                                             Paiement.reference == recu.reference)).scalar_one()
        conn.execute(base.values(statut="payee", resultat=detail.resultat, paiement_id=paiement_id,
                                 terminee_le=instant, **consultation))
    journal.info("payfip.operation_payee", operation_id=operation_id, id_op=op.id_op,
                 montant=detail.montant_centimes, paiement_id=paiement_id)
    return IssueTraitement.PAYEE


def _rapprocher(app: Application, instant: datetime) -> None:
    from rapprochement.moteur import rapprocher

    rapprocher(app, aujourd_hui=aujourd_hui_paris(instant))


@dataclass
class BilanConsultation:
    consultees: int = 0
    issues: dict[str, int] = field(default_factory=dict)
    orphelines: int = 0

    @property
    def injoignable(self) -> bool:
        return self.issues.get(IssueTraitement.INJOIGNABLE.value, 0) > 0

    def message(self) -> str:
        detail = ", ".join(f"{n} {k}" for k, n in sorted(self.issues.items()))
        texte = f"{self.consultees} opération(s) PayFiP consultée(s)"
        if detail:
            texte += f" : {detail}"
        if self.orphelines:
            texte += f" ; {self.orphelines} création(s) interrompue(s) close(s)"
        return texte


def consulter_operations_en_attente(app: Application, passerelle: PasserellePayfip, *,
                                    maintenant: datetime | None = None,
                                    arreter_si_injoignable: bool = True) -> BilanConsultation:
    """Un passage du travail périodique : chaque opération en attente qui est due est consultée.

    Puis un seul rapprochement si un paiement est arrivé. Si PayFiP est injoignable (après les
    nouvelles tentatives du transport), le passage s'arrête là : le suivant reprendra.
    """
    instant = maintenant or _maintenant()
    bilan = BilanConsultation()
    with app.moteur.begin() as conn:
        orphelines = conn.execute(
            update(OperationPayfip).where(OperationPayfip.statut == "creee",
                                          OperationPayfip.cree_le < instant - DELAI_CREATION_ORPHELINE)
            .values(statut="echec_creation", terminee_le=instant).returning(OperationPayfip.id)).scalars().all()
        bilan.orphelines = len(orphelines)
    with app.moteur.connect() as conn:
        dues = conn.execute(
            select(OperationPayfip.id_op).where(
                OperationPayfip.statut == "en_attente", OperationPayfip.id_op.is_not(None),
                or_(OperationPayfip.cree_le >= instant - DUREE_P5, OperationPayfip.consultee_le.is_(None),
                    OperationPayfip.consultee_le <= instant - INTERVALLE_P5_PROLONGE))
            .order_by(OperationPayfip.id)).scalars().all()
    payees = 0
    for id_op in dues:
        assert id_op is not None
        issue = traiter_operation(app, passerelle, id_op, maintenant=instant, rapprocher_ensuite=False)
        bilan.consultees += 1
        bilan.issues[issue.value] = bilan.issues.get(issue.value, 0) + 1
        payees += issue is IssueTraitement.PAYEE
        if issue is IssueTraitement.INJOIGNABLE and arreter_si_injoignable:
            break
    if payees:
        _rapprocher(app, instant)
    journal.info("payfip.consultation_periodique", consultees=bilan.consultees, orphelines=bilan.orphelines,
                 **bilan.issues)
    return bilan

