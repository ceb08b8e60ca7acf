"""Les règles de rapprochement : des fonctions pures sur un état en mémoire.

Chaque décision dit la règle qui l'a prise et sa preuve ; quand le moteur n'est pas sûr, il
propose (suggestions classées, avec leur raison) et n'applique rien.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, NamedTuple

from connecteurs.buralistes.releve import LIMITE_ESPECES_CENTIMES
from connecteurs.cesu.titres import date_limite_validite, est_perime
from regie.domaine import FactureEtat, LigneEtat, repartir

__all__ = ["FactureEtat", "LigneEtat"]  # re-exportés : le vocabulaire des règles
from regie.montants import centimes_en_euros as eur

# Codes dont le moteur retente la résolution à chaque passage (la facture ou la remise peut arriver).
CODES_REESSAYES = frozenset({"REFERENCE_INCONNUE"})
JOURS_CONFIRMATION_PES = 10


class PaiementVue(NamedTuple):
    """Un paiement tel que les règles le lisent (immuable ; un n-uplet nommé : un million par nuit)."""

    id: int
    canal: str
    reference: str
    montant: int
    recu_le: datetime
    reference_facture: str | None
    remise: str | None
    details: dict[str, Any]


class Part(NamedTuple):
    """Ce qu'une décision porte sur une ligne d'une facture (immuable)."""

    facture_id: int
    rang: int  # la ligne de la facture
    montant: int


@dataclass(init=False)  # __init__ écrit, compilé par mypyc : voir regie.domaine.LigneEtat
class Decision:
    regle: str
    preuve: dict[str, Any]
    parts: list[Part]
    anomalie: str | None
    raison: str
    suggestions: list[dict[str, Any]]
    confirme_paiement_id: int | None
    remise_confirmee_id: int | None

    def __init__(self, regle: str, preuve: dict[str, Any] | None = None, parts: list[Part] | None = None,
                 anomalie: str | None = None, raison: str = "", suggestions: list[dict[str, Any]] | None = None,
                 confirme_paiement_id: int | None = None, remise_confirmee_id: int | None = None) -> None:
        self.regle, self.preuve = regle, {} if preuve is None else preuve
        self.parts = [] if parts is None else parts
        self.anomalie, self.raison = anomalie, raison
        self.suggestions = [] if suggestions is None else suggestions
        self.confirme_paiement_id, self.remise_confirmee_id = confirme_paiement_id, remise_confirmee_id

    @property
    def affecte(self) -> int:
        return sum(p.montant for p in self.parts)


def suggestion(f: FactureEtat, score: float, pourquoi: str) -> dict[str, Any]:
    return {**f.vue(), "score": round(score, 2), "pourquoi": pourquoi}


def allouer(montant: int, f: FactureEtat, *, cesu: bool = False, rang: int | None = None
            ) -> tuple[list[Part], str | None, str]:
    """La politique d'affectation d'un montant à une facture : parts par ligne, code d'anomalie, raison."""
    if f.statut == "annulee":
        return [], "FACTURE_ANNULEE", f"La facture {f.numero} est annulée : rien n'est affecté."
    if f.reste <= 0:
        return [], "FACTURE_DEJA_PAYEE", f"La facture {f.numero} est déjà soldée : rien n'est affecté."
    if cesu:
        eligibles = [lg for lg in f.lignes if lg.eligible_cesu]
        deja = sum(lg.cesu for lg in eligibles)
        reste_eligible = min(f.reste, sum(lg.montant for lg in eligibles) - deja, sum(lg.reste for lg in eligibles))
        if reste_eligible <= 0:
            return [], "CESU_NON_ELIGIBLE", (f"Aucun reste éligible au CESU sur la facture {f.numero} "
                                             "(prestations non éligibles ou enfants de 6 ans et plus).")
        parts = [Part(f.id, r, m) for r, m in repartir(min(montant, reste_eligible), eligibles)]
        if montant > reste_eligible:
            return parts, "CESU_EXCEDENT", (f"Le titre CESU ({eur(montant)} €) dépasse le reste éligible "
                                            f"({eur(reste_eligible)} €) : le CESU ne rend pas la monnaie, "
                                            "l'excédent attend la décision d'un agent.")
        return parts, None, ""
    ordre = f.lignes
    if rang is not None:
        ordre = sorted(f.lignes, key=lambda lg: (lg.rang != rang, lg.rang))
    parts = [Part(f.id, r, m) for r, m in repartir(min(montant, f.reste), ordre)]
    if montant > f.reste:
        return parts, "TROP_PERCU", (f"Le paiement ({eur(montant)} €) dépasse le reste dû sur {f.numero} "
                                     f"({eur(f.reste)} €) : affecté jusqu'au reste, l'excédent attend une décision.")
    return parts, None, ""


def appliquer(d: Decision, montant: int, f: FactureEtat, **options: Any) -> Decision:
    parts, code, raison = allouer(montant, f, **options)
    d.parts.extend(parts)
    if code and d.anomalie is None:
        d.anomalie, d.raison = code, raison
        if code in ("FACTURE_DEJA_PAYEE", "FACTURE_ANNULEE"):
            d.suggestions.append(suggestion(f, 0.3, "facture désignée par le paiement, mais " +
                                            ("déjà soldée" if code == "FACTURE_DEJA_PAYEE" else "annulée")))
    return d


# Une facture à suggérer : (score, pourquoi, facture).
Proposition = tuple[float, str, FactureEtat]


def _rang(c: Proposition) -> tuple[float, str]:
    return -c[0], c[2].numero


def inconnue(regle: str, preuve: dict[str, Any], raison: str, candidates: list[Proposition]) -> Decision:
    """La référence ne mène à aucune facture : les cinq meilleures candidates (score, puis numéro) suggérées ;
    les autres ne sont pas mises en forme."""
    return Decision(regle, preuve, anomalie="REFERENCE_INCONNUE", raison=raison,
                    suggestions=[suggestion(f, score, pourquoi)
                                 for score, pourquoi, f in sorted(candidates, key=_rang)[:5]])


# --- Par canal -------------------------------------------------------------------------------------

def decider_buraliste(p: PaiementVue, f: FactureEtat | None, proches: list[FactureEtat]) -> Decision:
    # Une affectation prouve par le numéro de dette lu ; le datamatrix entier (130 caractères) reste sur le
    # paiement, et n'est recopié que dans la preuve d'une anomalie, où l'agent doit le relire.
    lu = {"numero_dette": p.details.get("numero_dette"), "mode": p.details.get("mode"),
          "point_de_vente": p.details.get("point_de_vente")}
    preuve = {"datamatrix": p.details.get("datamatrix"), **lu}
    if not p.details.get("datamatrix_valide", False):
        sugg = []
        if f is not None:
            sugg.append(suggestion(f, 0.7, "numéro de dette lisible dans le datamatrix malgré l'erreur"))
        sugg += [suggestion(x, 0.4, "reste égal au montant payé") for x in proches if f is None or x.id != f.id]
        return Decision("datamatrix", preuve, anomalie="DATAMATRIX_INVALIDE",
                        raison=f"Datamatrix invalide : {p.details.get('datamatrix_erreurs') or 'illisible'}.",
                        suggestions=sugg[:5])
    if p.details.get("mode") == "ESPECES" and p.montant > LIMITE_ESPECES_CENTIMES:
        return Decision("limite_especes", preuve, anomalie="LIMITE_ESPECES",
                        raison=f"Paiement en espèces de {eur(p.montant)} € au-delà de la limite de "
                               f"{eur(LIMITE_ESPECES_CENTIMES)} € : jamais affecté, à examiner.",
                        suggestions=[suggestion(f, 0.5, "facture du datamatrix")] if f else [])
    if f is None:
        return inconnue("datamatrix_numero_dette", preuve,
                        f"Aucune facture ne porte le numéro de dette {p.reference_facture}.",
                        [(0.4, "reste égal au montant payé", x) for x in proches])
    return appliquer(Decision("datamatrix_numero_dette", lu), p.montant, f)


def decider_cesu(p: PaiementVue, f: FactureEtat | None, proches: list[FactureEtat]) -> Decision:
    millesime = int(p.details.get("millesime") or 0)
    recu = date.fromisoformat(str(p.details.get("recu_le"))) if p.details.get("recu_le") else p.recu_le.date()
    preuve = {"titre": p.reference, "millesime": millesime, "recu_le": recu.isoformat(),
              "emetteur": p.details.get("emetteur"), "facture": p.reference_facture, "remise": p.remise}
    if est_perime(millesime, recu):
        return Decision("cesu_validite", preuve, anomalie="CESU_PERIME",
                        raison=f"Titre CESU de millésime {millesime} reçu le {recu.isoformat()}, après sa limite "
                               f"de validité ({date_limite_validite(millesime).isoformat()}) : rien n'est affecté.")
    if f is None:
        return inconnue("cesu_numero_facture", preuve, f"La facture {p.reference_facture} est inconnue.",
                        [(0.4, "reste éligible égal à la valeur du titre", x) for x in proches])
    return appliquer(Decision("cesu_numero_facture", preuve), p.montant, f, cesu=True)


def decider_cheque(p: PaiementVue, f: FactureEtat | None, famille: list[FactureEtat],
                   proches: list[FactureEtat]) -> Decision:
    tireur = str(p.details.get("tireur") or "")
    preuve = {"remise": p.remise, "tireur": tireur, "facture": p.reference_facture, "banque": p.details.get("banque")}
    if p.reference_facture:
        if f is None:
            de_la_famille = {x.id for x in famille}  # une facture n'est suggérée qu'une fois, à son meilleur score
            return inconnue("cheque_numero_facture", preuve, f"La facture {p.reference_facture} est inconnue.",
                            [(0.6, "famille du tireur, reste égal au montant", x) for x in famille]
                            + [(0.3, "reste égal au montant", x) for x in proches
                               if x.id not in de_la_famille])
        return appliquer(Decision("cheque_numero_facture", preuve), p.montant, f)
    # Sans facture : la famille du tireur et une facture ouverte d'exactement ce montant.
    if len(famille) == 1:
        return appliquer(Decision("cheque_tireur_montant",
                                  {**preuve, "pourquoi": "seule facture ouverte de ce montant dans la famille "
                                                         "du tireur"}), p.montant, famille[0])
    if len(famille) > 1:
        return Decision("cheque_tireur_montant", preuve, anomalie="AMBIGU",
                        raison=f"Plusieurs factures de la famille du tireur ({tireur}) ont exactement ce reste : "
                               "le moteur ne choisit pas.",
                        suggestions=[suggestion(x, 0.5, "famille du tireur, reste égal au montant")
                                     for x in famille][:5])
    return inconnue("cheque_tireur_montant", preuve,
                    f"Chèque sans numéro de facture : aucune facture ouverte de {eur(p.montant)} € dans une famille "
                    f"au nom du tireur ({tireur}).",
                    [(0.3, "reste égal au montant, autre nom", x) for x in proches])


def decider_virement(p: PaiementVue, trouvees: list[FactureEtat], proches: list[FactureEtat]) -> Decision:
    preuve = {"texte": p.details.get("texte"), "compte": p.details.get("compte")}
    if len(trouvees) == 1:
        f = trouvees[0]
        return appliquer(Decision("virement_reference_texte", {**preuve, "facture_citee": f.numero}), p.montant, f)
    if len(trouvees) > 1:
        return Decision("virement_reference_texte", preuve, anomalie="AMBIGU",
                        raison="Le libellé du virement cite plusieurs factures : le moteur ne choisit pas.",
                        suggestions=[suggestion(x, 0.5, "citée dans le libellé") for x in trouvees][:5])
    return inconnue("virement_reference_texte", preuve,
                    "Aucun numéro de facture ni référence PayFiP connus dans le libellé du virement.",
                    [(0.4, "reste égal au montant du virement", x) for x in proches])


def decider_payfip(p: PaiementVue, panier: list[tuple[FactureEtat, int]], f: FactureEtat | None) -> Decision:
    preuve = {"id_op": p.reference, "refdet": p.reference_facture, "numauto": p.details.get("numauto")}
    if panier:
        d = Decision("payfip_panier", {**preuve, "panier": [{"facture": x.numero, "montant": eur(m)}
                                                            for x, m in panier]})
        for facture, montant in panier:
            appliquer(d, montant, facture)
        reste = p.montant - sum(m for _, m in panier)
        if reste > 0 and d.anomalie is None:
            d.anomalie, d.raison = "TROP_PERCU", (f"PayFiP a encaissé {eur(reste)} € de plus que le panier : "
                                                  "l'excédent attend une décision.")
        return d
    if f is None:
        return inconnue("payfip_refdet", preuve, f"Aucune facture ni panier pour la référence {p.reference_facture}.",
                        [])
    return appliquer(Decision("payfip_refdet", preuve), p.montant, f)


@dataclass(frozen=True)
class RemiseVue:
    id: int
    identifiant: str
    canal: str
    montant: int
    nombre: int
    statut: str
    verse_crcesu: int | None  # montant versé annoncé par le CRCESU (titres - frais), s'il est connu


def decider_confirmation_dft(p: PaiementVue, r: RemiseVue | None) -> Decision:
    preuve = {"texte": p.details.get("texte"), "remise": p.remise}
    if r is None:
        return Decision("dft_remise", preuve, anomalie="REFERENCE_INCONNUE",
                        raison=f"Le relevé DFT confirme une remise {p.remise} inconnue.")
    attendu = r.verse_crcesu if r.canal == "cesu" and r.verse_crcesu is not None else r.montant
    preuve.update({"remise_montant": eur(r.montant), "attendu": eur(attendu), "credit": eur(p.montant)})
    if p.montant != attendu:
        return Decision("dft_remise", preuve, anomalie="REMISE_ECART",
                        raison=f"Crédit DFT de {eur(p.montant)} € pour la remise {r.identifiant} qui totalise "
                               f"{eur(attendu)} € ({r.nombre} titre(s) ou chèque(s)).")
    return Decision("dft_remise", preuve, remise_confirmee_id=r.id)


def decider_crcesu(p: PaiementVue, r: RemiseVue | None) -> Decision:
    nombre = int(p.details.get("nombre_titres") or 0)
    montant_titres = int(p.details.get("montant_titres") or 0)
    preuve = {"remise": p.remise, "nombre_titres": nombre, "montant_titres": eur(montant_titres),
              "frais": eur(int(p.details.get("frais") or 0)), "verse": eur(p.montant)}
    if r is None:
        return Decision("crcesu_remise", preuve, anomalie="REFERENCE_INCONNUE",
                        raison=f"Le CRCESU rembourse une remise {p.remise} inconnue.")
    if (nombre, montant_titres) != (r.nombre, r.montant):
        return Decision("crcesu_remise", preuve, anomalie="REMISE_ECART",
                        raison=f"Le CRCESU annonce {nombre} titre(s) pour {eur(montant_titres)} € ; la remise "
                               f"{r.identifiant} en compte {r.nombre} pour {eur(r.montant)} €.")
    return Decision("crcesu_remise", preuve)


def decider_pes_retour(p: PaiementVue, f: FactureEtat | None, a_confirmer: int | None,
                       rang: int | None) -> Decision:
    preuve = {"titre": p.reference_facture, "org_ema": p.details.get("org_ema"), "dte_reco": p.details.get("dte_reco"),
              "id_ligne": p.details.get("id_ligne")}
    if f is None:
        return inconnue("pes_retour_titre", preuve, f"Aucun titre {p.reference_facture} émis par la régie.", [])
    if a_confirmer is not None:
        return Decision("pes_retour_confirmation", {**preuve, "paiement_confirme": a_confirmer},
                        confirme_paiement_id=a_confirmer)
    return appliquer(Decision("pes_retour_titre", preuve), p.montant, f, rang=rang)
