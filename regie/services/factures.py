"""Import des factures et avoirs du portail : tout le fichier ou rien, en flux, idempotent."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import structlog
from sqlalchemy import Connection, insert, select, update

from connecteurs.cesu.titres import debut_du_jour
from connecteurs.portail.factures import AvoirLu, FactureLue, Referentiel, lire_jsonl, lire_objet
from regie import points_de_crash
from regie.application import Application
from regie.domaine import LigneOuverte, repartir
from regie.erreurs import CollecteurErreurs
from regie.montants import centimes_en_euros
from regie.progression import Progression
from regie.registre.etats import lire_facture, porter
from regie.registre.lignes import LigneFacture, encoder_lignes
from regie.registre.masse import inserer_tuples, reserver_ids, sans_ramasse_miettes, table_de, valeurs_par_cle
from regie.registre.modeles import (
    Avoir,
    Compteur,
    Dossier,
    EtatFacture,
    Facture,
    FichierRecu,
    MouvementCompte,
)
from regie.registre.statistiques import rafraichir_statistiques
from regie.registre.types import maintenant
from regie.services.fichiers import (
    RapportImport,
    importer_une_fois,
)

log = structlog.get_logger()
PARIS = ZoneInfo("Europe/Paris")
TAILLE_LOT = 5000
CANAL = "factures"
DOSSIER = table_de(Dossier)
FACTURE = table_de(Facture)
ETAT = table_de(EtatFacture)
MOUVEMENT = table_de(MouvementCompte)
COLONNES_FACTURE = ("id", "numero", "regie_code", "dossier_id", "emise_le", "echeance", "periode", "montant",
                    "refdet", "civilite", "nom", "prenom", "email", "adresse1", "adresse2", "code_postal", "ville",
                    "lignes", "empreinte", "fichier_id", "cree_le")
COLONNES_ETAT = ("facture_id", "montant", "paye", "avoirs", "statut")
COLONNES_MOUVEMENT = ("dossier_id", "quand", "nature", "libelle", "montant", "delta_du", "delta_credit",
                      "delta_tresor", "facture_id", "cree_le")


def prendre_numeros(conn: Connection, nom: str, n: int) -> int:
    """Réserve n numéros consécutifs d'une séquence ; rend le premier. Jamais réutilisés."""
    res = conn.execute(update(Compteur).where(Compteur.nom == nom).values(valeur=Compteur.valeur + n))
    if res.rowcount == 0:
        conn.execute(insert(Compteur), {"nom": nom, "valeur": n})
        return 1
    fin = conn.execute(select(Compteur.valeur).where(Compteur.nom == nom)).scalar_one()
    return int(fin) - n + 1


def dossiers_ids(conn: Connection, numeros: Iterable[str]) -> dict[str, int]:
    """Les identifiants des dossiers, créés au besoin."""
    voulus = set(numeros)
    ids: dict[str, int] = valeurs_par_cle(conn, DOSSIER, "numero", "id", voulus)
    manquants = sorted(voulus - ids.keys())
    if manquants:
        # Identifiants réservés puis insertion en masse : pas d'INSERT ... RETURNING ligne à ligne.
        nouveaux = reserver_ids(conn, DOSSIER, len(manquants))
        now = maintenant()
        inserer_tuples(conn, DOSSIER, ("id", "numero", "cree_le"),
                       [(i, n, now) for i, n in zip(nouveaux, manquants, strict=True)])
        ids.update(zip(manquants, nouveaux, strict=True))
    return ids


class _Import:
    """Un import de factures dans une transaction ; les erreurs s'accumulent, on annule à la fin."""

    def __init__(self, conn: Connection, fichier_id: int | None, erreurs: CollecteurErreurs) -> None:
        self.conn = conn
        self.fichier_id = fichier_id
        self.erreurs = erreurs
        self.factures = 0
        self.avoirs = 0
        self.ignores = 0

    def factures_lot(self, lot: Sequence[FactureLue]) -> None:
        conn = self.conn
        existantes = valeurs_par_cle(conn, FACTURE, "numero", "empreinte", {f.numero for f in lot})
        nouvelles: list[FactureLue] = []
        vues: dict[str, FactureLue] = {}
        for f in lot:
            avant = existantes.get(f.numero)
            double = vues.get(f.numero)
            if avant is not None or double is not None:
                empreinte = avant if avant is not None else double.empreinte  # type: ignore[union-attr]
                if empreinte == f.empreinte:
                    self.ignores += 1
                else:
                    self.erreurs.ajouter(f.ligne, "numero", f"la facture {f.numero} existe déjà avec un autre "
                                                            "contenu : une facture ne se modifie pas, émettre un avoir")
                continue
            vues[f.numero] = f
            nouvelles.append(f)
        if not nouvelles:
            return
        dossiers = dossiers_ids(conn, (f.dossier for f in nouvelles))
        ids = reserver_ids(conn, FACTURE, len(nouvelles))
        now = maintenant()
        fichier_id = self.fichier_id
        # Des tuples dans l'ordre des colonnes : un million de dict de moins par import.
        inserer_tuples(conn, FACTURE, COLONNES_FACTURE, [(
            fid, f.numero, f.regie, dossiers[f.dossier], f.emise_le, f.echeance, f.periode, f.montant, f.refdet,
            p.civilite, p.nom, p.prenom, p.email, p.adresse1, p.adresse2, p.code_postal, p.ville,
            encoder_lignes([LigneFacture(lg.prestation, lg.libelle, lg.enfant, lg.naissance, lg.quantite_centiemes,
                                         lg.prix_unitaire, lg.montant, lg.eligible_cesu) for lg in f.lignes]),
            f.empreinte, fichier_id, now,
        ) for fid, f in zip(ids, nouvelles, strict=True) for p in (f.payeur,)])
        inserer_tuples(conn, ETAT, COLONNES_ETAT, [(fid, f.montant, 0, 0, "emise")
                                                   for fid, f in zip(ids, nouvelles, strict=True)])
        debuts: dict[date, datetime] = {d: debut_du_jour(d) for d in {f.emise_le for f in nouvelles}}
        inserer_tuples(conn, MOUVEMENT, COLONNES_MOUVEMENT, [(
            dossiers[f.dossier], debuts[f.emise_le], "facture", f"Facture {f.numero} ({f.periode})", f.montant,
            f.montant, 0, 0, fid, now,
        ) for fid, f in zip(ids, nouvelles, strict=True)])
        self.factures += len(nouvelles)

    def avoir(self, a: AvoirLu) -> None:
        conn = self.conn
        avant = conn.execute(select(Avoir.empreinte).where(Avoir.numero == a.numero)).scalar_one_or_none()
        if avant is not None:
            if avant == a.empreinte:
                self.ignores += 1
            else:
                self.erreurs.ajouter(a.ligne, "numero", f"l'avoir {a.numero} existe déjà avec un autre contenu")
            return
        f = lire_facture(conn, a.facture, pour_mise_a_jour=True)
        if f is None:
            self.erreurs.ajouter(a.ligne, "facture", f"la facture {a.facture} est inconnue")
            return
        if f.statut == "titree":
            self.erreurs.ajouter(a.ligne, "facture", f"la facture {a.facture} est titrée : la réduction doit "
                                                     "passer par le Trésor (titre d'annulation)")
            return
        if f.statut == "annulee":
            self.erreurs.ajouter(a.ligne, "facture", f"la facture {a.facture} est déjà annulée")
            return
        emise_le = conn.execute(select(Facture.emise_le).where(Facture.id == f.id)).scalar_one()
        if a.emise_le < emise_le:
            self.erreurs.ajouter(a.ligne, "emise_le", f"l'avoir est daté avant la facture {a.facture}")
            return
        impute = min(a.montant, f.reste)
        credit = a.montant - impute
        now = maintenant()
        avoir_id = conn.execute(insert(Avoir).returning(Avoir.id), {
            "numero": a.numero, "facture_id": f.id, "dossier_id": f.dossier_id, "emise_le": a.emise_le,
            "montant": a.montant, "motif": a.motif, "affecte": impute, "empreinte": a.empreinte,
            "fichier_id": self.fichier_id, "cree_le": now}).scalar_one()
        if impute:
            parts = repartir(impute, [LigneOuverte(lg.rang, lg.reste) for lg in f.lignes])
            porter(conn, f, parts, paiement_id=None, avoir_id=avoir_id, regle="avoir", preuve={"avoir": a.numero},
                   auteur="systeme")
        libelle = f"Avoir {a.numero} sur la facture {a.facture} : {a.motif}"
        if credit:
            libelle += f" (dont {centimes_en_euros(credit)} € en crédit)"
        conn.execute(insert(MouvementCompte), {
            "dossier_id": f.dossier_id, "quand": debut_du_jour(a.emise_le), "nature": "avoir",
            "libelle": libelle[:300], "montant": a.montant, "delta_du": -impute, "delta_credit": credit,
            "delta_tresor": 0, "facture_id": f.id, "avoir_id": avoir_id, "cree_le": now})
        self.avoirs += 1


def _ecrire(imp: _Import, lus: Iterable[FactureLue | AvoirLu]) -> None:
    lot: list[FactureLue] = []
    avoirs: list[AvoirLu] = []
    progression = Progression("import des factures", "factures")
    for lu in lus:
        if isinstance(lu, AvoirLu):
            avoirs.append(lu)  # après les factures : un avoir peut viser une facture du même fichier
            continue
        lot.append(lu)
        if len(lot) >= TAILLE_LOT:
            imp.factures_lot(lot)
            progression.avancer(len(lot))
            lot = []
    if lot:
        imp.factures_lot(lot)
        progression.avancer(len(lot))
    for a in avoirs:
        imp.avoir(a)
    progression.terminer()


def importer_fichier_factures(app: Application, chemin: Path, *, origine: str | None = None) -> RapportImport:
    """`regie factures importer` : refuse le fichier entier à la première erreur, après les avoir toutes listées."""
    def faire(conn: Connection, fichier_id: int, nom: str) -> _Import:
        erreurs = CollecteurErreurs(nom)
        imp = _Import(conn, fichier_id, erreurs)
        with chemin.open("rb") as flux, sans_ramasse_miettes():
            _ecrire(imp, lire_jsonl(flux, nom, app.referentiel, erreurs))
        erreurs.verifier()  # lève : la transaction est annulée, rien n'est écrit
        conn.execute(update(FichierRecu).where(FichierRecu.id == fichier_id).values(
            nb_enregistrements=imp.factures + imp.avoirs, nb_ignores=imp.ignores))
        return imp

    rapport, imp = importer_une_fois(app, chemin, CANAL, origine, faire, RapportImport(chemin.name, CANAL))
    if imp is None:
        return rapport
    points_de_crash.point("apres_import_factures")
    rapport.importes = imp.factures + imp.avoirs
    rapport.ignores = imp.ignores
    rapport.comptes = {"factures": imp.factures, "avoirs": imp.avoirs}
    log.info("factures_importees", fichier=rapport.fichier, factures=imp.factures, avoirs=imp.avoirs,
             deja_importees=imp.ignores)
    rafraichir_statistiques(app.moteur, ("facture", "etat_facture", "mouvement_compte", "dossier"), imp.factures)
    return rapport


def pousser_objets(app: Application, objets: Sequence[object], *, source: str = "api") -> RapportImport:
    """Les mêmes objets reçus par HTTP (un tableau JSON) : même contrôle, même atomicité."""
    erreurs = CollecteurErreurs(source)
    ref: Referentiel = app.referentiel
    lus = [lu for i, obj in enumerate(objets, 1) if (lu := lire_objet(obj, i, ref, erreurs)) is not None]
    if not objets:
        erreurs.ajouter(None, None, "aucune facture ni aucun avoir")
    erreurs.verifier()
    with app.moteur.begin() as conn:
        imp = _Import(conn, None, erreurs)
        _ecrire(imp, lus)
        erreurs.verifier()
    rapport = RapportImport(source, CANAL, importes=imp.factures + imp.avoirs, ignores=imp.ignores,
                            comptes={"factures": imp.factures, "avoirs": imp.avoirs})
    log.info("factures_poussees", source=source, factures=imp.factures, avoirs=imp.avoirs,
             deja_importees=imp.ignores)
    return rapport
