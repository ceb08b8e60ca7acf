"""PES V2 `PES_Aller` portant des titres de recettes (specs/pes.md).

Écriture en flux avec `lxml.etree.xmlfile` : l'en-tête, puis chaque pièce dès qu'elle arrive
(un arbre `Piece` réutilisé dont on change les valeurs, jamais tout le fichier en mémoire).
Chaque invariant est vérifié AVANT d'écrire l'élément qu'il concerne ; les totaux d'un
bordereau (NbrPce, MtBordHt), écrits avant ses pièces, sont annoncés par l'appelant et
contrôlés au fil de l'eau. Une erreur lève
`PesInvalide` : le fichier en cours est alors inutilisable, l'appelant écrit dans un
fichier temporaire et ne le renomme qu'en cas de succès.

Les longueurs, motifs et codes viennent du schéma officiel (PES V2 5.30, `Simple_Type.xsd`,
`NS_Recette/r0/`), dans l'ordre exact des éléments attendu par le schéma.
"""

from __future__ import annotations

import functools
import hashlib
import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from typing import BinaryIO, NamedTuple

import structlog
from lxml import etree

from regie.erreurs import ErreurRegie
from regie.montants import centimes_en_euros

NS_ALLER = "http://www.minefi.gouv.fr/cp/helios/pes_v2/Rev0/aller"
TYPE_FICHIER = "PESALR2"
ENCODAGE = "ISO-8859-1"

# Plafonds du schéma (Base_NumN : N chiffres au plus, > 0 ; Base_Montant : 14 chiffres dont 2 décimales).
MAX_ID_BORDEREAU = 9_999_999  # IdBord, Base_Num7
MAX_ID_PIECE = 99_999_999  # IdPce, Base_Num8
MAX_ID_LIGNE = 999_999  # IdLigne, Base_Num6
MAX_NOMBRE_PIECES = 99_999  # NbrPce, Base_Num5
MAX_NUMERO_DETTE = 999_999_999_999_999  # NumDette, Base_Num15
MAX_MONTANT_CENTIMES = 99_999_999_999_999  # Base_Montant : 999 999 999 999.99
# Longueurs des textes (Base_TexteN) : on tronque le texte libre, on refuse un identifiant trop long.
LONGUEUR_OBJET = 160  # ObjPce, ObjLignePce
LONGUEUR_ADRESSE = 38  # Nom, Prenom, Adr2, Adr3, Ville, LibelleColBud, Adresse (émetteur)
LONGUEUR_REF_TIERS = 30  # RefTiers
LONGUEUR_SIGLE = 32  # Sigle
LONGUEUR_NOM_FICHIER = 100  # NomFic

CIVILITES = ("M", "MME")

_log = structlog.get_logger()

_SIRET = re.compile(r"[0-9]{14}")
_CODIQUE = re.compile(r"02[AB][0-9]{3,4}|[0-9]{6,7}")
_CODE_COLLECTIVITE = re.compile(r"[0-9]{3}")
_CODE_BUDGET = re.compile(r"[0-9A-Z][0-9]")
_CODE_PRODUIT = re.compile(r"[0-9A-Za-z]{1,4}")
_NATURE = re.compile(r"[0-9]{1,12}")
_CODE_POSTAL = re.compile(r"[0-9]{5}")
_CLE1 = re.compile(r"[0-9]")
_CLE2 = re.compile(r"[0-9A-Za-z]")
_NOM_FICHIER = re.compile(r"[A-Za-z0-9_.\-]{1,100}")

# Caractères hors Latin-1 qu'un nom ou un libellé porte couramment : on les écrit en Latin-1
# plutôt que de les perdre (Hélios refuse le fichier entier sur ERREUR_ENCODING).
_VERS_LATIN1 = str.maketrans({
    "œ": "oe", "Œ": "OE", "€": "EUR",
    "‘": "'", "’": "'", "‚": "'", "‛": "'", "′": "'",
    "“": '"', "”": '"', "„": '"', "‟": '"', "″": '"',
    "–": "-", "—": "-", "‐": "-", "‑": "-", "−": "-",
    "…": "...", "\u202f": " ", "\u2009": " ", "\u2007": " ",
})


class PesInvalide(ErreurRegie):
    """Un invariant du PES_Aller est violé ; le message (en français) nomme le bordereau, la pièce, la ligne."""

    def __init__(self, lieu: str, raison: str) -> None:
        self.lieu = lieu
        self.raison = raison
        super().__init__(f"{lieu} : {raison}" if lieu else raison)


ErreurPes = PesInvalide


@dataclass(frozen=True, slots=True)
class Collectivite:
    siret: str  # IdColl, 14 chiffres
    codique: str  # IdPost, codique du poste comptable
    code_collectivite: str  # CodCol, 3 chiffres
    code_budget: str  # CodBud
    libelle: str  # LibelleColBud


@dataclass(frozen=True, slots=True)
class TiersPes:
    reference: str  # RefTiers : le dossier de la famille
    civilite: str  # « M » ou « MME »
    nom: str
    prenom: str
    adresse1: str  # numéro et voie (Adr2)
    adresse2: str | None  # complément (Adr3)
    code_postal: str
    ville: str


@dataclass(frozen=True, slots=True)
class LignePes:
    id_ligne: int
    objet: str
    code_produit_local: str
    nature: str
    montant_centimes: int  # ce qui reste dû sur la ligne


@dataclass(frozen=True, slots=True)
class PiecePes:
    id_piece: int
    objet: str  # « Facture <numero> <période> », voir objet_piece()
    numero_dette: int | None
    tiers: TiersPes
    lignes: Sequence[LignePes]
    montant_centimes: int | None = None  # total annoncé, contrôlé contre les lignes
    cle1: str | None = None
    cle2: str | None = None


@dataclass(frozen=True, slots=True)
class BordereauPes:
    exercice: int
    id_bordereau: int
    date_emission: date
    nombre_pieces: int  # NbrPce, écrit avant les pièces : annoncé, puis contrôlé
    montant_centimes: int  # MtBordHt, idem
    pieces: Iterable[PiecePes]


@dataclass(frozen=True, slots=True)
class ResumeBordereau:
    exercice: int
    id_bordereau: int
    nombre_pieces: int
    montant_centimes: int


@dataclass(frozen=True, slots=True)
class ResumePes:
    nom_fichier: str
    bordereaux: tuple[ResumeBordereau, ...]
    nombre_pieces: int
    nombre_lignes: int
    montant_centimes: int
    taille_octets: int
    sha256: str


def objet_piece(numero_facture: str, periode: str) -> str:
    """ObjPce d'un titre : « Facture <numero> <période> »."""
    return f"Facture {numero_facture} {periode}"


def nom_fichier_pes(siret: str, jour: date, numero_du_jour: int) -> str:
    """`PESALR2_<SIREN>_<AAMMJJ>_<NNN>.xml` ; NNN part de 001 chaque jour."""
    if not _SIRET.fullmatch(siret):
        raise PesInvalide("nom de fichier", f"SIRET « {siret} » : 14 chiffres attendus")
    if isinstance(numero_du_jour, bool) or not isinstance(numero_du_jour, int) or not 1 <= numero_du_jour <= 999:
        raise PesInvalide("nom de fichier", f"numéro du jour {numero_du_jour!r} : de 1 à 999")
    return f"{TYPE_FICHIER}_{siret[:9]}_{jour:%y%m%d}_{numero_du_jour:03d}.xml"


def en_latin1(valeur: str) -> str:
    """Texte sûr pour un attribut V en ISO-8859-1 : œ→oe, €→EUR, guillemets droits,
    accents hors Latin-1 retirés, caractères de contrôle et espaces multiples supprimés."""
    if not (valeur.isascii() and valeur.isprintable()) and not _deja_latin1(valeur):
        valeur = unicodedata.normalize("NFC", valeur.translate(_VERS_LATIN1))
        garde = []
        for car in valeur:
            code = ord(car)
            if car in "\t\r\n":
                garde.append(" ")
            elif code < 0x20 or 0x7F <= code < 0xA0:
                continue  # contrôles C0/C1 : interdits ou absurdes dans une valeur XML
            elif code <= 0xFF:
                garde.append(car)
            else:
                # ŝ → s : la lettre de base si elle existe en Latin-1, sinon rien.
                garde.extend(c for c in unicodedata.normalize("NFKD", car)
                             if ord(c) <= 0xFF and not unicodedata.combining(c) and c.isprintable())
        valeur = "".join(garde)
    return " ".join(valeur.split())


def _deja_latin1(valeur: str) -> bool:
    # « Hélène », « crèche » : déjà du Latin-1 imprimable, rien à convertir (le cas courant, et rapide).
    try:
        valeur.encode("latin-1")
    except UnicodeEncodeError:
        return False
    return valeur.isprintable()


def _alphanum_valide(valeur: str) -> bool:
    """V_BaseAlphanum du schéma : ni vide, ni « », « . », « nc », ni fait seulement de zéros."""
    return bool(valeur) and valeur not in (" ", ".", "nc") and valeur.strip("0") != ""


class _TexteRefuse(ValueError):
    pass


@functools.lru_cache(maxsize=16_384)
def _attribut_texte(valeur: str, longueur: int, tronquer: bool) -> str:
    """Valeur nettoyée et tronquée ; en cache car libellés, villes et prénoms se répètent."""
    propre = en_latin1(valeur)
    if len(propre) > longueur:
        if not tronquer:
            raise _TexteRefuse(f"« {propre} » : {longueur} caractères au plus (schéma PES)")
        propre = propre[:longueur].rstrip()
    if not _alphanum_valide(propre):
        raise _TexteRefuse(f"vide ou sans valeur (« {valeur} ») : le schéma PES exige un texte")
    return propre


def _texte(valeur: object, longueur: int, champ: str, lieu: str, *, tronquer: bool = True) -> str:
    """La valeur V d'un texte libre, en Latin-1 et tronquée à la longueur du schéma."""
    if not isinstance(valeur, str):
        raise PesInvalide(lieu, f"{champ} : texte attendu, reçu {type(valeur).__name__}")
    try:
        return _attribut_texte(valeur, longueur, tronquer)
    except _TexteRefuse as exc:
        raise PesInvalide(lieu, f"{champ} {exc}") from None


def _entier(valeur: object, maximum: int, champ: str, lieu: str) -> int:
    if isinstance(valeur, bool) or not isinstance(valeur, int) or not 1 <= valeur <= maximum:
        raise PesInvalide(lieu, f"{champ} {valeur!r} : entier de 1 à {maximum} attendu")
    return valeur


def _montant(valeur: object, champ: str, lieu: str) -> int:
    if isinstance(valeur, bool) or not isinstance(valeur, int):
        raise PesInvalide(lieu, f"{champ} {valeur!r} : un montant est un entier de centimes")
    if valeur <= 0:
        raise PesInvalide(lieu, f"{champ} {centimes_en_euros(valeur)} € : un titre ne porte que des "
                                "montants strictement positifs")
    if valeur > MAX_MONTANT_CENTIMES:
        raise PesInvalide(lieu, f"{champ} {centimes_en_euros(valeur)} € : au-delà du plafond du schéma PES")
    return valeur


@functools.lru_cache(maxsize=4096)
def _code_valide(valeur: str, motif: re.Pattern[str]) -> bool:
    # Codes produit et natures se répètent d'une ligne à l'autre : on ne les vérifie qu'une fois.
    return motif.fullmatch(valeur) is not None and _alphanum_valide(valeur)


def _code(valeur: object, motif: re.Pattern[str], champ: str, attendu: str, lieu: str) -> str:
    if not isinstance(valeur, str) or not _code_valide(valeur, motif):
        raise PesInvalide(lieu, f"{champ} « {valeur} » : {attendu}")
    return valeur


def _feuille(parent: etree._Element, nom: str, valeur: str | None = None) -> etree._Element:
    element = etree.SubElement(parent, nom)
    if valeur is not None:
        element.set("V", valeur)
    return element


class _SortieComptee:
    """Passe les octets à la sortie en calculant taille et SHA-256 (le registre des envois en a besoin)."""

    __slots__ = ("_sortie", "empreinte", "taille")

    def __init__(self, sortie: BinaryIO) -> None:
        self._sortie = sortie
        self.empreinte = hashlib.sha256()
        self.taille = 0

    def write(self, donnees: bytes) -> int:
        self.empreinte.update(donnees)
        self.taille += len(donnees)
        self._sortie.write(donnees)
        return len(donnees)


# Valeurs vérifiées, prêtes à écrire : des NamedTuple, plus rapides à créer à 100 000 pièces.
class _TiersVerifie(NamedTuple):
    reference: str
    civilite: str
    nom: str
    prenom: str
    adr2: str
    adr3: str | None
    code_postal: str
    ville: str


class _LigneVerifiee(NamedTuple):
    id_ligne: str
    objet: str
    code_produit_local: str
    nature: str
    montant: str


class _PieceVerifiee(NamedTuple):
    id_piece: str
    objet: str
    numero_dette: str | None
    cle1: str | None
    cle2: str | None
    tiers: _TiersVerifie
    lignes: tuple[_LigneVerifiee, ...]
    montant_centimes: int


def _verifier_tiers(tiers: TiersPes, lieu: str) -> _TiersVerifie:
    if not isinstance(tiers, TiersPes):
        raise PesInvalide(lieu, "tiers absent : un titre a un débiteur")
    lieu_t = f"{lieu}, tiers"
    reference = _texte(tiers.reference, LONGUEUR_REF_TIERS, "référence du tiers (dossier)", lieu_t, tronquer=False)
    if tiers.civilite not in CIVILITES:
        raise PesInvalide(lieu_t, f"civilité « {tiers.civilite} » : « M » ou « MME » seulement (Hélios rejette "
                                  "toute autre valeur)")
    nom = _texte(tiers.nom, LONGUEUR_ADRESSE, "nom", lieu_t)
    prenom = _texte(tiers.prenom, LONGUEUR_ADRESSE, "prénom", lieu_t)
    adr2 = _texte(tiers.adresse1, LONGUEUR_ADRESSE, "adresse (numéro et voie)", lieu_t)
    adr3 = None
    if tiers.adresse2 is not None and en_latin1(tiers.adresse2):
        adr3 = _texte(tiers.adresse2, LONGUEUR_ADRESSE, "complément d'adresse", lieu_t)
    if not isinstance(tiers.code_postal, str) or not _CODE_POSTAL.fullmatch(tiers.code_postal):
        raise PesInvalide(lieu_t, f"code postal « {tiers.code_postal} » : exactement 5 chiffres (99999 à "
                                  "l'étranger)")
    ville = _texte(tiers.ville, LONGUEUR_ADRESSE, "ville", lieu_t)
    return _TiersVerifie(reference, tiers.civilite, nom, prenom, adr2, adr3, tiers.code_postal, ville)


def verifier_piece(piece: PiecePes, lieu_bordereau: str) -> _PieceVerifiee:
    """Tous les invariants d'une pièce, avant qu'un octet n'en soit écrit ; les valeurs sortent prêtes."""
    if not isinstance(piece, PiecePes):
        raise PesInvalide(lieu_bordereau, f"pièce attendue, reçu {type(piece).__name__}")
    _entier(piece.id_piece, MAX_ID_PIECE, "IdPce", lieu_bordereau)
    lieu = f"{lieu_bordereau}, pièce {piece.id_piece}"
    objet = _texte(piece.objet, LONGUEUR_OBJET, "objet de la pièce", lieu)
    if piece.numero_dette is not None:
        _entier(piece.numero_dette, MAX_NUMERO_DETTE, "numéro de dette", lieu)
    if piece.cle1 is not None:
        _code(piece.cle1, _CLE1, "Cle1", "un chiffre", lieu)
    if piece.cle2 is not None:
        _code(piece.cle2, _CLE2, "Cle2", "un caractère alphanumérique", lieu)
    if not piece.lignes:
        raise PesInvalide(lieu, "aucune ligne : un titre a au moins une ligne")
    tiers = _verifier_tiers(piece.tiers, lieu)
    total = 0
    vus: set[int] = set()
    lignes = []
    for ligne in piece.lignes:
        if not isinstance(ligne, LignePes):
            raise PesInvalide(lieu, f"ligne attendue, reçu {type(ligne).__name__}")
        _entier(ligne.id_ligne, MAX_ID_LIGNE, "IdLigne", lieu)
        lieu_l = f"{lieu}, ligne {ligne.id_ligne}"
        if ligne.id_ligne in vus:
            raise PesInvalide(lieu_l, "IdLigne en double dans la pièce")
        vus.add(ligne.id_ligne)
        montant = _montant(ligne.montant_centimes, "montant de la ligne", lieu_l)
        total += montant
        lignes.append(_LigneVerifiee(
            str(ligne.id_ligne),
            _texte(ligne.objet, LONGUEUR_OBJET, "objet de la ligne", lieu_l),
            _code(ligne.code_produit_local, _CODE_PRODUIT, "code produit local (CodProdLoc)",
                  "1 à 4 caractères alphanumériques", lieu_l),
            _code(ligne.nature, _NATURE, "nature", "compte par nature, 1 à 12 chiffres", lieu_l),
            centimes_en_euros(montant),
        ))
    _montant(total, "total des lignes", lieu)
    if piece.montant_centimes is not None and piece.montant_centimes != total:
        raise PesInvalide(lieu, f"les lignes font {centimes_en_euros(total)} € mais la pièce annonce "
                                f"{centimes_en_euros(piece.montant_centimes)} €")
    return _PieceVerifiee(
        str(piece.id_piece), objet,
        None if piece.numero_dette is None else str(piece.numero_dette),
        piece.cle1, piece.cle2, tiers, tuple(lignes), total)


class _GabaritPiece:
    """Un arbre `Piece` réutilisé : avant chaque écriture on n'y change que les attributs V.

    Construire ~90 éléments par pièce coûterait plus que tout le reste ; un gabarit par forme
    de pièce (nombre de lignes, éléments facultatifs présents) garde l'écriture en flux rapide,
    lxml continuant d'échapper chaque valeur. Seules les valeurs qui changent d'une pièce à la
    suivante sont réécrites (prestations, villes, civilités se répètent).
    """

    def __init__(self, forme: tuple[int, bool, bool, bool, bool]) -> None:
        n_lignes, dette, cle1, cle2, adr3 = forme
        self.piece = etree.Element("Piece")
        variables: list[etree._Element] = []
        bloc = _feuille(self.piece, "BlocPiece")
        variables.append(_feuille(bloc, "IdPce"))
        _feuille(bloc, "TypPce", "01")  # titre ordinaire
        _feuille(bloc, "NatPce", "01")  # fonctionnement
        variables.append(_feuille(bloc, "ObjPce"))
        for present, nom in ((dette, "NumDette"), (cle1, "Cle1"), (cle2, "Cle2")):
            if present:
                variables.append(_feuille(bloc, nom))
        for _ in range(n_lignes):
            ligne = _feuille(self.piece, "LigneDePiece")
            info = _feuille(_feuille(ligne, "BlocLignePiece"), "InfoLignePiece")
            variables.extend(_feuille(info, nom) for nom in ("IdLigne", "ObjLignePce", "CodProdLoc", "Nature"))
            _feuille(info, "Majo", "0")
            _feuille(info, "TvaIntraCom", "0")
            variables.append(_feuille(info, "MtHT"))
            tiers = _feuille(ligne, "Tiers")
            info_tiers = _feuille(tiers, "InfoTiers")
            variables.append(_feuille(info_tiers, "RefTiers"))
            _feuille(info_tiers, "CatTiers", "01")  # personne physique
            _feuille(info_tiers, "NatJur", "01")  # particulier
            _feuille(info_tiers, "TypTiers", "01")  # débiteur principal
            variables.extend(_feuille(info_tiers, nom) for nom in ("Civilite", "Nom", "Prenom"))
            adresse = _feuille(tiers, "Adresse")
            _feuille(adresse, "TypAdr", "1")  # principale
            variables.extend(_feuille(adresse, nom) for nom in (("Adr2", "Adr3", "CP", "Ville") if adr3
                                                                 else ("Adr2", "CP", "Ville")))
            _feuille(adresse, "CodRes", "0")  # résident
        self._variables = variables
        self._courantes: list[str | None] = [None] * len(variables)

    @staticmethod
    def forme(piece: _PieceVerifiee) -> tuple[int, bool, bool, bool, bool]:
        return (len(piece.lignes), piece.numero_dette is not None, piece.cle1 is not None,
                piece.cle2 is not None, piece.tiers.adr3 is not None)

    def remplir(self, piece: _PieceVerifiee) -> etree._Element:
        valeurs = [piece.id_piece, piece.objet]
        valeurs.extend(v for v in (piece.numero_dette, piece.cle1, piece.cle2) if v is not None)
        t = piece.tiers
        tiers = [v for v in (t.reference, t.civilite, t.nom, t.prenom, t.adr2, t.adr3, t.code_postal, t.ville)
                 if v is not None]
        for ligne in piece.lignes:
            valeurs.extend((ligne.id_ligne, ligne.objet, ligne.code_produit_local, ligne.nature, ligne.montant))
            valeurs.extend(tiers)
        courantes = self._courantes
        for i, (element, valeur) in enumerate(zip(self._variables, valeurs, strict=True)):
            if courantes[i] != valeur:
                element.set("V", valeur)
                courantes[i] = valeur
        return self.piece


def _verifier_collectivite(collectivite: Collectivite) -> str | None:
    lieu = "collectivité"
    _code(collectivite.siret, _SIRET, "SIRET (IdColl)", "14 chiffres", lieu)
    _code(collectivite.codique, _CODIQUE, "codique du poste comptable (IdPost)",
          "6 ou 7 chiffres, ou 02A/02B suivi de 3 ou 4 chiffres", lieu)
    _code(collectivite.code_collectivite, _CODE_COLLECTIVITE, "code collectivité (CodCol)",
          "3 chiffres, pas 000", lieu)
    _code(collectivite.code_budget, _CODE_BUDGET, "code budget (CodBud)", "un chiffre ou une majuscule puis un chiffre",
          lieu)
    if collectivite.libelle and en_latin1(collectivite.libelle):
        return _texte(collectivite.libelle, LONGUEUR_ADRESSE, "libellé", lieu)
    return None


def ecrire_pes_aller(
    sortie: BinaryIO,
    collectivite: Collectivite,
    bordereaux: Iterable[BordereauPes],
    *,
    nom_fichier: str,
    date_fichier: date,
    emetteur: tuple[str, str] = ("REGIE", "regie 0.1"),
) -> ResumePes:
    """Écrit un PES_Aller de titres dans `sortie`, pièce après pièce.

    Lève PesInvalide au premier invariant violé (avant d'écrire l'élément fautif, ou à la fin
    d'un bordereau dont les pièces ne font pas le nombre ou le montant annoncés) : ce qui a
    déjà été écrit est alors à jeter.
    """
    libelle = _verifier_collectivite(collectivite)
    if not isinstance(nom_fichier, str) or not _NOM_FICHIER.fullmatch(nom_fichier):
        raise PesInvalide("nom de fichier", f"« {nom_fichier} » : lettres, chiffres, « _ . - », 100 caractères "
                                            "au plus")
    if not isinstance(date_fichier, date):
        raise PesInvalide("fichier", f"date du fichier {date_fichier!r} : une date attendue")
    sigle = _texte(emetteur[0], LONGUEUR_SIGLE, "sigle de l'émetteur", "émetteur")
    application = _texte(emetteur[1], LONGUEUR_ADRESSE, "application émettrice", "émetteur")

    enveloppe = etree.Element("Enveloppe")
    parametres = _feuille(enveloppe, "Parametres")
    _feuille(parametres, "Version", "2")
    _feuille(parametres, "TypFic", TYPE_FICHIER)
    _feuille(parametres, "NomFic", nom_fichier)
    emet = _feuille(enveloppe, "Emetteur")
    _feuille(emet, "Sigle", sigle)
    _feuille(emet, "Adresse", application)
    entete_pes = etree.Element("EnTetePES")
    _feuille(entete_pes, "DteStr", date_fichier.isoformat())
    _feuille(entete_pes, "IdPost", collectivite.codique)
    _feuille(entete_pes, "IdColl", collectivite.siret)
    _feuille(entete_pes, "CodCol", collectivite.code_collectivite)
    _feuille(entete_pes, "CodBud", collectivite.code_budget)
    if libelle:
        _feuille(entete_pes, "LibelleColBud", libelle)
    entete_recette = etree.Element("EnTeteRecette")
    _feuille(entete_recette, "IdVer", "2")
    _feuille(entete_recette, "InfoDematerialisee", "0")  # pas de signature

    comptee = _SortieComptee(sortie)
    # Déclaration écrite telle que l'attendent les tiers de télétransmission (guillemets doubles).
    comptee.write(b'<?xml version="1.0" encoding="ISO-8859-1"?>\n')
    ecriture = _Ecriture()
    with etree.xmlfile(comptee, encoding=ENCODAGE) as xf, \
            xf.element(f"{{{NS_ALLER}}}PES_Aller", nsmap={"n": NS_ALLER}):
        xf.write("\n", enveloppe, "\n", entete_pes, "\n")
        with xf.element("PES_RecetteAller"):
            xf.write("\n", entete_recette, "\n")
            for bordereau in bordereaux:
                ecriture.bordereau(xf, bordereau)
            if not ecriture.resumes:
                raise PesInvalide("fichier", "aucun bordereau : un PES_Aller de titres en porte au moins un")
        xf.write("\n")
    resumes = ecriture.resumes
    resultat = ResumePes(
        nom_fichier=nom_fichier,
        bordereaux=tuple(resumes),
        nombre_pieces=sum(r.nombre_pieces for r in resumes),
        nombre_lignes=ecriture.nombre_lignes,
        montant_centimes=sum(r.montant_centimes for r in resumes),
        taille_octets=comptee.taille,
        sha256=comptee.empreinte.hexdigest(),
    )
    _log.info("pes_aller_ecrit", fichier=nom_fichier, bordereaux=len(resumes), pieces=resultat.nombre_pieces,
              montant=centimes_en_euros(resultat.montant_centimes), octets=resultat.taille_octets)
    return resultat


class _Ecriture:
    """L'état d'une écriture : numéros déjà pris, gabarits de pièces, totaux."""

    def __init__(self) -> None:
        self.resumes: list[ResumeBordereau] = []
        self.nombre_lignes = 0
        self._bordereaux_vus: set[tuple[int, int]] = set()
        self._pieces_vues: dict[int, set[int]] = {}
        self._gabarits: dict[tuple[int, bool, bool, bool, bool], _GabaritPiece] = {}

    def bordereau(self, xf: etree._IncrementalFileWriter, bordereau: BordereauPes) -> None:
        if not isinstance(bordereau, BordereauPes):
            raise PesInvalide("fichier", f"bordereau attendu, reçu {type(bordereau).__name__}")
        exercice = _entier(bordereau.exercice, 9999, "exercice", "bordereau")
        id_bord = _entier(bordereau.id_bordereau, MAX_ID_BORDEREAU, "IdBord", f"bordereau {exercice}")
        lieu = f"bordereau {exercice}/{id_bord}"
        if (exercice, id_bord) in self._bordereaux_vus:
            raise PesInvalide(lieu, "bordereau en double dans le fichier")
        self._bordereaux_vus.add((exercice, id_bord))
        annonce = _entier(bordereau.nombre_pieces, MAX_NOMBRE_PIECES, "nombre de pièces annoncé (NbrPce)", lieu)
        montant_annonce = _montant(bordereau.montant_centimes, "montant annoncé (MtBordHt)", lieu)
        if not isinstance(bordereau.date_emission, date) or bordereau.date_emission < date(1900, 1, 1):
            raise PesInvalide(lieu, f"date d'émission {bordereau.date_emission!r} : une date après 1900 attendue")
        ids = self._pieces_vues.setdefault(exercice, set())
        bloc = etree.Element("BlocBordereau")
        _feuille(bloc, "Exer", str(exercice))
        _feuille(bloc, "IdBord", str(id_bord))
        _feuille(bloc, "DteBordEm", bordereau.date_emission.isoformat())
        _feuille(bloc, "TypBord", "01")  # ordinaire
        _feuille(bloc, "NbrPce", str(annonce))
        _feuille(bloc, "MtBordHt", centimes_en_euros(montant_annonce))
        nombre = 0
        total = 0
        with xf.element("Bordereau"):
            xf.write("\n", bloc, "\n")
            for piece in bordereau.pieces:
                verifiee = verifier_piece(piece, lieu)
                if piece.id_piece in ids:
                    raise PesInvalide(f"{lieu}, pièce {piece.id_piece}",
                                      f"IdPce déjà utilisé dans l'exercice {exercice}")
                nombre += 1
                if nombre > annonce:
                    raise PesInvalide(f"{lieu}, pièce {piece.id_piece}", f"plus de pièces que les {annonce} annoncées")
                ids.add(piece.id_piece)
                total += verifiee.montant_centimes
                self.nombre_lignes += len(verifiee.lignes)
                forme = _GabaritPiece.forme(verifiee)
                gabarit = self._gabarits.get(forme)
                if gabarit is None:
                    gabarit = self._gabarits[forme] = _GabaritPiece(forme)
                # Une pièce par ligne : les numéros de ligne d'une erreur de validation parlent.
                xf.write(gabarit.remplir(verifiee), "\n")
            if nombre != annonce:
                raise PesInvalide(lieu, f"{nombre} pièce(s) reçue(s) pour {annonce} annoncée(s) (NbrPce)")
            if total != montant_annonce:
                raise PesInvalide(lieu, f"les pièces font {centimes_en_euros(total)} € mais le bordereau annonce "
                                        f"{centimes_en_euros(montant_annonce)} € (MtBordHt)")
        xf.write("\n")
        self.resumes.append(ResumeBordereau(exercice, id_bord, nombre, total))
