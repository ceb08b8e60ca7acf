"""`regie etat --json` : l'état du registre, au contrat de specs/cli.md, écrit en flux."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any, TextIO

from sqlalchemy import ColumnElement, Connection, func, select
from sqlalchemy.orm import QueryableAttribute, aliased

from regie.application import Application
from regie.montants import centimes_en_euros as eur
from regie.registre.modeles import (
    Affectation,
    Bordereau,
    Dossier,
    EtatFacture,
    Facture,
    Paiement,
    Titre,
)
from regie.registre.moteur import connexion_lecture
from regie.services.compte import soldes_par_dossier


def _binaire(conn: Connection, colonne: QueryableAttribute[str]) -> ColumnElement[str]:
    """Tri par points de code, le même sur SQLite et PostgreSQL (la collation par défaut de PG diffère)."""
    expression: ColumnElement[str] = colonne.expression
    return expression.collate("C") if conn.dialect.name == "postgresql" else expression


def _factures(conn: Connection) -> Iterator[dict[str, Any]]:
    dernier = (select(Titre.facture_id, func.max(Titre.id).label("titre_id"))
               .group_by(Titre.facture_id).subquery())
    t = aliased(Titre)
    req = (select(Facture.numero, Facture.regie_code, Dossier.numero, Facture.montant, EtatFacture.paye,
                  EtatFacture.avoirs, EtatFacture.statut, t.exercice, t.bordereau_id, t.piece, t.statut)
           .join(Dossier, Dossier.id == Facture.dossier_id)
           .join(EtatFacture, EtatFacture.facture_id == Facture.id)
           .outerjoin(dernier, dernier.c.facture_id == Facture.id)
           .outerjoin(t, t.id == dernier.c.titre_id)
           .order_by(_binaire(conn, Facture.numero)))
    bordereaux = dict(conn.execute(select(Bordereau.id, Bordereau.numero)).all())
    for (numero, regie, dossier, montant, paye, avoirs, statut,
         exercice, bordereau_id, piece, statut_titre) in conn.execute(req).yield_per(5000):
        titre = None
        if exercice is not None:
            titre = {"exercice": exercice, "bordereau": bordereaux.get(bordereau_id), "piece": piece,
                     "statut": statut_titre}
        yield {"numero": numero, "regie": regie, "dossier": dossier, "montant": eur(montant),
               "paye": eur(paye), "avoirs": eur(avoirs), "reste": eur(montant - paye - avoirs),
               "statut": statut, "titre": titre}


def _paiements(conn: Connection) -> Iterator[dict[str, Any]]:
    affectations = (
        select(Paiement.canal, Paiement.reference, Facture.numero, func.sum(Affectation.montant))
        .join(Paiement, Paiement.id == Affectation.paiement_id)
        .join(Facture, Facture.id == Affectation.facture_id)
        .group_by(Paiement.id, Paiement.canal, Paiement.reference, Facture.numero)
        .having(func.sum(Affectation.montant) != 0)
        .order_by(_binaire(conn, Paiement.canal), _binaire(conn, Paiement.reference),
                  _binaire(conn, Facture.numero)))
    flux_aff = iter(conn.execute(affectations).yield_per(5000))
    suivante = next(flux_aff, None)
    req = (select(Paiement.canal, Paiement.reference, Paiement.montant, Paiement.affecte, Paiement.statut,
                  Paiement.anomalie)
           .order_by(_binaire(conn, Paiement.canal), _binaire(conn, Paiement.reference)))
    for canal, reference, montant, affecte, statut, anomalie in conn.execute(req).yield_per(5000):
        liste = []
        while suivante is not None and (suivante[0], suivante[1]) == (canal, reference):
            liste.append({"facture": suivante[2], "montant": eur(int(suivante[3]))})
            suivante = next(flux_aff, None)
        yield {"canal": canal, "reference": reference, "montant": eur(montant), "affecte": eur(affecte),
               "statut": statut, "anomalie": anomalie, "affectations": liste}


def _familles(conn: Connection) -> Iterator[dict[str, Any]]:
    soldes = soldes_par_dossier()
    req = (select(Dossier.numero, func.coalesce(soldes.c.du, 0), func.coalesce(soldes.c.credit, 0))
           .outerjoin(soldes, soldes.c.dossier_id == Dossier.id)
           .order_by(_binaire(conn, Dossier.numero)))
    for numero, du, credit in conn.execute(req).yield_per(5000):
        yield {"dossier": numero, "du": eur(int(du)), "credit": eur(int(credit))}


def ecrire_etat(app: Application, sortie: TextIO) -> None:
    """Écrit l'objet JSON en flux : un million de factures ne tiennent pas en mémoire deux fois."""
    with connexion_lecture(app.moteur) as conn:
        sortie.write("{")
        for i, (cle, flux) in enumerate((("factures", _factures(conn)), ("paiements", _paiements(conn)),
                                         ("familles", _familles(conn)))):
            sortie.write(("," if i else "") + json.dumps(cle) + ":[")
            for j, objet in enumerate(flux):
                sortie.write(("," if j else "") + json.dumps(objet, ensure_ascii=False))
            sortie.write("]")
        sortie.write("}\n")


def etat(app: Application) -> dict[str, Any]:
    """L'état comme un objet Python (pour les tests et l'API)."""
    import io

    tampon = io.StringIO()
    ecrire_etat(app, tampon)
    resultat: dict[str, Any] = json.loads(tampon.getvalue())
    return resultat
