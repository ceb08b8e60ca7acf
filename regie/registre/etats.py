"""L'état des factures : lecture (facture, état, lignes et ce qui y est affecté) et écriture des parts.

Ce qui est payé sur chaque ligne n'est gardé nulle part ailleurs que dans les affectations : on le
relit ici en sommant leurs parts, et seulement pour les factures qui ont déjà reçu quelque chose.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import ColumnElement, Connection, insert, select, update

from regie.domaine import FactureEtat, LigneEtat, statut_facture
from regie.erreurs import ErreurRegie
from regie.registre.modeles import Affectation, Dossier, EtatFacture, Facture, Paiement, Titre
from regie.registre.types import maintenant

TITRES_ACTIFS = ("emis", "transmis", "accepte")
STATUTS_AVEC_TITRE = ("titree", "payee")  # un titre actif ne se trouve que sur ces factures
_MORCEAU = 900  # paramètres par requête (SQLite en admet 32 766, PostgreSQL 65 535)


class RegistreIncoherent(ErreurRegie):
    """Les parts affectées aux lignes ne font pas le total de la facture : rien n'est écrit."""


def lire_factures(conn: Connection, condition: ColumnElement[bool], *, pour_mise_a_jour: bool = False
                  ) -> list[FactureEtat]:
    """Les factures qui satisfont `condition`, avec leurs lignes et ce qui y est affecté."""
    req = (select(Facture.id, Facture.numero, Facture.dossier_id, Dossier.numero, Facture.regie_code,
                  EtatFacture.statut, Facture.montant, EtatFacture.paye, EtatFacture.avoirs, Facture.echeance,
                  Facture.lignes, Facture.nom)
           .join(EtatFacture, EtatFacture.facture_id == Facture.id)
           .join(Dossier, Dossier.id == Facture.dossier_id).where(condition))
    if pour_mise_a_jour and conn.dialect.name == "postgresql":
        req = req.with_for_update(of=EtatFacture)
    factures = [FactureEtat(fid, numero, dossier_id, dossier, regie, statut, montant, paye, avoirs, echeance, False,
                            [LigneEtat(rang, lg.montant, eligible_cesu=lg.eligible_cesu)
                             for rang, lg in enumerate(lignes, 1)], nom)
                for fid, numero, dossier_id, dossier, regie, statut, montant, paye, avoirs, echeance, lignes, nom
                in conn.execute(req)]
    completer(conn, factures)
    return factures


def completer(conn: Connection, factures: Sequence[FactureEtat]) -> None:
    """Les parts déjà affectées à chaque ligne, et le titre en cours : seulement là où il peut y en avoir."""
    par_id = {f.id: f for f in factures}
    entamees = [f.id for f in factures if f.paye or f.avoirs]
    for i in range(0, len(entamees), _MORCEAU):
        req = (select(Affectation.facture_id, Affectation.paiement_id, Paiement.canal, Affectation.parts)
               .outerjoin(Paiement, Paiement.id == Affectation.paiement_id)
               .where(Affectation.facture_id.in_(entamees[i:i + _MORCEAU])))
        for fid, paiement_id, canal, parts in conn.execute(req):
            lignes = par_id[fid].lignes
            for rang, montant in parts:
                ligne = lignes[rang - 1]
                if paiement_id is None:
                    ligne.avoirs += montant
                else:
                    ligne.paye += montant
                    if canal == "cesu":
                        ligne.cesu += montant
    for fid in entamees:
        f = par_id[fid]
        if sum(lg.paye for lg in f.lignes) != f.paye or sum(lg.avoirs for lg in f.lignes) != f.avoirs:
            raise RegistreIncoherent(f"Facture {f.numero} : les parts affectées aux lignes ne font pas le payé "
                                     f"({f.paye}) ni les avoirs ({f.avoirs}) de la facture.")
    titrables = [f.id for f in factures if f.statut in STATUTS_AVEC_TITRE]
    for i in range(0, len(titrables), _MORCEAU):
        for fid in conn.execute(select(Titre.facture_id).where(
                Titre.facture_id.in_(titrables[i:i + _MORCEAU]), Titre.statut.in_(TITRES_ACTIFS))).scalars():
            par_id[fid].titree = True


def lire_facture(conn: Connection, numero: str, *, pour_mise_a_jour: bool = False) -> FactureEtat | None:
    trouvees = lire_factures(conn, Facture.numero == numero, pour_mise_a_jour=pour_mise_a_jour)
    return trouvees[0] if trouvees else None


def porter(conn: Connection, f: FactureEtat, parts: Iterable[tuple[int, int]], *, paiement_id: int | None,
           avoir_id: int | None, regle: str, preuve: dict[str, Any], auteur: str, cesu: bool = False,
           annule_id: int | None = None) -> int:
    """Écrit des parts (rang, montant signé) sur une facture : une affectation, l'état de la facture.

    Met `f` à jour (lignes, totaux, statut) ; rend le total porté (0 : rien n'est écrit).
    """
    parts = [(rang, montant) for rang, montant in parts if montant]
    total = sum(m for _, m in parts)
    if not parts:
        return 0
    for rang, montant in parts:
        ligne = f.lignes[rang - 1]
        if paiement_id is not None:
            ligne.paye += montant
            if cesu:
                ligne.cesu += montant
        else:
            ligne.avoirs += montant
    conn.execute(insert(Affectation), {
        "paiement_id": paiement_id, "avoir_id": avoir_id, "facture_id": f.id, "montant": total,
        "parts": [[r, m] for r, m in parts], "regle": regle, "preuve": preuve, "auteur": auteur,
        "annule_id": annule_id, "cree_le": maintenant()})
    if paiement_id is not None:
        f.paye += total
    else:
        f.avoirs += total
    f.statut = statut_facture(f.montant, f.paye, f.avoirs, f.titree)
    conn.execute(update(EtatFacture).where(EtatFacture.facture_id == f.id).values(
        paye=f.paye, avoirs=f.avoirs, statut=f.statut))
    return total
