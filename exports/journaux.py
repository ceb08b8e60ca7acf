"""Journaux et états pour le régisseur et le comptable : `regie journaux [--date | --mois]`.

- Journal des encaissements : chaque paiement reçu sur la période (les confirmations, CFONB,
  CRCESU ou retours qui confirment un paiement connu, n'en sont pas : aucun argent nouveau),
  ventilé par régie d'après ses affectations (la part non affectée sans régie), avec les
  totaux par régie et canal.
- État de rapprochement : par canal, ce qui a été reçu, affecté, gardé en crédit, remboursé,
  en anomalie, en attente, annulé, et la part confirmée (remise confirmée par le relevé DFT,
  ou paiement confirmé par une confirmation). Par construction
  reçu = affecté + crédit + remboursé + anomalie + attente + annulé, au centime.
- Remboursements à faire : les excédents en attente de décision (TROP_PERCU, facture déjà
  payée ou annulée) et les crédits des familles.

En CSV (`;`, UTF-8, montants « 42.00 ») et en une page HTML imprimable (Jinja2).
"""

from __future__ import annotations

import csv
import io
import os
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import jinja2
from sqlalchemy import Connection, and_, exists, func, or_, select
from sqlalchemy.orm import aliased

from regie.application import Application
from regie.montants import centimes_en_euros
from regie.registre.modeles import Affectation, Dossier, Facture, MouvementCompte, Paiement, Remise

PARIS = ZoneInfo("Europe/Paris")
DOSSIER_JOURNAUX = "journaux"
CANAUX_CONFIRMATION = ("cfonb", "crcesu")
ANOMALIES_A_REMBOURSER = ("TROP_PERCU", "FACTURE_DEJA_PAYEE", "FACTURE_ANNULEE")
SANS_REGIE = ""  # la part d'un paiement qui n'est affectée à aucune facture


@dataclass(frozen=True)
class Periode:
    debut: date
    fin: date  # exclue
    libelle: str  # « 2026-11-25 » ou « 2026-11 »

    @classmethod
    def jour(cls, jour: date) -> Periode:
        return cls(jour, jour + timedelta(days=1), jour.isoformat())

    @classmethod
    def mois(cls, annee: int, mois: int) -> Periode:
        debut = date(annee, mois, 1)
        fin = date(annee + (mois == 12), mois % 12 + 1, 1)
        return cls(debut, fin, f"{annee:04d}-{mois:02d}")

    def bornes(self) -> tuple[datetime, datetime]:
        """Les instants (jours civils à Paris) qui bornent la période."""
        return datetime.combine(self.debut, time(0), PARIS), datetime.combine(self.fin, time(0), PARIS)


@dataclass
class LigneJournal:
    type: str  # detail | total
    regie: str
    canal: str
    reference: str
    recu_le: str
    montant: int
    statut: str
    factures: str


@dataclass
class LigneEtat:
    canal: str
    nombre: int = 0
    recu: int = 0
    affecte: int = 0
    en_credit: int = 0
    rembourse: int = 0
    en_anomalie: int = 0
    en_attente: int = 0
    annule: int = 0
    confirme: int = 0

    @property
    def non_confirme(self) -> int:
        return self.recu - self.confirme

    def ajouter(self, autre: LigneEtat) -> None:
        for f in fields(self):
            if f.name != "canal":
                setattr(self, f.name, getattr(self, f.name) + getattr(autre, f.name))


@dataclass
class LigneRemboursement:
    nature: str  # excedent_paiement | credit_famille
    dossier: str
    canal: str
    reference: str
    recu_le: str
    montant: int
    motif: str


@dataclass
class Rapports:
    periode: Periode
    journal: list[LigneJournal] = field(default_factory=list)
    etat: list[LigneEtat] = field(default_factory=list)  # par canal, puis la ligne TOTAL
    remboursements: list[LigneRemboursement] = field(default_factory=list)


def _encaissements(periode: Periode) -> Any:
    debut, fin = periode.bornes()
    return and_(Paiement.recu_le >= debut, Paiement.recu_le < fin, Paiement.statut != "confirme",
                Paiement.canal.not_in(CANAUX_CONFIRMATION))


def _local(instant: datetime) -> str:
    return instant.astimezone(PARIS).date().isoformat()


def journal_encaissements(conn: Connection, periode: Periode) -> list[LigneJournal]:
    """Une ligne par paiement et par régie où il est affecté, puis les totaux par régie et canal."""
    paiements = conn.execute(select(Paiement.id, Paiement.canal, Paiement.reference, Paiement.recu_le,
                                    Paiement.montant, Paiement.statut)
                             .where(_encaissements(periode))
                             .order_by(Paiement.recu_le, Paiement.canal, Paiement.reference)).all()
    parts: dict[int, dict[str, tuple[int, list[str]]]] = defaultdict(dict)
    for pid, regie, numero, montant in conn.execute(
            select(Affectation.paiement_id, Facture.regie_code, Facture.numero, func.sum(Affectation.montant))
            .join(Facture, Facture.id == Affectation.facture_id)
            .join(Paiement, Paiement.id == Affectation.paiement_id)
            .where(_encaissements(periode))
            .group_by(Affectation.paiement_id, Facture.regie_code, Facture.numero)
            .order_by(Facture.numero)):
        if montant and pid is not None:
            avant, numeros = parts[pid].get(regie, (0, []))
            parts[pid][regie] = (avant + int(montant), [*numeros, numero])
    lignes: list[LigneJournal] = []
    totaux: dict[tuple[str, str], int] = defaultdict(int)
    for p in paiements:
        reste = p.montant
        for regie, (montant, numeros) in sorted(parts.get(p.id, {}).items()):
            lignes.append(LigneJournal("detail", regie, p.canal, p.reference, _local(p.recu_le), montant, p.statut,
                                       " ".join(numeros)))
            totaux[(regie, p.canal)] += montant
            reste -= montant
        if reste:
            lignes.append(LigneJournal("detail", SANS_REGIE, p.canal, p.reference, _local(p.recu_le), reste,
                                       p.statut, ""))
            totaux[(SANS_REGIE, p.canal)] += reste
    for (regie, canal), montant in sorted(totaux.items()):
        lignes.append(LigneJournal("total", regie, canal, "", "", montant, "", ""))
    if totaux:
        lignes.append(LigneJournal("total", "TOTAL", "", "", "", sum(totaux.values()), "", ""))
    return lignes


def etat_rapprochement(conn: Connection, periode: Periode) -> list[LigneEtat]:
    """Par canal puis TOTAL : reçu = affecté + crédit + remboursé + anomalie + attente + annulé."""
    confirmation = aliased(Paiement)
    confirme = or_(
        exists().where(confirmation.confirme_paiement_id == Paiement.id),
        exists().where(Remise.id == Paiement.remise_id, Remise.statut == "confirmee"))
    par_canal: dict[str, LigneEtat] = {}
    for canal, montant, affecte, en_credit, rembourse, statut, est_confirme in conn.execute(
            select(Paiement.canal, Paiement.montant, Paiement.affecte, Paiement.en_credit, Paiement.rembourse,
                   Paiement.statut, confirme).where(_encaissements(periode))):
        ligne = par_canal.setdefault(canal, LigneEtat(canal))
        ligne.nombre += 1
        ligne.recu += montant
        ligne.affecte += affecte
        ligne.en_credit += en_credit
        ligne.rembourse += rembourse
        libre = montant - affecte - en_credit - rembourse
        if statut == "en_anomalie":
            ligne.en_anomalie += libre
        elif statut == "annule":
            ligne.annule += libre
        else:
            ligne.en_attente += libre
        if est_confirme:
            ligne.confirme += montant
    lignes = [par_canal[c] for c in sorted(par_canal)]
    total = LigneEtat("TOTAL")
    for ligne in lignes:
        total.ajouter(ligne)
    return [*lignes, total]


def remboursements(conn: Connection) -> list[LigneRemboursement]:
    """Ce qu'il reste à rendre, à ce jour : excédents en attente de décision, crédits des familles."""
    lignes = []
    dossier_facture = (select(Facture.dossier_id).join(Affectation, Affectation.facture_id == Facture.id)
                       .where(Affectation.paiement_id == Paiement.id).limit(1).scalar_subquery())
    for canal, reference, recu_le, libre, anomalie, dossier in conn.execute(
            select(Paiement.canal, Paiement.reference, Paiement.recu_le,
                   Paiement.montant - Paiement.affecte - Paiement.en_credit - Paiement.rembourse,
                   Paiement.anomalie, Dossier.numero)
            .outerjoin(Dossier, Dossier.id == func.coalesce(Paiement.dossier_id, dossier_facture))
            .where(Paiement.statut == "en_anomalie", Paiement.anomalie.in_(ANOMALIES_A_REMBOURSER),
                   Paiement.montant - Paiement.affecte - Paiement.en_credit - Paiement.rembourse > 0)
            .order_by(Paiement.recu_le, Paiement.canal, Paiement.reference)):
        lignes.append(LigneRemboursement("excedent_paiement", dossier or "", canal, reference, _local(recu_le),
                                         int(libre), anomalie or ""))
    for dossier, credit in conn.execute(
            select(Dossier.numero, func.sum(MouvementCompte.delta_credit))
            .join(MouvementCompte, MouvementCompte.dossier_id == Dossier.id)
            .group_by(Dossier.id, Dossier.numero).having(func.sum(MouvementCompte.delta_credit) > 0)
            .order_by(Dossier.numero)):
        lignes.append(LigneRemboursement("credit_famille", dossier, "", "", "", int(credit), "CREDIT_FAMILLE"))
    return lignes


def calculer(app: Application, periode: Periode) -> Rapports:
    with app.moteur.connect() as conn:
        return Rapports(periode, journal_encaissements(conn, periode), etat_rapprochement(conn, periode),
                        remboursements(conn))


# --- Sorties ---------------------------------------------------------------------------------------

_MONTANTS = {"montant", "recu", "affecte", "en_credit", "rembourse", "en_anomalie", "en_attente", "annule",
             "confirme", "non_confirme"}


def _valeur(nom: str, valeur: Any) -> str:
    return centimes_en_euros(valeur) if nom in _MONTANTS else str(valeur)


def _csv(colonnes: Sequence[str], lignes: Sequence[Any]) -> str:
    tampon = io.StringIO()
    ecrivain = csv.writer(tampon, delimiter=";", lineterminator="\n")
    ecrivain.writerow(colonnes)
    for ligne in lignes:
        ecrivain.writerow([_valeur(c, getattr(ligne, c)) for c in colonnes])
    return tampon.getvalue()


COLONNES_JOURNAL = ("type", "regie", "canal", "reference", "recu_le", "montant", "statut", "factures")
COLONNES_ETAT = ("canal", "nombre", "recu", "affecte", "en_credit", "rembourse", "en_anomalie", "en_attente",
                 "annule", "confirme", "non_confirme")
COLONNES_REMBOURSEMENTS = ("nature", "dossier", "canal", "reference", "recu_le", "montant", "motif")

_GABARIT = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined).from_string("""\
<!DOCTYPE html>
<html lang="fr"><head><meta charset="utf-8">
<title>{{ collectivite }} : journaux du {{ periode }}</title>
<style>
body { font-family: sans-serif; font-size: 11pt; margin: 1.5cm; }
table { border-collapse: collapse; width: 100%; margin-bottom: 1.5em; page-break-inside: auto; }
th, td { border: 1px solid #999; padding: 2px 6px; }
td.m { text-align: right; font-variant-numeric: tabular-nums; }
tr.total td { font-weight: bold; background: #eee; }
@media print { h2 { page-break-before: always; } h2:first-of-type { page-break-before: avoid; } }
</style></head><body>
<h1>{{ collectivite }}</h1>
<p>Période : {{ periode }} — édité le {{ edite_le }}</p>
{% for titre, colonnes, lignes in sections %}
<h2>{{ titre }}</h2>
{% if lignes %}
<table><thead><tr>{% for c in colonnes %}<th>{{ c }}</th>{% endfor %}</tr></thead><tbody>
{% for ligne in lignes %}<tr{% if ligne.total %} class="total"{% endif %}>
{% for v, montant in ligne.cellules %}<td{% if montant %} class="m"{% endif %}>{{ v }}</td>{% endfor %}</tr>
{% endfor %}</tbody></table>
{% else %}<p>Rien sur la période.</p>{% endif %}
{% endfor %}
</body></html>
""")


def _section(titre: str, colonnes: Sequence[str], lignes: Sequence[Any]) -> tuple[str, Sequence[str], list[Any]]:
    rangs = []
    for ligne in lignes:
        total = getattr(ligne, "type", "") == "total" or getattr(ligne, "canal", "") == "TOTAL"
        rangs.append({"total": total, "cellules": [(_valeur(c, getattr(ligne, c)), c in _MONTANTS) for c in colonnes]})
    return titre, colonnes, rangs


def html(rapports: Rapports, collectivite: str) -> str:
    p = rapports.periode.libelle
    edite_le = datetime.now(PARIS).strftime("%Y-%m-%d %H:%M")
    return _GABARIT.render(collectivite=collectivite, periode=p, edite_le=edite_le,
                           sections=[
                               _section(f"Journal des encaissements {p}", COLONNES_JOURNAL, rapports.journal),
                               _section(f"État de rapprochement {p}", COLONNES_ETAT, rapports.etat),
                               _section("Remboursements à faire", COLONNES_REMBOURSEMENTS, rapports.remboursements),
                           ])


def _ecrire(chemin: Path, texte: str) -> Path:
    temporaire = chemin.with_name(f".{chemin.name}.partiel")
    temporaire.write_text(texte, encoding="utf-8")
    os.replace(temporaire, chemin)
    return chemin


def ecrire_journaux(app: Application, periode: Periode, dossier: Path | None = None) -> list[Path]:
    """Écrit les trois CSV et la page HTML de la période ; rend leurs chemins."""
    rapports = calculer(app, periode)
    sortie = dossier or app.dossier_donnees(DOSSIER_JOURNAUX)
    sortie.mkdir(parents=True, exist_ok=True)
    p = periode.libelle
    return [
        _ecrire(sortie / f"journal_encaissements_{p}.csv", _csv(COLONNES_JOURNAL, rapports.journal)),
        _ecrire(sortie / f"etat_rapprochement_{p}.csv", _csv(COLONNES_ETAT, rapports.etat)),
        _ecrire(sortie / f"remboursements_{p}.csv", _csv(COLONNES_REMBOURSEMENTS, rapports.remboursements)),
        _ecrire(sortie / f"journaux_{p}.html", html(rapports, app.config.collectivite.nom)),
    ]
