"""Charge utile du datamatrix de paiement de proximité (130 caractères) : construction et contrôle.

Disposition (positions 1-based, specs/buralistes.md) :

    1-40 données métier (espaces) | 41-64 espaces | 65-67 code établissement | 68 code période |
    69-71 code produit | 72-73 « 00 » | 74-75 exercice | 76 clé 5 | 77-82 « 940033 » | 83-86 « 0001 » |
    87-88 clé 3 | 89 espace | 90-91 clé 2 | 92-93 rang mod 23 | 94-108 numéro de dette |
    109-114 codique | 115 « 4 » | 116 « 9 » | 117-118 clé 1 | 119-121 « 806 » | 122 espace |
    123-130 montant dû en centimes, cadré à droite

Module pur : aucune entrée/sortie. `decoder` ne lève jamais : il dit quelle partie est fausse.
Les positions 1-40 (données métier) ne sont pas contrôlées ; `charge_utile` y met des espaces.

Limites propres aux clés de la spécification (pas à ce code) :
- clé 5 prend le dernier caractère de `11 - r` : r = 0 et r = 10 donnent tous deux « 1 » ; un
  chiffre changé dans le code établissement ou le code produit qui fait passer r de 0 à 10 (ou
  l'inverse) n'est donc vu par aucune clé ;
- le code période « 1 » vaut pour janvier, octobre, novembre et décembre : le rang mod 23 est
  accepté s'il correspond à l'un de ces mois ; `mois` n'est donné que s'il est le seul possible.
  Or la clé 2 (mod 100) ne voit pas un écart de 5 en position 97 (poids 20) : seul le rang le voit,
  et pour le code période « 1 » un autre mois candidat peut lui convenir.
Pour ces deux cas, le moteur gagne à comparer la charge utile lue à celle qu'il recalcule pour la
facture trouvée (et le code établissement à la configuration). Les tests épinglent ces limites.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from functools import partial
from operator import itemgetter, mul
from typing import Final, Literal, NamedTuple

LONGUEUR = 130
ALPHABET_CLE2 = "ABCDEFGHJKLMNPQRSTUVWXY"  # ni I, ni O, ni Z : la lettre de Cle2 du titre
CODE_EMETTEUR = "940033"
MONTANT_MAXI_CENTIMES = 99_999_999  # 8 positions
NUMERO_DETTE_MAXI = 10**15 - 1

Partie = Literal[
    "longueur", "caracteres_fixes", "code_etablissement", "code_periode", "code_produit", "exercice",
    "numero_dette", "codique", "montant", "cle5", "cle3", "cle2", "cle1", "rang_mod23",
]
PARTIES: tuple[Partie, ...] = (
    "longueur", "caracteres_fixes", "code_etablissement", "code_periode", "code_produit", "exercice",
    "numero_dette", "codique", "montant", "cle5", "cle3", "cle2", "cle1", "rang_mod23",
)

# Caractères fixes : (début 0-based, fin exclue, valeur attendue, nom pour le message).
_FIXES: tuple[tuple[int, int, str, str], ...] = (
    (40, 64, " " * 24, "espace"),
    (71, 73, "00", "« 00 »"),
    (76, 82, CODE_EMETTEUR, "code émetteur"),
    (82, 86, "0001", "« 0001 »"),
    (88, 89, " ", "espace"),
    (114, 115, "4", "« 4 »"),
    (115, 116, "9", "code document"),
    (118, 119, "8", "code nature"),
    (119, 121, "06", "code de traitement"),
    (121, 122, " ", "espace"),
)

_CHIFFRES = re.compile(r"[0-9]+")
_MONTANT = re.compile(r" {0,7}[1-9][0-9]{0,7}")
_CHIFFRES_OU_ESPACES = re.compile(r"[0-9 ]{8}")
_ZERO = ord("0")


class ErreurDatamatrix(NamedTuple):
    partie: Partie
    raison: str


def somme_ponderee(chiffres: str, premier: int) -> int:
    """Chiffre le plus à droite × `premier`, le suivant × `premier + 1`, etc. (la définition de la spec)."""
    return sum(w * (ord(c) - _ZERO) for w, c in enumerate(reversed(chiffres), premier))


def _somme_rapide(poids: tuple[int, ...]) -> Callable[[str], int]:
    """`somme_ponderee(s, 1)` pour des chaînes de chiffres ASCII de longueur len(poids), calculée en C
    (map, mul, sum sur les octets) ; les tests la comparent à la définition."""
    zero = _ZERO * sum(poids)

    def somme(chiffres: str) -> int:
        total: int = sum(map(mul, poids, chiffres.encode("ascii")))
        return total - zero

    return somme


def _sommes_0000_9999() -> tuple[list[int], list[int]]:
    """Pour i de 0000 à 9999 : somme pondérée de ses 4 chiffres (poids 1 à 4) et somme simple."""
    faible, chiffres = [0] * 10000, [0] * 10000
    for i in range(1, 10000):
        # décaler d'un chiffre vers la gauche ajoute 1 à chaque poids, donc la somme des chiffres
        faible[i] = faible[i // 10] + chiffres[i // 10] + i % 10
        chiffres[i] = chiffres[i // 10] + i % 10
    return faible, chiffres


def _tables_s2() -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Sommes pondérées de 0000 à 9999 avec les poids 1-4 puis 5-8 : la clé 1 d'un montant m est
    alors (S1 + faible[m % 10000] + fort[m // 10000]) mod 100, sans repasser par ses chiffres."""
    faible, chiffres = _sommes_0000_9999()
    return tuple(faible), tuple(f + 4 * c for f, c in zip(faible, chiffres, strict=True))


_S2_FAIBLE, _S2_FORT = _tables_s2()
_SOMME_CLE3 = _somme_rapide(tuple(range(10, 0, -1)))  # positions 77-86
_SOMME_CLE2 = _somme_rapide(tuple(range(25, 0, -1)))  # positions 92-116
_SOMME_S2 = _somme_rapide(tuple(range(8, 0, -1)))  # positions 123-130
_S1_806 = somme_ponderee("806", 9)  # positions 119-121 : caractères fixes, donc somme fixe
_CLE3 = f"{_SOMME_CLE3(CODE_EMETTEUR + '0001') % 100:02d}"  # idem : clé 3 ne porte que sur des fixes
_CLE5 = tuple(str(11 - r)[-1] for r in range(11))  # r = 0 et r = 10 donnent tous deux « 1 »
_MOIS_DU_CODE: dict[str, tuple[str, ...]] = {c: (c,) for c in "23456789"} | {"1": ("1", "10", "11", "12")}

# La forme d'une charge utile bien formée, caractères fixes et clé 3 compris : le chemin rapide de
# `decoder` et du relevé. Tout écart passe par le chemin détaillé, qui dit quelle partie est fausse.
# Groupes : bloc 65-75, code établissement, code période, code produit, exercice, clé 5, clé 2, rang,
# numéro de dette, codique, clé 1, montant.
def motif_forme(donnees: str) -> str:
    """Le motif des 130 caractères ; `donnees` : celui des positions 1-40 (non contrôlées ici)."""
    return (donnees + r" {24}(([0-9]{3})([1-9])([0-9]{3})00([0-9]{2}))([0-9])" + CODE_EMETTEUR + "0001" + _CLE3
            + r" ([0-9]{2})(0[1-9]|1[0-9]|2[0-3])([0-9]{15})([0-9]{6})49([0-9]{2})806 ( {0,7}[1-9][0-9]{0,7})")


_FORME = re.compile(motif_forme(r"(?s:.{40})"))


def _tables_cle2() -> tuple[bytes, bytes, bytes]:
    """Clé 2 sans repasser par les chiffres : le numéro de dette (positions 94-108, poids 9 à 23) se
    coupe en trois tranches de 5 chiffres (poids 9-13, 14-18, 19-23) ; pour chacune, la somme pondérée
    mod 100 de 00000 à 99999 est dans une table (octets : valeurs < 100)."""
    faible, chiffres = _sommes_0000_9999()
    tables = []
    for k in (8, 13, 18):  # poids 1..5 décalés de k : somme pondérée + k × somme des chiffres
        bas = bytes((f + k * c) % 100 for f, c in zip(faible, chiffres, strict=True))
        # 5e chiffre a (poids 5 + k) : la même rangée décalée de (5 + k) × a, mod 100 (translate, en C)
        tables.append(b"".join(bas.translate(bytes((x + (5 + k) * a) % 100 for x in range(256)))
                               for a in range(10)))
    return tables[0], tables[1], tables[2]


_CLE2_DETTE_BAS, _CLE2_DETTE_MILIEU, _CLE2_DETTE_HAUT = _tables_cle2()
# Rang (positions 92-93, poids 25 et 24) et « 49 » (positions 115-116, poids 2 et 1) : par valeur du rang.
_CLE2_RANG = tuple(25 * (r // 10) + 24 * (r % 10) + 2 * 4 + 9 for r in range(24))
_CLE2_CODIQUES: dict[str, int] = {}  # codique → sa part de la clé 2 (poids 3 à 8) : quelques postes par fichier


class _Entete(NamedTuple):
    """Ce que fixent les positions 65-75 : la clé 5 attendue et, pour chaque mois possible du code
    période, le reste mod 23 de int(exercice + mois + « 00 ») × 10^13 (le rang s'en déduit avec les 13
    derniers chiffres du numéro de dette). Peu de valeurs par fichier : calculé une fois chacune."""

    cle5: str
    restes: tuple[tuple[int, int], ...]  # (mois, reste)


_ENTETES: dict[str, _Entete] = {}
_CACHE_MAXI = 10_000  # du bruit ne doit pas faire grossir les caches


def _entete(bloc5: str) -> _Entete:
    entete = _ENTETES.get(bloc5)
    if entete is None:
        exercice = bloc5[9:11]
        restes = tuple((int(mo), int(exercice + mo + "00") * 10**13 % 23) for mo in _MOIS_DU_CODE[bloc5[3]])
        entete = _Entete(_CLE5[int(bloc5) % 11], restes)
        if len(_ENTETES) >= _CACHE_MAXI:
            _ENTETES.clear()
        _ENTETES[bloc5] = entete
    return entete


def _cle2_codique(codique: str) -> int:
    part = _CLE2_CODIQUES.get(codique)
    if part is None:
        part = somme_ponderee(codique, 3)
        if len(_CLE2_CODIQUES) >= _CACHE_MAXI:
            _CLE2_CODIQUES.clear()
        _CLE2_CODIQUES[codique] = part
    return part


def mois_si_cles_justes(bloc5: str, cle5: str, cle2: str, rang: int, numero: int, codique: str, cle1: str,
                        montant: int) -> int | None:
    """Contrôle les clés 5, 2, 1 et le rang mod 23 d'une charge utile de la forme `motif_forme` (la clé 3
    et les caractères fixes sont dans le motif), en arithmétique entière sur des tables.

    None si une clé ou le rang est faux ; sinon le mois (0 : plusieurs mois possibles, code période « 1 »).
    """
    entete = _ENTETES.get(bloc5) or _entete(bloc5)
    if cle5 != entete.cle5 or not numero:
        return None
    haut, bas = divmod(numero, 100_000)
    haut, milieu = divmod(haut, 100_000)
    if int(cle2) != (_CLE2_RANG[rang] + _CLE2_DETTE_BAS[bas] + _CLE2_DETTE_MILIEU[milieu] + _CLE2_DETTE_HAUT[haut]
                     + (_CLE2_CODIQUES.get(codique) or _cle2_codique(codique))) % 100:
        return None
    if int(cle1) != (_S1_806 + _S2_FAIBLE[montant % 10000] + _S2_FORT[montant // 10000]) % 100:
        return None
    fin = numero % 10**13
    restes = entete.restes
    if len(restes) == 1:
        return restes[0][0] if (restes[0][1] + fin) % 23 + 1 == rang else None
    mois = [mo for mo, reste in restes if (reste + fin) % 23 + 1 == rang]
    if not mois:
        return None
    return mois[0] if len(mois) == 1 else 0


def _cle5(chiffres_65_75: str) -> str:
    return _CLE5[int(chiffres_65_75) % 11]


def rang_mod23(exercice: str, mois: int, numero_dette: int) -> int:
    """Rang (1 à 23) de la clé mod 23 : int(exercice + str(mois) + "00" + 13 derniers chiffres) mod 23 + 1."""
    if not (isinstance(exercice, str) and len(exercice) == 2 and _CHIFFRES.fullmatch(exercice)):
        raise ValueError(f"exercice « {exercice} » : deux chiffres attendus")
    if isinstance(mois, bool) or not isinstance(mois, int) or not 1 <= mois <= 12:
        raise ValueError(f"mois « {mois} » : de 1 à 12")
    if isinstance(numero_dette, bool) or not isinstance(numero_dette, int) or numero_dette < 0:
        raise ValueError(f"numéro de dette « {numero_dette} » : entier positif attendu")
    return int(f"{exercice}{mois}00{numero_dette % 10**13:013d}") % 23 + 1


def lettre_cle2(rang: int) -> str:
    """Lettre de la clé mod 23 (Cle2 du titre PES) pour un rang de 1 à 23."""
    if isinstance(rang, bool) or not isinstance(rang, int) or not 1 <= rang <= 23:
        raise ValueError(f"rang « {rang} » : de 1 à 23")
    return ALPHABET_CLE2[rang - 1]


def _chiffres(valeur: str, n: int, nom: str) -> str:
    if not isinstance(valeur, str) or len(valeur) != n or not _CHIFFRES.fullmatch(valeur):
        raise ValueError(f"{nom} « {valeur} » : {n} chiffres attendus")
    return valeur


def charge_utile(*, code_etablissement: str, periode: str, code_produit: str, numero_dette: int,
                 codique: str, montant_centimes: int) -> str:
    """Les 130 caractères à imprimer dans le datamatrix de la facture (période « AAAA-MM »)."""
    _chiffres(code_etablissement, 3, "code établissement")
    _chiffres(code_produit, 3, "code produit")
    _chiffres(codique, 6, "codique")
    m = re.fullmatch(r"([0-9]{4})-(0[1-9]|1[0-2])", periode) if isinstance(periode, str) else None
    if m is None:
        raise ValueError(f"période « {periode} » : AAAA-MM attendu (mois de 01 à 12)")
    exercice, mois = m.group(1)[2:], int(m.group(2))
    if isinstance(numero_dette, bool) or not isinstance(numero_dette, int) \
            or not 1 <= numero_dette <= NUMERO_DETTE_MAXI:
        raise ValueError(f"numéro de dette « {numero_dette} » : entier de 1 à 15 chiffres attendu")
    if isinstance(montant_centimes, bool) or not isinstance(montant_centimes, int) \
            or not 1 <= montant_centimes <= MONTANT_MAXI_CENTIMES:
        raise ValueError(f"montant « {montant_centimes} » : de 1 à {MONTANT_MAXI_CENTIMES} centimes attendus")

    bloc5 = f"{code_etablissement}{str(mois)[0]}{code_produit}00{exercice}"
    bloc3 = CODE_EMETTEUR + "0001"
    bloc2 = f"{rang_mod23(exercice, mois, numero_dette):02d}{numero_dette:015d}{codique}49"
    montant = f"{montant_centimes:>8d}"
    # Les clés suivent ici la définition de la spec mot pour mot ; `decoder` les recalcule autrement
    # (plus vite) : les tests d'aller-retour vérifient que les deux s'accordent.
    cle5 = str(11 - int(bloc5) % 11)[-1]
    cle3 = somme_ponderee(bloc3, 1) % 100
    cle2 = somme_ponderee(bloc2, 1) % 100
    cle1 = (somme_ponderee("806", 9) + somme_ponderee(montant.replace(" ", "0"), 1)) % 100
    resultat = (f"{' ' * 64}{bloc5}{cle5}{bloc3}{cle3:02d} {cle2:02d}{bloc2}{cle1:02d}806 {montant}")
    assert len(resultat) == LONGUEUR  # la disposition est fixe : un écart serait un défaut de ce module
    return resultat


class DatamatrixDecode(NamedTuple):
    """Ce qu'une charge utile dit, et ce qui y est faux (`erreurs` vide si et seulement si `valide`).

    Les champs lisibles sont donnés même si une clé est fausse (preuve pour l'agent) ; ils valent
    None quand leurs caractères ne sont pas au bon format. Un NamedTuple, immuable et rapide à
    construire : un relevé en décode des millions.
    """

    valide: bool
    erreurs: tuple[ErreurDatamatrix, ...] = ()
    code_etablissement: str | None = None
    code_periode: str | None = None
    mois: int | None = None  # seulement s'il est certain (code période « 1 » : janvier ou octobre à décembre)
    code_produit: str | None = None
    exercice: str | None = None  # deux chiffres
    numero_dette: int | None = None
    codique: str | None = None
    montant_centimes: int | None = None
    rang: int | None = None
    lettre: str | None = None

    def resume_erreurs(self) -> str:
        """« partie: raison; partie: raison » ; chaîne vide si la charge utile est valide."""
        return "; ".join(f"{e.partie}: {e.raison}" for e in self.erreurs)

    def parties_en_erreur(self) -> tuple[Partie, ...]:
        """Les parties fautives, sans doublon, dans l'ordre des erreurs."""
        return tuple(dict.fromkeys(e.partie for e in self.erreurs))


def _rang(exercice: str, mois: str, fin_dette: str) -> int:
    # fin_dette : les 13 derniers chiffres du numéro de dette ; mois sans zéro initial.
    return int(exercice + mois + "00" + fin_dette) % 23 + 1


def decoder(payload: str) -> DatamatrixDecode:
    """Lit et contrôle une charge utile ; ne lève jamais, quelle que soit la chaîne reçue."""
    if not isinstance(payload, str):
        return DatamatrixDecode(False, (ErreurDatamatrix("longueur", "la charge utile n'est pas du texte"),))
    m = _FORME.fullmatch(payload)
    if m is not None:
        # Chemin rapide (un relevé en décode des millions) : la forme est bonne, caractères fixes et
        # clé 3 compris ; restent les clés 5, 2, 1 et le rang. Au moindre écart, le chemin détaillé
        # reprend tout et dit quelle partie est fausse.
        bloc5, etab, periode, produit, exercice, cle5, cle2, rang_lu, dette, codique, cle1, montant_lu = m.groups()
        numero, rang, montant = int(dette), int(rang_lu), int(montant_lu)
        mois = mois_si_cles_justes(bloc5, cle5, cle2, rang, numero, codique, cle1, montant)
        if mois is not None:
            return DatamatrixDecode(True, (), etab, periode, mois or None, produit, exercice, numero, codique,
                                    montant, rang, ALPHABET_CLE2[rang - 1])
        if len(payload) == LONGUEUR:  # le motif admet un montant de 1 à 15 caractères
            return _decoder_forme_juste(payload, m.groups())
    return _decoder_detaille(payload)


def _decoder_forme_juste(p: str, groupes: tuple[str, ...]) -> DatamatrixDecode:
    """`_decoder_detaille` pour une charge utile de 130 caractères de la forme `_FORME` (les tests les
    comparent) : caractères fixes, chiffres, montant et clé 3 y sont justes, le rang de 01 à 23. Restent la
    dette nulle, les clés 5, 2, 1 et le rang pour la dette : mêmes messages, même ordre. C'est le cas des
    datamatrix faux d'un relevé (une clé) : environ deux fois moins cher que de tout relire."""
    bloc5, etab, periode, produit, exercice, cle5, cle2, rang_lu, dette, codique, cle1, montant_lu = groupes
    erreurs: list[ErreurDatamatrix] = []
    numero: int | None = int(dette)
    if not numero:
        erreurs.append(ErreurDatamatrix("numero_dette", "positions 94-108 : numéro de dette nul"))
        numero = None
    if cle5 != (attendue5 := _cle5(bloc5)):
        erreurs.append(ErreurDatamatrix("cle5", f"position 76 : clé {attendue5} attendue pour « {bloc5} », {cle5} lue"))
    if int(cle2) != (attendue2 := _SOMME_CLE2(p[91:116]) % 100):
        erreurs.append(ErreurDatamatrix("cle2", f"positions 90-91 : clé {attendue2:02d} attendue, {cle2} lue"))
    if int(cle1) != (attendue1 := (_S1_806 + _SOMME_S2(montant_lu.replace(" ", "0"))) % 100):
        erreurs.append(ErreurDatamatrix("cle1", f"positions 117-118 : clé {attendue1:02d} attendue, {cle1} lue"))
    rang = int(rang_lu)
    mois: int | None = None
    possibles = {mo: _rang(exercice, mo, dette[2:]) for mo in _MOIS_DU_CODE[periode]}
    concordants = [mo for mo, r in possibles.items() if r == rang]
    if not concordants:
        attendus = " ou ".join(f"{r:02d}" for r in dict.fromkeys(possibles.values()))
        erreurs.append(ErreurDatamatrix("rang_mod23", f"positions 92-93 : rang {attendus} attendu, {rang:02d} lu"))
    elif len(concordants) == 1:
        mois = int(concordants[0])
    return DatamatrixDecode(not erreurs, tuple(erreurs), etab, periode, mois, produit, exercice, numero, codique,
                            int(montant_lu), rang, ALPHABET_CLE2[rang - 1])


def _est_chiffres(s: str) -> bool:
    return _CHIFFRES.fullmatch(s) is not None


def _decoder_detaille(payload: str) -> DatamatrixDecode:
    erreurs: list[ErreurDatamatrix] = []

    def erreur(partie: Partie, raison: str) -> None:
        erreurs.append(ErreurDatamatrix(partie, raison))

    def lieu(debut: int, fin: int) -> str:
        return f"positions {debut + 1}-{fin}" if fin - debut > 1 else f"position {fin}"

    n = len(payload)
    p = payload
    if n != LONGUEUR:
        # Le sens est porté par la fin (65-130) : on la lit cadrée à droite, pour que l'agent voie
        # encore le numéro de dette d'une charge utile dont un lecteur a perdu les espaces de tête.
        raison = f"{n} caractère{'s' if n > 1 else ''} au lieu de {LONGUEUR}"
        if LONGUEUR - 64 <= n < LONGUEUR and not payload.startswith(" "):
            raison += " (espaces de tête perdus ?)"
        erreur("longueur", raison)
        p = payload.rjust(LONGUEUR) if n < LONGUEUR else payload[-LONGUEUR:]

    for debut, fin, attendu, nom in _FIXES:
        lu = p[debut:fin]
        if lu != attendu:
            if attendu.strip():
                erreur("caracteres_fixes", f"{lieu(debut, fin)} ({nom}) : « {attendu} » attendu, « {lu} » lu")
            else:
                erreur("caracteres_fixes", f"{lieu(debut, fin)} : {nom} attendu{'s' if fin - debut > 1 else ''}, "
                                           f"« {lu} » lu")

    def champ(partie: Partie, debut: int, fin: int) -> str | None:
        lu = p[debut:fin]
        if _est_chiffres(lu):
            return lu
        erreur(partie, f"{lieu(debut, fin)} : {fin - debut} chiffres attendus, « {lu} » lu")
        return None

    etab = champ("code_etablissement", 64, 67)
    periode: str | None = p[67]
    if periode not in _MOIS_DU_CODE:
        erreur("code_periode", f"position 68 : un chiffre de 1 à 9 attendu, « {periode} » lu")
        periode = None
    produit = champ("code_produit", 68, 71)
    exercice = champ("exercice", 73, 75)
    dette_lue = champ("numero_dette", 93, 108)
    numero = int(dette_lue) if dette_lue is not None else None
    if numero == 0:
        erreur("numero_dette", "positions 94-108 : numéro de dette nul")
        numero = None
    codique = champ("codique", 108, 114)
    montant_lu = p[122:130]
    montant: int | None = None
    if _MONTANT.fullmatch(montant_lu):
        montant = int(montant_lu)
    elif not montant_lu.strip(" "):
        erreur("montant", "positions 123-130 : montant absent")
    elif _CHIFFRES_OU_ESPACES.fullmatch(montant_lu) and not montant_lu.replace(" ", "").strip("0"):
        erreur("montant", f"positions 123-130 : montant nul (« {montant_lu} »)")
    else:
        erreur("montant", "positions 123-130 : centimes cadrés à droite, complétés d'espaces attendus, "
                          f"« {montant_lu} » lu")

    # Clés : chacune n'est recalculée que si ses chiffres sont lisibles ; sinon l'erreur de format suffit.
    def cle_lue(partie: Partie, debut: int, fin: int) -> str | None:
        lu = p[debut:fin]
        if _est_chiffres(lu):
            return lu
        erreur(partie, f"{lieu(debut, fin)} : clé illisible « {lu} »")
        return None

    if (cle5 := cle_lue("cle5", 75, 76)) is not None and _est_chiffres(p[64:75]) \
            and cle5 != (attendue5 := _cle5(p[64:75])):
        erreur("cle5", f"position 76 : clé {attendue5} attendue pour « {p[64:75]} », {cle5} lue")
    if (cle3 := cle_lue("cle3", 86, 88)) is not None and _est_chiffres(p[76:86]) \
            and int(cle3) != (attendue3 := _SOMME_CLE3(p[76:86]) % 100):
        erreur("cle3", f"positions 87-88 : clé {attendue3:02d} attendue, {cle3} lue")
    if (cle2 := cle_lue("cle2", 89, 91)) is not None and _est_chiffres(p[91:116]) \
            and int(cle2) != (attendue2 := _SOMME_CLE2(p[91:116]) % 100):
        erreur("cle2", f"positions 90-91 : clé {attendue2:02d} attendue, {cle2} lue")
    if (cle1 := cle_lue("cle1", 116, 118)) is not None and _est_chiffres(p[118:121]) \
            and _CHIFFRES_OU_ESPACES.fullmatch(montant_lu):
        s1 = somme_ponderee(p[118:121], 9)  # « 806 » si les fixes sont bons ; sinon ce qui est lu
        if int(cle1) != (attendue1 := (s1 + _SOMME_S2(montant_lu.replace(" ", "0"))) % 100):
            erreur("cle1", f"positions 117-118 : clé {attendue1:02d} attendue, {cle1} lue")

    rang: int | None = None
    mois: int | None = None
    rang_lu = p[91:93]
    if not _est_chiffres(rang_lu) or not 1 <= int(rang_lu) <= 23:
        erreur("rang_mod23", f"positions 92-93 : rang de 01 à 23 attendu, « {rang_lu} » lu")
    else:
        rang = int(rang_lu)
        if exercice is not None and periode is not None and _est_chiffres(p[95:108]):
            possibles = {mo: _rang(exercice, mo, p[95:108]) for mo in _MOIS_DU_CODE[periode]}
            concordants = [mo for mo, r in possibles.items() if r == rang]
            if not concordants:
                attendus = " ou ".join(f"{r:02d}" for r in dict.fromkeys(possibles.values()))
                erreur("rang_mod23", f"positions 92-93 : rang {attendus} attendu, {rang:02d} lu")
            elif len(concordants) == 1:
                mois = int(concordants[0])

    return DatamatrixDecode(
        valide=not erreurs, erreurs=tuple(erreurs), code_etablissement=etab, code_periode=periode, mois=mois,
        code_produit=produit, exercice=exercice, numero_dette=numero, codique=codique,
        montant_centimes=montant, rang=rang, lettre=ALPHABET_CLE2[rang - 1] if rang is not None else None,
    )


# --- Contrôle en bloc (relevés) -------------------------------------------------------------------
# Un relevé porte des milliers de charges utiles par bloc lu : on les contrôle colonne par colonne
# (la k-ième position de toutes les charges utiles est une tranche `octets[k::pas]`) et les sommes
# pondérées se font toutes à la fois, chaque charge utile dans sa « voie » de 16 bits d'un grand
# entier (aucune somme ne dépasse 3 500 : pas de retenue d'une voie à l'autre). Chaque clé lue entre
# dans la somme, de façon que la somme soit juste si et seulement si son reste vaut une constante :
# le reste de chaque voie se prend octet par octet (bytes.translate), et le contrôle de tout le bloc
# est une comparaison d'octets. Aucun objet Python par charge utile, sauf le numéro de dette et le
# montant dû, qu'il faut bien donner. Le résultat est celui de `decoder(...).valide` pour chaque
# charge utile (les tests le vérifient) ; `decoder` reste celui qui dit ce qui est faux.

_FIXES_EN_BLOC: tuple[tuple[int, bytes], ...] = tuple(
    (debut + i, attendu[i].encode()) for debut, _, attendu, _ in _FIXES for i in range(len(attendu))
) + tuple((86 + i, c.encode()) for i, c in enumerate(_CLE3))  # clé 3 : ne porte que sur des caractères fixes
_CHIFFRES_EN_BLOC: tuple[int, ...] = (
    *range(64, 67), 67, *range(68, 71), 73, 74, 75, 89, 90, 91, 92, *range(93, 108), *range(108, 114), 116, 117)


def _table(f: Callable[[int], int]) -> bytes:
    """Table de `bytes.translate` : octet → f(octet)."""
    return bytes(f(c) for c in range(256))


def _table_chiffres(f: Callable[[int], int]) -> bytes:
    """Chiffre ASCII → f(chiffre) ; tout autre octet, espace compris, → 0 (déjà refusé ailleurs s'il le faut)."""
    return _table(lambda c: f(c - _ZERO) if _ZERO <= c <= _ZERO + 9 else 0)


def _table_egal(*valeurs: int) -> bytes:
    """Octet → 1 s'il est l'une des `valeurs`, sinon 0."""
    return _table(lambda c: int(c in valeurs))


_EGAL = tuple(bytes(c == v for c in range(256)) for v in range(256))  # _EGAL[v] : _table_egal(v), toute prête


_TABLES_POIDS = tuple(_table_chiffres(partial(mul, w)) for w in range(26))  # poids × 9 ≤ 225 : un octet
_TABLES_COMPLEMENT = {1: _table_chiffres(lambda d: 9 - d), 10: _table_chiffres(lambda d: 10 * (9 - d))}
_MOD = {m: bytes(c % m for c in range(256)) for m in (11, 23, 100)}
_HAUT_MOD = {m: bytes(256 * c % m for c in range(256)) for m in (11, 23, 100)}  # l'octet fort d'une voie
_UN: Final = b"\x01"
_EST_CHIFFRE = _table_chiffres(lambda d: 1)
_EST_PERIODE = _table_chiffres(lambda d: int(d != 0))
_128_MOINS = _table(lambda c: (128 - c) % 256)
_EST_128 = _table_egal(128)
_CLE5_DU_RESTE = _table(lambda r: ord(_CLE5[r]) if r < 11 else 0)


def _cle_lue(debut: int) -> tuple[tuple[int, bytes], ...]:
    """La clé de deux chiffres lue aux positions debut, debut + 1, comptée 99 - clé (positive)."""
    return (debut, _TABLES_COMPLEMENT[10]), (debut + 1, _TABLES_COMPLEMENT[1])


def _poids(positions_poids: Iterable[tuple[int, int]]) -> tuple[tuple[int, bytes], ...]:
    return tuple((position, _TABLES_POIDS[w]) for position, w in positions_poids)


# Clé 5 : int(positions 65-75) mod 11, chiffre par chiffre (10^j mod 11).
_EN_BLOC_CLE5 = _poids((74 - j, 10 ** j % 11) for j in range(11))
# Clé 2 : positions 92-114 (poids 25 à 3 ; « 49 » en 115-116, caractères fixes, compte 2 × 4 + 9), moins la clé
# lue : juste si et seulement si la somme vaut 99 - 17 modulo 100.
_EN_BLOC_CLE2 = _poids((115 - j, j + 1) for j in range(2, 25)) + _cle_lue(89)
_RESTE_CLE2 = (99 - 17) % 100
# Clé 1 : positions 123-130 (poids 8 à 1, espaces : 0), plus S1 de « 806 », moins la clé lue.
_EN_BLOC_CLE1 = _poids((129 - j, j + 1) for j in range(8)) + _cle_lue(116)
_RESTE_CLE1 = (99 - _S1_806) % 100
# Rang : N = int(exercice + mois + « 00 » + 13 derniers chiffres de la dette), juste si N mod 23 + 1 est le rang
# lu r = 10 a + b, soit N + 13 a + 22 b + 1 ≡ 0 (mod 23) (-10 ≡ 13, -1 ≡ 22). Partie commune : la fin de la
# dette (10^j mod 23) et le rang lu. Mois d'un chiffre (le code période) : N = exercice × 10^16 + mois × 10^15
# + fin ; mois de deux chiffres (10 à 12, code période « 1 ») : N = exercice × 10^17 + mois × 10^15 + fin.
_EN_BLOC_RANG = _poids((107 - j, 10 ** j % 23) for j in range(13)) + _poids(((91, 13), (92, 22)))
_EN_BLOC_MOIS_1_CHIFFRE = _poids(((73, 10 ** 17 % 23), (74, 10 ** 16 % 23), (67, 10 ** 15 % 23)))
_EN_BLOC_MOIS_2_CHIFFRES = _poids(((73, 10 ** 18 % 23), (74, 10 ** 17 % 23)))
_RESTE_RANG_1_CHIFFRE = 22  # N + ... + 1 ≡ 0
_RESTES_RANG_2_CHIFFRES = _table_egal(*((-1 - mois * 10 ** 15) % 23 for mois in (10, 11, 12)))
_RANG_DE_01_A_23 = _table_egal(*range(1, 24))
_RANG_LU = _poids(((91, 10), (92, 1)))
_MONTANT_DU = itemgetter(slice(122, 130))
_DETTE = itemgetter(slice(93, 108))


def _somme(octets: bytes, pas: int, decalage: int, poids: tuple[tuple[int, bytes], ...]) -> int:
    """Les sommes pondérées de toutes les charges utiles, une par voie de 16 bits d'un grand entier."""
    total = 0
    for position, table in poids:
        colonne = octets[decalage + position::pas].translate(table)
        total += int.from_bytes(colonne.decode("latin-1").encode("utf-16-le"), "little")
    return total


def _restes(total: int, n: int, m: int) -> bytes:
    """Le reste modulo m de chaque voie de 16 bits de `total`, un octet par charge utile :
    (octet faible + 256 × octet fort) mod m, par tables (deux restes < m s'ajoutent sans retenue)."""
    voies = total.to_bytes(2 * n, "little")
    somme = (int.from_bytes(voies[0::2].translate(_MOD[m]), "little")
             + int.from_bytes(voies[1::2].translate(_HAUT_MOD[m]), "little"))
    return somme.to_bytes(n, "little").translate(_MOD[m])


def _octets(total: int, n: int) -> bytes:
    return total.to_bytes(n, "little")


def _masque(octets: bytes) -> int:
    return int.from_bytes(octets, "little")


def _egaux(a: bytes, b: bytes) -> int:
    """Masque (1 par voie d'un octet) des positions où deux chaînes d'octets < 128 sont égales :
    a + (128 - b) vaut 128 là seulement, sans retenue d'une voie à l'autre."""
    return _masque(_octets(_masque(a) + _masque(b.translate(_128_MOINS)), len(a)).translate(_EST_128))


def controler_octets(octets: bytes, n: int, pas: int = LONGUEUR, decalage: int = 0) -> bytes:
    """Pour n charges utiles de 130 octets ASCII imprimables, la i-ème à `decalage + i × pas` dans `octets` :
    un octet par charge utile, 1 si `decoder` la dit valide (hors numéro de dette nul), 0 sinon."""
    masques: list[int] = []  # un masque par contrôle qui échoue quelque part (1 : juste)
    for position, attendu in _FIXES_EN_BLOC:
        colonne = octets[decalage + position::pas]
        if colonne != attendu * n:
            masques.append(_masque(colonne.translate(_EGAL[attendu[0]])))
    for position in _CHIFFRES_EN_BLOC:
        colonne = octets[decalage + position::pas]
        if not colonne.isdigit():
            masques.append(_masque(colonne.translate(_EST_CHIFFRE)))
    colonne = octets[decalage + 67::pas]  # code période : 1 à 9
    if b"0" in colonne:
        masques.append(_masque(colonne.translate(_EST_PERIODE)))
    # Clé 5 : le caractère attendu pour le reste, contre celui lu.
    cles5 = _restes(_somme(octets, pas, decalage, _EN_BLOC_CLE5), n, 11).translate(_CLE5_DU_RESTE)
    lues5 = octets[decalage + 75::pas]
    if cles5 != lues5:
        masques.append(_egaux(cles5, lues5))
    # Clés 2 et 1 : la clé lue est dans la somme, qui doit avoir un reste fixe.
    for poids, reste in ((_EN_BLOC_CLE2, _RESTE_CLE2), (_EN_BLOC_CLE1, _RESTE_CLE1)):
        restes = _restes(_somme(octets, pas, decalage, poids), n, 100)
        if restes != bytes((reste,)) * n:
            masques.append(_masque(restes.translate(_EGAL[reste])))
    # Rang : de 01 à 23, et juste pour le mois du code période, ou pour octobre à décembre s'il vaut « 1 ».
    rangs = _octets(_somme(octets, pas, decalage, _RANG_LU), 2 * n)[0::2]
    if rangs.translate(None, bytes(range(1, 24))):
        masques.append(_masque(rangs.translate(_RANG_DE_01_A_23)))
    commun = _somme(octets, pas, decalage, _EN_BLOC_RANG)
    restes = _restes(commun + _somme(octets, pas, decalage, _EN_BLOC_MOIS_1_CHIFFRE), n, 23)
    if restes != bytes((_RESTE_RANG_1_CHIFFRE,)) * n:
        un_chiffre = _masque(restes.translate(_EGAL[_RESTE_RANG_1_CHIFFRE]))
        deux_chiffres = _restes(commun + _somme(octets, pas, decalage, _EN_BLOC_MOIS_2_CHIFFRES), n, 23)
        code_1 = _masque(octets[decalage + 67::pas].translate(_EGAL[ord("1")]))
        masques.append(un_chiffre | (_masque(deux_chiffres.translate(_RESTES_RANG_2_CHIFFRES)) & code_1))
    if not masques:
        return _UN * n
    tout = masques[0]
    for masque in masques[1:]:
        tout &= masque
    return _octets(tout, n)


def valeurs_en_bloc(charges: list[str], valides: bytes) -> tuple[bytes, list[int], list[int]]:
    """Numéro de dette et montant dû de chaque charge utile contrôlée par `controler_octets` ; `valides`
    revient avec, en plus, les charges utiles au montant mal formé ou à la dette nulle marquées 0."""
    # Montant : centimes cadrés à droite, complétés d'espaces, sans zéro de tête, pas vide.
    montants_lus = list(map(str.lstrip, map(_MONTANT_DU, charges)))
    if not ("".join(montants_lus).isdigit() and all(montants_lus)
            and "0" not in "".join(map(itemgetter(0), montants_lus))):
        valides = bytes(v and m.isdigit() and m[0] != "0" for v, m in zip(valides, montants_lus, strict=True))
    try:
        dettes = list(map(int, map(_DETTE, charges)))
        montants = list(map(int, montants_lus))
    except ValueError:  # des chiffres illisibles : seulement dans une charge utile déjà invalide
        dettes = [int(_DETTE(c)) if v else 0 for c, v in zip(charges, valides, strict=True)]
        montants = [int(m) if v else 0 for m, v in zip(montants_lus, valides, strict=True)]
    if 0 in dettes:
        valides = bytes(v and d != 0 for v, d in zip(valides, dettes, strict=True))
    return valides, dettes, montants


def controler_en_bloc(charges: list[str]) -> tuple[list[bool], list[int], list[int]]:
    """Pour des charges utiles de 130 caractères ASCII imprimables : pour chacune, si `decoder` la dit
    valide, avec son numéro de dette et son montant dû (sans valeur garantie si elle ne l'est pas)."""
    n = len(charges)
    tout = "".join(charges)
    if not n or len(tout) != LONGUEUR * n or min(map(len, charges)) != LONGUEUR or not tout.isascii():
        raise ValueError("130 caractères ASCII par charge utile attendus")
    valides, dettes, montants = valeurs_en_bloc(charges, controler_octets(tout.encode("ascii"), n))
    return list(map(bool, valides)), dettes, montants
