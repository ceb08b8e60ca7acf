"""CFONB 120 : relevés du compte DFT de la régie (specs/cfonb120.md).

Lecture pure : des enregistrements de 120 caractères ISO-8859-1 aux relevés (`ReleveDft`) et à
leurs mouvements (`MouvementDft`). Aucune base, aucune politique : l'importeur décide de ce
qu'est un relevé déjà importé, une remise confirmée ou un virement.

Le fichier est lu par blocs (`lire_releves_flux`) pour qu'un gros relevé ne tienne jamais deux
fois en mémoire ; chaque relevé est donné dès son 07 lu et vérifié. Toutes les erreurs sont
rassemblées et levées ensemble à la fin (`FichierRefuse`) ; dès la première, plus aucun relevé
n'est donné, puisque le fichier sera refusé en entier.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable, Iterator
from datetime import date
from typing import IO, Any, Final

import structlog
from pydantic import BaseModel, ConfigDict, Field

from connecteurs.modeles import construire_sans_valider
from regie.erreurs import CollecteurErreurs
from regie.montants import centimes_en_euros

__all__ = [
    "LONGUEUR",
    "MOTIF_REMISE",
    "MontantCfonbInvalide",
    "MouvementDft",
    "ReleveDft",
    "ecrire_montant",
    "lire_montant",
    "lire_releves",
    "lire_releves_flux",
    "remise_citee",
    "remises_citees",
]

log = structlog.get_logger()

LONGUEUR: Final = 120
TAILLE_BLOC: Final = 1 << 20  # 1 Mio : assez pour amortir les appels, assez peu pour une mémoire plate


class MouvementDft(BaseModel):
    """Un mouvement (04, avec ses compléments 05) d'un relevé du compte DFT."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    compte: str
    date_operation: date
    date_valeur: date | None
    code_operation: str = Field(min_length=2, max_length=2)
    numero_ecriture: str = Field(min_length=7, max_length=7)  # tel qu'écrit : souvent des zéros
    rang: int = Field(ge=1)
    montant: int  # centimes signés : crédit > 0, débit < 0
    libelle: str
    texte: str  # libellé puis informations des 05, séparés par une espace
    reference: str  # clé naturelle compte/AAAA-MM-JJ/numéro d'écriture/rang
    ligne: int
    brut: str  # le 04 et ses 05, séparés par des sauts de ligne


class ReleveDft(BaseModel):
    """Un relevé : un compte, de son solde d'ouverture (01) à son solde de clôture (07)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    compte: str
    date_debut: date
    solde_debut: int  # centimes signés
    date_fin: date
    solde_fin: int  # centimes signés
    mouvements: list[MouvementDft]
    ligne_debut: int
    ligne_fin: int
    cle: str  # compte, dates et soldes : reconnaître un relevé déjà importé


# --- Construction rapide des modèles -------------------------------------------------------------
# Les valeurs sont vérifiées ici, champ par champ, avant construction : revalider avec pydantic
# coûterait plus que toute la lecture (voir `construire_sans_valider`).

_construire = construire_sans_valider
_CHAMPS_MOUVEMENT: Final = set(MouvementDft.model_fields)
_CHAMPS_RELEVE: Final = set(ReleveDft.model_fields)


# --- Montants ------------------------------------------------------------------------------------

class MontantCfonbInvalide(ValueError):
    """Zone montant CFONB illisible ; le message (en français) dit pourquoi."""


# Dernier caractère : le dernier chiffre et le signe à la fois.
_DERNIER: Final[dict[str, tuple[int, int]]] = {
    "{": (0, 1), "}": (0, -1),
    **{chr(ord("A") + i): (i + 1, 1) for i in range(9)},
    **{chr(ord("J") + i): (i + 1, -1) for i in range(9)},
}
_POSITIF: Final = "{ABCDEFGHI"
_NEGATIF: Final = "}JKLMNOPQR"


def _decimales(caractere: str) -> int:
    # Blanc sur les 01/07 de certaines banques : lu comme 2.
    if caractere in {"2", " "}:
        return 2
    if caractere.isdigit() and caractere.isascii():
        return int(caractere)
    raise MontantCfonbInvalide(f"nombre de décimales « {caractere} » illisible (position 20, un chiffre attendu)")


def lire_montant(zone: str, decimales: int = 2) -> int:
    """Lit la zone montant de 14 caractères (13 chiffres + chiffre-signe) en centimes signés.

    `0000000001234{` → 12340 ; `0000000000920}` → -9200. Lève MontantCfonbInvalide.
    """
    chiffres = zone[:13]
    if len(zone) != 14 or not (chiffres.isdigit() and chiffres.isascii()):
        raise MontantCfonbInvalide(f"montant « {zone} » : 13 chiffres puis un caractère de signe attendus")
    dernier = _DERNIER.get(zone[13])
    if dernier is None:
        raise MontantCfonbInvalide(f"montant « {zone} » : caractère de signe « {zone[13]} » invalide "
                                   "({ ou A-I pour un crédit, } ou J-R pour un débit)")
    valeur = int(chiffres) * 10 + dernier[0]
    if decimales != 2:
        if decimales < 2:
            valeur *= 10 ** (2 - decimales)
        else:
            diviseur = 10 ** (decimales - 2)
            if valeur % diviseur:
                raise MontantCfonbInvalide(f"montant « {zone} » à {decimales} décimales : pas un nombre "
                                           "entier de centimes")
            valeur //= diviseur
    return valeur * dernier[1]


def ecrire_montant(centimes: int) -> str:
    """Écrit des centimes signés dans la zone montant de 14 caractères (2 décimales)."""
    if isinstance(centimes, bool) or not isinstance(centimes, int):
        raise TypeError("un montant interne est un entier de centimes")
    absolu = -centimes if centimes < 0 else centimes
    if absolu >= 10**14:
        raise ValueError(f"{centimes} centimes : trop grand pour 14 chiffres")
    table = _NEGATIF if centimes < 0 else _POSITIF
    return f"{absolu // 10:013d}{table[absolu % 10]}"


# --- Dates ---------------------------------------------------------------------------------------

_DATES: dict[str, tuple[date, str] | None] = {}
_SANS_DATE: Final = frozenset({"      ", "000000"})  # date de valeur absente


def _date(jjmmaa: str) -> tuple[date, str] | None:
    """JJMMAA → (date, « AAAA-MM-JJ ») ou None ; les jours d'un fichier sont peu nombreux : cache."""
    try:
        return _DATES[jjmmaa]
    except KeyError:
        pass
    resultat: tuple[date, str] | None = None
    if len(jjmmaa) == 6 and jjmmaa.isdigit() and jjmmaa.isascii():
        try:
            jour = date(2000 + int(jjmmaa[4:6]), int(jjmmaa[2:4]), int(jjmmaa[0:2]))
            resultat = (jour, jour.isoformat())
        except ValueError:
            resultat = None
    if len(_DATES) > 50_000:  # du bruit (fichier corrompu) ne doit pas faire grossir le cache
        _DATES.clear()
    _DATES[jjmmaa] = resultat
    return resultat


def _raison_date(jjmmaa: str) -> str:
    if len(jjmmaa) == 6 and jjmmaa.isdigit() and jjmmaa.isascii():
        return f"« {jjmmaa} » n'est pas une date du calendrier (JJMMAA)"
    return f"« {jjmmaa} » n'est pas une date JJMMAA"


# --- Découpage en enregistrements -----------------------------------------------------------------

_NON_IMPRIMABLE: Final = re.compile("[\x00-\x1f\x7f-\x9f]")
_IMPRIMABLES: Final = bytes(range(0x20, 0x7F)) + bytes(range(0xA0, 0x100))
_SONDE: Final = 2 * (LONGUEUR + 2)  # une fin de ligne dans les deux premiers enregistrements : fichier à lignes
_CRLF: Final = "\r\n"


def _mode(debut: bytes) -> str | None:
    """La fin de ligne du fichier (« \\r\\n », « \\n », « \\r ») ou None : largeur fixe."""
    sonde = debut[:_SONDE]
    lf = sonde.find(b"\n")
    if lf >= 0:
        return _CRLF if lf > 0 and sonde[lf - 1] == 0x0D else "\n"
    if b"\r" in sonde:
        return "\r"
    return None


def _couper_lignes(texte: str, erreurs: CollecteurErreurs, premier: int) -> list[str]:
    """Chemin lent : fins de ligne mêlées ou caractères de contrôle ; chaque fautif est signalé."""
    lignes = texte.replace("\r\n", "\n").split("\n") if "\n" in texte else texte.split("\r")
    _signaler_non_imprimables(lignes, premier, erreurs)
    return lignes


def _signaler_non_imprimables(enregistrements: list[str], premier: int, erreurs: CollecteurErreurs) -> None:
    for i, enr in enumerate(enregistrements):
        trouve = _NON_IMPRIMABLE.search(enr)
        if trouve is not None:
            caractere = trouve.group()
            nom = {"\r": " (retour chariot)", "\n": " (saut de ligne)"}.get(caractere, "")
            erreurs.ajouter(premier + i, None,
                            f"caractère non imprimable 0x{ord(caractere):02X}{nom} en position {trouve.start() + 1} : "
                            "le fichier n'est pas un texte CFONB en ISO-8859-1" + _indice_utf8(enr, tout=True))


def _decouper(blocs: Iterable[bytes], erreurs: CollecteurErreurs) -> Iterator[tuple[list[str], bool]]:
    """Donne les enregistrements par paquets (un par bloc lu) et si le fichier est en largeur fixe.

    Fichier à lignes (CR LF, LF, voire CR) ou sans fin de ligne (coupé tous les 120 caractères) :
    décidé sur les premiers octets. Les caractères de contrôle sont signalés ici ; le reste
    (longueur, champs) est vérifié par l'appelant. Chemin rapide : une suppression d'octets
    (`bytes.translate`) vérifie tout un bloc d'un coup ; s'il reste quelque chose, chemin lent.
    """
    reste = b""
    separateur: str | None = None
    autorises = _IMPRIMABLES
    decide = False
    numero = 1  # numéro du premier enregistrement du prochain paquet
    for bloc in blocs:
        if not bloc:
            continue
        tampon = reste + bloc if reste else bytes(bloc)
        if not decide:
            if len(tampon) < _SONDE:
                reste = tampon
                continue
            separateur = _mode(tampon)
            autorises = _IMPRIMABLES + (separateur or "").encode("ascii")
            decide = True
        if separateur is None:
            n = len(tampon) - len(tampon) % LONGUEUR
            partie = tampon[:n]
            reste = tampon[n:]
            texte = partie.decode("latin-1")
            enregistrements = [texte[i:i + LONGUEUR] for i in range(0, n, LONGUEUR)]
            if partie.translate(None, autorises):
                _signaler_non_imprimables(enregistrements, numero, erreurs)
        else:
            fin = tampon.rfind(separateur[-1].encode("ascii"))
            if fin < 0:
                reste = tampon
                continue
            partie = tampon[:fin + 1]
            reste = tampon[fin + 1:]
            texte = partie.decode("latin-1")
            enregistrements = texte.split(separateur)
            enregistrements.pop()  # « » après la dernière fin de ligne
            if partie.translate(None, autorises) or (
                    separateur == _CRLF and not texte.count("\r") == texte.count("\n") == len(enregistrements)):
                enregistrements = _couper_lignes(texte, erreurs, numero)
                if not enregistrements[-1]:
                    enregistrements.pop()
        numero += len(enregistrements)
        yield enregistrements, separateur is None
    # Fin du fichier : le reste est une dernière ligne sans fin de ligne, ou un enregistrement tronqué.
    if not decide:
        separateur = _mode(reste)
    texte = reste.decode("latin-1")
    if separateur is None:
        n = len(texte) - len(texte) % LONGUEUR
        enregistrements = [texte[i:i + LONGUEUR] for i in range(0, n, LONGUEUR)]
        queue = texte[n:].rstrip("\r\n\x1a")  # une fin de ligne ou un Ctrl-Z final ne sont pas des données
        if queue:
            enregistrements.append(queue)
    else:
        enregistrements = _couper_lignes(texte.rstrip("\x1a"), CollecteurErreurs(""), 0)
        while enregistrements and not enregistrements[-1]:
            enregistrements.pop()  # fins de ligne finales
    if enregistrements:
        _signaler_non_imprimables(enregistrements, numero, erreurs)
        yield enregistrements, separateur is None


def _indice_utf8(enregistrement: str, tout: bool = False) -> str:
    """Une ligne qui ferait 120 caractères (ou serait du texte, `tout`) en UTF-8 : l'encodage est en cause."""
    try:
        relu = enregistrement.encode("latin-1").decode("utf-8")
        if relu != enregistrement and (tout or len(relu) == LONGUEUR):
            return " (le fichier semble encodé en UTF-8 : ISO-8859-1 attendu)"
    except UnicodeError:
        pass
    return ""


# --- Lecture des relevés -------------------------------------------------------------------------

def lire_releves(contenu: bytes, nom_fichier: str,
                 comptes_autorises: Collection[str] | None = None) -> Iterator[ReleveDft]:
    """Lit un fichier CFONB 120 déjà en mémoire ; voir `lire_releves_flux`."""
    vue = memoryview(contenu)
    blocs = (bytes(vue[i:i + TAILLE_BLOC]) for i in range(0, len(contenu), TAILLE_BLOC))
    return _lire(blocs, nom_fichier, comptes_autorises)


def lire_releves_flux(flux: IO[bytes], nom_fichier: str, comptes_autorises: Collection[str] | None = None,
                      taille_bloc: int = TAILLE_BLOC) -> Iterator[ReleveDft]:
    """Lit un fichier CFONB 120 ouvert en binaire, par blocs : la mémoire reste plate.

    Donne chaque relevé (01 … 07) dès qu'il est complet et juste ; à la fin, lève FichierRefuse
    avec toutes les erreurs s'il y en a (et ne donne plus rien après la première).
    `comptes_autorises` : les `dft_compte` des régies ; None pour ne pas filtrer (diagnostic).
    """
    blocs = iter(lambda: flux.read(taille_bloc), b"")
    return _lire(blocs, nom_fichier, comptes_autorises)


def _champs_04_fautifs(enr: str, numero: int, erreurs: CollecteurErreurs) -> None:
    """Chemin lent : chaque champ fautif d'un 04, pour que l'agent les voie tous d'un coup."""
    if _date(enr[34:40]) is None:
        erreurs.ajouter(numero, "date d'opération", _raison_date(enr[34:40]))
    valeur = enr[42:48]
    if valeur not in _SANS_DATE and _date(valeur) is None:
        erreurs.ajouter(numero, "date de valeur", _raison_date(valeur))
    try:
        lire_montant(enr[90:104], _decimales(enr[19]))
    except MontantCfonbInvalide as exc:
        erreurs.ajouter(numero, "montant", str(exc))


def _signaler_compte(enr: str, numero: int, ligne_debut: int, identite: str, erreurs: CollecteurErreurs) -> None:
    if identite:  # sinon le 01 était illisible : déjà signalé
        erreurs.ajouter(numero, "compte", f"le compte change dans le relevé ouvert ligne {ligne_debut} : "
                        f"« {enr[2:7]} {enr[11:16]} {enr[21:32]} » au lieu de "
                        f"« {identite[:5]} {identite[5:10]} {identite[10:]} »")


def _lire(blocs: Iterable[bytes], nom_fichier: str,
          comptes_autorises: Collection[str] | None) -> Iterator[ReleveDft]:
    erreurs = CollecteurErreurs(nom_fichier)
    ajouter = erreurs.ajouter
    liste_erreurs = erreurs.erreurs
    autorises = None if comptes_autorises is None else frozenset(c.strip() for c in comptes_autorises)
    dates = _DATES
    derniers = _DERNIER
    construire = _construire
    champs_mouvement, champs_releve = _CHAMPS_MOUVEMENT, _CHAMPS_RELEVE

    numero = 0
    nb_releves = nb_mouvements = 0
    # Le relevé ouvert. Son identité (banque, guichet, compte) vient du 01 ; « » si le 01 était illisible.
    ouvert = False
    ligne_debut = 0
    erreurs_a_l_ouverture = 0  # le relevé est juste tant que le nombre d'erreurs n'a pas bougé
    banque = guichet = identite = compte_brut = compte = ""
    date_debut: date | None = None
    solde_debut: int | None = None
    mouvements: list[MouvementDft] = []
    rangs: dict[tuple[str, str], int] = {}
    total = 0
    # Le mouvement lu, en attente de ses compléments 05 ; apres_04 : le dernier enregistrement est un 04 ou un 05.
    attente: dict[str, Any] | None = None
    apres_04 = False

    for paquet, largeur_fixe in _decouper(blocs, erreurs):
        precedent = numero  # la numérotation continue d'un paquet à l'autre
        for numero, enr in enumerate(paquet, precedent + 1):
            code = enr[:2]
            if len(enr) != 120:
                if not enr.strip():
                    continue  # ligne vide (fin de fichier, bourrage)
                if largeur_fixe and len(enr) < LONGUEUR:
                    ajouter(numero, None, f"enregistrement tronqué : {len(enr)} caractères au lieu de 120 "
                            "(fichier coupé ?)")
                else:
                    ajouter(numero, None, f"enregistrement de {len(enr)} caractères au lieu de 120"
                            + _indice_utf8(enr))
                # Garder la structure pour ne pas noyer l'agent sous des erreurs en cascade.
                if attente is not None:
                    mouvements.append(construire(MouvementDft, attente, champs_mouvement))
                    attente = None
                apres_04 = code == "04" or (code == "05" and apres_04)
                if code == "01":
                    ouvert, ligne_debut, erreurs_a_l_ouverture = True, numero, -1
                    banque = guichet = identite = compte_brut = compte = ""
                elif code == "07":
                    ouvert = False
                continue

            if code == "04":
                if attente is not None:
                    mouvements.append(construire(MouvementDft, attente, champs_mouvement))
                    attente = None
                apres_04 = True
                # Chemin rapide : même compte, EUR et 2 décimales (positions 12-32) d'une seule comparaison.
                if enr[11:32] != identite or enr[2:7] != banque:
                    if not ouvert:
                        ajouter(numero, None, "mouvement (04) hors relevé : aucun solde d'ouverture (01) ouvert")
                        continue
                    if enr[16:19] != "EUR":
                        ajouter(numero, "devise", f"devise « {enr[16:19]} » : EUR attendu")
                    if enr[21:32] != compte_brut or enr[11:16] != guichet or enr[2:7] != banque:
                        _signaler_compte(enr, numero, ligne_debut, banque + guichet + compte_brut, erreurs)
                    if enr[16:19] != "EUR" or enr[21:32] != compte_brut or enr[11:16] != guichet or enr[2:7] != banque:
                        continue
                elif not ouvert:
                    ajouter(numero, None, "mouvement (04) hors relevé : aucun solde d'ouverture (01) ouvert")
                    continue
                jjmmaa = enr[34:40]
                operation = dates.get(jjmmaa) or _date(jjmmaa)
                valeur_brute = enr[42:48]
                if valeur_brute == jjmmaa:
                    valeur = operation
                    valeur_lue = True
                elif valeur_brute in _SANS_DATE:
                    valeur = None
                    valeur_lue = True
                else:
                    valeur = dates.get(valeur_brute) or _date(valeur_brute)
                    valeur_lue = valeur is not None
                dernier = derniers.get(enr[103])
                chiffres = enr[90:103]
                try:
                    if dernier is None or enr[19] != "2" or not chiffres.isdigit():
                        raise ValueError
                    montant = (int(chiffres) * 10 + dernier[0]) * dernier[1]  # ² ³ ¹ : isdigit mais pas int
                except ValueError:
                    try:
                        montant = lire_montant(enr[90:104], _decimales(enr[19]))
                    except MontantCfonbInvalide:
                        operation = None  # le chemin lent ci-dessous dira pourquoi
                if operation is None or not valeur_lue:
                    _champs_04_fautifs(enr, numero, erreurs)
                    continue
                ecriture = enr[81:88]
                cle_rang = (jjmmaa, ecriture)
                rang = rangs.get(cle_rang, 0) + 1
                rangs[cle_rang] = rang
                total += montant
                libelle = enr[48:79].strip()
                attente = {
                    "compte": compte, "date_operation": operation[0],
                    "date_valeur": None if valeur is None else valeur[0],
                    "code_operation": enr[32:34], "numero_ecriture": ecriture, "rang": rang,
                    "montant": montant, "libelle": libelle, "texte": libelle,
                    "reference": f"{compte}/{operation[1]}/{ecriture}/{rang}", "ligne": numero, "brut": enr,
                }
            elif code == "05":
                if not apres_04:
                    ajouter(numero, None, "complément (05) sans mouvement (04) juste avant lui" if ouvert
                            else "complément (05) hors relevé")
                    continue
                if attente is None:
                    continue  # son 04 a été refusé : déjà signalé
                if enr[21:32] != compte_brut or enr[2:7] != banque or enr[11:16] != guichet:
                    _signaler_compte(enr, numero, ligne_debut, banque + guichet + compte_brut, erreurs)
                    continue
                info = enr[48:118].strip()
                if info:
                    attente["texte"] = f"{attente['texte']} {info}" if attente["texte"] else info
                attente["brut"] = f"{attente['brut']}\n{enr}"
            elif code == "01":
                if attente is not None:
                    mouvements.append(construire(MouvementDft, attente, champs_mouvement))
                    attente = None
                apres_04 = False
                if ouvert:
                    ajouter(numero, None, f"nouveau solde d'ouverture (01) alors que le relevé ouvert ligne "
                            f"{ligne_debut} n'a pas de solde de clôture (07)")
                ouvert, ligne_debut, erreurs_a_l_ouverture = True, numero, len(liste_erreurs)
                mouvements, rangs, total = [], {}, 0
                banque, guichet, compte_brut = enr[2:7], enr[11:16], enr[21:32]
                identite = f"{guichet}EUR2 {compte_brut}"
                compte = compte_brut.strip()
                date_debut = solde_debut = None
                if not compte:
                    ajouter(numero, "compte", "numéro de compte vide (positions 22-32)")
                elif autorises is not None and compte not in autorises:
                    ajouter(numero, "compte", f"le compte {compte} n'est le compte DFT d'aucune régie")
                if enr[16:19] != "EUR":
                    ajouter(numero, "devise", f"devise « {enr[16:19]} » : EUR attendu")
                jour = _date(enr[34:40])
                if jour is None:
                    ajouter(numero, "date", _raison_date(enr[34:40]))
                else:
                    date_debut = jour[0]
                try:
                    solde_debut = lire_montant(enr[90:104], _decimales(enr[19]))
                except MontantCfonbInvalide as exc:
                    ajouter(numero, "solde d'ouverture", str(exc))
            elif code == "07":
                if attente is not None:
                    mouvements.append(construire(MouvementDft, attente, champs_mouvement))
                    attente = None
                apres_04 = False
                if not ouvert:
                    ajouter(numero, None, "solde de clôture (07) sans solde d'ouverture (01)")
                    continue
                ouvert = False
                if enr[21:32] != compte_brut or enr[2:7] != banque or enr[11:16] != guichet:
                    _signaler_compte(enr, numero, ligne_debut, banque + guichet + compte_brut, erreurs)
                    continue
                if enr[16:19] != "EUR":
                    ajouter(numero, "devise", f"devise « {enr[16:19]} » : EUR attendu")
                jour = _date(enr[34:40])
                if jour is None:
                    ajouter(numero, "date", _raison_date(enr[34:40]))
                solde_fin: int | None = None
                try:
                    solde_fin = lire_montant(enr[90:104], _decimales(enr[19]))
                except MontantCfonbInvalide as exc:
                    ajouter(numero, "solde de clôture", str(exc))
                if (len(liste_erreurs) != erreurs_a_l_ouverture or jour is None or solde_fin is None
                        or date_debut is None or solde_debut is None):
                    continue  # relevé déjà en défaut : pas d'erreur d'équilibre en cascade
                date_fin = jour[0]
                if date_fin < date_debut:
                    ajouter(numero, "date", f"date de clôture {date_fin.isoformat()} antérieure à la date "
                            f"d'ouverture {date_debut.isoformat()} (ligne {ligne_debut})")
                    continue
                if solde_debut + total != solde_fin:
                    ajouter(numero, "solde de clôture",
                            "solde d'ouverture + mouvements ≠ solde de clôture : "
                            f"{centimes_en_euros(solde_debut)} + {centimes_en_euros(total)} = "
                            f"{centimes_en_euros(solde_debut + total)} ≠ {centimes_en_euros(solde_fin)} "
                            f"(relevé ouvert ligne {ligne_debut} : fichier tronqué ou corrompu ?)")
                    continue
                nb_releves += 1
                nb_mouvements += len(mouvements)
                if not liste_erreurs:
                    yield construire(ReleveDft, {
                        "compte": compte, "date_debut": date_debut, "solde_debut": solde_debut,
                        "date_fin": date_fin, "solde_fin": solde_fin, "mouvements": mouvements,
                        "ligne_debut": ligne_debut, "ligne_fin": numero,
                        "cle": f"{compte}/{date_debut.isoformat()}/{solde_debut}/{date_fin.isoformat()}/{solde_fin}",
                    }, champs_releve)
                mouvements, rangs, total = [], {}, 0
            elif enr.strip():  # un enregistrement tout blanc est du bourrage
                ajouter(numero, "code", f"code d'enregistrement « {code} » inconnu (01, 04, 05 ou 07 attendus)")

    if attente is not None:
        mouvements.append(construire(MouvementDft, attente, champs_mouvement))
    if ouvert:
        ajouter(numero, None, f"fichier tronqué : le relevé ouvert ligne {ligne_debut} n'a pas de solde "
                "de clôture (07)")
    if nb_releves == 0 and not liste_erreurs:
        ajouter(None, None, "aucun relevé (01 … 07) dans le fichier : vide ?")
    if liste_erreurs:
        log.warning("cfonb_refuse", fichier=nom_fichier, enregistrements=numero, erreurs=len(liste_erreurs))
        erreurs.verifier()
    log.info("cfonb_lu", fichier=nom_fichier, enregistrements=numero, releves=nb_releves,
             mouvements=nb_mouvements)


# --- Ce que le texte d'un mouvement cite ----------------------------------------------------------

# Un identifiant de remise (chèques, CESU) : écrit sur le bordereau, il revient dans le libellé DFT.
MOTIF_REMISE: Final = "[A-Za-z0-9_/-]{1,20}"
_REMISE: Final = re.compile(rf"(?<![A-Za-z0-9_/-])REMISE +({MOTIF_REMISE})(?![A-Za-z0-9_/-])")


def remises_citees(texte: str) -> list[str]:
    """Tous les identifiants qui suivent « REMISE » dans le texte, dans l'ordre."""
    return _REMISE.findall(texte)


def remise_citee(texte: str) -> str | None:
    """L'identifiant de remise cité après `REMISE ` (1 à 20 caractères A-Z a-z 0-9 - _ /), ou None.

    Les libellés bancaires disent aussi « REMISE CHEQUES » : parmi plusieurs candidats, le premier
    qui porte un chiffre (les identifiants de remise en ont) est préféré. L'importeur décide.
    """
    candidats = _REMISE.findall(texte)
    if not candidats:
        return None
    for candidat in candidats:
        if any(c.isdigit() for c in candidat):
            return str(candidat)
    return str(candidats[0])
