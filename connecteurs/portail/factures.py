"""Factures et avoirs du portail (specs/factures.md) : lecture et contrôle, sans base de données.

Chaque objet JSON devient une `FactureLue` ou un `AvoirLu` ; chaque écart à la spec est une
erreur (ligne, champ, raison) et le fichier entier est refusé s'il y en a une.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import date
from functools import lru_cache
from typing import IO, Annotated, Literal

import msgspec
from msgspec import Meta
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, TypeAdapter, ValidationError

from connecteurs.cesu.titres import ligne_eligible_cesu, naissance_limite_cesu
from regie.erreurs import CollecteurErreurs
from regie.montants import (
    MontantInvalide,
    centimes_en_euros,
    decimal_en_centiemes,
    euros_en_centimes,
    produit_arrondi,
)
from regie.validation import message_erreur

NUMERO = re.compile(r"[A-Za-z0-9/-]{1,30}")
PERIODE = re.compile(r"(?!0000)([0-9]{4})-(0[1-9]|1[0-2])")  # l'an 0 n'a pas de calendrier
DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
COURRIEL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
CP = re.compile(r"[0-9]{5}")


@dataclass(frozen=True, slots=True)
class Referentiel:
    """Ce que la configuration autorise : codes de régie, prestations (et si elles acceptent le CESU)."""

    regies: frozenset[str]
    prestations_cesu: Mapping[str, bool]


# Les objets lus sont des Struct msgspec figées plutôt que des dataclasses figées : dix fois moins
# chères à construire (un million de factures par import), et sans cycle (gc=False).
class Payeur(msgspec.Struct, frozen=True, gc=False):
    civilite: str
    nom: str
    prenom: str
    email: str | None
    adresse1: str
    adresse2: str | None
    code_postal: str
    ville: str


class LigneLue(msgspec.Struct, frozen=True, gc=False, array_like=True):
    """Une ligne contrôlée ; en JSON, un tableau (l'ordre des champs est celui que garde le registre)."""

    rang: int
    prestation: str
    libelle: str
    enfant: str | None
    naissance: date | None
    quantite_centiemes: int
    prix_unitaire: int
    montant: int
    eligible_cesu: bool


class FactureLue(msgspec.Struct, frozen=True, gc=False):
    ligne: int
    numero: str
    refdet: str
    regie: str
    dossier: str
    payeur: Payeur
    emise_le: date
    echeance: date
    periode: str
    lignes: tuple[LigneLue, ...]
    montant: int
    empreinte: str


class AvoirLu(msgspec.Struct, frozen=True, gc=False):
    ligne: int
    numero: str
    facture: str
    emise_le: date
    montant: int
    motif: str
    empreinte: str


def refdet_de(numero: str) -> str:
    """La référence PayFiP d'une facture : son numéro sans ce qui n'est pas [A-Za-z0-9]."""
    return re.sub(r"[^A-Za-z0-9]", "", numero)


class _Modele(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


Texte100 = Annotated[str, StringConstraints(min_length=1, max_length=100)]
Texte200 = Annotated[str, StringConstraints(min_length=1, max_length=200)]


class _AdresseJson(_Modele):
    ligne1: Texte200
    ligne2: Annotated[str, StringConstraints(max_length=200)] | None = None
    code_postal: str
    ville: Texte100


class _PayeurJson(_Modele):
    civilite: str
    nom: Texte100
    prenom: Texte100
    email: Annotated[str, StringConstraints(max_length=200)] | None = None
    adresse: _AdresseJson


class _LigneJson(_Modele):
    prestation: Annotated[str, StringConstraints(min_length=1, max_length=20)]
    libelle: Texte200
    enfant: Annotated[str, StringConstraints(max_length=200)] | None = None
    naissance: str | None = None
    quantite: str
    prix_unitaire: str
    montant: str


class _FactureJson(_Modele):
    type: Literal["facture"]
    numero: str
    regie: Annotated[str, StringConstraints(min_length=1, max_length=20)]
    dossier: Annotated[str, StringConstraints(min_length=1, max_length=20)]
    payeur: _PayeurJson
    emise_le: str
    echeance: str
    periode: str
    lignes: Annotated[list[_LigneJson], Field(min_length=1)]
    montant: str


class _AvoirJson(_Modele):
    type: Literal["avoir"]
    numero: str
    facture: str
    emise_le: str
    montant: str
    motif: Texte200


_OBJET: TypeAdapter[_FactureJson | _AvoirJson] = TypeAdapter(
    Annotated[_FactureJson | _AvoirJson, Field(discriminator="type")])


# --- Voie rapide : les mêmes schémas en msgspec --------------------------------------------------
# Une ligne que msgspec refuse, ou qu'une règle refuse, repasse par la voie pydantic ci-dessus, qui
# seule écrit les messages : ils restent identiques. Les champs sont déclarés dans le même ordre que
# les modèles pydantic : l'encodage JSON (donc l'empreinte) est octet pour octet le même.

_T20 = Annotated[str, Meta(min_length=1, max_length=20)]
_T100 = Annotated[str, Meta(min_length=1, max_length=100)]
_T200 = Annotated[str, Meta(min_length=1, max_length=200)]
_MAX200 = Annotated[str, Meta(max_length=200)]
class _AdresseM(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, gc=False):
    ligne1: _T200
    ligne2: _MAX200 | None = None
    code_postal: str
    ville: _T100


class _PayeurM(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, gc=False):
    civilite: Literal["M", "MME"]  # les autres valeurs repassent par la voie lente, qui dit pourquoi
    nom: _T100
    prenom: _T100
    email: _MAX200 | None = None
    adresse: _AdresseM


class _LigneM(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, gc=False):
    prestation: _T20
    libelle: _T200
    enfant: _MAX200 | None = None
    # Une date AAAA-MM-JJ lue par msgspec (en C) : la même que ce qu'admet la voie lente, encodée pareil.
    naissance: date | None = None
    quantite: str
    prix_unitaire: str
    montant: str


class _FactureM(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, gc=False, tag_field="type", tag="facture"):
    numero: str
    regie: _T20
    dossier: _T20
    payeur: _PayeurM
    emise_le: date  # comme `naissance` : AAAA-MM-JJ lu en C, encodé de même
    echeance: date
    periode: str
    lignes: Annotated[list[_LigneM], Meta(min_length=1)]
    montant: str


class _AvoirM(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, gc=False, tag_field="type", tag="avoir"):
    numero: str
    facture: str
    emise_le: str
    montant: str
    motif: _T200


def _chemin(loc: tuple[int | str, ...]) -> str:
    """Chemin lisible d'un champ ; les lignes sont numérotées à partir de 1, comme pour l'agent."""
    morceaux: list[str] = []
    for i, part in enumerate(loc):
        if isinstance(part, int):
            morceaux.append(f"[{part + 1}]" if i and loc[i - 1] == "lignes" else f"[{part}]")
        else:
            morceaux.append(("." if morceaux else "") + part)
    return "".join(morceaux)


_MESSAGES = {
    "missing": "champ obligatoire manquant",
    "extra_forbidden": "champ inconnu",
    "string_type": "une chaîne de caractères est attendue",
    "dict_type": "un objet est attendu",
    "model_type": "un objet est attendu",
    "list_type": "une liste est attendue",
    "too_short": "au moins une ligne est attendue",
    "string_too_short": "ne peut pas être vide",
}


class _Verif:
    """Les contrôles que le schéma ne dit pas ; chaque écart devient une erreur de la ligne."""

    __slots__ = ("erreurs", "ligne", "ok")

    def __init__(self, erreurs: CollecteurErreurs, ligne: int) -> None:
        self.erreurs = erreurs
        self.ligne = ligne
        self.ok = True

    def faute(self, champ: str | None, raison: str) -> None:
        self.ok = False
        self.erreurs.ajouter(self.ligne, champ, raison)

    def euros(self, valeur: str, champ: str) -> int:
        try:
            return euros_en_centimes(valeur)
        except MontantInvalide as exc:
            self.faute(champ, str(exc))
            return 0

    def date_(self, valeur: str, champ: str) -> date | None:
        if not DATE.fullmatch(valeur):
            self.faute(champ, f"« {valeur} » n'est pas une date AAAA-MM-JJ")
            return None
        try:
            return date.fromisoformat(valeur)
        except ValueError:
            self.faute(champ, f"« {valeur} » n'est pas une date du calendrier")
            return None

    def numero(self, valeur: str, champ: str) -> None:
        if not NUMERO.fullmatch(valeur):
            self.faute(champ, f"« {valeur} » : 1 à 30 caractères parmi lettres, chiffres, « - » et « / »")

    def schema(self, exc: ValidationError) -> None:
        for err in exc.errors(include_url=False):
            loc = tuple(err["loc"])
            # L'union facture | avoir préfixe chaque chemin de son étiquette : on l'enlève.
            if loc and loc[0] in ("facture", "avoir"):
                loc = loc[1:]
            champ = _chemin(loc) or None
            typ = err["type"]
            if typ in ("union_tag_invalid", "union_tag_not_found"):
                self.faute("type", f"« {err['ctx'].get('tag', '')} » : « facture » ou « avoir » attendu")
            elif typ == "model_attributes_type":
                self.faute(None, "un objet JSON est attendu")
            elif typ == "json_invalid":
                self.faute(None, f"JSON invalide ({err['ctx'].get('error', '')})")
            elif typ == "string_too_long":
                self.faute(champ, f"au plus {err['ctx']['max_length']} caractères")
            elif typ in _MESSAGES:
                self.faute(champ, _MESSAGES[typ])
            else:
                self.faute(champ, message_erreur(dict(err)))


def _valider(brut: bytes | dict[str, object], ligne: int, erreurs: CollecteurErreurs
             ) -> tuple[_FactureJson | _AvoirJson | None, _Verif]:
    v = _Verif(erreurs, ligne)
    try:
        objet = _OBJET.validate_json(brut) if isinstance(brut, bytes) else _OBJET.validate_python(brut)
    except ValidationError as exc:
        v.schema(exc)
        return None, v
    return objet, v


def _empreinte(objet: _Modele) -> str:
    # Le JSON du modèle validé : indépendant de l'ordre des clés et des espaces du fichier.
    return hashlib.sha256(objet.__pydantic_serializer__.to_json(objet)).hexdigest()


def lire_objet(brut: bytes | dict[str, object] | object, ligne: int, ref: Referentiel,
               erreurs: CollecteurErreurs) -> FactureLue | AvoirLu | None:
    """Contrôle un objet facture ou avoir (JSON brut ou déjà décodé) ; None et des erreurs s'il est invalide."""
    if not isinstance(brut, (bytes, dict)):
        erreurs.ajouter(ligne, None, "un objet JSON est attendu")
        return None
    objet, v = _valider(brut, ligne, erreurs)
    if objet is None:
        return None
    if isinstance(objet, _AvoirJson):
        return _controler_avoir(objet, v)
    return _controler_facture(objet, v, ref)


def _controler_facture(f: _FactureJson, v: _Verif, ref: Referentiel) -> FactureLue | None:
    v.numero(f.numero, "numero")
    refdet = refdet_de(f.numero)
    if v.ok and not 6 <= len(refdet) <= 30:
        v.faute("numero", f"« {f.numero} » : la référence PayFiP (refdet) « {refdet} » doit compter "
                          "de 6 à 30 lettres ou chiffres")
    if f.regie not in ref.regies:
        v.faute("regie", f"« {f.regie} » n'est pas une régie de la configuration")
    if not f.dossier.strip():
        v.faute("dossier", "ne peut pas être vide")
    p = f.payeur
    if p.civilite not in ("M", "MME"):
        v.faute("payeur.civilite", f"« {p.civilite} » : M ou MME attendu (le PES refuse les autres)")
    for champ, valeur in (("payeur.nom", p.nom), ("payeur.prenom", p.prenom),
                          ("payeur.adresse.ligne1", p.adresse.ligne1), ("payeur.adresse.ville", p.adresse.ville)):
        if not valeur.strip():
            v.faute(champ, "ne peut pas être vide")
    if p.email is not None and not COURRIEL.fullmatch(p.email):
        v.faute("payeur.email", f"« {p.email} » n'est pas une adresse électronique")
    if not CP.fullmatch(p.adresse.code_postal):
        v.faute("payeur.adresse.code_postal", f"« {p.adresse.code_postal} » : cinq chiffres attendus")
    emise_le = v.date_(f.emise_le, "emise_le")
    echeance = v.date_(f.echeance, "echeance")
    if emise_le and echeance and echeance < emise_le:
        v.faute("echeance", f"l'échéance {echeance} précède la date d'émission {emise_le}")
    periode: str | None = f.periode
    if not PERIODE.fullmatch(f.periode):
        v.faute("periode", f"« {f.periode} » : une période AAAA-MM est attendue")
        periode = None
    lignes = []
    for rang, lg in enumerate(f.lignes, 1):
        champ = f"lignes[{rang}]"
        cesu = ref.prestations_cesu.get(lg.prestation)
        if cesu is None:
            v.faute(champ + ".prestation", f"« {lg.prestation} » n'est pas une prestation de la configuration")
        naissance = v.date_(lg.naissance, champ + ".naissance") if lg.naissance is not None else None
        try:
            quantite = decimal_en_centiemes(lg.quantite)
        except MontantInvalide as exc:
            v.faute(champ + ".quantite", str(exc))
            quantite = -1
        else:
            if quantite <= 0:
                v.faute(champ + ".quantite", "la quantité doit être strictement positive")
        prix = v.euros(lg.prix_unitaire, champ + ".prix_unitaire")
        montant = v.euros(lg.montant, champ + ".montant")
        if v.ok:
            attendu = produit_arrondi(quantite, prix)
            if attendu != montant:
                v.faute(champ + ".montant", f"{centimes_en_euros(montant)} ≠ quantité × prix unitaire "
                                            f"= {centimes_en_euros(attendu)}")
        eligible = bool(cesu) and periode is not None and ligne_eligible_cesu(True, naissance, periode)
        lignes.append(LigneLue(rang, lg.prestation, lg.libelle, lg.enfant, naissance, quantite, prix, montant,
                               eligible))
    montant = v.euros(f.montant, "montant")
    if v.ok and montant <= 0:
        v.faute("montant", "le montant doit être strictement positif")
    elif v.ok and (total := sum(x.montant for x in lignes)) != montant:
        v.faute("montant", f"le montant {centimes_en_euros(montant)} n'est pas la somme des lignes "
                           f"({centimes_en_euros(total)})")
    if not v.ok:
        return None
    assert emise_le is not None and echeance is not None and periode is not None
    payeur = Payeur(p.civilite, p.nom, p.prenom, p.email, p.adresse.ligne1, p.adresse.ligne2 or None,
                    p.adresse.code_postal, p.adresse.ville)
    return FactureLue(v.ligne, f.numero, refdet, f.regie, f.dossier, payeur, emise_le, echeance, periode,
                      tuple(lignes), montant, _empreinte(f))


def _controler_avoir(a: _AvoirJson, v: _Verif) -> AvoirLu | None:
    v.numero(a.numero, "numero")
    v.numero(a.facture, "facture")
    emise_le = v.date_(a.emise_le, "emise_le")
    montant = v.euros(a.montant, "montant")
    if v.ok and montant <= 0:
        v.faute("montant", "le montant d'un avoir doit être strictement positif")
    if not a.motif.strip():
        v.faute("motif", "ne peut pas être vide")
    if not v.ok:
        return None
    assert emise_le is not None
    return AvoirLu(v.ligne, a.numero, a.facture, emise_le, montant, a.motif, _empreinte(a))


_DECODEUR = msgspec.json.Decoder(_FactureM | _AvoirM)
_ENCODEUR = msgspec.json.Encoder()
FICHIER_VIDE = "fichier vide : aucune facture ni aucun avoir"
_MEMO_MAX = 4096  # entrées par mémo : la mémoire ne grandit pas avec le fichier


# Conversions mémorisées de la voie rapide : pures, et les mêmes textes reviennent sans cesse dans un
# fichier (prix, périodes). None (ou False) : la ligne repasse par `lire_objet`. Les dates, elles, sont
# lues par msgspec (`date` dans les structures ci-dessus).

@lru_cache(maxsize=_MEMO_MAX)
def _euros_ou_rien(texte: str) -> int | None:
    try:
        return euros_en_centimes(texte)
    except MontantInvalide:
        return None


@lru_cache(maxsize=_MEMO_MAX)
def _montants_ou_rien(quantite: str, prix_unitaire: str, montant: str) -> tuple[int, int, int] | None:
    """(quantité en centièmes, prix, montant) d'une ligne juste ; None sinon. Les mêmes triplets reviennent."""
    try:
        q = decimal_en_centiemes(quantite)
        prix = euros_en_centimes(prix_unitaire)
        m = euros_en_centimes(montant)
    except MontantInvalide:
        return None
    if q <= 0 or produit_arrondi(q, prix) != m:
        return None
    return q, prix, m


@lru_cache(maxsize=_MEMO_MAX)
def _periode_valide(texte: str) -> bool:
    return PERIODE.fullmatch(texte) is not None


@lru_cache(maxsize=_MEMO_MAX)
def _naissance_limite(periode: str) -> date | None:
    try:
        return naissance_limite_cesu(periode)
    except ValueError:
        return None


class _LecteurRapide:
    """La voie rapide d'un fichier : msgspec pour la structure, règles et conversions mémorisées.

    Ne dit jamais pourquoi : elle rend None dès qu'un doute existe et la ligne repasse par
    `lire_objet`, qui produit les erreurs. Elle accepte exactement ce que `_controler_facture` accepte.
    """

    __slots__ = ("ref",)

    def __init__(self, ref: Referentiel) -> None:
        self.ref = ref

    def lire(self, brute: bytes, ligne: int) -> FactureLue | AvoirLu | None:
        try:
            objet = _DECODEUR.decode(brute)
        except (msgspec.MsgspecError, UnicodeDecodeError):  # msgspec lève la seconde sur un octet non UTF-8
            return None
        if isinstance(objet, _AvoirM):
            return None  # rares : la voie pydantic suffit
        return self.facture(objet, ligne)

    def facture(self, f: _FactureM, ligne: int) -> FactureLue | None:
        numero = f.numero
        if not NUMERO.fullmatch(numero):
            return None
        # NUMERO n'admet que [A-Za-z0-9/-] : ôter « - » et « / » donne `refdet_de`, sans expression régulière.
        refdet = numero.replace("-", "").replace("/", "")
        if not 6 <= len(refdet) <= 30 or f.regie not in self.ref.regies or not f.dossier.strip():
            return None
        p = f.payeur
        a = p.adresse
        if not p.nom.strip() or not p.prenom.strip() or not a.ligne1.strip() or not a.ville.strip():
            return None
        if (p.email is not None and not COURRIEL.fullmatch(p.email)) or not CP.fullmatch(a.code_postal):
            return None
        periode = f.periode
        if not _periode_valide(periode):
            return None
        # Éligible CESU : prestation qui l'accepte et enfant né après cette date (moins de 6 ans).
        limite = _naissance_limite(periode)
        if limite is None:
            return None
        emise_le = f.emise_le
        echeance = f.echeance
        if echeance < emise_le:
            return None
        prestations = self.ref.prestations_cesu
        lignes = []
        total = 0
        for rang, lg in enumerate(f.lignes, 1):
            cesu = prestations.get(lg.prestation)
            if cesu is None:
                return None
            naissance = lg.naissance
            montants = _montants_ou_rien(lg.quantite, lg.prix_unitaire, lg.montant)
            if montants is None:
                return None
            quantite, prix, montant_ligne = montants
            total += montant_ligne
            lignes.append(LigneLue(rang, lg.prestation, lg.libelle, lg.enfant, naissance, quantite, prix,
                                   montant_ligne, cesu and naissance is not None and naissance > limite))
        montant = _euros_ou_rien(f.montant)
        if montant is None or montant <= 0 or montant != total:
            return None
        payeur = Payeur(p.civilite, p.nom, p.prenom, p.email, a.ligne1, a.ligne2 or None, a.code_postal, a.ville)
        empreinte = hashlib.sha256(_ENCODEUR.encode(f)).hexdigest()
        return FactureLue(ligne, numero, refdet, f.regie, f.dossier, payeur, emise_le, echeance, periode,
                          tuple(lignes), montant, empreinte)


def lire_jsonl(flux: IO[bytes], nom_fichier: str, ref: Referentiel,
               erreurs: CollecteurErreurs) -> Iterator[FactureLue | AvoirLu]:
    """Lit un fichier JSON Lines, en flux ; les erreurs s'accumulent dans `erreurs`."""
    return lire_lignes_jsonl(enumerate(flux, 1), ref, erreurs)


def lire_lignes_jsonl(lignes: Iterable[tuple[int, bytes]], ref: Referentiel, erreurs: CollecteurErreurs, *,
                      vide_refuse: bool = True) -> Iterator[FactureLue | AvoirLu]:
    """Les lignes numérotées d'un fichier JSON Lines (toutes, ou une partie : `vide_refuse` faux, ne rien y
    trouver n'est pas une erreur)."""
    rapide = _LecteurRapide(ref)
    vide = True
    for numero, brute in lignes:
        if numero == 1 and brute.startswith(b"\xef\xbb\xbf"):
            brute = brute[3:]
        if not brute.strip():
            continue
        vide = False
        # La voie rapide d'abord (msgspec refuse aussi un texte qui n'est pas de l'UTF-8) ; au moindre
        # doute, la voie pydantic, seule à écrire les erreurs.
        lu = rapide.lire(brute, numero)
        if lu is None:
            try:
                brute.decode("utf-8")
            except UnicodeDecodeError:
                erreurs.ajouter(numero, None, "la ligne n'est pas en UTF-8 (fichier en Latin-1 ? encodage attendu : "
                                              "UTF-8)")
                continue
            lu = lire_objet(brute, numero, ref, erreurs)
        if lu is not None:
            yield lu
    if vide and vide_refuse:
        erreurs.ajouter(None, None, FICHIER_VIDE)
