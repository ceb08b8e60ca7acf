"""Import des factures et avoirs du portail : tout le fichier ou rien, en flux, idempotent."""

from __future__ import annotations

from array import array
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date
from operator import itemgetter
from pathlib import Path
from typing import IO, Any, Protocol, TypeVar
from zoneinfo import ZoneInfo

import msgspec
import structlog
from sqlalchemy import Connection, Dialect, Index, func, insert, literal, select, update
from sqlalchemy.exc import IntegrityError

from connecteurs.cesu.titres import debut_du_jour
from connecteurs.portail.factures import (
    FICHIER_VIDE,
    AvoirLu,
    FactureLue,
    Referentiel,
    lire_jsonl,
    lire_lignes_jsonl,
    lire_objet,
)
from rapprochement.moteur import verrouiller
from regie import points_de_crash
from regie.application import Application
from regie.domaine import cle_payeur, repartir
from regie.erreurs import CollecteurErreurs, ErreurLigne
from regie.lecture_parallele import PRIORITE_LECTEUR, en_parallele_entrelace
from regie.montants import centimes_en_euros
from regie.progression import Progression
from regie.registre.etats import lire_facture, porter
from regie.registre.lignes import encoder_lignes
from regie.registre.masse import (
    copie_binaire,
    copier_tel_quel,
    inserer_tuples,
    preparer_insertion,
    reecrire_entiers,
    reserver_ids,
    sans_ramasse_miettes,
    table_de,
    valeurs_par_cle,
)
from regie.registre.modeles import (
    Avoir,
    Compteur,
    Dossier,
    EtatFacture,
    Facture,
    FichierRecu,
    MouvementCompte,
)
from regie.registre.statistiques import rafraichir_statistiques
from regie.registre.types import maintenant
from regie.services.fichiers import (
    RapportImport,
    importer_une_fois,
)

log = structlog.get_logger()

PARIS = ZoneInfo("Europe/Paris")
TAILLE_LOT = 5000
SEUIL_PARALLELE = 4 << 20  # octets : en deçà (quelques milliers de factures), lire ici coûte moins qu'un processus
CANAL = "factures"
DOSSIER = table_de(Dossier)
FACTURE = table_de(Facture)
ETAT = table_de(EtatFacture)
COLONNES_FACTURE = ("id", "numero", "regie_code", "dossier_id", "emise_le", "echeance", "periode", "montant",
                    "refdet", "civilite", "nom", "prenom", "email", "adresse1", "adresse2", "code_postal", "ville",
                    "lignes", "empreinte", "payeur_cle", "fichier_id", "cree_le")
COLONNES_ETAT = ("facture_id", "montant", "paye", "avoirs", "statut", "payeur_cle")
# `rangee` encode déjà les lignes (encoder_lignes), et l'instant de l'import est converti une fois (`converti`) :
# leur type ne les repasse pas une à une (sous PostgreSQL, plus aucune colonne n'est alors convertie par lot).
DEJA_CONVERTIES = ("lignes", "cree_le")


def converti(dialecte: Dialect, colonne: str, valeur: Any) -> Any:
    """Une valeur de `facture` sous sa forme de base, convertie par le type de sa colonne."""
    proc = FACTURE.c[colonne].type._cached_bind_processor(dialecte)
    return valeur if proc is None else proc(valeur)


def prendre_numeros(conn: Connection, nom: str, n: int) -> int:
    """Réserve n numéros consécutifs d'une séquence ; rend le premier. Jamais réutilisés."""
    res = conn.execute(update(Compteur).where(Compteur.nom == nom).values(valeur=Compteur.valeur + n))
    if res.rowcount == 0:
        conn.execute(insert(Compteur), {"nom": nom, "valeur": n})
        return 1
    fin = conn.execute(select(Compteur.valeur).where(Compteur.nom == nom)).scalar_one()
    return int(fin) - n + 1


def dossiers_ids(conn: Connection, numeros: Iterable[str]) -> dict[str, int]:
    """Les identifiants des dossiers, créés au besoin."""
    voulus = set(numeros)
    ids: dict[str, int] = valeurs_par_cle(conn, DOSSIER, "numero", "id", voulus)
    manquants = sorted(voulus - ids.keys())
    if manquants:
        ids.update(creer_dossiers(conn, manquants))
    return ids


def creer_dossiers(conn: Connection, numeros: Sequence[str]) -> dict[str, int]:
    """Des dossiers nouveaux, écrits en masse (une copie binaire sous PostgreSQL) ; leurs identifiants en retour."""
    nouveaux = reserver_ids(conn, DOSSIER, len(numeros))
    now = maintenant()
    inserer_tuples(conn, DOSSIER, ("id", "numero", "cree_le"),
                   [(i, n, now) for i, n in zip(nouveaux, numeros, strict=True)])
    return dict(zip(numeros, nouveaux, strict=True))


# Une facture lue, prête à écrire (sans son identifiant ni celui de son dossier, que donne la base) :
# (numero, regie, dossier, emise_le, echeance, periode, montant, refdet, civilite, nom, prenom, email,
#  adresse1, adresse2, code_postal, ville, lignes (JSON), empreinte, clé du payeur, ligne du fichier).
Rangee = tuple[Any, ...]
_NUMERO, _DOSSIER, _EMISE_LE, _PERIODE, _MONTANT, _EMPREINTE, _PAYEUR, _LIGNE = 0, 2, 3, 5, 6, 17, 18, 19


def rangee(f: FactureLue) -> Rangee:
    p = f.payeur
    return (f.numero, f.regie, f.dossier, f.emise_le, f.echeance, f.periode, f.montant, f.refdet, p.civilite, p.nom,
            p.prenom, p.email, p.adresse1, p.adresse2, p.code_postal, p.ville, encoder_lignes(f.lignes),
            f.empreinte, cle_payeur(p.nom, p.prenom), f.ligne)


@dataclass(slots=True)
class LotLu:
    """Ce que la lecture donne à l'écriture : des factures prêtes, les avoirs, les erreurs nouvelles.

    Les factures voyagent d'un processus à l'autre en MessagePack (msgspec) : dix fois moins cher
    à coder et décoder que pickle pour un million de tuples.
    """

    factures: bytes
    avoirs: list[AvoirLu]
    erreurs: list[ErreurLigne]

    def rangees(self) -> list[Rangee]:
        return _DECODEUR_RANGEES.decode(self.factures)


_ENCODEUR_RANGEES = msgspec.msgpack.Encoder()
_DECODEUR_RANGEES = msgspec.msgpack.Decoder(list[tuple[  # l'ordre de `Rangee`
    str, str, str, date, date, str, int, str, str, str, str, str | None, str, str | None, str, str, str, str, str,
    int]])


def lire_par_lots(lus: Iterable[FactureLue | AvoirLu], erreurs: CollecteurErreurs,
                  taille: int = TAILLE_LOT) -> Iterator[LotLu]:
    """Regroupe une lecture en lots ; chaque lot porte les erreurs trouvées depuis le précédent."""
    factures: list[Rangee] = []
    avoirs: list[AvoirLu] = []
    donnees = 0
    for lu in lus:
        if isinstance(lu, AvoirLu):
            avoirs.append(lu)
        else:
            factures.append(rangee(lu))
        if len(factures) >= taille:
            yield LotLu(_ENCODEUR_RANGEES.encode(factures), avoirs, erreurs.erreurs[donnees:])
            donnees = len(erreurs.erreurs)
            factures, avoirs = [], []
    yield LotLu(_ENCODEUR_RANGEES.encode(factures), avoirs, erreurs.erreurs[donnees:])


@dataclass(slots=True)
class LotCopie:
    """PostgreSQL, gros fichier : un lot déjà au format binaire de COPY, envoyé tel quel.

    Les processus de lecture mettent les rangées au format ; le dossier d'une facture qu'ils ne
    connaissent pas (nouveau, ou créé par un lot précédent) est laissé à 0 et désigné ici par sa place
    dans les données et son numéro : le processus qui écrit l'y réécrit.
    """

    donnees: bytearray  # réécrite sur place, sans copie
    places: bytes  # array('I') : la place (octets) de chaque dossier à réécrire
    dossiers: list[str]  # leurs numéros, dans le même ordre
    nombre: int
    avoirs: list[AvoirLu]
    erreurs: list[ErreurLigne]


# L'ordre des colonnes de la copie : le dossier en premier, à une place fixe de chaque rangée (`copie_binaire`).
COLONNES_COPIE = ("dossier_id", "numero", "regie_code", *COLONNES_FACTURE[4:])
SQL_COPIE = f"COPY facture ({', '.join(COLONNES_COPIE)}) FROM STDIN (FORMAT BINARY)"


# Un lot de lignes lu par l'un des lecteurs : ses factures prêtes à écrire (`rangee`), ses avoirs, ses erreurs
# nouvelles.
LotDeLignes = tuple[list[Rangee], list[AvoirLu], list[ErreurLigne]]


def _lots_entrelaces(flux: IO[bytes], nom: str, referentiel: Referentiel, rang: int, processus: int,
                     taille: int) -> Iterator[LotDeLignes]:
    """Les lots de lignes rang, rang + processus… (lot k : lignes k × taille + 1 à (k + 1) × taille), vides
    compris, jusqu'à la dernière ligne du fichier : pris à tour de rôle, ils redonnent tout le fichier."""
    lues = CollecteurErreurs(nom)
    total = 0

    def mes_lignes() -> Iterator[tuple[int, bytes]]:
        nonlocal total  # le nombre de lignes du fichier, lu une fois la lecture finie
        for total, brute in enumerate(flux, 1):
            if (total - 1) // taille % processus == rang:
                yield total, brute

    factures: list[Rangee] = []
    avoirs: list[AvoirLu] = []
    prochain = rang
    rendues = 0

    def rendre() -> LotDeLignes:
        nonlocal factures, avoirs, rendues, prochain
        # Les erreurs des lignes de ce lot seulement : celles d'un lot suivant, lues avant lui, attendent le
        # leur (entre les deux passe un lot de l'autre lecteur, et les erreurs se disent dans l'ordre du fichier).
        fin = rendues
        while fin < len(lues.erreurs) and ((ligne := lues.erreurs[fin].ligne) is None
                                            or (ligne - 1) // taille <= prochain):
            fin += 1
        lot = (factures, avoirs, lues.erreurs[rendues:fin])
        factures, avoirs, rendues, prochain = [], [], fin, prochain + processus
        return lot

    for lu in lire_lignes_jsonl(mes_lignes(), referentiel, lues, vide_refuse=False):
        while (lu.ligne - 1) // taille > prochain:
            yield rendre()
        if isinstance(lu, AvoirLu):
            avoirs.append(lu)
        else:
            factures.append(rangee(lu))
    while prochain <= (total - 1) // taille or rendues < len(lues.erreurs):
        yield rendre()


def mettre_en_copie(dossiers: dict[str, int], fichier_id: int, cree_le: Any, lots: Iterable[LotDeLignes],
                    dialecte: Dialect) -> Iterator[LotCopie]:
    """Dans un processus de lecture : chaque lot au format de COPY (`copie_binaire`).

    `dossiers` : ceux que l'import connaissait avant que ce processus ne naisse ; un autre est laissé à
    0 et désigné (`LotCopie`).
    """
    for factures, avoirs, erreurs in lots:
        if not factures:
            yield LotCopie(bytearray(), b"", [], 0, avoirs, erreurs)
            continue
        rangees = [(dossiers.get(r[_DOSSIER], 0), r[0], r[1], *r[3:19], fichier_id, cree_le) for r in factures]
        (e,) = preparer_insertion(dialecte, FACTURE, COLONNES_COPIE, rangees, deja_converties=DEJA_CONVERTIES)
        donnees, places = copie_binaire(e)
        inconnus = [i for i, t in enumerate(rangees) if t[0] == 0]
        yield LotCopie(donnees, array("I", [places[i] for i in inconnus]).tobytes(),
                       [factures[i][_DOSSIER] for i in inconnus], len(factures), avoirs, erreurs)


class _RepriseOrdinaire(Exception):
    """Un lot ne passe pas tel quel (une erreur du fichier, une facture déjà connue) : l'import reprend par le
    chemin ordinaire, qui trie les factures et liste toutes les erreurs."""


class _Import:
    """Un import de factures dans une transaction ; les erreurs s'accumulent, on annule à la fin."""

    def __init__(self, conn: Connection, fichier_id: int | None, erreurs: CollecteurErreurs) -> None:
        self.conn = conn
        self.fichier_id = fichier_id
        self.erreurs = erreurs
        self.factures = 0
        self.avoirs = 0
        self.ignores = 0
        self.dossiers: dict[str, int] = {}  # numéro → id, pour tout l'import
        self.tous_les_dossiers = False  # vrai : `dossiers` les tient tous, un absent est nouveau
        self.maintenant = maintenant()  # l'instant de l'import : celui de chaque facture qu'il crée
        self.cree_le = converti(conn.dialect, "cree_le", self.maintenant)  # le même, tel qu'écrit
        # L'index unique heurté : enveloppé par SQLAlchemy (executemany) ou brut du pilote (COPY).
        self.integrite = (IntegrityError, conn.dialect.loaded_dbapi.IntegrityError)

    def factures_lot(self, lot: Sequence[Rangee]) -> None:
        """Écrit un lot d'un coup s'il n'a que des factures nouvelles (le cas courant) ; sinon les trie.

        L'index unique du numéro dit si une facture existe déjà : le lot est écrit sous un point de
        reprise, et s'il heurte une facture connue (ou se répète), il est repris facture par facture.
        Les dossiers nouveaux sont créés avant le point de reprise : revenir à celui-ci ne doit pas les
        effacer sous les factures du chemin lent.
        """
        if not lot:
            return
        if self.erreurs:
            # Le fichier sera refusé : on ne fait plus que chercher les autres erreurs.
            self._trier(lot)
            return
        dossiers = self._ids_dossiers(set(map(itemgetter(_DOSSIER), lot)))
        try:
            with self.conn.begin_nested():
                self._ecrire(lot, dossiers)
        except self.integrite:
            self._ecrire(self._trier(lot), dossiers)

    def _trier(self, lot: Sequence[Rangee]) -> list[Rangee]:
        """Les factures nouvelles du lot ; les connues au même contenu sont comptées, les autres refusées."""
        existantes = valeurs_par_cle(self.conn, FACTURE, "numero", "empreinte", {r[_NUMERO] for r in lot})
        nouvelles: list[Rangee] = []
        vues: dict[str, Rangee] = {}
        for r in lot:
            numero = r[_NUMERO]
            avant = existantes.get(numero)
            double = vues.get(numero)
            if avant is not None or double is not None:
                empreinte = avant if avant is not None else double[_EMPREINTE]  # type: ignore[index]
                if empreinte == r[_EMPREINTE]:
                    self.ignores += 1
                else:
                    self.erreurs.ajouter(r[_LIGNE], "numero", f"la facture {numero} existe déjà avec un autre "
                                         "contenu : une facture ne se modifie pas, émettre un avoir")
                continue
            vues[numero] = r
            nouvelles.append(r)
        return nouvelles

    def precharger_dossiers(self, factures_attendues: int) -> None:
        """Pour un gros import : tous les dossiers d'un coup, s'ils ne sont pas bien plus nombreux que les factures."""
        if self.conn.execute(select(func.count()).select_from(Dossier)).scalar_one() <= 2 * factures_attendues:
            self.dossiers = dict(self.conn.execute(select(Dossier.numero, Dossier.id)).all())
            self.tous_les_dossiers = True

    def _ids_dossiers(self, numeros: set[str]) -> dict[str, int]:
        connus = self.dossiers
        manquants = numeros.difference(connus)  # en C (le dict est sondé, pas copié)
        if manquants:
            connus.update(creer_dossiers(self.conn, sorted(manquants)) if self.tous_les_dossiers
                          else dossiers_ids(self.conn, manquants))
        return connus

    def _ecrire(self, lot: Sequence[Rangee], dossiers: dict[str, int]) -> None:
        if not lot:
            return
        conn = self.conn
        now = self.cree_le
        fichier_id = self.fichier_id
        if fichier_id is None:
            # Factures poussées par l'API : peu nombreuses, identifiants réservés.
            ids = reserver_ids(conn, FACTURE, len(lot))
            inserer_tuples(conn, FACTURE, COLONNES_FACTURE, [
                (fid, r[0], r[1], dossiers[r[2]], *r[3:19], None, now) for fid, r in zip(ids, lot, strict=True)],
                deja_converties=DEJA_CONVERTIES)
            inserer_tuples(conn, ETAT, COLONNES_ETAT, [(fid, r[_MONTANT], 0, 0, "emise", r[_PAYEUR])
                                                       for fid, r in zip(ids, lot, strict=True)])
        else:
            # La base numérote (sa séquence, ou le rowid de SQLite) ; l'état de chaque nouvelle facture
            # est écrit par la base elle-même, d'après les rangées que ce lot vient d'ajouter.
            seuil = self._seuil()
            inserer_tuples(conn, FACTURE, COLONNES_FACTURE[1:], [
                (r[0], r[1], dossiers[r[2]], *r[3:19], fichier_id, now) for r in lot], deja_converties=DEJA_CONVERTIES)
            self._etats(seuil, len(lot))
        self.factures += len(lot)

    def _seuil(self) -> int:
        return int(self.conn.execute(select(func.coalesce(func.max(Facture.id), 0))).scalar_one())

    def _etats(self, seuil: int, nombre: int) -> None:
        """L'état de chaque facture que le lot vient d'ajouter, écrit par la base d'après leurs rangées."""
        self.conn.execute(insert(EtatFacture).from_select(
            list(COLONNES_ETAT),
            select(Facture.id, Facture.montant, literal(0), literal(0), literal("emise"), Facture.payeur_cle)
            .where(Facture.id > seuil, Facture.fichier_id == self.fichier_id)
            # Par la clé primaire, arrêté dès le lot trouvé (sans statistiques, PostgreSQL lirait toute la table).
            .order_by(Facture.id).limit(nombre)))

    def lot_lu(self, lot: LotLu) -> int:
        """Un lot du chemin ordinaire : ses erreurs notées, ses factures écrites ou triées ; rend leur nombre."""
        self.erreurs.erreurs.extend(lot.erreurs)
        rangees = lot.rangees()
        self.factures_lot(rangees)
        return len(rangees)

    def copie_lot(self, lot: LotCopie) -> int:
        """Un lot mis en copie par un processus de lecture : ses dossiers inconnus créés ou retrouvés et réécrits
        à leur place, puis envoyé tel quel, sous un point de reprise."""
        if lot.erreurs:
            raise _RepriseOrdinaire("erreurs dans le fichier")
        if not lot.nombre:
            return 0
        if lot.dossiers:
            connus = self._ids_dossiers(set(lot.dossiers))
            reecrire_entiers(lot.donnees, array("I", lot.places), map(connus.__getitem__, lot.dossiers))
        try:
            with self.conn.begin_nested():
                seuil = self._seuil()
                copier_tel_quel(self.conn, SQL_COPIE, lot.donnees)
                self._etats(seuil, lot.nombre)
        except self.integrite as exc:
            raise _RepriseOrdinaire("factures déjà connues") from exc
        self.factures += lot.nombre
        return lot.nombre

    def avoir(self, a: AvoirLu) -> None:
        conn = self.conn
        avant = conn.execute(select(Avoir.empreinte).where(Avoir.numero == a.numero)).scalar_one_or_none()
        if avant is not None:
            if avant == a.empreinte:
                self.ignores += 1
            else:
                self.erreurs.ajouter(a.ligne, "numero", f"l'avoir {a.numero} existe déjà avec un autre contenu")
            return
        f = lire_facture(conn, a.facture, pour_mise_a_jour=True)
        if f is None:
            self.erreurs.ajouter(a.ligne, "facture", f"la facture {a.facture} est inconnue")
            return
        if f.statut == "titree":
            self.erreurs.ajouter(a.ligne, "facture", f"la facture {a.facture} est titrée : la réduction doit "
                                                     "passer par le Trésor (titre d'annulation)")
            return
        if f.statut == "annulee":
            self.erreurs.ajouter(a.ligne, "facture", f"la facture {a.facture} est déjà annulée")
            return
        emise_le = conn.execute(select(Facture.emise_le).where(Facture.id == f.id)).scalar_one()
        if a.emise_le < emise_le:
            self.erreurs.ajouter(a.ligne, "emise_le", f"l'avoir est daté avant la facture {a.facture}")
            return
        impute = min(a.montant, f.reste)
        credit = a.montant - impute
        now = maintenant()
        avoir_id = conn.execute(insert(Avoir).returning(Avoir.id), {
            "numero": a.numero, "facture_id": f.id, "dossier_id": f.dossier_id, "emise_le": a.emise_le,
            "montant": a.montant, "motif": a.motif, "affecte": impute, "empreinte": a.empreinte,
            "fichier_id": self.fichier_id, "cree_le": now}).scalar_one()
        if impute:
            parts = repartir(impute, f.lignes)
            porter(conn, f, parts, paiement_id=None, avoir_id=avoir_id, regle="avoir", preuve={"avoir": a.numero},
                   auteur="systeme")
        libelle = f"Avoir {a.numero} sur la facture {a.facture} : {a.motif}"
        if credit:
            libelle += f" (dont {centimes_en_euros(credit)} € en crédit)"
        conn.execute(insert(MouvementCompte), {
            "dossier_id": f.dossier_id, "quand": debut_du_jour(a.emise_le), "nature": "avoir",
            "libelle": libelle[:300], "montant": a.montant, "delta_du": -impute, "delta_credit": credit,
            "delta_tresor": 0, "facture_id": f.id, "avoir_id": avoir_id, "cree_le": now})
        self.avoirs += 1


# Les index dont les clés arrivent dans le désordre (dossier, reste dû) : un gros import les
# reconstruit d'un tri à la fin plutôt que d'y insérer un million de clés une à une.
INDEX_DIFFERABLES = ("ix_facture_dossier_id", "ix_etat_facture_reste_du")
OCTETS_PAR_FACTURE = 1000  # estimation prudente de la taille d'une ligne du fichier


def _index_differes(conn: Connection, taille_fichier: int) -> list[Index]:
    """SQLite : les index à reconstruire si l'import double au moins la table (sinon insérer coûte moins).

    Sous PostgreSQL, supprimer un index bloquerait les lectures de l'API le temps de l'import : jamais.
    """
    if conn.dialect.name != "sqlite":
        return []
    existantes = int(conn.execute(select(func.coalesce(func.max(Facture.id), 0))).scalar_one())
    if taille_fichier // OCTETS_PAR_FACTURE < max(existantes, 10_000):
        return []
    index = [ix for table in (FACTURE, ETAT) for ix in table.indexes if ix.name in INDEX_DIFFERABLES]
    for ix in index:
        ix.drop(conn)
    return index


def _reconstruire(conn: Connection, index: list[Index]) -> None:
    if not index:
        return
    # Le tri de CREATE INDEX peut se faire sur deux cœurs (fils de SQLite, hors du verrou de Python).
    conn.exec_driver_sql("PRAGMA threads = 2")
    for ix in index:
        ix.create(conn)
    conn.exec_driver_sql("PRAGMA threads = 0")


class _AvecAvoirs(Protocol):
    avoirs: list[AvoirLu]


L = TypeVar("L", bound=_AvecAvoirs)  # un lot lu (`LotLu`) ou mis en copie (`LotCopie`)


def _ecrire(lots: Iterable[L], ecrire_lot: Callable[[L], int], imp: _Import) -> None:
    """Les lots dans l'ordre (`ecrire_lot` rend le nombre de factures du lot), puis les avoirs du fichier."""
    avoirs: list[AvoirLu] = []
    progression = Progression("import des factures", "factures")
    for lot in lots:
        progression.avancer(ecrire_lot(lot))
        avoirs.extend(lot.avoirs)  # après les factures : un avoir peut viser une facture du même fichier
        points_de_crash.point("import_factures_lot")
    if avoirs:
        # Un avoir réduit l'état d'une facture que le moteur peut être en train de lire puis d'écrire.
        verrouiller(imp.conn)
    for a in avoirs:
        imp.avoir(a)
    progression.terminer()


def _ecrire_tel_quel(imp: _Import, chemin: Path, referentiel: Referentiel, *, processus: int = 2) -> bool:
    """PostgreSQL, gros fichier : deux processus de lecture mettent les lots au format de COPY, à tour de rôle
    (`_lots_entrelaces`, `mettre_en_copie`) ; ils sont écrits ici tels quels, dans l'ordre du fichier. Au
    premier écart (une erreur, une facture déjà connue, rien à importer), ce qui a été écrit est annulé et
    faux est rendu : le chemin ordinaire reprend tout, trie et liste les erreurs."""
    conn, nom = imp.conn, imp.erreurs.fichier
    taille = TAILLE_LOT  # lu à l'appel : les tests le réduisent pour entrelacer beaucoup de lots
    connus, fichier_id = dict(imp.dossiers), imp.fichier_id or 0
    cree_le, dialecte = imp.cree_le, conn.dialect

    def lire(rang: int, nombre: int) -> Iterator[LotCopie]:
        with chemin.open("rb") as flux, sans_ramasse_miettes():
            yield from mettre_en_copie(connus, fichier_id, cree_le,
                                       _lots_entrelaces(flux, nom, referentiel, rang, nombre, taille), dialecte)

    debut = conn.begin_nested()
    lots = en_parallele_entrelace(lire, processus=processus, priorite=PRIORITE_LECTEUR)
    try:
        try:
            with sans_ramasse_miettes():
                _ecrire(lots, imp.copie_lot, imp)
            if not imp.factures and not imp.avoirs:
                raise _RepriseOrdinaire("rien à importer")
        finally:
            lots.close()  # les lecteurs arrêtés dès ici, quoi qu'il arrive (et avant toute relecture du fichier)
    except _RepriseOrdinaire as raison:
        debut.rollback()
        imp.factures, imp.avoirs, imp.ignores, imp.dossiers = 0, 0, 0, connus
        log.info("import_factures_repris", fichier=nom, raison=str(raison))
        return False
    debut.commit()
    return True


def importer_fichier_factures(app: Application, chemin: Path, *, origine: str | None = None,
                              parallele: bool | None = None) -> RapportImport:
    """`regie factures importer` : refuse le fichier entier à la première erreur, après les avoir toutes listées.

    Un gros fichier (`parallele`, par défaut au-delà de `SEUIL_PARALLELE` octets) est lu et contrôlé par deux
    processus, à tour de rôle, pendant que celui-ci écrit (`lire_entrelace`) ; sous PostgreSQL, ils le mettent
    en plus au format de COPY (`_ecrire_tel_quel`).
    """
    referentiel = app.referentiel
    taille = chemin.stat().st_size
    if parallele is None:
        parallele = taille >= SEUIL_PARALLELE

    def faire(conn: Connection, fichier_id: int, nom: str) -> _Import:
        erreurs = CollecteurErreurs(nom)
        imp = _Import(conn, fichier_id, erreurs)

        def lire() -> Iterator[LotLu]:
            lues = CollecteurErreurs(nom)
            with chemin.open("rb") as flux, sans_ramasse_miettes():
                yield from lire_par_lots(lire_jsonl(flux, nom, referentiel, lues), lues)

        def lire_entrelace(rang: int, nombre: int) -> Iterator[LotLu]:
            with chemin.open("rb") as flux, sans_ramasse_miettes():
                for factures, avoirs, lues in _lots_entrelaces(flux, nom, referentiel, rang, nombre, TAILLE_LOT):
                    yield LotLu(_ENCODEUR_RANGEES.encode(factures), avoirs, lues)

        # Dans la transaction : un import refusé ou interrompu rend les index tels qu'ils étaient.
        differes = _index_differes(conn, taille)
        if taille >= SEUIL_PARALLELE:
            imp.precharger_dossiers(taille // OCTETS_PAR_FACTURE)
        if not parallele:
            with sans_ramasse_miettes():
                _ecrire(lire(), imp.lot_lu, imp)
        elif not (conn.dialect.name == "postgresql" and _ecrire_tel_quel(imp, chemin, referentiel)):
            # Un seul lecteur ne suit pas le processus qui écrit (SQLite) : deux, à tour de rôle, chacun
            # ses lots de lignes ; chaque lot dit ses erreurs, un fichier sans rien est vide.
            with sans_ramasse_miettes():
                _ecrire(en_parallele_entrelace(lire_entrelace, priorite=PRIORITE_LECTEUR), imp.lot_lu, imp)
            if not (imp.factures or imp.avoirs or imp.ignores or erreurs):
                erreurs.ajouter(None, None, FICHIER_VIDE)
        erreurs.verifier()  # lève : la transaction est annulée, rien n'est écrit
        _reconstruire(conn, differes)
        conn.execute(update(FichierRecu).where(FichierRecu.id == fichier_id).values(
            nb_enregistrements=imp.factures + imp.avoirs, nb_ignores=imp.ignores))
        return imp

    rapport, imp = importer_une_fois(app, chemin, CANAL, origine, faire, RapportImport(chemin.name, CANAL))
    if imp is None:
        return rapport
    points_de_crash.point("apres_import_factures")
    rapport.importes = imp.factures + imp.avoirs
    rapport.ignores = imp.ignores
    rapport.comptes = {"factures": imp.factures, "avoirs": imp.avoirs}
    log.info("factures_importees", fichier=rapport.fichier, factures=imp.factures, avoirs=imp.avoirs,
             deja_importees=imp.ignores)
    rafraichir_statistiques(app.moteur, ("facture", "etat_facture", "dossier"), imp.factures)
    return rapport


def pousser_objets(app: Application, objets: Sequence[object], *, source: str = "api") -> RapportImport:
    """Les mêmes objets reçus par HTTP (un tableau JSON) : même contrôle, même atomicité."""
    erreurs = CollecteurErreurs(source)
    ref: Referentiel = app.referentiel
    lus = [lu for i, obj in enumerate(objets, 1) if (lu := lire_objet(obj, i, ref, erreurs)) is not None]
    if not objets:
        erreurs.ajouter(None, None, "aucune facture ni aucun avoir")
    erreurs.verifier()
    with app.moteur.begin() as conn:
        imp = _Import(conn, None, erreurs)
        _ecrire(lire_par_lots(lus, CollecteurErreurs(source)), imp.lot_lu, imp)
        erreurs.verifier()
    rapport = RapportImport(source, CANAL, importes=imp.factures + imp.avoirs, ignores=imp.ignores,
                            comptes={"factures": imp.factures, "avoirs": imp.avoirs})
    log.info("factures_poussees", source=source, factures=imp.factures, avoirs=imp.avoirs,
             deja_importees=imp.ignores)
    return rapport
