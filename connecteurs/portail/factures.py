"""Factures et avoirs du portail (specs/factures.md) : lecture et contrôle, sans base de données.

Chaque objet JSON devient une `FactureLue` ou un `AvoirLu` ; chaque écart à la spec est une
erreur (ligne, champ, raison) et le fichier entier est refusé s'il y en a une.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import date
from typing import IO, Any

from regie.erreurs import CollecteurErreurs
from regie.montants import MontantInvalide, decimal_en_centiemes, euros_en_centimes, produit_arrondi

NUMERO = re.compile(r"[A-Za-z0-9/-]{1,30}")
PERIODE = re.compile(r"([0-9]{4})-(0[1-9]|1[0-2])")
DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
COURRIEL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
CP = re.compile(r"[0-9]{5}")
AGE_LIMITE_CESU = 6


@dataclass(frozen=True, slots=True)
class Referentiel:
    """Ce que la configuration autorise : codes de régie, prestations (et si elles acceptent le CESU)."""

    regies: frozenset[str]
    prestations_cesu: Mapping[str, bool]


@dataclass(frozen=True, slots=True)
class Payeur:
    civilite: str
    nom: str
    prenom: str
    email: str | None
    adresse1: str
    adresse2: str | None
    code_postal: str
    ville: str


@dataclass(frozen=True, slots=True)
class LigneLue:
    rang: int
    prestation: str
    libelle: str
    enfant: str | None
    naissance: date | None
    quantite_centiemes: int
    prix_unitaire: int
    montant: int
    eligible_cesu: bool


@dataclass(frozen=True, slots=True)
class FactureLue:
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


@dataclass(frozen=True, slots=True)
class AvoirLu:
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


def age_au(naissance: date, jour: date) -> int:
    return jour.year - naissance.year - ((jour.month, jour.day) < (naissance.month, naissance.day))


def ligne_eligible_cesu(prestation_cesu: bool, naissance: date | None, periode: str) -> bool:
    """Éligible au CESU : prestation qui l'accepte, enfant de moins de 6 ans au premier jour de la période."""
    if not prestation_cesu or naissance is None:
        return False
    annee, mois = (int(x) for x in periode.split("-"))
    return age_au(naissance, date(annee, mois, 1)) < AGE_LIMITE_CESU


def empreinte_objet(obj: Mapping[str, Any]) -> str:
    """Empreinte du contenu (indépendante de l'ordre des clés et des espaces)."""
    canon = json.dumps(obj, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canon.encode("utf-8")).hexdigest()


class _Lecteur:
    """Contrôle champ par champ d'un objet ; chaque écart devient une erreur de la ligne."""

    __slots__ = ("erreurs", "ligne", "ok")

    def __init__(self, erreurs: CollecteurErreurs, ligne: int) -> None:
        self.erreurs = erreurs
        self.ligne = ligne
        self.ok = True

    def faute(self, champ: str, raison: str) -> None:
        self.ok = False
        self.erreurs.ajouter(self.ligne, champ, raison)

    def cles(self, obj: Mapping[str, Any], permises: frozenset[str], prefixe: str = "") -> None:
        for cle in obj:
            if cle not in permises:
                self.faute(prefixe + str(cle), "champ inconnu")

    def texte(self, obj: Mapping[str, Any], cle: str, champ: str, maxi: int, *,
              requis: bool = True, motif: re.Pattern[str] | None = None) -> str | None:
        v = obj.get(cle)
        if v is None:
            if requis:
                self.faute(champ, "champ obligatoire manquant" if cle not in obj else "ne peut pas être nul")
            return None
        if not isinstance(v, str):
            self.faute(champ, "une chaîne de caractères est attendue")
            return None
        if requis and not v.strip():
            self.faute(champ, "ne peut pas être vide")
            return None
        if len(v) > maxi:
            self.faute(champ, f"au plus {maxi} caractères")
            return None
        if motif is not None and not motif.fullmatch(v):
            self.faute(champ, f"« {v} » : format invalide")
            return None
        return v

    def date_(self, obj: Mapping[str, Any], cle: str, champ: str, *, requis: bool = True) -> date | None:
        v = obj.get(cle)
        if v is None:
            if requis:
                self.faute(champ, "champ obligatoire manquant")
            return None
        if not isinstance(v, str) or not DATE.fullmatch(v):
            self.faute(champ, f"« {v} » n'est pas une date AAAA-MM-JJ")
            return None
        try:
            return date.fromisoformat(v)
        except ValueError:
            self.faute(champ, f"« {v} » n'est pas une date du calendrier")
            return None

    def euros(self, obj: Mapping[str, Any], cle: str, champ: str) -> int | None:
        v = obj.get(cle)
        if v is None:
            self.faute(champ, "champ obligatoire manquant")
            return None
        if not isinstance(v, str):
            self.faute(champ, "un montant s'écrit comme une chaîne « 0.00 »")
            return None
        try:
            return euros_en_centimes(v)
        except MontantInvalide as exc:
            self.faute(champ, str(exc))
            return None


_CLES_FACTURE = frozenset({"type", "numero", "regie", "dossier", "payeur", "emise_le", "echeance",
                           "periode", "lignes", "montant"})
_CLES_PAYEUR = frozenset({"civilite", "nom", "prenom", "email", "adresse"})
_CLES_ADRESSE = frozenset({"ligne1", "ligne2", "code_postal", "ville"})
_CLES_LIGNE = frozenset({"prestation", "libelle", "enfant", "naissance", "quantite", "prix_unitaire",
                         "montant"})
_CLES_AVOIR = frozenset({"type", "numero", "facture", "emise_le", "montant", "motif"})


def lire_objet(obj: Any, ligne: int, ref: Referentiel, erreurs: CollecteurErreurs) -> FactureLue | AvoirLu | None:
    """Contrôle un objet facture ou avoir ; None (et des erreurs notées) s'il est invalide."""
    lec = _Lecteur(erreurs, ligne)
    if not isinstance(obj, dict):
        lec.faute("type", "un objet JSON est attendu")
        return None
    typ = obj.get("type")
    if typ == "facture":
        return _lire_facture(obj, lec, ref)
    if typ == "avoir":
        return _lire_avoir(obj, lec)
    lec.faute("type", f"« {typ} » : « facture » ou « avoir » attendu")
    return None


def _lire_numero(obj: Mapping[str, Any], lec: _Lecteur, cle: str = "numero") -> str | None:
    numero = lec.texte(obj, cle, cle, 30)
    if numero is not None and not NUMERO.fullmatch(numero):
        lec.faute(cle, f"« {numero} » : 1 à 30 caractères parmi lettres, chiffres, « - » et « / »")
        return None
    return numero


def _lire_facture(obj: dict[str, Any], lec: _Lecteur, ref: Referentiel) -> FactureLue | None:
    lec.cles(obj, _CLES_FACTURE)
    numero = _lire_numero(obj, lec)
    refdet = ""
    if numero is not None:
        refdet = refdet_de(numero)
        if not 6 <= len(refdet) <= 30:
            lec.faute("numero", f"« {numero} » : la référence PayFiP (refdet) « {refdet} » doit compter "
                                "de 6 à 30 lettres ou chiffres")
    regie = lec.texte(obj, "regie", "regie", 20)
    if regie is not None and regie not in ref.regies:
        lec.faute("regie", f"« {regie} » n'est pas une régie de la configuration")
    dossier = lec.texte(obj, "dossier", "dossier", 20)
    payeur = _lire_payeur(obj.get("payeur"), lec) if "payeur" in obj else None
    if "payeur" not in obj:
        lec.faute("payeur", "champ obligatoire manquant")
    emise_le = lec.date_(obj, "emise_le", "emise_le")
    echeance = lec.date_(obj, "echeance", "echeance")
    if emise_le and echeance and echeance < emise_le:
        lec.faute("echeance", f"l'échéance {echeance} précède la date d'émission {emise_le}")
    periode = lec.texte(obj, "periode", "periode", 7)
    if periode is not None and not PERIODE.fullmatch(periode):
        lec.faute("periode", f"« {periode} » : une période AAAA-MM est attendue")
        periode = None
    lignes: list[LigneLue] = []
    brutes = obj.get("lignes")
    if not isinstance(brutes, list) or not brutes:
        lec.faute("lignes", "au moins une ligne est attendue")
    else:
        for rang, brute in enumerate(brutes, 1):
            lue = _lire_ligne(brute, rang, lec, ref, periode)
            if lue is not None:
                lignes.append(lue)
    montant = lec.euros(obj, "montant", "montant")
    if montant is not None and montant <= 0:
        lec.faute("montant", "le montant doit être strictement positif")
    elif montant is not None and lec.ok and sum(x.montant for x in lignes) != montant:
        total = sum(x.montant for x in lignes)
        lec.faute("montant", f"le montant {montant // 100}.{montant % 100:02d} n'est pas la somme des lignes "
                             f"({total // 100}.{total % 100:02d})")
    if not lec.ok:
        return None
    assert numero and regie and dossier and payeur and emise_le and echeance and periode and montant
    return FactureLue(lec.ligne, numero, refdet, regie, dossier, payeur, emise_le, echeance, periode,
                      tuple(lignes), montant, empreinte_objet(obj))


def _lire_payeur(p: Any, lec: _Lecteur) -> Payeur | None:
    if not isinstance(p, dict):
        lec.faute("payeur", "un objet est attendu")
        return None
    lec.cles(p, _CLES_PAYEUR, "payeur.")
    civilite = p.get("civilite")
    if civilite not in ("M", "MME"):
        lec.faute("payeur.civilite", f"« {civilite} » : M ou MME attendu (le PES refuse les autres)")
    nom = lec.texte(p, "nom", "payeur.nom", 100)
    prenom = lec.texte(p, "prenom", "payeur.prenom", 100)
    email = lec.texte(p, "email", "payeur.email", 200, requis=False)
    if email is not None and not COURRIEL.fullmatch(email):
        lec.faute("payeur.email", f"« {email} » n'est pas une adresse électronique")
    a = p.get("adresse")
    if not isinstance(a, dict):
        lec.faute("payeur.adresse", "l'adresse est obligatoire (elle figure sur le titre)")
        return None
    lec.cles(a, _CLES_ADRESSE, "payeur.adresse.")
    ligne1 = lec.texte(a, "ligne1", "payeur.adresse.ligne1", 200)
    ligne2 = lec.texte(a, "ligne2", "payeur.adresse.ligne2", 200, requis=False)
    cp = lec.texte(a, "code_postal", "payeur.adresse.code_postal", 10)
    if cp is not None and not CP.fullmatch(cp):
        lec.faute("payeur.adresse.code_postal", f"« {cp} » : cinq chiffres attendus")
    ville = lec.texte(a, "ville", "payeur.adresse.ville", 100)
    if civilite not in ("M", "MME") or not (nom and prenom and ligne1 and cp and ville):
        return None
    return Payeur(str(civilite), nom, prenom, email, ligne1, ligne2 or None, cp, ville)


def _lire_ligne(brute: Any, rang: int, lec: _Lecteur, ref: Referentiel, periode: str | None) -> LigneLue | None:
    champ = f"lignes[{rang}]"
    if not isinstance(brute, dict):
        lec.faute(champ, "un objet est attendu")
        return None
    avant = lec.ok
    lec.ok = True
    lec.cles(brute, _CLES_LIGNE, champ + ".")
    prestation = lec.texte(brute, "prestation", champ + ".prestation", 20)
    if prestation is not None and prestation not in ref.prestations_cesu:
        lec.faute(champ + ".prestation", f"« {prestation} » n'est pas une prestation de la configuration")
    libelle = lec.texte(brute, "libelle", champ + ".libelle", 200)
    enfant = lec.texte(brute, "enfant", champ + ".enfant", 200, requis=False)
    naissance = lec.date_(brute, "naissance", champ + ".naissance", requis=False)
    quantite: int | None = None
    q = brute.get("quantite")
    if not isinstance(q, str):
        lec.faute(champ + ".quantite", "une quantité s'écrit comme une chaîne (« 12 », « 1.5 »)")
    else:
        try:
            quantite = decimal_en_centiemes(q)
        except MontantInvalide as exc:
            lec.faute(champ + ".quantite", str(exc))
        else:
            if quantite <= 0:
                lec.faute(champ + ".quantite", "la quantité doit être strictement positive")
    prix = lec.euros(brute, "prix_unitaire", champ + ".prix_unitaire")
    montant = lec.euros(brute, "montant", champ + ".montant")
    if quantite is not None and quantite > 0 and prix is not None and montant is not None:
        attendu = produit_arrondi(quantite, prix)
        if attendu != montant:
            lec.faute(champ + ".montant", f"{montant // 100}.{montant % 100:02d} ≠ quantité × prix unitaire "
                                          f"= {attendu // 100}.{attendu % 100:02d}")
    ok = lec.ok
    lec.ok = avant and ok
    if not ok:
        return None
    assert prestation and libelle and quantite is not None and prix is not None and montant is not None
    eligible = periode is not None and ligne_eligible_cesu(ref.prestations_cesu[prestation], naissance, periode)
    return LigneLue(rang, prestation, libelle, enfant, naissance, quantite, prix, montant, eligible)


def _lire_avoir(obj: dict[str, Any], lec: _Lecteur) -> AvoirLu | None:
    lec.cles(obj, _CLES_AVOIR)
    numero = _lire_numero(obj, lec)
    facture = _lire_numero(obj, lec, "facture")
    emise_le = lec.date_(obj, "emise_le", "emise_le")
    montant = lec.euros(obj, "montant", "montant")
    if montant is not None and montant <= 0:
        lec.faute("montant", "le montant d'un avoir doit être strictement positif")
    motif = lec.texte(obj, "motif", "motif", 200)
    if not lec.ok:
        return None
    assert numero and facture and emise_le and montant and motif
    return AvoirLu(lec.ligne, numero, facture, emise_le, montant, motif, empreinte_objet(obj))


def lire_jsonl(flux: IO[bytes], nom_fichier: str, ref: Referentiel,
               erreurs: CollecteurErreurs) -> Iterator[FactureLue | AvoirLu]:
    """Lit un fichier JSON Lines, en flux ; les erreurs s'accumulent dans `erreurs`."""
    premiere = True
    vide = True
    for numero, brute in enumerate(flux, 1):
        if premiere and brute.startswith(b"\xef\xbb\xbf"):
            brute = brute[3:]
        premiere = False
        if not brute.strip():
            continue
        vide = False
        try:
            texte = brute.decode("utf-8")
        except UnicodeDecodeError:
            erreurs.ajouter(numero, None, "la ligne n'est pas en UTF-8 (fichier en Latin-1 ? encodage attendu : UTF-8)")
            continue
        try:
            obj = json.loads(texte)
        except ValueError as exc:
            erreurs.ajouter(numero, None, f"JSON invalide ({exc.args[0].split(':')[0]})")
            continue
        lu = lire_objet(obj, numero, ref, erreurs)
        if lu is not None:
            yield lu
    if vide:
        erreurs.ajouter(None, None, "fichier vide : aucune facture ni aucun avoir")
