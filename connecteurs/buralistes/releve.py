"""Relevé des paiements de proximité (CSV `;`, UTF-8) lu en `PaiementRecu` du canal « buraliste ».

    transaction;date_heure;datamatrix;montant;mode;point_de_vente

Un datamatrix invalide n'est pas une erreur de fichier : l'argent a été encaissé, le paiement est
donné avec `datamatrix_valide` à False et la raison, et le moteur le met en file de revue. Seul ce
qui empêche de lire une ligne (encodage, en-tête, colonnes, champ illisible, transaction en double)
refuse le fichier entier.

Deux chemins, un seul résultat. Le chemin de référence est le lecteur CSV commun
(`connecteurs.lecture_csv`). Un relevé se compte en centaines de milliers de lignes toutes écrites
de la même façon : une ligne de forme canonique (champs sans espace ni guillemet, datamatrix entre
guillemets en ASCII imprimable, montant et date bien formés) est lue par le chemin rapide, en flux,
par blocs d'un Mio (la mémoire reste plate, hormis les empreintes des transactions vues) : un bloc
est contrôlé colonne par colonne (boucles en C, une lecture par date ou montant distinct, les clés
des datamatrix par `controler_en_bloc`), et les paiements construits sans revalidation pydantic ;
un bloc dont une ligne n'a pas cette forme est lu ligne à ligne jusqu'à elle. À la première ligne
qui n'a pas cette forme ou dont un contrôle échoue, le chemin de référence relit le fichier depuis
le début (sans redonner les paiements déjà donnés) : c'est lui qui formule chaque erreur. Les
tests vérifient que les chemins donnent les mêmes paiements et les mêmes erreurs.
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable, Generator, Iterator
from datetime import datetime
from itertools import count, repeat
from operator import itemgetter
from typing import IO, Final, TypeVar

import structlog

from connecteurs.buralistes.datamatrix import LONGUEUR, controler_en_bloc, decoder, mois_si_cles_justes, motif_forme
from connecteurs.lecture_csv import champ_date_heure, champ_montant, champ_texte, lignes_csv
from connecteurs.modeles import PaiementRecu, construire_sans_valider
from regie.erreurs import CollecteurErreurs

COLONNES = ("transaction", "date_heure", "datamatrix", "montant", "mode", "point_de_vente")
MODES = ("ESPECES", "CARTE")
_MODES: Final = frozenset(MODES)
# Politique du moteur (LIMITE_ESPECES), pas de ce lecteur : au-delà, un paiement en espèces n'est
# jamais affecté. La constante vit ici, à côté du format qui porte le mode de paiement.
LIMITE_ESPECES_CENTIMES = 30000
TRANSACTION_MAXI = 40
POINT_DE_VENTE_MAXI = 200
TAILLE_BLOC: Final = 1 << 20  # 1 Mio : assez pour amortir les appels, assez peu pour une mémoire plate

_log = structlog.get_logger()

_BOM = b"\xef\xbb\xbf"
# Fins de ligne reconnues par le lecteur csv (io.StringIO, newline="") : les mêmes ici, pour que
# les numéros de ligne des deux chemins concordent.
_FIN = r"(?:\r\n|\r|\n)"
_ENTETE = re.compile(re.escape(";".join(COLONNES)) + "(" + _FIN + ")")
_BLANCHE = re.compile(r"[ \t]*(?:" + _FIN + r"|\Z)")
_DATE_HEURE = (r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}(?::[0-9]{2}(?:\.[0-9]+)?)?"
               r"(?:Z|[+-][0-9]{2}:[0-9]{2})")
_MONTANT = r"(0|[1-9][0-9]{0,12})\.([0-9]{2})"
# Une ligne entière (chemin rapide « au caractère près », pour les lignes que la découpe ne prend pas).
_LIGNE = re.compile(
    r'([^\s;"]{1,' + str(TRANSACTION_MAXI) + r'});'
    r"(" + _DATE_HEURE + r");"
    r'"([ !#-~]*)";'  # datamatrix : ASCII imprimable sans guillemet, espaces de tête compris
    + _MONTANT + r";"
    r"(ESPECES|CARTE);"
    r'([^\s;"]{1,' + str(POINT_DE_VENTE_MAXI) + r"})"
    r"(" + _FIN + r"|\Z)"
)
# Le champ datamatrix d'une ligne découpée, guillemets compris : une charge utile de la forme attendue
# (groupe 1 : les 130 caractères), ou n'importe quel ASCII imprimable sans guillemet (décodé en détail).
_DATAMATRIX_FORME = re.compile('"(' + motif_forme("[ !#-~]{40}") + ')"')
_DATAMATRIX = re.compile(r'"[ !#-~]*"')
_IMPRIMABLES_SANS_GUILLEMET = bytes(range(0x20, 0x7F)).replace(b'"', b"")
_DATE_HEURE_RE = re.compile(_DATE_HEURE)
_MONTANT_RE = re.compile(_MONTANT)
_V = TypeVar("_V")
_INVALIDE = " " * LONGUEUR  # tient la place d'une charge utile d'une autre longueur : invalide
_CACHE_MAXI = 50_000  # dates, montants, points de vente : du bruit ne doit pas faire grossir les caches

# Champs posés par le lecteur (`remise` garde sa valeur par défaut) : ceux qu'aurait `model_validate`.
_CHAMPS: Final = {"canal", "reference", "montant", "recu_le", "reference_facture", "details", "ligne", "brut"}


class _Compte:
    __slots__ = ("datamatrix_invalides", "paiements")

    def __init__(self) -> None:
        self.paiements = 0
        self.datamatrix_invalides = 0


def _paiement(numero: int, brut: str, transaction: str, recu_le: datetime, montant: int, datamatrix: str,
              mode: str, point_de_vente: str, compte: _Compte) -> PaiementRecu:
    """Chemin de référence (et lignes rares du chemin rapide) : décodage complet, modèle validé."""
    lu = decoder(datamatrix)
    compte.paiements += 1
    if not lu.valide:
        compte.datamatrix_invalides += 1
    return PaiementRecu.model_validate({
        "canal": "buraliste",
        "reference": transaction,
        "montant": montant,
        "recu_le": recu_le,
        "reference_facture": str(lu.numero_dette) if lu.numero_dette is not None else None,
        "details": {
            "mode": mode,
            "point_de_vente": point_de_vente,
            "datamatrix": datamatrix,  # les 130 caractères tels que lus, espaces de tête compris
            "datamatrix_valide": lu.valide,
            "datamatrix_erreurs": lu.resume_erreurs() if lu.erreurs else "",
            "montant_du": lu.montant_centimes,
            "numero_dette": lu.numero_dette,
        },
        "ligne": numero,
        "brut": brut,
    })


def _paiement_valide(numero: int, brut: str, transaction: str, recu_le: datetime, montant: int, datamatrix: str,
                     numero_dette: int, montant_du: int, mode: str, point_de_vente: str) -> PaiementRecu:
    """Chemin rapide : un datamatrix déjà contrôlé (clés et rang justes), chaque champ déjà vérifié ;
    les valeurs sont celles que `model_validate` produirait, sans la revalidation."""
    return construire_sans_valider(PaiementRecu, {
        "canal": "buraliste", "reference": transaction, "montant": montant, "recu_le": recu_le,
        "reference_facture": str(numero_dette), "remise": None,
        "details": {"mode": mode, "point_de_vente": point_de_vente, "datamatrix": datamatrix,
                    "datamatrix_valide": True, "datamatrix_erreurs": "", "montant_du": montant_du,
                    "numero_dette": numero_dette},
        "ligne": numero, "brut": brut,
    }, _CHAMPS)


def lire_releve(contenu: bytes, nom_fichier: str) -> Iterator[PaiementRecu]:
    """Donne chaque paiement du relevé au fil de la lecture ; à la fin, lève FichierRefuse s'il y a eu
    la moindre erreur, avec toutes les erreurs (ligne, champ, raison).

    Fait pour importer en flux dans une seule transaction, annulée si FichierRefuse arrive. Dès la
    première erreur plus rien n'est donné (le fichier sera refusé), mais la lecture va jusqu'au bout
    pour tout signaler.
    """
    return _lire(contenu, nom_fichier, rapide=True)


def lire_releve_flux(flux: IO[bytes], nom_fichier: str, taille_bloc: int = TAILLE_BLOC) -> Iterator[PaiementRecu]:
    """Comme `lire_releve`, sur un fichier ouvert en binaire et qu'on peut rembobiner (`seek`) : lu par
    blocs, la mémoire reste plate. Seul un relevé qui n'est pas entièrement de forme canonique (donc
    en pratique un relevé refusé) est relu en entier, depuis le début, par le chemin de référence.

    Un fichier de plus d'un bloc dont un octet n'est pas de l'UTF-8 peut avoir donné les paiements des
    blocs d'avant : il est refusé à la fin comme tout autre (la transaction de l'appelant est annulée).
    """
    return _lire(flux, nom_fichier, rapide=True, taille_bloc=taille_bloc)


def _lire(source: bytes | IO[bytes], nom_fichier: str, *, rapide: bool,
          taille_bloc: int = TAILLE_BLOC) -> Iterator[PaiementRecu]:
    flux = io.BytesIO(source) if isinstance(source, bytes | bytearray) else source
    debut = flux.tell()
    erreurs = CollecteurErreurs(nom_fichier)
    compte = _Compte()
    # Lignes déjà lues par le chemin rapide (-1 : tout le fichier) ; le chemin de référence donne la suite.
    deja_lues = (yield from _lire_canonique(flux, compte, taille_bloc)) if rapide else 0
    if deja_lues >= 0:
        flux.seek(debut)
        contenu = flux.read()
        vues: dict[str, int] = {}  # transaction → ligne : un doublon dans le même fichier est refusé
        for numero, champs, brut in lignes_csv(contenu, COLONNES, erreurs):
            if numero <= deja_lues:
                # Déjà donnée par le chemin rapide, donc canonique et contrôlée : la transaction seule.
                vues.setdefault(champs["transaction"], numero)
                continue
            paiement = _lire_ligne(numero, champs, brut, vues, erreurs, compte)
            if paiement is not None:
                yield paiement
    _log.info("releve_buralistes_lu", fichier=nom_fichier, paiements=compte.paiements,
              datamatrix_invalides=compte.datamatrix_invalides, erreurs=len(erreurs.erreurs))
    erreurs.verifier()


def _lire_canonique(flux: IO[bytes], compte: _Compte, taille_bloc: int) -> Generator[PaiementRecu, None, int]:
    """Chemin rapide : donne les paiements des lignes canoniques et contrôlées, bloc par bloc. Renvoie
    -1 s'il est allé au bout du fichier, sinon le numéro de la dernière ligne lue avant la première
    ligne qui n'est pas canonique ou dont un contrôle échoue (0 : pas même l'en-tête)."""
    lecteur = _LecteurCanonique(compte)
    tampon = b""
    numero = 0
    while True:
        bloc = flux.read(taille_bloc)
        if bloc:
            tampon += bloc
            # Couper après la dernière fin de ligne sûre : un « \r » final peut précéder un « \n » à venir.
            coupe = max(tampon.rfind(b"\n"), tampon.rfind(b"\r", 0, len(tampon) - 1)) + 1
            if coupe == 0:
                continue
            partie, tampon = tampon[:coupe], tampon[coupe:]
        else:
            partie, tampon = tampon, b""
        if numero == 0 and partie.startswith(_BOM):
            partie = partie[len(_BOM):]
        try:
            texte = partie.decode("utf-8")
        except UnicodeDecodeError:
            return numero
        pos = 0
        if numero == 0:
            m = _ENTETE.match(texte)
            if m is None:
                return 0
            lecteur.separateur = m.group(1)
            pos, numero = m.end(), 1
        numero, complet = yield from lecteur.lignes(texte, pos, numero)
        if not complet:
            return numero
        if not bloc:
            return -1


class _LecteurCanonique:
    """Le chemin rapide et son état d'un bloc à l'autre (transactions vues, caches)."""

    def __init__(self, compte: _Compte) -> None:
        self.compte = compte
        self.separateur = "\r\n"
        # Empreintes des transactions vues : un doublon (ou une collision d'empreintes, improbable)
        # rend la main au chemin de référence, qui dit la ligne de la première occurrence.
        self.vues: set[int] = set()
        self.dates: dict[str, datetime] = {}
        self.montants: dict[str, int] = {}
        self.points_de_vente: set[str] = set()

    def lignes(self, texte: str, pos: int, numero: int) -> Generator[PaiementRecu, None, tuple[int, bool]]:
        """Les lignes de `texte` à partir de `pos` (la ligne `numero` + 1) : (dernière ligne lue, au bout ?)."""
        lignes = texte[pos:].split(self.separateur) if pos else texte.split(self.separateur)
        if lignes and not lignes[-1]:
            lignes.pop()  # après la dernière fin de ligne
        colonnes = self.colonnes(lignes)
        if colonnes is not None:
            yield from self.donner(lignes, numero, *colonnes)
            return numero + len(lignes), True
        return (yield from self.une_a_une(lignes, texte, pos, numero))

    def colonnes(self, lignes: list[str]) -> tuple[list[str], list[datetime], list[str], list[int], list[str],
                                                   list[str]] | None:
        """Tout le bloc d'un coup, colonne par colonne (boucles en C) : les mêmes contrôles que `une_a_une`
        ligne à ligne. Les colonnes (transaction, date-heure, datamatrix, montant, mode, point de vente)
        si toutes les lignes les passent, sinon None (et rien n'a changé dans l'état du lecteur)."""
        n = len(lignes)
        if not n:
            return None
        points_virgules = list(map(str.count, lignes, repeat(";", n)))
        if min(points_virgules) != 5 or max(points_virgules) != 5:
            return None
        champs = ";".join(lignes).split(";")
        transactions, dates_heures, datamatrix = champs[0::6], champs[1::6], champs[2::6]
        montants_lus, modes, points_de_vente = champs[3::6], champs[4::6], champs[5::6]
        tout = "".join(transactions)
        if (min(map(len, transactions)) < 1 or max(map(len, transactions)) > TRANSACTION_MAXI
                or not tout.isprintable() or " " in tout or '"' in tout):
            return None
        # Datamatrix : entre guillemets, ASCII imprimable sans autre guillemet.
        tout = "".join(datamatrix)
        if (not tout.isascii() or min(map(len, datamatrix)) < 2
                or tout.encode("ascii").translate(None, _IMPRIMABLES_SANS_GUILLEMET) != b'"' * (2 * n)
                or "".join(map(itemgetter(0), datamatrix)) != '"' * n
                or "".join(map(itemgetter(-1), datamatrix)) != '"' * n):
            return None
        if not _MODES.issuperset(modes):
            return None
        nouveaux = set(points_de_vente).difference(self.points_de_vente)
        if not all(map(self.point_de_vente, nouveaux)):
            return None
        recus = self.valeurs(dates_heures, self.dates, _date_heure)
        montants = self.valeurs(montants_lus, self.montants, _montant)
        if recus is None or montants is None:
            return None
        empreintes = set(map(hash, transactions))
        if len(empreintes) != n or not self.vues.isdisjoint(empreintes):
            return None
        self.vues |= empreintes
        return transactions, recus, datamatrix, montants, modes, points_de_vente

    @staticmethod
    def valeurs(textes: list[str], cache: dict[str, _V], lire: Callable[[str], _V | None]) -> list[_V] | None:
        """La valeur de chaque texte par le cache, chaque texte distinct lu une fois ; None si l'un est illisible."""
        distincts = set(textes)
        nouveaux = distincts.difference(cache)
        if len(cache) + len(nouveaux) > _CACHE_MAXI:
            cache.clear()
            nouveaux = distincts
        for texte in nouveaux:
            valeur = lire(texte)
            if valeur is None:
                return None
            cache[texte] = valeur
        return list(map(cache.__getitem__, textes))

    def donner(self, lignes: list[str], numero: int, transactions: list[str], recus: list[datetime],
               datamatrix: list[str], montants: list[int], modes: list[str], points_de_vente: list[str],
               ) -> Iterator[PaiementRecu]:
        """Les paiements d'un bloc dont toutes les lignes sont canoniques : reste le datamatrix, contrôlé
        en bloc ; celui qui n'est pas valide (ou pas de 130 caractères) est décodé en détail, ligne à ligne."""
        charges = list(map(itemgetter(slice(1, -1)), datamatrix))
        a_controler = charges if min(map(len, charges)) == max(map(len, charges)) == LONGUEUR else [
            c if len(c) == LONGUEUR else _INVALIDE for c in charges]
        valides, dettes, montants_dus = controler_en_bloc(a_controler)
        compte = self.compte
        for n, brut, transaction, recu_le, charge, valide, dette, montant_du, montant, mode, point_de_vente in zip(
                count(numero + 1), lignes, transactions, recus, charges, valides, dettes, montants_dus, montants,
                modes, points_de_vente):
            if valide:
                yield _paiement_valide(n, brut, transaction, recu_le, montant, charge, dette, montant_du, mode,
                                       point_de_vente)
            else:
                yield _paiement(n, brut, transaction, recu_le, montant, charge, mode, point_de_vente, compte)
        compte.paiements += sum(valides)

    def une_a_une(self, lignes: list[str], texte: str, pos: int,
                  numero: int) -> Generator[PaiementRecu, None, tuple[int, bool]]:
        """Un bloc dont une ligne au moins n'est pas canonique : ligne à ligne, jusqu'à elle."""
        separateur = self.separateur
        vues, dates, montants, points_de_vente = self.vues, self.dates, self.montants, self.points_de_vente
        forme = _DATAMATRIX_FORME.fullmatch
        modes = _MODES
        compte = self.compte
        n = numero
        for i, ligne in enumerate(lignes):
            champs = ligne.split(";")
            if len(champs) != 6:
                break
            transaction, date_heure, datamatrix, montant_lu, mode, point_de_vente = champs
            # Sans espace ni guillemet : la transaction est lue telle quelle par les deux chemins.
            if (not 0 < len(transaction) <= TRANSACTION_MAXI or not transaction.isprintable()
                    or " " in transaction or '"' in transaction):
                break
            recu_le = dates.get(date_heure) or self.date(date_heure)
            montant = montants.get(montant_lu) or self.montant(montant_lu)
            if (recu_le is None or montant is None or mode not in modes
                    or (point_de_vente not in points_de_vente and not self.point_de_vente(point_de_vente))):
                break
            empreinte = hash(transaction)
            if empreinte in vues:
                break
            m = forme(datamatrix)
            if m is not None:
                payload, bloc5, _, _, _, _, cle5, cle2, rang_lu, dette, codique, cle1, montant_du_lu = m.groups()
                numero_dette, rang, montant_du = int(dette), int(rang_lu), int(montant_du_lu)
                if mois_si_cles_justes(bloc5, cle5, cle2, rang, numero_dette, codique, cle1, montant_du) is None:
                    m = None
            if m is None:
                if _DATAMATRIX.fullmatch(datamatrix) is None:
                    break
                vues.add(empreinte)
                n = numero + i + 1
                yield _paiement(n, ligne, transaction, recu_le, montant, datamatrix[1:-1], mode, point_de_vente,
                                compte)
                continue
            vues.add(empreinte)
            n = numero + i + 1
            compte.paiements += 1
            yield _paiement_valide(n, ligne, transaction, recu_le, montant, payload, numero_dette, montant_du, mode,
                                   point_de_vente)
        else:
            return numero + len(lignes), True
        # Une ligne que la découpe ne prend pas : le reste du bloc au caractère près.
        debut = pos + sum(map(len, lignes[:i])) + i * len(separateur)
        return (yield from self.au_caractere(texte, debut, numero + i))

    def au_caractere(self, texte: str, pos: int, numero: int) -> Generator[PaiementRecu, None, tuple[int, bool]]:
        """Le reste du bloc ligne à ligne par une expression régulière (lignes blanches, fins de ligne mêlées)."""
        fin = len(texte)
        while pos < fin:
            m = _LIGNE.match(texte, pos)
            if m is None:
                b = _BLANCHE.match(texte, pos)
                if b is None or b.end() == pos:
                    return numero, False
                pos, numero = b.end(), numero + 1
                continue
            transaction, date_heure, datamatrix, euros, cents, mode, point_de_vente, _ = m.groups()
            recu_le = self.date(date_heure)
            montant = int(euros) * 100 + int(cents)
            empreinte = hash(transaction)
            if recu_le is None or montant == 0 or empreinte in self.vues:
                return numero, False  # le chemin de référence reprend à cette ligne et dit ce qui ne va pas
            self.vues.add(empreinte)
            numero += 1
            yield _paiement(numero, texte[pos:m.start(8)], transaction, recu_le, montant, datamatrix, mode,
                            point_de_vente, self.compte)
            pos = m.end()
        return numero, True

    def date(self, date_heure: str) -> datetime | None:
        recu_le = self.dates.get(date_heure)
        if recu_le is None:
            recu_le = _date_heure(date_heure)
            if recu_le is not None:
                if len(self.dates) >= _CACHE_MAXI:
                    self.dates.clear()
                self.dates[date_heure] = recu_le
        return recu_le

    def montant(self, texte: str) -> int | None:
        montant = self.montants.get(texte)
        if montant is None:
            montant = _montant(texte)
            if montant is not None:
                if len(self.montants) >= _CACHE_MAXI:
                    self.montants.clear()
                self.montants[texte] = montant
        return montant

    def point_de_vente(self, point_de_vente: str) -> bool:
        """Lu tel quel par les deux chemins : 1 à 200 caractères imprimables, sans espace ni guillemet."""
        if (not 0 < len(point_de_vente) <= POINT_DE_VENTE_MAXI or not point_de_vente.isprintable()
                or " " in point_de_vente or '"' in point_de_vente):
            return False
        if len(self.points_de_vente) >= _CACHE_MAXI:
            self.points_de_vente.clear()
        self.points_de_vente.add(point_de_vente)
        return True


def _date_heure(texte: str) -> datetime | None:
    """Date-heure ISO 8601 avec fuseau, ou None."""
    if _DATE_HEURE_RE.fullmatch(texte) is None:
        return None
    try:
        return datetime.fromisoformat(texte.replace("Z", "+00:00"))
    except ValueError:
        return None


def _montant(texte: str) -> int | None:
    """« euros.centimes » en centimes, strictement positif, ou None."""
    m = _MONTANT_RE.fullmatch(texte)
    if m is None:
        return None
    return int(m.group(1)) * 100 + int(m.group(2)) or None


def _lire_ligne(numero: int, champs: dict[str, str], brut: str, vues: dict[str, int],
                erreurs: CollecteurErreurs, compte: _Compte) -> PaiementRecu | None:
    """Chemin de référence : chaque champ par les lecteurs communs, chaque erreur notée."""
    transaction = champ_texte(champs["transaction"], numero, "transaction", erreurs, maxi=TRANSACTION_MAXI)
    recu_le = champ_date_heure(champs["date_heure"], numero, "date_heure", erreurs)
    montant = champ_montant(champs["montant"], numero, "montant", erreurs)
    mode = champs["mode"].strip()
    if mode not in MODES:
        erreurs.ajouter(numero, "mode", f"« {champs['mode']} » : ESPECES ou CARTE attendu")
    point_de_vente = champ_texte(champs["point_de_vente"], numero, "point_de_vente", erreurs,
                                 maxi=POINT_DE_VENTE_MAXI)
    if transaction is not None:
        premiere = vues.setdefault(transaction, numero)
        if premiere != numero:
            erreurs.ajouter(numero, "transaction", f"« {transaction} » figure déjà ligne {premiere}")
    if erreurs or transaction is None or recu_le is None or montant is None or point_de_vente is None:
        return None  # le fichier sera refusé : inutile de décoder
    # Le champ brut, pas un champ nettoyé : les espaces de tête font partie des 130 caractères.
    return _paiement(numero, brut, transaction, recu_le, montant, champs["datamatrix"], mode, point_de_vente,
                     compte)
