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
par blocs de 256 Kio (la mémoire reste plate, hormis l'empreinte de chaque transaction vue : un entier
dans un ensemble, ~64 octets, 64 Mio pour un million de lignes) : un bloc est contrôlé colonne par
colonne (boucles en C, une lecture par date ou montant distinct, les clés des datamatrix par
`controler_octets`), et les paiements construits à la demande,
un appel par ligne et sans revalidation pydantic, puis donnés un à un par `itertools.chain` ; un bloc
dont une ligne n'a pas cette forme est lu ligne à ligne jusqu'à elle. À la première ligne qui n'a pas
cette forme ou dont un contrôle échoue, le chemin de référence relit le fichier depuis
le début (sans redonner les paiements déjà donnés) : c'est lui qui formule chaque erreur. Les
tests vérifient que les chemins donnent les mêmes paiements et les mêmes erreurs.
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable, Generator, Iterable, Iterator
from datetime import datetime
from itertools import chain, count, repeat
from operator import itemgetter
from typing import IO, Final, TypeVar

import structlog

from connecteurs.buralistes.datamatrix import (
    LONGUEUR,
    controler_octets,
    decoder,
    mois_si_cles_justes,
    motif_forme,
    valeurs_en_bloc,
)
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
TAILLE_BLOC: Final = 1 << 18  # 256 Kio : assez pour amortir les appels, assez peu pour rester en cache

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
_SANS_GUILLEMETS = itemgetter(slice(1, -1))
_INVALIDE = " " * LONGUEUR  # tient la place d'une charge utile d'une autre longueur : invalide
_CACHE_MAXI = 50_000  # dates, montants, points de vente : du bruit ne doit pas faire grossir les caches

# Champs posés par le lecteur (`remise` garde sa valeur par défaut) : ceux qu'aurait `model_validate`.
_CHAMPS: Final = {"canal", "reference", "montant", "recu_le", "reference_facture", "details", "ligne", "brut"}


class Empreintes:
    """Les transactions déjà vues, par empreinte de 64 bits (`hash`, calculée une fois par chaîne).

    Un doublon, ou une collision d'empreintes (vraisemblance ~ n² / 2^65), fait répondre « déjà vue » :
    le chemin rapide rend alors la main au chemin de référence, qui compare les transactions elles-mêmes.
    Une collision ne fait donc jamais perdre ni accepter un paiement à tort ; elle coûte la relecture.
    Les empreintes changent d'un processus à l'autre (`hash` est salé), les résultats non.

    Un `set` d'entiers (~64 octets par transaction) : essayé, un tableau `array('q')` à adressage ouvert
    (16 octets par transaction) coûte 3 à 5 fois plus cher par ligne, le sondage des cases prises ne se
    faisant pas en C ; la bibliothèque standard n'a pas de structure compacte à appartenance en C.
    """

    __slots__ = ("_vues",)

    def __init__(self) -> None:
        self._vues: set[int] = set()

    def __len__(self) -> int:
        return len(self._vues)

    def ajouter_si_nouvelles(self, transactions: list[str]) -> bool:
        """Ajoute les transactions si aucune n'a d'empreinte déjà vue ni en double ; sinon ne change rien."""
        empreintes = list(map(_empreinte, transactions))
        vues = self._vues
        if not vues.isdisjoint(empreintes):
            return False
        avant = len(vues)
        vues.update(empreintes)
        if len(vues) - avant != len(empreintes):  # un doublon dans le lot : aucune n'était là, on les retire
            vues.difference_update(empreintes)
            return False
        return True

    def ajouter_si_nouvelle(self, transaction: str) -> bool:
        empreinte = _empreinte(transaction)
        if empreinte in self._vues:
            return False
        self._vues.add(empreinte)
        return True


_empreinte: Callable[[str], int] = hash  # une variable : les tests y forcent des collisions


class _Compte:
    __slots__ = ("datamatrix_invalides", "paiements")

    def __init__(self) -> None:
        self.paiements = 0
        self.datamatrix_invalides = 0


def _paiement(numero: int, brut: str, transaction: str, recu_le: datetime, montant: int, datamatrix: str,
              mode: str, point_de_vente: str, compte: _Compte, *, valider: bool = True) -> PaiementRecu:
    """Décodage complet. Modèle validé pour le chemin de référence ; `valider` à False pour les lignes du
    chemin rapide, dont chaque champ est déjà contrôlé : les mêmes valeurs, sans la revalidation."""
    lu = decoder(datamatrix)
    compte.paiements += 1
    if not lu.valide:
        compte.datamatrix_invalides += 1
    reference_facture = str(lu.numero_dette) if lu.numero_dette is not None else None
    details: dict[str, str | int | bool | None] = {
        "mode": mode,
        "point_de_vente": point_de_vente,
        "datamatrix": datamatrix,  # les 130 caractères tels que lus, espaces de tête compris
        "datamatrix_valide": lu.valide,
        "datamatrix_erreurs": lu.resume_erreurs() if lu.erreurs else "",
        "montant_du": lu.montant_centimes,
        "numero_dette": lu.numero_dette,
    }
    if not valider:
        return construire_sans_valider(PaiementRecu, {
            "canal": "buraliste", "reference": transaction, "montant": montant, "recu_le": recu_le,
            "reference_facture": reference_facture, "remise": None, "details": details, "ligne": numero,
            "brut": brut}, _CHAMPS)
    return PaiementRecu.model_validate({
        "canal": "buraliste", "reference": transaction, "montant": montant, "recu_le": recu_le,
        "reference_facture": reference_facture, "details": details, "ligne": numero, "brut": brut})


def _paiement_du_bloc(valide: bool, numero: int, brut: str, transaction: str, recu_le: datetime, montant: int,
                      datamatrix: str, numero_dette: int, montant_du: int, mode: str, point_de_vente: str,
                      compte: _Compte) -> PaiementRecu:
    """Une ligne contrôlée. Datamatrix valide : chaque champ est déjà vérifié, les valeurs sont celles que
    `model_validate` produirait, sans la revalidation. Invalide (rare) : décodé en détail pour dire ce qui
    est faux."""
    if valide:
        return construire_sans_valider(PaiementRecu, {
            "canal": "buraliste", "reference": transaction, "montant": montant, "recu_le": recu_le,
            "reference_facture": str(numero_dette), "remise": None,
            "details": {"mode": mode, "point_de_vente": point_de_vente, "datamatrix": datamatrix,
                        "datamatrix_valide": True, "datamatrix_erreurs": "", "montant_du": montant_du,
                        "numero_dette": numero_dette},
            "ligne": numero, "brut": brut,
        }, _CHAMPS)
    return _paiement(numero, brut, transaction, recu_le, montant, datamatrix, mode, point_de_vente, compte,
                     valider=False)


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
    # Les paiements viennent par lots (un bloc du chemin rapide) : `chain` les donne un à un en C, sans
    # réveiller une pile de générateurs pour chacun.
    return chain.from_iterable(_lots(source, nom_fichier, rapide=rapide, taille_bloc=taille_bloc))


def _lots(source: bytes | IO[bytes], nom_fichier: str, *, rapide: bool,
          taille_bloc: int) -> Iterator[Iterable[PaiementRecu]]:
    flux = io.BytesIO(source) if isinstance(source, bytes | bytearray) else source
    debut = flux.tell()
    erreurs = CollecteurErreurs(nom_fichier)
    compte = _Compte()
    # Lignes déjà lues par le chemin rapide (-1 : tout le fichier) ; le chemin de référence donne la suite.
    deja_lues = (yield from _lire_canonique(flux, compte, taille_bloc)) if rapide else 0
    if deja_lues >= 0:
        yield _lire_reference(flux, debut, deja_lues, erreurs, compte)
    # Atteint une fois le dernier lot épuisé : le compte est complet.
    _log.info("releve_buralistes_lu", fichier=nom_fichier, paiements=compte.paiements,
              datamatrix_invalides=compte.datamatrix_invalides, erreurs=len(erreurs.erreurs))
    erreurs.verifier()


def _lire_reference(flux: IO[bytes], debut: int, deja_lues: int, erreurs: CollecteurErreurs,
                    compte: _Compte) -> Iterator[PaiementRecu]:
    """Chemin de référence, depuis le début du fichier : il donne les lignes après `deja_lues`."""
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


def _lire_canonique(flux: IO[bytes], compte: _Compte, taille_bloc: int) -> Generator[Iterable[PaiementRecu], None, int]:
    """Chemin rapide : donne les paiements des lignes canoniques et contrôlées, un lot par bloc. Renvoie
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
        lots: list[Iterable[PaiementRecu]] = []
        numero, complet = lecteur.lignes(texte, pos, numero, lots)
        yield from lots
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
        # rend la main au chemin de référence, qui compare les transactions elles-mêmes.
        self.vues = Empreintes()
        self.dates: dict[str, datetime] = {}
        self.montants: dict[str, int] = {}
        self.points_de_vente: set[str] = set()

    def lignes(self, texte: str, pos: int, numero: int, sortie: list[Iterable[PaiementRecu]]) -> tuple[int, bool]:
        """Met dans `sortie` les paiements des lignes de `texte` à partir de `pos` (la ligne `numero` + 1) ;
        (dernière ligne lue, au bout ?)."""
        lignes = texte[pos:].split(self.separateur) if pos else texte.split(self.separateur)
        if lignes and not lignes[-1]:
            lignes.pop()  # après la dernière fin de ligne
        colonnes = self.colonnes(lignes)
        if colonnes is not None:
            sortie.append(self.donner(lignes, numero, *colonnes))
            return numero + len(lignes), True
        paiements: list[PaiementRecu] = []
        sortie.append(paiements)
        return self.une_a_une(lignes, texte, pos, numero, paiements)

    def colonnes(self, lignes: list[str]) -> tuple[list[str], list[datetime], list[str], list[int], list[str],
                                                   list[str], bytes, int] | None:
        """Tout le bloc d'un coup, colonne par colonne (boucles en C) : les mêmes contrôles que `une_a_une`
        ligne à ligne. Les colonnes (transaction, date-heure, charge utile sans ses guillemets, montant, mode,
        point de vente), puis les octets des charges utiles et leur pas, si toutes les lignes les passent ;
        sinon None (et rien n'a changé dans l'état du lecteur)."""
        n = len(lignes)
        if not n or list(map(str.count, lignes, repeat(";", n))).count(5) != n:
            return None
        champs = ";".join(lignes).split(";")
        transactions, dates_heures, datamatrix = champs[0::6], champs[1::6], champs[2::6]
        montants_lus, modes, points_de_vente = champs[3::6], champs[4::6], champs[5::6]
        tout = "".join(transactions)
        if ("" in transactions or max(map(len, transactions)) > TRANSACTION_MAXI
                or not tout.isprintable() or " " in tout or '"' in tout):
            return None
        if not _MODES.issuperset(modes):
            return None
        if not self.points_de_vente.issuperset(points_de_vente):
            nouveaux = set(points_de_vente).difference(self.points_de_vente)
            if not all(map(self.point_de_vente, nouveaux)):
                return None
        # Datamatrix : entre guillemets, ASCII imprimable sans autre guillemet.
        tout = "".join(datamatrix)
        if not tout.isascii():
            return None
        largeur = LONGUEUR + 2
        meme_largeur = len(tout) == largeur * n and min(map(len, datamatrix)) == largeur
        if meme_largeur:
            # Tous de 130 caractères (le cas d'un relevé) : les guillemets sont dans deux colonnes.
            if tout[0::largeur] != '"' * n or tout[largeur - 1::largeur] != '"' * n:
                return None
        elif (min(map(len, datamatrix)) < 2 or "".join(map(itemgetter(0), datamatrix)) != '"' * n
                or "".join(map(itemgetter(-1), datamatrix)) != '"' * n):
            return None
        octets = tout.encode("ascii")
        if octets.translate(None, _IMPRIMABLES_SANS_GUILLEMET) != b'"' * (2 * n):
            return None
        recus = self.valeurs(dates_heures, self.dates, _date_heure)
        if recus is None:
            return None
        montants = self.valeurs(montants_lus, self.montants, _montant)
        if montants is None or not self.vues.ajouter_si_nouvelles(transactions):
            return None
        charges = list(map(_SANS_GUILLEMETS, datamatrix))
        # Les octets des charges utiles, pour le contrôle en bloc : ceux déjà lus s'ils font tous 130 caractères ;
        # sinon une charge utile d'une autre longueur y tient sa place par des espaces (invalides).
        if not meme_largeur:
            octets, largeur = "".join(c if len(c) == LONGUEUR else _INVALIDE for c in charges).encode("ascii"), LONGUEUR
        return transactions, recus, charges, montants, modes, points_de_vente, octets, largeur

    @staticmethod
    def valeurs(textes: list[str], cache: dict[str, _V], lire: Callable[[str], _V | None]) -> list[_V] | None:
        """La valeur de chaque texte par le cache, chaque texte distinct lu une fois ; None si l'un est illisible."""
        try:
            return list(map(cache.__getitem__, textes))  # le plus souvent, tout est déjà connu : un seul passage
        except KeyError:
            pass
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
               charges: list[str], montants: list[int], modes: list[str], points_de_vente: list[str],
               octets: bytes, pas: int) -> Iterator[PaiementRecu]:
        """Les paiements d'un bloc dont toutes les lignes sont canoniques : reste le datamatrix, contrôlé
        en bloc ; celui qui n'est pas valide (ou pas de 130 caractères) est décodé en détail, ligne à ligne.

        Construits à la demande, un appel par ligne (pas de liste : chaque paiement est libéré dès que
        l'appelant le lâche, pendant qu'il est encore en cache)."""
        # Guillemets compris (pas de 132), la charge utile commence au deuxième octet.
        valides = controler_octets(octets, len(charges), pas, 1 if pas > LONGUEUR else 0)
        valides, dettes, montants_dus = valeurs_en_bloc(charges, valides)
        self.compte.paiements += valides.count(1)  # les invalides sont comptés par `_paiement`
        return map(_paiement_du_bloc, valides, count(numero + 1), lignes, transactions, recus, montants, charges,
                   dettes, montants_dus, modes, points_de_vente, repeat(self.compte))

    def une_a_une(self, lignes: list[str], texte: str, pos: int, numero: int,
                  sortie: list[PaiementRecu]) -> tuple[int, bool]:
        """Un bloc dont une ligne au moins n'est pas canonique : ligne à ligne, jusqu'à elle."""
        separateur = self.separateur
        vues, dates, montants, points_de_vente = self.vues, self.dates, self.montants, self.points_de_vente
        forme = _DATAMATRIX_FORME.fullmatch
        modes = _MODES
        compte = self.compte
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
            m = forme(datamatrix)
            if m is not None:
                payload, bloc5, _, _, _, _, cle5, cle2, rang_lu, dette, codique, cle1, montant_du_lu = m.groups()
                numero_dette, rang, montant_du = int(dette), int(rang_lu), int(montant_du_lu)
                if mois_si_cles_justes(bloc5, cle5, cle2, rang, numero_dette, codique, cle1, montant_du) is None:
                    m = None
            if m is None and _DATAMATRIX.fullmatch(datamatrix) is None:
                break
            if not vues.ajouter_si_nouvelle(transaction):
                break
            n = numero + i + 1
            if m is None:
                sortie.append(_paiement(n, ligne, transaction, recu_le, montant, datamatrix[1:-1], mode,
                                        point_de_vente, compte, valider=False))
                continue
            compte.paiements += 1
            sortie.append(_paiement_du_bloc(True, n, ligne, transaction, recu_le, montant, payload, numero_dette,
                                            montant_du, mode, point_de_vente, compte))
        else:
            return numero + len(lignes), True
        # Une ligne que la découpe ne prend pas : le reste du bloc au caractère près.
        debut = pos + sum(map(len, lignes[:i])) + i * len(separateur)
        return self.au_caractere(texte, debut, numero + i, sortie)

    def au_caractere(self, texte: str, pos: int, numero: int, sortie: list[PaiementRecu]) -> tuple[int, bool]:
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
            if recu_le is None or montant == 0 or not self.vues.ajouter_si_nouvelle(transaction):
                return numero, False  # le chemin de référence reprend à cette ligne et dit ce qui ne va pas
            numero += 1
            sortie.append(_paiement(numero, texte[pos:m.start(8)], transaction, recu_le, montant, datamatrix, mode,
                                    point_de_vente, self.compte, valider=False))
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
