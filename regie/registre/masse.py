"""Écritures en masse : executemany direct au pilote, valeurs converties par les types des colonnes.

Pour les imports d'un million de lignes : pas de compilation ni d'objet par ligne.
"""

from __future__ import annotations

import gc
import struct
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from itertools import chain
from operator import itemgetter
from typing import Any

from sqlalchemy import BigInteger, Boolean, Connection, Date, DateTime, FromClause, Integer, String, Table, text
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.types import TypeDecorator

RANGEES_PAR_INSTRUCTION = 200
LIMITE_PARAMETRES = 32_000  # SQLite en admet 32 766 par instruction
CLES_PAR_REQUETE = 5000  # clés par requête groupée (SQLite en admet 32 766, PostgreSQL reçoit un tableau)


def table_de(modele: type[DeclarativeBase]) -> Table:
    """La table (Core) d'un modèle, typée comme telle pour les écritures en masse."""
    table = modele.__table__
    assert isinstance(table, Table)
    return table


def inserer(conn: Connection, table: FromClause, lignes: Sequence[Mapping[str, Any]]) -> None:
    if not lignes:
        return
    colonnes = list(lignes[0].keys())
    lire = itemgetter(*colonnes)
    if len(colonnes) == 1:
        inserer_tuples(conn, table, colonnes, [(lire(r),) for r in lignes])
    else:
        inserer_tuples(conn, table, colonnes, [lire(r) for r in lignes])


def _convertir_colonne(valeurs: Sequence[Any], proc: Callable[[Any], Any]) -> list[Any]:
    try:
        # Les dates et instants se répètent : chaque valeur distincte est convertie une fois.
        table = {v: None if v is None else proc(v) for v in set(valeurs)}
    except TypeError:
        # JSON (dict, list) : mémo par identité (un même objet partagé par plusieurs lignes, comme la
        # preuve des parts d'un paiement) ; chaque objet reste vivant dans `valeurs` pendant le calcul.
        uniques = {id(v): v for v in valeurs}
        par_objet = {k: None if v is None else proc(v) for k, v in uniques.items()}
        return [par_objet[id(v)] for v in valeurs]
    return [table[v] for v in valeurs]


def _iso(v: Any) -> Any:
    return v.isoformat() if isinstance(v, date) else v


@contextmanager
def curseur_du_pilote(conn: Connection) -> Iterator[Any]:
    """Le curseur du pilote, dans la transaction de `conn` : des tuples, sans objet SQLAlchemy par rangée."""
    brute = conn.connection.dbapi_connection
    assert brute is not None
    curseur = brute.cursor()
    try:
        yield curseur
    finally:
        curseur.close()


@dataclass(frozen=True, slots=True)
class Ecriture:
    """Une instruction préparée, exécutée plus tard : par SQLAlchemy, ou au pilote dans un autre fil.

    `plusieurs` : `parametres` est une suite de jeux (executemany) ; `copie` : un COPY … FROM STDIN
    (PostgreSQL) dont `parametres` sont les rangées, en binaire quand `types_binaires` est donné.
    """

    sql: str
    parametres: Any
    plusieurs: bool = False
    copie: bool = False
    types_binaires: list[str] | None = None


def inserer_tuples(conn: Connection, table: FromClause, colonnes: Sequence[str],
                   lignes: Sequence[Sequence[Any]], *, deja_converties: Collection[str] = ()) -> None:
    """Comme `inserer`, des tuples dans l'ordre de `colonnes` : pas de dict à construire par ligne.

    `deja_converties` : des colonnes dont les valeurs sont déjà sous leur forme de base (un JSON déjà
    encodé, par exemple) : leur type ne les convertit pas une seconde fois.
    """
    executer_ecritures(conn, preparer_insertion(conn.dialect, table, colonnes, lignes,
                                                deja_converties=deja_converties))


def preparer_insertion(dialect: Dialect, table: FromClause, colonnes: Sequence[str],
                       lignes: Sequence[Sequence[Any]], *, deja_converties: Collection[str] = ()) -> list[Ecriture]:
    """Les instructions de `inserer_tuples`, valeurs déjà converties, sans les exécuter."""
    if not lignes:
        return []
    postgresql = dialect.name == "postgresql"
    procs = [(i, proc) for i, c in enumerate(colonnes) if c not in deja_converties
             and (proc := table.c[c].type._cached_bind_processor(dialect)) is not None]
    donnees: Sequence[Sequence[Any]] = lignes
    binaire = _types_binaires(table, colonnes) if postgresql else None
    nulles: set[int] = set()
    if procs or (postgresql and binaire is None):
        # Conversion par colonne (transposition en C) plutôt que ligne à ligne en Python.
        par_colonne: list[Sequence[Any]] = list(zip(*lignes, strict=True))
        for i, proc in procs:
            par_colonne[i] = _convertir_colonne(par_colonne[i], proc)
        if postgresql and binaire is None:
            # Dates et instants : leur texte ISO (celui qu'écrirait psycopg), calculé une fois par valeur.
            for i, valeurs in enumerate(par_colonne):
                if isinstance(valeurs[0], date):
                    par_colonne[i] = _convertir_colonne(valeurs, _iso)
        if not postgresql:
            # SQLite : une colonne vide dans tout le lot s'écrit NULL dans l'instruction. Le pilote cherche un
            # adaptateur pour chaque None lié (trois mille instructions, 2 % d'un import de chèques).
            nulles = {i for i, valeurs in enumerate(par_colonne)
                      if valeurs[0] is None and valeurs.count(None) == len(valeurs)}
            if len(nulles) == len(colonnes):
                nulles.clear()  # au moins un paramètre par rangée
            par_colonne = [v for i, v in enumerate(par_colonne) if i not in nulles]
        donnees = list(zip(*par_colonne, strict=True))
    noms = ", ".join(colonnes)
    if postgresql:
        # COPY : un seul aller-retour pour tout le lot, au lieu d'un par ligne ; en binaire quand les
        # types le permettent (le serveur n'a plus à lire les nombres et les dates dans du texte).
        format_ = " (FORMAT BINARY)" if binaire is not None else ""
        return [Ecriture(f"COPY {table.name} ({noms}) FROM STDIN{format_}", donnees,  # type: ignore[attr-defined]
                         copie=True, types_binaires=binaire)]
    marque = "?" if dialect.paramstyle == "qmark" else "%s"
    rangee = f"({', '.join('NULL' if i in nulles else marque for i in range(len(colonnes)))})"
    debut = f"INSERT INTO {table.name} ({noms}) VALUES "  # type: ignore[attr-defined]
    return preparer_paquets(lambda k: debut + ", ".join([rangee] * k), donnees, len(colonnes) - len(nulles))


def preparer_paquets(instruction: Callable[[int], str], rangees: Sequence[Sequence[Any]],
                     largeur: int) -> list[Ecriture]:
    """Plusieurs rangées par instruction (`instruction(k)` : le SQL de k rangées de `largeur` paramètres).

    Le pilote SQLite exécute chaque jeu de paramètres à part (liaison, pas, remise à zéro) ; 200 rangées
    d'un coup divisent ce coût fixe par 200, et le verrou de Python reste relâché tout le paquet. Les
    paquets pleins partent en une exécution multiple, le reste en une instruction.
    """
    par_paquet = max(1, min(RANGEES_PAR_INSTRUCTION, LIMITE_PARAMETRES // largeur))
    pleines = len(rangees) - len(rangees) % par_paquet
    ecritures = []
    if pleines:
        pas = par_paquet * largeur
        plat = list(chain.from_iterable(rangees[:pleines]))  # à plat, en C
        ecritures.append(Ecriture(instruction(par_paquet), [tuple(plat[i:i + pas]) for i in range(0, len(plat), pas)],
                                  plusieurs=True))
    if pleines < len(rangees):
        reste = rangees[pleines:]
        ecritures.append(Ecriture(instruction(len(reste)), tuple(chain.from_iterable(reste))))
    return ecritures


def executer_ecritures(conn: Connection, ecritures: Iterable[Ecriture]) -> None:
    """Par SQLAlchemy (ses erreurs, ses événements) ; un COPY par le curseur du pilote."""
    for e in ecritures:
        if e.copie:
            with curseur_du_pilote(conn) as curseur:
                _copier(curseur, e)
        else:
            conn.exec_driver_sql(e.sql, e.parametres)


def executer_au_pilote(connexion: Any, ecritures: Iterable[Ecriture]) -> None:
    """Directement par la connexion du pilote, sans SQLAlchemy : ce que fait le fil d'écriture du moteur."""
    curseur = connexion.cursor()
    try:
        for e in ecritures:
            if e.copie:
                _copier(curseur, e)
            elif e.plusieurs:
                curseur.executemany(e.sql, e.parametres)
            else:
                curseur.execute(e.sql, e.parametres)
    finally:
        curseur.close()


def _copier(curseur: Any, e: Ecriture) -> None:
    with curseur.copy(e.sql) as copie:
        if e.types_binaires is not None:
            copie.set_types(e.types_binaires)
        for t in e.parametres:
            copie.write_row(t)


def copie_binaire(e: Ecriture) -> tuple[bytearray, list[int]]:
    """Les rangées d'une copie binaire (`preparer_insertion`, PostgreSQL) au format de COPY, sans connexion : un
    autre processus les envoie telles quelles (`copier_tel_quel`). Avec, pour chaque rangée, la place (en
    octets) de la valeur de sa première colonne, un entier de 4 octets qu'il peut réécrire (`reecrire_entiers`).

    La mise au format est celle de psycopg (en C), prise dans son module interne : le test de la copie à deux
    processus (`tests/test_lecture_parallele.py`) dit, sur une vraie base, si une version de psycopg la change.
    """
    from psycopg import adapt, adapters, pq
    from psycopg._copy_base import _binary_signature, _binary_trailer, format_row_binary

    assert e.copie and e.types_binaires is not None and e.types_binaires[0] == "int4"
    tx = adapt.Transformer()
    tx.set_dumper_types([adapters.types.get_oid(t) for t in e.types_binaires], pq.Format.BINARY)
    donnees = bytearray(_binary_signature)
    places = []
    for rangee in e.parametres:
        places.append(len(donnees) + 6)  # le nombre de champs (2 octets), la longueur (4), puis la valeur
        format_row_binary(rangee, tx, donnees)
    donnees += _binary_trailer
    return donnees, places


_ENTIER = struct.Struct(">i")


def reecrire_entiers(donnees: bytearray, places: Iterable[int], valeurs: Iterable[int]) -> None:
    """Dans les données d'une copie binaire, chaque entier de 4 octets à sa place remplacé par sa valeur."""
    ecrire = _ENTIER.pack_into
    for place, valeur in zip(places, valeurs, strict=True):
        ecrire(donnees, place, valeur)


def copier_tel_quel(conn: Connection, sql: str, donnees: bytes | bytearray) -> None:
    """Un COPY … FROM STDIN (FORMAT BINARY) dont les données sont déjà au format (`copie_binaire`)."""
    with curseur_du_pilote(conn) as curseur, curseur.copy(sql) as copie:
        copie.write(donnees)


def _type_binaire(colonne: Any) -> str | None:
    """Le type PostgreSQL d'une colonne pour COPY en binaire ; None si on ne sait pas l'y écrire."""
    t = colonne.type
    if isinstance(t, TypeDecorator):
        t = t.impl_instance
    if isinstance(t, BigInteger):
        return "int8"
    if isinstance(t, Integer):
        return "int4"
    if isinstance(t, Boolean):
        return "bool"
    if isinstance(t, DateTime):
        return "timestamptz" if t.timezone else "timestamp"
    if isinstance(t, Date):
        return "date"
    if isinstance(t, String):  # Text et les JSON gardés en texte compris
        return "text"
    return None


def _types_binaires(table: FromClause, colonnes: Sequence[str]) -> list[str] | None:
    types = [_type_binaire(table.c[c]) for c in colonnes]
    return None if None in types else [t for t in types if t is not None]


def lire_par_cles(conn: Connection, sql: str, cles: Sequence[Any], *,
                  avant: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
    """`sql` contient `{cles}` : la condition « colonne dans cles », écrite pour la base, par paquets.

    `avant` : les paramètres qui précèdent la condition dans `sql`. Par le curseur du pilote, dans la
    transaction de `conn` : des tuples, sans objet par rangée.
    """
    postgresql = conn.dialect.name == "postgresql"
    resultat: list[tuple[Any, ...]] = []
    with curseur_du_pilote(conn) as curseur:
        for debut in range(0, len(cles), CLES_PAR_REQUETE):
            morceau = list(cles[debut:debut + CLES_PAR_REQUETE])
            if postgresql:
                curseur.execute(sql.format(cles="= ANY(%s)"), (*avant, morceau))
            else:
                curseur.execute(sql.format(cles="IN (" + ", ".join("?" * len(morceau)) + ")"), (*avant, *morceau))
            resultat.extend(curseur.fetchall())
    return resultat


def valeurs_par_cle(conn: Connection, table: FromClause, cle: str, valeur: str,
                    cles: Collection[Any]) -> dict[Any, Any]:
    """{cle: valeur} des lignes dont `cle` est dans `cles` : une requête, sans compilation par lot."""
    if not cles:
        return {}
    nom = table.name  # type: ignore[attr-defined]
    if conn.dialect.name == "postgresql":
        res = conn.exec_driver_sql(f"SELECT {cle}, {valeur} FROM {nom} WHERE {cle} = ANY(%s)", (list(cles),))
    else:
        marques = ", ".join(["?"] * len(cles))
        res = conn.exec_driver_sql(f"SELECT {cle}, {valeur} FROM {nom} WHERE {cle} IN ({marques})", tuple(cles))
    return {k: v for k, v in res}


# (base, table) → la séquence de sa clé.
_SEQUENCES: dict[tuple[str, str], str] = {}


def reserver_ids(conn: Connection, table: FromClause, n: int) -> list[int]:
    """Réserve n identifiants de clé primaire pour des insertions en masse.

    SQLite : l'import tient le verrou d'écriture (BEGIN IMMEDIATE), max(id) est donc sûr.
    PostgreSQL : la séquence de la colonne.
    """
    nom = table.name  # type: ignore[attr-defined]
    if conn.dialect.name == "postgresql":
        cle = (conn.engine.url.render_as_string(), nom)
        sequence = _SEQUENCES.get(cle)
        if sequence is None:
            sequence = _SEQUENCES[cle] = str(conn.execute(text("SELECT pg_get_serial_sequence(:t, 'id')"),
                                                          {"t": nom}).scalar_one())
        # La séquence nommée une fois : écrite dans la requête, pg_get_serial_sequence serait évaluée à chaque
        # rangée (10 ms pour 2 000 identifiants au lieu de 1).
        with curseur_du_pilote(conn) as curseur:
            curseur.execute("SELECT nextval(%s::regclass) FROM generate_series(1, %s)", (sequence, n))
            return [i for i, in curseur.fetchall()]
    debut = int(conn.execute(text(f"SELECT coalesce(max(id), 0) FROM {nom}")).scalar_one()) + 1
    return list(range(debut, debut + n))


@contextmanager
def sans_ramasse_miettes() -> Iterator[None]:
    """Suspend le ramasse-miettes cyclique le temps d'un long traitement par lots (import, rapprochement).

    Les objets d'un lot ne forment pas de cycles (le comptage de références les libère) ; sans cela,
    chaque passe parcourt tout le tas : mesuré à 6 % d'un gros import, 12 % du rapprochement.
    """
    actif = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if actif:
            gc.enable()
