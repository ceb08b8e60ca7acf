"""`regie verifier` : le contrôle de cohérence de tout le registre, en requêtes ensemblistes.

Les tables volumineuses (factures, paiements, affectations, compte famille) n'ont pas de clé
étrangère déclarée : leurs écritures en masse vérifient leurs références dans leur transaction, et
ce contrôle relit tout le registre : références, montants, parts par ligne, statuts et compte
famille. Chaque écart est dit en français, avec de quoi le retrouver ; rien n'est modifié.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import structlog
from sqlalchemy import BigInteger, Connection, func, select, text

from regie.application import Application
from regie.domaine import statut_facture
from regie.montants import centimes_en_euros as eur
from regie.registre.etats import TITRES_ACTIFS
from regie.registre.lignes import lire_lignes
from regie.registre.modeles import Dossier
from regie.services.compte import soldes_par_dossier

log = structlog.get_logger()
_MAX_PAR_CONTROLE = 20  # écarts cités par contrôle (le nombre total est toujours dit)

# (table, colonne, table visée, colonne visée) : les références sans clé étrangère déclarée.
REFERENCES = (
    ("facture", "dossier_id", "dossier", "id"),
    ("facture", "regie_code", "regie", "code"),
    ("etat_facture", "facture_id", "facture", "id"),
    ("facture", "id", "etat_facture", "facture_id"),
    ("paiement", "dossier_id", "dossier", "id"),
    ("paiement", "remise_id", "remise", "id"),
    ("paiement", "confirme_paiement_id", "paiement", "id"),
    ("paiement", "fichier_id", "fichier_recu", "id"),
    ("affectation", "paiement_id", "paiement", "id"),
    ("affectation", "avoir_id", "avoir", "id"),
    ("affectation", "facture_id", "facture", "id"),
    ("affectation", "annule_id", "affectation", "id"),
    ("mouvement_compte", "dossier_id", "dossier", "id"),
    ("mouvement_compte", "facture_id", "facture", "id"),
    ("mouvement_compte", "avoir_id", "avoir", "id"),
    ("mouvement_compte", "paiement_id", "paiement", "id"),
    ("mouvement_compte", "titre_id", "titre", "id"),
)


@dataclass
class Ecart:
    controle: str
    message: str


@dataclass
class BilanVerification:
    controles: int = 0
    ecarts: list[Ecart] = field(default_factory=list)
    par_controle: dict[str, int] = field(default_factory=dict)

    @property
    def coherent(self) -> bool:
        return not self.par_controle

    def noter(self, controle: str, message: str) -> None:
        n = self.par_controle.get(controle, 0) + 1
        self.par_controle[controle] = n
        if n <= _MAX_PAR_CONTROLE:
            self.ecarts.append(Ecart(controle, message))

    def message(self) -> str:
        if self.coherent:
            return f"Registre cohérent : {self.controles} contrôles, aucun écart."
        total = sum(self.par_controle.values())
        return (f"Registre incohérent : {total} écart(s) sur {self.controles} contrôles ("
                + ", ".join(f"{n} {c}" for c, n in sorted(self.par_controle.items())) + ")")


def _lignes(conn: Connection, sql: str, **params: object) -> Iterator[tuple[object, ...]]:
    yield from (tuple(r) for r in conn.execute(text(sql), params))


def verifier(app: Application) -> BilanVerification:
    bilan = BilanVerification()
    with app.moteur.connect() as conn:
        _references(conn, bilan)
        _factures(conn, bilan)
        _paiements(conn, bilan)
        _compte_famille(conn, bilan)
    log.info("registre_verifie", coherent=bilan.coherent, ecarts=bilan.par_controle)
    return bilan


def _references(conn: Connection, bilan: BilanVerification) -> None:
    for table, colonne, cible, cle in REFERENCES:
        bilan.controles += 1
        ident = "facture_id" if table == "etat_facture" else "id"
        for rangee, valeur in _lignes(conn, f"SELECT t.{ident}, t.{colonne} FROM {table} t "
                                            f"WHERE t.{colonne} IS NOT NULL AND NOT EXISTS "
                                            f"(SELECT 1 FROM {cible} c WHERE c.{cle} = t.{colonne}) ORDER BY 1"):
            bilan.noter("reference", f"{table} {rangee} : {colonne} = {valeur} ne désigne aucune rangée de {cible}")


def _factures(conn: Connection, bilan: BilanVerification) -> None:
    """Lignes = montant ; état = somme des affectations ; parts bornées par ligne ; statut d'après les montants."""
    bilan.controles += 4
    titres = {fid for (fid,) in _lignes(conn, "SELECT DISTINCT facture_id FROM titre WHERE statut IN "
                                              f"({', '.join(repr(s) for s in TITRES_ACTIFS)})")}
    parts_lues = _lignes(conn, "SELECT a.facture_id, a.paiement_id IS NULL, a.montant, a.parts FROM affectation a "
                               "ORDER BY a.facture_id, a.id")
    suivante = next(parts_lues, None)
    for fid, numero, montant, lignes_json, montant_etat, paye, avoirs, statut in _lignes(
            conn, "SELECT f.id, f.numero, f.montant, f.lignes, e.montant, e.paye, e.avoirs, e.statut FROM facture f "
                  "JOIN etat_facture e ON e.facture_id = f.id ORDER BY f.id"):
        lignes = lire_lignes(str(lignes_json))
        if sum(lg.montant for lg in lignes) != montant or montant_etat != montant:
            bilan.noter("montant", f"facture {numero} : les lignes ({eur(sum(lg.montant for lg in lignes))} €) ou "
                                   f"l'état ({eur(int(str(montant_etat)))} €) ne font pas son montant "
                                   f"({eur(int(str(montant)))} €)")
        par_ligne = [[0, 0] for _ in lignes]
        totaux = [0, 0]
        while suivante is not None and int(str(suivante[0])) < int(str(fid)):
            bilan.noter("reference", f"affectation sur la facture {suivante[0]}, inconnue")
            suivante = next(parts_lues, None)
        while suivante is not None and suivante[0] == fid:
            _, d_avoir, total, parts_json = suivante
            parts = parts_json if isinstance(parts_json, list) else _json(str(parts_json))
            colonne = 1 if d_avoir else 0
            if sum(m for _, m in parts) != total:
                bilan.noter("parts", f"facture {numero} : une affectation de {eur(int(str(total)))} € dont les parts "
                                     f"font {eur(sum(m for _, m in parts))} €")
            for rang, m in parts:
                if not 1 <= rang <= len(lignes):
                    bilan.noter("parts", f"facture {numero} : une part sur la ligne {rang}, qui n'existe pas")
                    continue
                par_ligne[rang - 1][colonne] += m
            totaux[colonne] += int(str(total))
            suivante = next(parts_lues, None)
        if totaux != [paye, avoirs]:
            bilan.noter("etat", f"facture {numero} : payé {eur(int(str(paye)))} €, avoirs {eur(int(str(avoirs)))} € "
                                f"à l'état, mais les affectations font {eur(totaux[0])} € et {eur(totaux[1])} €")
        for rang, ((p, a), lg) in enumerate(zip(par_ligne, lignes, strict=True), 1):
            if p < 0 or a < 0 or p + a > lg.montant:
                bilan.noter("parts", f"facture {numero}, ligne {rang} : {eur(p)} € payés et {eur(a)} € d'avoirs pour "
                                     f"une ligne de {eur(lg.montant)} €")
        attendu = statut_facture(int(str(montant)), int(str(paye)), int(str(avoirs)), fid in titres)
        if statut != attendu:
            bilan.noter("statut", f"facture {numero} : statut {statut}, {attendu} d'après ses montants")


def _json(texte: str) -> list[list[int]]:
    import msgspec

    valeur: list[list[int]] = msgspec.json.decode(texte)
    return valeur


def _paiements(conn: Connection, bilan: BilanVerification) -> None:
    """Ce qui est affecté d'un paiement est la somme de ses affectations."""
    bilan.controles += 1
    for canal, reference, affecte, somme in _lignes(
            conn, "SELECT p.canal, p.reference, p.affecte, coalesce(sum(a.montant), 0) FROM paiement p "
                  "LEFT JOIN affectation a ON a.paiement_id = p.id GROUP BY p.id, p.canal, p.reference, p.affecte "
                  "HAVING p.affecte <> coalesce(sum(a.montant), 0) ORDER BY p.id"):
        bilan.noter("paiement", f"paiement {canal} {reference} : {eur(int(str(affecte)))} € affectés, ses affectations "
                                f"font {eur(int(str(somme)))} €")


def _compte_famille(conn: Connection, bilan: BilanVerification) -> None:
    """Le dû du journal est le reste des factures non titrées de la famille ; son crédit, ce qu'elle a en avance."""
    bilan.controles += 2
    du = ("SELECT f.dossier_id AS d, sum(e.montant - e.paye - e.avoirs) AS v FROM facture f "
          "JOIN etat_facture e ON e.facture_id = f.id WHERE e.statut <> 'titree' GROUP BY f.dossier_id")
    credit = ("SELECT d, sum(v) AS v FROM (SELECT dossier_id AS d, montant - affecte AS v FROM avoir "
              "UNION ALL SELECT dossier_id, en_credit FROM paiement WHERE en_credit > 0) c GROUP BY d")
    # Le journal tel que le lisent `regie etat`, l'API et les pages (émissions, affectations du moteur,
    # mouvements) : une seule définition, celle du compte famille.
    soldes = soldes_par_dossier()
    for nom, attendu_sql, colonne in (("du", du, soldes.c.du), ("credit", credit, soldes.c.credit)):
        attendu = text(attendu_sql).columns(d=BigInteger, v=BigInteger).subquery("a")
        ecart = func.coalesce(attendu.c.v, 0) != func.coalesce(colonne, 0)
        for numero, attendu_v, journal in conn.execute(
                select(Dossier.numero, func.coalesce(attendu.c.v, 0), func.coalesce(colonne, 0))
                .outerjoin(attendu, attendu.c.d == Dossier.id).outerjoin(soldes, soldes.c.dossier_id == Dossier.id)
                .where(ecart).order_by(Dossier.numero)):
            quoi = "dû" if nom == "du" else "crédit"
            bilan.noter("compte", f"dossier {numero} : {quoi} de {eur(int(str(journal)))} € au compte famille, "
                                  f"{eur(int(str(attendu_v)))} € d'après ses factures et paiements")
