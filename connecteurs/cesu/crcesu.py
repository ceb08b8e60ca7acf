"""Relevés de remboursement du CRCESU (specs/cesu.md, `--canal crcesu`).

Un relevé confirme une remise de titres : le moteur compare nombre et montant aux titres
enregistrés (REMISE_ECART, REFERENCE_INCONNUE). Ici seulement l'arithmétique propre au format :
`montant_verse = montant_titres - frais`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Final

import structlog

from connecteurs.cesu.titres import debut_du_jour
from connecteurs.cfonb.cfonb120 import MOTIF_REMISE  # l'identifiant revient dans le libellé DFT
from connecteurs.lecture_csv import champ_date, champ_montant, champ_texte, lignes_csv
from connecteurs.modeles import PaiementRecu
from regie.erreurs import CollecteurErreurs
from regie.montants import MontantInvalide, centimes_en_euros, euros_en_centimes

log = structlog.get_logger()

COLONNES: Final = ("remise", "rembourse_le", "nombre_titres", "montant_titres", "frais", "montant_verse")


def lire_remboursements_crcesu(contenu: bytes, nom_fichier: str) -> Iterator[PaiementRecu]:
    """Donne un PaiementRecu (canal « crcesu », référence = la remise) par ligne ; FichierRefuse à la fin."""
    erreurs = CollecteurErreurs(nom_fichier)
    lus = 0
    for ligne, champs, brut in lignes_csv(contenu, COLONNES, erreurs):
        paiement = _remboursement(ligne, champs, brut, erreurs)
        if paiement is not None and not erreurs:
            lus += 1
            yield paiement
    if erreurs:
        log.warning("crcesu_refuse", fichier=nom_fichier, erreurs=len(erreurs.erreurs))
        erreurs.verifier()
    log.info("crcesu_lu", fichier=nom_fichier, remboursements=lus)


def _remboursement(ligne: int, champs: dict[str, str], brut: str,
                   erreurs: CollecteurErreurs) -> PaiementRecu | None:
    avant = len(erreurs.erreurs)
    remise = champ_texte(champs["remise"], ligne, "remise", erreurs, maxi=20, motif=MOTIF_REMISE)
    rembourse_le = champ_date(champs["rembourse_le"], ligne, "rembourse_le", erreurs)
    nombre: int | None = None
    texte_nombre = champs["nombre_titres"].strip()
    if re.fullmatch(r"[1-9][0-9]{0,5}", texte_nombre):
        nombre = int(texte_nombre)
    else:
        erreurs.ajouter(ligne, "nombre_titres", f"« {champs['nombre_titres']} » : un nombre entier de titres ≥ 1 "
                        "attendu")
    montant_titres = champ_montant(champs["montant_titres"], ligne, "montant_titres", erreurs)
    frais: int | None = None
    try:
        frais = euros_en_centimes(champs["frais"].strip())  # 0.00 permis : pas de frais
    except MontantInvalide as exc:
        erreurs.ajouter(ligne, "frais", str(exc))
    montant_verse = champ_montant(champs["montant_verse"], ligne, "montant_verse", erreurs)
    if montant_titres is not None and frais is not None and montant_verse is not None \
            and montant_verse != montant_titres - frais:
        erreurs.ajouter(ligne, "montant_verse",
                        f"montant_verse {centimes_en_euros(montant_verse)} ≠ montant_titres "
                        f"{centimes_en_euros(montant_titres)} - frais {centimes_en_euros(frais)} "
                        f"= {centimes_en_euros(montant_titres - frais)}")
    if len(erreurs.erreurs) != avant:
        return None
    if remise is None or rembourse_le is None or nombre is None or montant_titres is None \
            or frais is None or montant_verse is None:
        return None
    return PaiementRecu(
        canal="crcesu", reference=remise, montant=montant_verse, recu_le=debut_du_jour(rembourse_le),
        remise=remise,
        details={"nombre_titres": nombre, "montant_titres": montant_titres, "frais": frais,
                 "rembourse_le": rembourse_le.isoformat()},
        ligne=ligne, brut=brut,
    )
