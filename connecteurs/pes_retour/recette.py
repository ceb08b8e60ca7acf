"""PES_Retour recette (`PES2R_RCE`) : ce que sont devenus les titres, et ce qui a été encaissé.

Chaque `EncaissementEmargement` (sous la ligne de titre qu'il solde) devient un `PaiementRecu`
du canal `pes_retour`. Un encaissement n'a pas d'identifiant propre : sa clé naturelle est
`Exer/IdBord/IdPce/IdLigne/DteReco/MtReco/OrgEma/rang`, le rang comptant les blocs identiques
sous la même ligne. Un retour « stock » qui liste de nouveau des encaissements déjà reçus
redonne donc les mêmes références : ce sont les mêmes encaissements, jamais de nouveaux.

Lecture en flux (`iterparse`) pièce par pièce : un retour « stock » de plusieurs dizaines de
mégaoctets ne tient jamais tout entier en mémoire. Analyseur sans réseau, entités ni DTD.
"""

from __future__ import annotations

import io
import re
from collections import Counter
from dataclasses import dataclass, field
from datetime import date, datetime, time
from xml.sax.saxutils import quoteattr
from zoneinfo import ZoneInfo

import structlog
from lxml import etree
from pydantic import ValidationError

from connecteurs.modeles import PaiementRecu
from connecteurs.pes_retour import (
    OPTIONS_ANALYSEUR,
    enfants,
    erreur_syntaxe,
    espace_de_noms,
    nom_local,
    numero_ligne,
    valeur_v,
    verifier_encodage,
)
from regie.erreurs import CollecteurErreurs, FichierRefuse
from regie.montants import MontantInvalide, centimes_en_euros, euros_en_centimes

NS_RETOUR = "http://www.minefi.gouv.fr/cp/helios/pes_v2/Rev0/retour"
CANAL = "pes_retour"
PARIS = ZoneInfo("Europe/Paris")

TYPES_RESTITUTION = {"01": "rejets", "02": "périodique", "03": "stock"}
ETATS_PIECE = {"01": "en instance", "02": "prise en charge", "03": "prise en charge partielle",
               "04": "rejetée", "05": "annulée"}
ETATS_LIGNE = {"01": "rejetée", "02": "annulée", "03": "mise en instance", "04": "non soldée", "05": "soldée",
               "06": "soldée en non-valeur"}

_log = structlog.get_logger()
_ANNEE = re.compile(r"[0-9]{4}")
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_ORG_EMA = re.compile(r"[0-9]{2}")


def _motif_numero(chiffres: int) -> re.Pattern[str]:
    return re.compile(rf"[0-9]{{1,{chiffres}}}")


_ID_BORD = _motif_numero(12)  # Base_Num12 en retour
_ID_PCE = _motif_numero(13)  # Base_Num13 en retour
_ID_LIGNE = _motif_numero(6)  # Base_Num6


@dataclass(frozen=True, slots=True)
class EtatLigne:
    id_ligne: int
    etat: str  # EtatLigPce : 01 rejetée ... 05 soldée, 06 soldée en non-valeur
    montant_ht_centimes: int | None
    recouvre_centimes: int | None  # InfoRecouvrement/MtRecoTot


@dataclass(frozen=True, slots=True)
class EtatPiece:
    exercice: int
    id_bordereau: int
    id_piece: int
    etat: str  # EtatPce : 01 en instance, 02 prise en charge, 03 partielle, 04 rejetée, 05 annulée
    lignes: list[EtatLigne] = field(default_factory=list)

    @property
    def reference_titre(self) -> str:
        return f"{self.exercice}/{self.id_bordereau}/{self.id_piece}"


@dataclass(frozen=True, slots=True)
class RetourRecette:
    nom_fichier: str
    nom_fic: str | None  # Enveloppe/Parametres/NomFic
    type_restitution: str  # TypRestit : 01 rejets, 02 périodique, 03 stock
    pieces: list[EtatPiece]
    encaissements: list[PaiementRecu]
    doublons_ignores: int = 0  # encaissements listés deux fois dans le même fichier


@dataclass
class _Contexte:
    """Ce que le flux a lu avant les pièces : en-tête de recette, bordereau courant."""

    nom_fic: str | None = None
    recette_vue: bool = False
    entete_vue: bool = False
    type_restitution: str | None = None
    exercice: int | None = None
    id_bordereau: int | None = None
    bordereau_lu: bool = False
    pieces: list[EtatPiece] = field(default_factory=list)
    encaissements: list[PaiementRecu] = field(default_factory=list)
    references: set[str] = field(default_factory=set)
    doublons: int = 0


def lire_pes_retour(contenu: bytes, nom_fichier: str) -> RetourRecette:
    """Lit un PES_Retour recette ; lève FichierRefuse (toutes les erreurs, avec chemin XML et champ) sinon."""
    erreurs = CollecteurErreurs(nom_fichier)
    ctx = _Contexte()
    if not isinstance(contenu, bytes) or not contenu.strip():
        erreurs.ajouter(None, None, "fichier vide : un PES_Retour est attendu")
    elif verifier_encodage(contenu, erreurs):
        try:
            _parcourir(contenu, ctx, erreurs)
        except (etree.LxmlError, ValueError, LookupError) as exc:
            erreur_syntaxe(exc, erreurs)
    erreurs.verifier()
    if ctx.type_restitution is None:  # pragma: no cover - signalé par _parcourir
        raise FichierRefuse(nom_fichier, list(erreurs.erreurs))
    retour = RetourRecette(nom_fichier, ctx.nom_fic, ctx.type_restitution, ctx.pieces, ctx.encaissements,
                           ctx.doublons)
    _log.info("pes_retour_lu", fichier=nom_fichier, restitution=ctx.type_restitution, pieces=len(ctx.pieces),
              encaissements=len(ctx.encaissements), doublons_ignores=ctx.doublons)
    return retour


def _parcourir(contenu: bytes, ctx: _Contexte, erreurs: CollecteurErreurs) -> None:
    pile: list[str] = []  # « Nom[rang] » de chaque élément ouvert
    rangs: list[Counter[str]] = [Counter()]
    racine_vue = False
    for evenement, element in etree.iterparse(io.BytesIO(contenu), events=("start", "end"), **OPTIONS_ANALYSEUR):
        nom = nom_local(element)
        if evenement == "start":
            if not racine_vue:
                racine_vue = True
                if not _racine_valide(element, erreurs):
                    return
            rangs[-1][nom] += 1
            pile.append(f"{nom}[{rangs[-1][nom]}]" if pile else nom)
            rangs.append(Counter())
            if len(pile) == 2 and nom == "PES_RecetteRetour":
                ctx.recette_vue = True
            elif len(pile) == 3 and nom == "Bordereau" and _dans_recette(pile):
                ctx.exercice = ctx.id_bordereau = None
                ctx.bordereau_lu = False
            continue
        chemin = "/" + "/".join(pile)
        profondeur = len(pile)
        if profondeur == 2 and nom == "Enveloppe":
            parametres = enfants(element, "Parametres")
            if parametres:
                ctx.nom_fic = valeur_v(parametres[0], "NomFic", f"{chemin}/Parametres", erreurs, obligatoire=False)
        elif profondeur == 3 and nom == "EnTeteRecette" and _dans_recette(pile):
            ctx.entete_vue = True
            ctx.type_restitution = _type_restitution(element, chemin, erreurs)
        elif profondeur == 4 and nom == "BlocBordereau" and _dans_recette(pile):
            _bloc_bordereau(element, chemin, ctx, erreurs)
        elif profondeur == 4 and nom == "Piece" and _dans_recette(pile):
            if not ctx.bordereau_lu:
                erreurs.ajouter(numero_ligne(element), "BlocBordereau", "pièce sans BlocBordereau lisible avant elle",
                                chemin)
            elif ctx.exercice is not None and ctx.id_bordereau is not None:
                _piece(element, chemin, ctx.exercice, ctx.id_bordereau, ctx, erreurs)
        pile.pop()
        rangs.pop()
        if (profondeur, nom) in ((4, "Piece"), (3, "Bordereau")) or (profondeur == 2 and nom != "Enveloppe"):
            # Pièce (ou bloc d'un autre domaine) traitée : on libère la mémoire au fil du flux.
            element.clear(keep_tail=False)
            parent = element.getparent()
            while parent is not None and element.getprevious() is not None:
                del parent[0]
    if not racine_vue:
        erreurs.ajouter(None, None, "aucun élément XML : un PES_Retour est attendu")
    elif not ctx.recette_vue:
        erreurs.ajouter(None, "PES_RecetteRetour", "ce PES_Retour ne porte pas de retour de recette",
                        "/PES_Retour/PES_RecetteRetour")
    elif not ctx.entete_vue:
        erreurs.ajouter(None, "EnTeteRecette", "en-tête de recette absent",
                        "/PES_Retour/PES_RecetteRetour/EnTeteRecette")


def _dans_recette(pile: list[str]) -> bool:
    return len(pile) >= 2 and pile[1].startswith("PES_RecetteRetour[")


def _racine_valide(racine: etree._Element, erreurs: CollecteurErreurs) -> bool:
    nom = nom_local(racine)
    if nom != "PES_Retour":
        precision = " (c'est un fichier que nous envoyons, pas un retour)" if nom == "PES_Aller" else ""
        erreurs.ajouter(numero_ligne(racine), None, f"racine « {nom} » : un PES_Retour est attendu{precision}",
                        f"/{nom}")
        return False
    if espace_de_noms(racine) != NS_RETOUR:
        erreurs.ajouter(numero_ligne(racine), None, f"espace de noms « {espace_de_noms(racine)} » : attendu "
                                                 f"« {NS_RETOUR} »", "/PES_Retour")
        return False
    return True


def _code(parent: etree._Element, nom: str, chemin: str, valeurs: dict[str, str],
          erreurs: CollecteurErreurs) -> str | None:
    valeur = valeur_v(parent, nom, chemin, erreurs)
    if valeur is not None and valeur not in valeurs:
        erreurs.ajouter(numero_ligne(parent), nom, f"« {valeur} » : valeur attendue parmi "
                                                f"{', '.join(f'{k} ({v})' for k, v in valeurs.items())}",
                        f"{chemin}/{nom}")
        return None
    return valeur


def _numero(parent: etree._Element, nom: str, chemin: str, motif: re.Pattern[str],
            erreurs: CollecteurErreurs) -> int | None:
    valeur = valeur_v(parent, nom, chemin, erreurs)
    if valeur is None:
        return None
    if not motif.fullmatch(valeur) or int(valeur) == 0:
        erreurs.ajouter(numero_ligne(parent), nom, f"« {valeur} » n'est pas un numéro (chiffres, > 0)",
                        f"{chemin}/{nom}")
        return None
    return int(valeur)


def _montant(parent: etree._Element, nom: str, chemin: str, erreurs: CollecteurErreurs,
             *, obligatoire: bool = True) -> int | None:
    valeur = valeur_v(parent, nom, chemin, erreurs, obligatoire=obligatoire)
    if valeur is None:
        return None
    try:
        return euros_en_centimes(valeur, negatif_permis=True)
    except MontantInvalide as exc:
        erreurs.ajouter(numero_ligne(parent), nom, str(exc), f"{chemin}/{nom}")
        return None


def _type_restitution(element: etree._Element, chemin: str, erreurs: CollecteurErreurs) -> str | None:
    return _code(element, "TypRestit", chemin, TYPES_RESTITUTION, erreurs)


def _bloc_bordereau(element: etree._Element, chemin: str, ctx: _Contexte, erreurs: CollecteurErreurs) -> None:
    ctx.bordereau_lu = True
    exer = valeur_v(element, "Exer", chemin, erreurs)
    if exer is not None and not _ANNEE.fullmatch(exer):
        erreurs.ajouter(numero_ligne(element), "Exer", f"« {exer} » n'est pas une année", f"{chemin}/Exer")
        exer = None
    ctx.exercice = int(exer) if exer is not None else None
    ctx.id_bordereau = _numero(element, "IdBord", chemin, _ID_BORD, erreurs)


def _piece(piece: etree._Element, chemin: str, exercice: int, id_bordereau: int, ctx: _Contexte,
           erreurs: CollecteurErreurs) -> None:
    blocs = enfants(piece, "BlocPiece")
    if len(blocs) != 1:
        erreurs.ajouter(numero_ligne(piece), "BlocPiece", "un BlocPiece et un seul attendu", f"{chemin}/BlocPiece")
        return
    chemin_bloc = f"{chemin}/BlocPiece"
    id_piece = _numero(blocs[0], "IdPce", chemin_bloc, _ID_PCE, erreurs)
    etat = _code(blocs[0], "EtatPce", chemin_bloc, ETATS_PIECE, erreurs)
    lignes: list[EtatLigne] = []
    for rang_ligne, ligne in enumerate(enfants(piece, "LigneDePiece"), 1):
        lue = _ligne(ligne, f"{chemin}/LigneDePiece[{rang_ligne}]", exercice, id_bordereau, id_piece, ctx, erreurs)
        if lue is not None:
            lignes.append(lue)
    if id_piece is not None and etat is not None:
        ctx.pieces.append(EtatPiece(exercice, id_bordereau, id_piece, etat, lignes))


def _ligne(ligne: etree._Element, chemin: str, exercice: int, id_bordereau: int, id_piece: int | None,
           ctx: _Contexte, erreurs: CollecteurErreurs) -> EtatLigne | None:
    blocs = enfants(ligne, "BlocLignePiece")
    infos = enfants(blocs[0], "InfoLignePiece") if len(blocs) == 1 else []
    if len(infos) != 1:
        erreurs.ajouter(numero_ligne(ligne), "InfoLignePiece", "BlocLignePiece/InfoLignePiece attendu (un seul)",
                        f"{chemin}/BlocLignePiece/InfoLignePiece")
        return None
    bloc = blocs[0]
    chemin_info = f"{chemin}/BlocLignePiece/InfoLignePiece"
    id_ligne = _numero(infos[0], "IdLigne", chemin_info, _ID_LIGNE, erreurs)
    etat = _code(infos[0], "EtatLigPce", chemin_info, ETATS_LIGNE, erreurs)
    montant_ht = _montant(infos[0], "MtHT", chemin_info, erreurs, obligatoire=False)
    recouvre = None
    recouvrements = enfants(bloc, "InfoRecouvrement")
    if recouvrements:
        recouvre = _montant(recouvrements[0], "MtRecoTot", f"{chemin}/BlocLignePiece/InfoRecouvrement", erreurs,
                            obligatoire=False)
    identiques: Counter[tuple[str, date, int]] = Counter()
    for rang_bloc, bloc_enc in enumerate(enfants(ligne, "EncaissementEmargement"), 1):
        chemin_enc = f"{chemin}/EncaissementEmargement[{rang_bloc}]"
        lu = _encaissement(bloc_enc, chemin_enc, erreurs)
        if lu is None or id_piece is None or id_ligne is None:
            continue
        identiques[lu] += 1
        org_ema, dte_reco, montant = lu
        euros = centimes_en_euros(montant)
        reference = (f"{exercice}/{id_bordereau}/{id_piece}/{id_ligne}/{dte_reco.isoformat()}/{euros}/{org_ema}/"
                     f"{identiques[lu]}")
        if reference in ctx.references:
            ctx.doublons += 1  # la même ligne listée deux fois dans le fichier : un seul encaissement
            continue
        ctx.references.add(reference)
        try:
            ctx.encaissements.append(PaiementRecu(
                canal=CANAL,
                reference=reference,
                montant=montant,
                recu_le=datetime.combine(dte_reco, time(0), tzinfo=PARIS),
                reference_facture=f"{exercice}/{id_bordereau}/{id_piece}",
                details={"exercice": exercice, "id_bordereau": id_bordereau, "id_piece": id_piece,
                         "id_ligne": id_ligne, "org_ema": org_ema, "dte_reco": dte_reco.isoformat(),
                         "typ_restit": ctx.type_restitution},
                ligne=numero_ligne(bloc_enc),
                brut=_brut(bloc_enc),
            ))
        except ValidationError as exc:  # pragma: no cover - les champs sont vérifiés avant
            erreurs.ajouter(numero_ligne(bloc_enc), None, f"encaissement illisible : {exc.errors()[0]['msg']}",
                            chemin_enc)
    if id_ligne is None or etat is None:
        return None
    return EtatLigne(id_ligne, etat, montant_ht, recouvre)


def _brut(bloc: etree._Element) -> str:
    """Le bloc tel qu'écrit (valeurs V d'origine), sur une ligne, pour la preuve montrée à l'agent."""
    return "<EncaissementEmargement>" + "".join(
        f"<{nom_local(e)} V={quoteattr(e.get('V') or '')}/>" for e in bloc if isinstance(e.tag, str)
    ) + "</EncaissementEmargement>"


def _encaissement(bloc: etree._Element, chemin: str, erreurs: CollecteurErreurs) -> tuple[str, date, int] | None:
    org_ema = valeur_v(bloc, "OrgEma", chemin, erreurs)
    if org_ema is not None and not _ORG_EMA.fullmatch(org_ema):
        erreurs.ajouter(numero_ligne(bloc), "OrgEma", f"« {org_ema} » : code d'origine à deux chiffres attendu",
                        f"{chemin}/OrgEma")
        org_ema = None
    texte_date = valeur_v(bloc, "DteReco", chemin, erreurs)
    dte_reco = None
    if texte_date is not None:
        try:
            if not _DATE.fullmatch(texte_date):
                raise ValueError(texte_date)
            dte_reco = date.fromisoformat(texte_date)
        except ValueError:
            erreurs.ajouter(numero_ligne(bloc), "DteReco", f"« {texte_date} » n'est pas une date AAAA-MM-JJ",
                            f"{chemin}/DteReco")
    montant = _montant(bloc, "MtReco", chemin, erreurs)
    if montant is not None and montant <= 0:
        if montant < 0:
            raison = (f"montant négatif ({centimes_en_euros(montant)}) : une annulation ou une réduction "
                      "d'encaissement n'est pas un paiement reçu ; le fichier est refusé pour qu'un agent la "
                      "rapproche à la main du paiement qu'elle annule")
        else:
            raison = "montant nul : un encaissement porte un montant strictement positif"
        erreurs.ajouter(numero_ligne(bloc), "MtReco", raison, f"{chemin}/MtReco")
        montant = None
    if org_ema is None or dte_reco is None or montant is None:
        return None
    return org_ema, dte_reco, montant
