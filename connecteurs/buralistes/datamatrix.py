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
from collections.abc import Callable
from operator import mul
from typing import Literal, NamedTuple

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
    (map, mul, sum sur les octets) : c'est le chemin chaud des relevés ; les tests la comparent à la définition."""
    zero = _ZERO * sum(poids)

    def somme(chiffres: str) -> int:
        total: int = sum(map(mul, poids, chiffres.encode("ascii")))
        return total - zero

    return somme


def _tables_s2() -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Sommes pondérées de 0000 à 9999 avec les poids 1-4 puis 5-8 : la clé 1 d'un montant m est
    alors (S1 + faible[m % 10000] + fort[m // 10000]) mod 100, sans repasser par ses chiffres."""
    faible, chiffres = [0] * 10000, [0] * 10000  # somme pondérée (poids 1, 2, ...) et somme simple
    for i in range(1, 10000):
        # décaler d'un chiffre vers la gauche ajoute 1 à chaque poids, donc la somme des chiffres
        faible[i] = faible[i // 10] + chiffres[i // 10] + i % 10
        chiffres[i] = chiffres[i // 10] + i % 10
    return tuple(faible), tuple(f + 4 * c for f, c in zip(faible, chiffres, strict=True))


_S2_FAIBLE, _S2_FORT = _tables_s2()
_POIDS_CLE2 = tuple(range(25, 0, -1))
_ZERO_CLE2 = _ZERO * sum(_POIDS_CLE2)
_SOMME_CLE3 = _somme_rapide(tuple(range(10, 0, -1)))  # positions 77-86
_SOMME_CLE2 = _somme_rapide(tuple(range(25, 0, -1)))  # positions 92-116
_SOMME_S2 = _somme_rapide(tuple(range(8, 0, -1)))  # positions 123-130
_S1_806 = somme_ponderee("806", 9)  # positions 119-121 : caractères fixes, donc somme fixe
_CLE3 = f"{_SOMME_CLE3(CODE_EMETTEUR + '0001') % 100:02d}"  # idem : clé 3 ne porte que sur des fixes
_CLE5 = tuple(str(11 - r)[-1] for r in range(11))  # r = 0 et r = 10 donnent tous deux « 1 »
_MOIS_DU_CODE: dict[str, tuple[str, ...]] = {c: (c,) for c in "23456789"} | {"1": ("1", "10", "11", "12")}

# La forme d'une charge utile bien formée, caractères fixes et clé 3 compris : le chemin rapide de
# `decoder`. Tout écart passe par le chemin détaillé, qui dit quelle partie est fausse.
_FORME = re.compile(
    r"(?s:.{40}) {24}([0-9]{3})([1-9])([0-9]{3})00([0-9]{2})([0-9])" + CODE_EMETTEUR + "0001" + _CLE3 + " "
    r"([0-9]{2})(0[1-9]|1[0-9]|2[0-3])([0-9]{15})([0-9]{6})49([0-9]{2})806 ( {0,7}[1-9][0-9]{0,7})"
)


def _cle5(chiffres_65_75: str) -> str:
    return _CLE5[int(chiffres_65_75) % 11]


def _cle1(montant: str) -> int:
    return (_S1_806 + _SOMME_S2(montant.replace(" ", "0"))) % 100


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
        # clé 3 compris ; restent les clés 5, 2, 1 et le rang, calculés en ligne. Au moindre écart, le
        # chemin détaillé reprend tout et dit quelle partie est fausse.
        etab, periode, produit, exercice, cle5, cle2, rang_lu, dette, codique, cle1, montant_lu = m.groups()
        montant = int(montant_lu)
        numero = int(dette)
        rang = int(rang_lu)
        if (numero and cle5 == _CLE5[int(payload[64:75]) % 11]
                and int(cle2) == (sum(map(mul, _POIDS_CLE2, payload[91:116].encode("ascii"))) - _ZERO_CLE2) % 100
                and int(cle1) == (_S1_806 + _S2_FAIBLE[montant % 10000] + _S2_FORT[montant // 10000]) % 100):
            if periode != "1":
                if int(exercice + periode + "00" + dette[2:]) % 23 + 1 == rang:
                    return DatamatrixDecode(True, (), etab, periode, int(periode), produit, exercice, numero,
                                            codique, montant, rang, ALPHABET_CLE2[rang - 1])
            else:
                mois = [mo for mo in _MOIS_DU_CODE[periode] if _rang(exercice, mo, dette[2:]) == rang]
                if mois:
                    return DatamatrixDecode(True, (), etab, periode, int(mois[0]) if len(mois) == 1 else None,
                                            produit, exercice, numero, codique, montant, rang,
                                            ALPHABET_CLE2[rang - 1])
    return _decoder_detaille(payload)


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
