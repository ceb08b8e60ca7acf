"""Envoi au Trésor des fichiers produits : `regie titres envoyer` (specs/pes.md, SFTP sortant).

Pour chaque fichier écrit et pas encore déposé, dans l'ordre de création :

1. on l'inscrit `depot_en_cours` (nom distant, SHA-256, taille, heure) AVANT tout octet envoyé ;
2. le dépôt l'envoie sous un nom temporaire, vérifie la taille, renomme sans écraser ;
3. on l'inscrit `depose` APRÈS, et ses bordereaux et titres passent `transmis`.

Un arrêt entre 1 et 3 se règle au passage suivant : le fichier est toujours `depot_en_cours`,
`deposer` voit le même contenu déjà publié (DEJA_DEPOSE) et rien n'est renvoyé. Les
temporaires laissés par un envoi coupé sont nettoyés en début de passage. Un pair
injoignable arrête le passage (PairInjoignable, code de sortie 3) ; un autre contenu sous le
même nom distant n'est jamais écrasé : le fichier est signalé et les autres partent.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import structlog
from sqlalchemy import select, update

from connecteurs.sftp import Depot, ErreurDepot, FichierDejaPresent, appliquer_motif, mesurer
from exports.titres import ECRIT, NATURE_PES, finir_fichiers_interrompus, jour_du_nom
from regie import points_de_crash
from regie.application import Application
from regie.registre.modeles import Bordereau, FichierExporte, Titre
from regie.registre.types import maintenant

log = structlog.get_logger()

DEPOT_EN_COURS = "depot_en_cours"
DEPOSE = "depose"
MOTIF_PAR_DEFAUT = "{nom}"
DOSSIER_DISTANT_PAR_DEFAUT = "."
DOSSIER_DEPOT_LOCAL = "depot"  # sous app.env.donnees : le pair embarqué, un simple dossier


@dataclass
class BilanEnvoi:
    deposes: list[str] = field(default_factory=list)  # noms distants publiés par ce passage
    deja_deposes: list[str] = field(default_factory=list)  # trouvés déjà publiés (reprise après arrêt)
    en_conflit: list[str] = field(default_factory=list)  # messages : un autre contenu sous le même nom
    temporaires_nettoyes: list[str] = field(default_factory=list)

    @property
    def complet(self) -> bool:
        return not self.en_conflit

    def message(self) -> str:
        txt = f"{len(self.deposes)} fichier(s) déposé(s)"
        if self.deja_deposes:
            txt += f", {len(self.deja_deposes)} déjà déposé(s) lors d'un passage interrompu"
        if self.en_conflit:
            txt += f", {len(self.en_conflit)} en conflit (non envoyé(s))"
        return txt


def nom_distant(motif: str, nom: str, siren: str) -> str:
    """Le nom sur le serveur selon le motif configuré (`{nom}`, `{siren}`, `{date}` AAAAMMJJ)."""
    try:
        date_texte = f"{jour_du_nom(nom):%Y%m%d}"
    except (IndexError, ValueError):
        date_texte = ""
    return appliquer_motif(motif, nom=nom, siren=siren, date=date_texte)


def envoyer_fichiers(app: Application, depot: Depot, *, dossier_distant: str = DOSSIER_DISTANT_PAR_DEFAUT,
                     motif: str = MOTIF_PAR_DEFAUT, natures: Sequence[str] = (NATURE_PES,)) -> BilanEnvoi:
    """Dépose chaque fichier écrit pas encore déposé. Lève PairInjoignable (réessais épuisés),
    CleHoteInconnue, AuthentificationRefusee, DossierIntrouvable : rien n'est alors marqué déposé."""
    bilan = BilanEnvoi()
    finir_fichiers_interrompus(app)  # un PES inscrit mais pas encore à son nom part aussi
    siren = app.config.collectivite.siret[:9]
    with app.moteur.connect() as conn:
        a_deposer = conn.execute(
            select(FichierExporte.id, FichierExporte.nom, FichierExporte.chemin, FichierExporte.sha256,
                   FichierExporte.taille, FichierExporte.statut, FichierExporte.destination)
            .where(FichierExporte.nature.in_(list(natures)), FichierExporte.statut.in_((ECRIT, DEPOT_EN_COURS)))
            .order_by(FichierExporte.id)).all()
    if not a_deposer:
        return bilan
    bilan.temporaires_nettoyes = depot.nettoyer_temporaires(dossier_distant)
    for f in a_deposer:
        chemin = Path(f.chemin)
        locale = mesurer(chemin)
        if f.sha256 is not None and (locale.sha256, locale.taille) != (f.sha256, f.taille):
            # Le fichier a changé depuis son inscription : ce n'est plus celui qui a été numéroté.
            raise ErreurDepot(f"{chemin} : le contenu ne correspond plus à celui inscrit (SHA-256 {f.sha256}) ; "
                              "envoi arrêté, rien n'est envoyé")
        distant = nom_distant(motif, f.nom, siren)
        destination = f"{dossier_distant.rstrip('/')}/{distant}"
        if f.statut == DEPOT_EN_COURS and f.destination not in (None, destination):
            log.warning("destination_changee", fichier=f.nom, avant=f.destination, apres=destination)
        with app.moteur.begin() as conn:
            conn.execute(update(FichierExporte).where(FichierExporte.id == f.id).values(
                statut=DEPOT_EN_COURS, destination=destination, sha256=locale.sha256, taille=locale.taille,
                depot_commence_le=maintenant()))
        log.info("depot_commence", fichier=f.nom, destination=destination, sha256=locale.sha256, taille=locale.taille)
        try:
            resultat = depot.deposer(chemin, dossier_distant, distant)
            points_de_crash.point("envoi_avant_inscription")
        except FichierDejaPresent as exc:
            bilan.en_conflit.append(str(exc))
            log.error("depot_en_conflit", fichier=f.nom, destination=destination, erreur=str(exc))
            continue
        with app.moteur.begin() as conn:
            conn.execute(update(FichierExporte).where(FichierExporte.id == f.id).values(
                statut=DEPOSE, depose_le=resultat.termine_le))
            bordereaux = select(Bordereau.id).where(Bordereau.fichier_id == f.id).scalar_subquery()
            conn.execute(update(Bordereau).where(Bordereau.fichier_id == f.id, Bordereau.statut == "emis")
                         .values(statut="transmis"))
            conn.execute(update(Titre).where(Titre.bordereau_id.in_(bordereaux), Titre.statut == "emis")
                         .values(statut="transmis"))
        (bilan.deja_deposes if resultat.deja_depose else bilan.deposes).append(distant)
        log.info("depot_termine", fichier=f.nom, destination=destination, statut=resultat.statut.value)
    return bilan
