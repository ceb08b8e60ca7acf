"""Import des PES_ACQUIT : `regie acquits importer FICHIER` (specs/pes.md).

Un acquit nomme le PES_Aller acquitté puis dit, bordereau par bordereau, accepté ou rejeté.
Accepté : ses titres passent `accepte`. Rejeté : ses titres passent `rejete` avec les codes et
libellés d'Hélios, chaque facture quitte l'état `titree` (le compte famille est contre-passé :
le dû revient à la régie) et une anomalie TITRE_REJETE l'attend dans la file de revue ; tant
qu'elle n'est pas résolue, la facture n'est pas réémise ; résolue, la nuit suivante la met
dans un nouveau bordereau. Un rejet technique du flux (domaine 0 à 3) rejette tous les
bordereaux du fichier. Idempotent : même contenu, « déjà importé » ; un bordereau déjà
acquitté ne change plus.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import structlog
from sqlalchemy import Connection, insert, select, update

from exports.acquits import DOMAINE_RECETTE, Acquit, ElementAcquit, ErreurAcquit, lire_acquit
from exports.titres import CODE_REJETE, NATURE_PES
from rapprochement.moteur import verrouiller
from regie.application import Application
from regie.domaine import statut_facture
from regie.erreurs import ErreurLigne, FichierRefuse
from regie.montants import centimes_en_euros
from regie.registre.modeles import Anomalie, Bordereau, EtatFacture, Facture, FichierExporte, MouvementCompte, Titre
from regie.registre.types import maintenant
from regie.services.fichiers import (
    RapportImport,
    importer_une_fois,
)

log = structlog.get_logger()

CANAL = "acquit"
STATUTS_EN_ATTENTE = ("emis", "transmis")  # un bordereau acquitté ne change plus


@dataclass
class RapportAcquit(RapportImport):
    """Le rapport d'import, plus les motifs de rejet d'Hélios à montrer à l'agent."""

    rejets: list[str] = field(default_factory=list)

    def message(self) -> str:
        return "\n".join([super().message(), *self.rejets])


def _texte_erreurs(erreurs: Sequence[dict[str, Any]]) -> str:
    return " ; ".join(" ".join(x for x in (e.get("code"), e.get("libelle")) if x) or "erreur sans libellé"
                      for e in erreurs)


def _en_dicts(erreurs: Sequence[ErreurAcquit], **contexte: Any) -> list[dict[str, Any]]:
    return [{"code": e.code, "libelle": e.libelle, **contexte} for e in erreurs]


def _erreurs_element(element: ElementAcquit) -> tuple[list[dict[str, Any]], dict[int, list[dict[str, Any]]]]:
    """Erreurs du bordereau, puis celles de chaque pièce (et de ses lignes) par IdPce."""
    par_piece: dict[int, list[dict[str, Any]]] = {}
    for p in element.pieces_en_erreur:
        liste = par_piece.setdefault(p.numero_piece, [])
        liste.extend(_en_dicts(p.erreurs, piece=p.numero_piece))
        for lg in p.lignes:
            liste.extend(_en_dicts(lg.erreurs, piece=p.numero_piece, ligne=lg.numero_ligne))
    return _en_dicts(element.erreurs), par_piece


class _Application:
    """Les décisions d'un acquit appliquées dans la transaction de l'import."""

    def __init__(self, conn: Connection, acquit: Acquit, fichier_recu: str, quand: datetime) -> None:
        self.conn = conn
        self.acquit = acquit
        self.fichier_recu = fichier_recu
        self.quand = quand
        self.comptes = {"bordereaux acceptes": 0, "bordereaux rejetes": 0, "titres acceptes": 0,
                        "titres rejetes": 0, "deja acquittes": 0}
        self.rejets: list[str] = []

    def accepter(self, b: Any) -> None:
        c = self.conn
        c.execute(update(Bordereau).where(Bordereau.id == b.id).values(statut="accepte"))
        n = c.execute(update(Titre).where(Titre.bordereau_id == b.id, Titre.statut.in_(STATUTS_EN_ATTENTE))
                      .values(statut="accepte")).rowcount
        self.comptes["bordereaux acceptes"] += 1
        self.comptes["titres acceptes"] += n
        log.info("bordereau_accepte", exercice=b.exercice, bordereau=b.numero, titres=n, acquit=self.fichier_recu)

    def rejeter(self, b: Any, erreurs: list[dict[str, Any]], par_piece: dict[int, list[dict[str, Any]]]) -> None:
        c = self.conn
        c.execute(update(Bordereau).where(Bordereau.id == b.id).values(statut="rejete", erreurs=erreurs))
        texte_bordereau = _texte_erreurs(erreurs)
        self.rejets.append(f"bordereau {b.exercice}/{b.numero} rejeté : {texte_bordereau or 'sans motif donné'}")
        titres = c.execute(select(Titre.id, Titre.piece, Titre.facture_id, Facture.numero, Facture.dossier_id,
                                  EtatFacture.montant, EtatFacture.paye, EtatFacture.avoirs)
                           .join(Facture, Facture.id == Titre.facture_id)
                           .join(EtatFacture, EtatFacture.facture_id == Titre.facture_id)
                           .where(Titre.bordereau_id == b.id, Titre.statut.in_(STATUTS_EN_ATTENTE))
                           .order_by(Titre.piece)).all()
        for t in titres:
            propres = par_piece.get(t.piece, [])
            toutes = erreurs + propres
            c.execute(update(Titre).where(Titre.id == t.id).values(statut="rejete", erreurs=toutes))
            # Ce qui reste dû au Trésor sur ce titre (les paiements reçus depuis l'ont déjà réduit)
            # revient à la régie : la facture redevient émise ou partiellement payée.
            reste = t.montant - t.paye - t.avoirs
            c.execute(update(EtatFacture).where(EtatFacture.facture_id == t.facture_id).values(
                statut=statut_facture(t.montant, t.paye, t.avoirs, False)))
            reference = f"{b.exercice}/{b.numero}/{t.piece}"
            if reste > 0:
                c.execute(insert(MouvementCompte), {
                    "dossier_id": t.dossier_id, "quand": self.quand, "nature": "titre_rejete",
                    "libelle": f"Titre {reference} rejeté par le comptable : la facture {t.numero} est de nouveau "
                               "due à la régie", "montant": reste, "delta_du": reste, "delta_credit": 0,
                    "delta_tresor": -reste, "facture_id": t.facture_id, "titre_id": t.id, "cree_le": self.quand})
            texte = _texte_erreurs(toutes) or "sans motif donné"
            c.execute(insert(Anomalie), {
                "facture_id": t.facture_id, "code": CODE_REJETE, "statut": "ouverte",
                "raison": f"Titre {reference} de la facture {t.numero} rejeté par Hélios (acquit {self.fichier_recu}) "
                          f": {texte}. Corriger puis résoudre l'anomalie : la facture repartira dans un nouveau "
                          f"bordereau ({centimes_en_euros(reste)} € à titrer).",
                "preuve": {"exercice": b.exercice, "bordereau": b.numero, "piece": t.piece,
                           "acquit": self.fichier_recu, "fichier": self.acquit.nom_fic_acquitte, "erreurs": toutes},
                "suggestions": [], "cree_le": self.quand})
        self.comptes["bordereaux rejetes"] += 1
        self.comptes["titres rejetes"] += len(titres)
        log.warning("bordereau_rejete", exercice=b.exercice, bordereau=b.numero, titres=len(titres),
                    erreurs=texte_bordereau, acquit=self.fichier_recu)


def _bordereaux_du_fichier(conn: Connection, nom: str) -> dict[tuple[int, int], Any] | None:
    fichier_id = conn.execute(select(FichierExporte.id).where(FichierExporte.nom == nom,
                                                              FichierExporte.nature == NATURE_PES)).scalar()
    if fichier_id is None:
        return None
    return {(b.exercice, b.numero): b for b in conn.execute(
        select(Bordereau.id, Bordereau.exercice, Bordereau.numero, Bordereau.statut)
        .where(Bordereau.fichier_id == fichier_id))}


def _appliquer(conn: Connection, acquit: Acquit, nom: str) -> _Application:
    """Vérifie que l'acquit vise nos bordereaux (sinon FichierRefuse, rien d'appliqué), puis applique."""
    erreurs: list[ErreurLigne] = []
    bordereaux = _bordereaux_du_fichier(conn, acquit.nom_fic_acquitte)
    if bordereaux is None:
        raise FichierRefuse(nom, [ErreurLigne(nom, None, "NomFic", f"le fichier acquitté « {acquit.nom_fic_acquitte} »"
                                              " n'a pas été émis par cette régie", "/PES_ACQUIT/Enveloppe/Parametres")])
    decisions: list[tuple[Any, ElementAcquit]] = []
    technique: list[ElementAcquit] = []
    for element in acquit.elements:
        if element.domaine != DOMAINE_RECETTE:
            if not element.accepte and element.numero_bordereau is None:
                technique.append(element)
            continue
        cle = (element.exercice or 0, element.numero_bordereau or 0)
        b = bordereaux.get(cle)
        if b is None:
            erreurs.append(ErreurLigne(nom, None, "NumBord", f"le bordereau {cle[0]}/{cle[1]} n'est pas dans le "
                                                            f"fichier {acquit.nom_fic_acquitte}", "/PES_ACQUIT/ACQUIT"))
            continue
        decisions.append((b, element))
    if erreurs:
        raise FichierRefuse(nom, erreurs)
    app = _Application(conn, acquit, nom, maintenant())
    vus: set[int] = set()
    for b, element in decisions:
        vus.add(b.id)
        if b.statut not in STATUTS_EN_ATTENTE:
            app.comptes["deja acquittes"] += 1
            log.info("bordereau_deja_acquitte", exercice=b.exercice, bordereau=b.numero, statut=b.statut)
            continue
        if element.accepte:
            app.accepter(b)
        else:
            app.rejeter(b, *_erreurs_element(element))
    if technique:
        # Le flux entier est refusé (signature, format...) : chaque bordereau non acquitté avec lui.
        erreurs_flux = [e for element in technique for e in _en_dicts(element.erreurs, domaine=element.domaine)]
        for b in bordereaux.values():
            if b.id not in vus and b.statut in STATUTS_EN_ATTENTE:
                app.rejeter(b, erreurs_flux, {})
    return app


def importer_acquit(app: Application, chemin: Path, origine: str | None = None) -> RapportImport:
    """`regie acquits importer FICHIER` : applique un PES_ACQUIT, tout ou rien ; FichierRefuse s'il est illisible
    ou vise un fichier ou un bordereau inconnu (gardé en quarantaine). Les rejets sont dans `rapport.rejets`."""
    acquits: list[Any] = []

    def faire(conn: Connection, _fichier_id: int, nom: str) -> _Application:
        acquit = lire_acquit(chemin.read_bytes(), nom)
        acquits.append(acquit)
        verrouiller(conn)  # une facture rendue à la régie ne doit pas croiser un rapprochement
        return _appliquer(conn, acquit, nom)

    rapport, appliquee = importer_une_fois(app, chemin, CANAL, origine, faire, RapportAcquit(chemin.name, CANAL))
    if appliquee is None:
        return rapport
    acquit = acquits[0]
    nom = rapport.fichier
    rapport.comptes = {k: v for k, v in appliquee.comptes.items() if v}
    rapport.importes = appliquee.comptes["bordereaux acceptes"] + appliquee.comptes["bordereaux rejetes"]
    rapport.ignores = appliquee.comptes["deja acquittes"]
    rapport.rejets = appliquee.rejets
    log.info("acquit_importe", fichier=nom, acquitte=acquit.nom_fic_acquitte, **appliquee.comptes)
    return rapport
