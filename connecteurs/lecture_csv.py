"""Lecture des fichiers CSV des canaux : UTF-8 (BOM toléré), `;`, en-tête exact, CR LF ou LF."""

from __future__ import annotations

import csv
import functools
import io
import re
from collections.abc import Iterator
from datetime import date, datetime

from regie.erreurs import CollecteurErreurs
from regie.montants import MontantInvalide, euros_en_centimes


def decoder_utf8(contenu: bytes, erreurs: CollecteurErreurs) -> str | None:
    """Décode en UTF-8 ; en cas d'échec, l'erreur nomme la ligne fautive."""
    if contenu.startswith(b"\xef\xbb\xbf"):
        contenu = contenu[3:]
    try:
        return contenu.decode("utf-8")
    except UnicodeDecodeError as exc:
        ligne = contenu[: exc.start].count(b"\n") + 1
        erreurs.ajouter(ligne, None, "le fichier n'est pas en UTF-8 (octet invalide à la position "
                        f"{exc.start}) : encodage attendu UTF-8")
        return None


def lignes_csv(contenu: bytes, colonnes: tuple[str, ...],
               erreurs: CollecteurErreurs) -> Iterator[tuple[int, dict[str, str], str]]:
    """Donne (numéro de ligne, champs, ligne brute) pour chaque ligne de données.

    Les lignes au mauvais nombre de colonnes sont signalées et sautées ; un en-tête
    différent de `colonnes` rend le fichier illisible (rien n'est donné).
    """
    texte = decoder_utf8(contenu, erreurs)
    if texte is None:
        return
    brutes = texte.splitlines()
    if not brutes or not brutes[0].strip():
        erreurs.ajouter(1, None, "fichier vide : l'en-tête « " + ";".join(colonnes) + " » est requis")
        return
    lecteur = csv.reader(io.StringIO(texte, newline=""), delimiter=";", quotechar='"', strict=True)
    try:
        entete = next(lecteur)
    except csv.Error as exc:
        erreurs.ajouter(1, None, f"en-tête illisible : {exc}")
        return
    entete = [c.strip() for c in entete]
    if tuple(entete) != colonnes:
        manquantes = [c for c in colonnes if c not in entete]
        en_trop = [c for c in entete if c not in colonnes]
        detail = []
        if manquantes:
            detail.append("colonne(s) manquante(s) : " + ", ".join(manquantes))
        if en_trop:
            detail.append("colonne(s) inattendue(s) : " + ", ".join(en_trop))
        if not detail:
            detail.append("colonnes dans le désordre")
        erreurs.ajouter(1, None, "en-tête incorrect (" + " ; ".join(detail) + ") ; attendu : "
                        + ";".join(colonnes))
        return
    n = len(colonnes)
    while True:
        try:
            champs = next(lecteur)
        except StopIteration:
            return
        except csv.Error as exc:
            erreurs.ajouter(lecteur.line_num, None, f"ligne CSV illisible : {exc}")
            return
        numero = lecteur.line_num
        if not champs or (len(champs) == 1 and not champs[0].strip()):
            continue  # ligne vide (fin de fichier)
        brut = brutes[numero - 1] if numero - 1 < len(brutes) else ";".join(champs)
        if len(champs) != n:
            erreurs.ajouter(numero, None, f"{len(champs)} colonne(s) au lieu de {n}")
            continue
        yield numero, dict(zip(colonnes, champs, strict=True)), brut


# Lecteurs de champs : chacun renvoie la valeur ou None après avoir noté l'erreur.
# Motifs compilés une fois : `re.fullmatch(texte, …)` repasse par le cache de `re` à chaque appel, et un
# relevé en fait des millions (un dixième de la lecture d'un bordereau de chèques, mesuré sous cProfile).
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_DATE_HEURE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]+)?)?"
                         r"(Z|[+-][0-9]{2}:[0-9]{2})")
_motif = functools.lru_cache(maxsize=64)(re.compile)


# Un champ lu, pur (le texte seul décide) : sa valeur, ou la raison de son refus, que le lecteur note à chaque
# ligne où il revient. Mémorisé par texte : un bordereau répète ses dates et ses tarifs (leur contrôle coûtait
# plus d'une microseconde par ligne).
@functools.lru_cache(maxsize=4096)
def _montant_lu(valeur: str) -> int | str:
    try:
        centimes = euros_en_centimes(valeur.strip())
    except MontantInvalide as exc:
        return str(exc)
    if centimes <= 0:
        return f"« {valeur} » : le montant doit être strictement positif"
    return centimes


@functools.lru_cache(maxsize=4096)
def _date_lue(valeur: str) -> date | str:
    v = valeur.strip()
    if not _DATE.fullmatch(v):
        return f"« {valeur} » n'est pas une date AAAA-MM-JJ"
    try:
        return date.fromisoformat(v)
    except ValueError:
        return f"« {valeur} » n'est pas une date du calendrier"


def champ_montant(valeur: str, ligne: int, champ: str, erreurs: CollecteurErreurs) -> int | None:
    lu = _montant_lu(valeur)
    if isinstance(lu, str):
        erreurs.ajouter(ligne, champ, lu)
        return None
    return lu


def champ_date(valeur: str, ligne: int, champ: str, erreurs: CollecteurErreurs) -> date | None:
    lu = _date_lue(valeur)
    if isinstance(lu, str):
        erreurs.ajouter(ligne, champ, lu)
        return None
    return lu


def champ_date_heure(valeur: str, ligne: int, champ: str, erreurs: CollecteurErreurs) -> datetime | None:
    v = valeur.strip()
    if not _DATE_HEURE.fullmatch(v):
        erreurs.ajouter(ligne, champ, f"« {valeur} » n'est pas une date-heure ISO 8601 avec fuseau")
        return None
    try:
        return datetime.fromisoformat(v.replace("Z", "+00:00"))
    except ValueError:
        erreurs.ajouter(ligne, champ, f"« {valeur} » n'est pas une date-heure du calendrier")
        return None


def champ_texte(valeur: str, ligne: int, champ: str, erreurs: CollecteurErreurs,
                mini: int = 1, maxi: int = 200, motif: str | None = None) -> str | None:
    v = valeur.strip()
    if not mini <= len(v) <= maxi:
        erreurs.ajouter(ligne, champ, f"« {valeur} » : de {mini} à {maxi} caractères attendus")
        return None
    if motif is not None and not _motif(motif).fullmatch(v):
        erreurs.ajouter(ligne, champ, f"« {valeur} » : format invalide")
        return None
    return v
