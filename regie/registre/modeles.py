"""Modèles du registre (SQLAlchemy 2, typés). Montants : centimes entiers.

La base garde elle aussi les invariants (clés naturelles uniques, montants positifs,
payé + avoirs ≤ montant) : le code ne peut pas les contourner.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Computed,
    Date,
    ForeignKey,
    Index,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, synonym

from regie.registre.lignes import JsonCompact, LigneFacture, LignesJson
from regie.registre.types import InstantUTC, Json, identifiant, maintenant

CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=CONVENTION)
    type_annotation_map = {datetime: InstantUTC(), dict[str, Any]: Json, list[Any]: Json}


# --- Référentiel (copie de la configuration) -------------------------------------------

class Regie(Base):
    __tablename__ = "regie"
    code: Mapped[str] = mapped_column(String(20), primary_key=True)
    libelle: Mapped[str] = mapped_column(String(100))
    mode: Mapped[str] = mapped_column(String(5))
    payfip_numcli: Mapped[str] = mapped_column(String(6))
    dft_compte: Mapped[str] = mapped_column(String(11), unique=True)
    delai_titre_jours: Mapped[int]
    code_produit: Mapped[str] = mapped_column(String(3))
    __table_args__ = (CheckConstraint("mode IN ('regie', 'titre')", name="mode"),)


class Prestation(Base):
    __tablename__ = "prestation"
    code: Mapped[str] = mapped_column(String(20), primary_key=True)
    libelle: Mapped[str] = mapped_column(String(100))
    nature: Mapped[str] = mapped_column(String(12))
    code_produit_local: Mapped[str] = mapped_column(String(4))
    cesu: Mapped[bool]


class Compteur(Base):
    """Séquences métier (numéro de dette, IdBord, IdPce, numéro de fichier du jour)."""

    __tablename__ = "compteur"
    nom: Mapped[str] = mapped_column(String(60), primary_key=True)
    valeur: Mapped[int] = mapped_column(BigInteger, default=0)


# --- Fichiers reçus et produits ---------------------------------------------------------

class FichierRecu(Base):
    """Un fichier importé (ou refusé) : nom, SHA-256, canal, statut, erreurs."""

    __tablename__ = "fichier_recu"
    id: Mapped[int] = mapped_column(primary_key=True)
    nom: Mapped[str] = mapped_column(String(255))
    sha256: Mapped[str] = mapped_column(String(64))
    canal: Mapped[str] = mapped_column(String(20))
    statut: Mapped[str] = mapped_column(String(10))  # importe | refuse
    taille: Mapped[int] = mapped_column(BigInteger)
    nb_enregistrements: Mapped[int] = mapped_column(default=0)
    nb_ignores: Mapped[int] = mapped_column(default=0)
    erreurs: Mapped[list[Any]] = mapped_column(default=list)
    origine: Mapped[str | None] = mapped_column(String(255))
    chemin_quarantaine: Mapped[str | None] = mapped_column(String(500))
    # Identité et dates du fichier lu (voir `regie.services.fichiers.signature_fichier`) : le même fichier,
    # inchangé, est reconnu sans être relu. NULL si le fichier bougeait encore quand il a été lu.
    signature: Mapped[str | None] = mapped_column(String(120))
    recu_le: Mapped[datetime] = mapped_column(default=maintenant)
    __table_args__ = (
        CheckConstraint("statut IN ('importe', 'refuse')", name="statut"),
        Index("ix_fichier_recu_signature", "canal", "signature", sqlite_where=text("signature IS NOT NULL"),
              postgresql_where=text("signature IS NOT NULL")),
        # Un même contenu n'est importé qu'une fois par canal, même par deux processus à la fois.
        Index("uq_fichier_recu_importe", "canal", "sha256", unique=True,
              sqlite_where=text("statut = 'importe'"), postgresql_where=text("statut = 'importe'")),
    )


class FichierExporte(Base):
    """Un fichier produit pour l'extérieur (PES_Aller, journaux) et son dépôt."""

    __tablename__ = "fichier_exporte"
    id: Mapped[int] = mapped_column(primary_key=True)
    nom: Mapped[str] = mapped_column(String(255), unique=True)
    nature: Mapped[str] = mapped_column(String(30))
    chemin: Mapped[str] = mapped_column(String(500))
    sha256: Mapped[str | None] = mapped_column(String(64))
    taille: Mapped[int | None] = mapped_column(BigInteger)
    statut: Mapped[str] = mapped_column(String(20), default="ecrit")  # ecrit | depot_en_cours | depose
    destination: Mapped[str | None] = mapped_column(String(500))
    cree_le: Mapped[datetime] = mapped_column(default=maintenant)
    depot_commence_le: Mapped[datetime | None]
    depose_le: Mapped[datetime | None]


# --- Familles et factures ----------------------------------------------------------------

class Dossier(Base):
    __tablename__ = "dossier"
    id: Mapped[int] = mapped_column(primary_key=True)
    numero: Mapped[str] = mapped_column(identifiant(20), unique=True)
    cree_le: Mapped[datetime] = mapped_column(default=maintenant)


class Facture(Base):
    """Une facture du portail, telle qu'émise : elle ne change plus (son état suit dans `EtatFacture`).

    Pas de clé étrangère déclarée sur cette table volumineuse (un contrôle par rangée coûte plus que
    l'écriture elle-même sous PostgreSQL) : l'import vérifie ses références par lot, dans sa
    transaction, et `regie verifier` contrôle tout le registre.
    """

    __tablename__ = "facture"
    # L'identifiant est aussi le numéro de dette (datamatrix, NumDette du titre) : unique, jamais réutilisé.
    id: Mapped[int] = mapped_column(primary_key=True)
    numero: Mapped[str] = mapped_column(identifiant(30), unique=True)
    regie_code: Mapped[str] = mapped_column(String(20))
    dossier_id: Mapped[int] = mapped_column(index=True)
    emise_le: Mapped[date] = mapped_column(Date)
    # Sans index : seule l'émission des titres (une fois par nuit) la filtre, et lit pour cela tout l'état.
    echeance: Mapped[date] = mapped_column(Date)
    periode: Mapped[str] = mapped_column(String(7))
    montant: Mapped[int]
    refdet: Mapped[str] = mapped_column(identifiant(30), index=True)
    civilite: Mapped[str] = mapped_column(String(3))
    nom: Mapped[str] = mapped_column(String(100))
    prenom: Mapped[str] = mapped_column(String(100))
    # Les mots du nom et du prénom, sans accents, triés (`regie.domaine.cle_payeur`) : la famille du
    # tireur d'un chèque se cherche par eux, en SQL.
    payeur_cle: Mapped[str] = mapped_column(String(210))
    email: Mapped[str | None] = mapped_column(String(200))
    adresse1: Mapped[str] = mapped_column(String(200))
    adresse2: Mapped[str | None] = mapped_column(String(200))
    code_postal: Mapped[str] = mapped_column(String(10))
    ville: Mapped[str] = mapped_column(String(100))
    lignes: Mapped[tuple[LigneFacture, ...]] = mapped_column(LignesJson())
    empreinte: Mapped[str] = mapped_column(String(64))
    fichier_id: Mapped[int | None]
    # Indexé : le moteur lit max(cree_le), la dernière arrivée (les clés arrivent dans l'ordre : peu coûteux).
    cree_le: Mapped[datetime] = mapped_column(default=maintenant, index=True)

    numero_dette: Mapped[int] = synonym("id")

    __table_args__ = (CheckConstraint("montant > 0", name="montant_positif"),)


# La condition de l'index partiel des restes : une requête qui veut s'en servir la répète telle quelle
# (SQLite ne reconnaît que ce terme exact).
CONDITION_OUVERTES = "statut IN ('emise', 'partiellement_payee')"


class EtatFacture(Base):
    """Ce qui change d'une facture : payé, avoirs, statut ; une rangée étroite par facture.

    À part de la facture : chaque paiement la réécrit, et une rangée courte avec deux index se
    réécrit trois fois plus vite que la facture entière et ses cinq index.
    """

    __tablename__ = "etat_facture"
    facture_id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    montant: Mapped[int]  # celui de la facture (l'index des restes le porte)
    paye: Mapped[int] = mapped_column(default=0)
    avoirs: Mapped[int] = mapped_column(default=0)
    # emise | partiellement_payee | payee | annulee | titree (specs/cli.md)
    statut: Mapped[str] = mapped_column(String(20), default="emise")
    # Calculé par la base : le moteur cherche les factures dont le reste égale un montant.
    reste_du: Mapped[int] = mapped_column(Computed("montant - paye - avoirs", persisted=True))
    # Celle de la facture (qui ne change plus), recopiée pour l'index des restes (famille du tireur).
    payeur_cle: Mapped[str] = mapped_column(String(210), server_default="")

    __table_args__ = (
        CheckConstraint("montant > 0", name="montant_positif"),
        CheckConstraint("paye >= 0 AND avoirs >= 0", name="paye_avoirs_positifs"),
        CheckConstraint("paye + avoirs <= montant", name="reste_positif"),
        CheckConstraint("statut IN ('emise', 'partiellement_payee', 'payee', 'annulee', 'titree')",
                        name="statut"),
        # Reste égal à un montant : famille du tireur, suggestions (entières et entamées).
        # L'identifiant après le montant : les suggestions se lisent dans l'ordre de l'index, arrêtées aux
        # cinq premières (SQLite y met le rowid de lui-même ; PostgreSQL trierait sinon tout le reste égal).
        # La clé du payeur en dernier : la famille du tireur se filtre dans l'index, sans lire chaque facture
        # de ce reste (des milliers quand un tarif est courant). Un index (payeur, reste) à part irait droit
        # aux factures cherchées, mais coûterait à chaque import un second index rempli dans le désordre.
        # Partiel : seules les factures ouvertes y sont cherchées ; une facture soldée en sort sans y
        # rentrer à une autre place (une page d'index de moins réécrite par paiement).
        Index("ix_etat_facture_reste_du", "reste_du", "statut", "montant", "facture_id", "payeur_cle",
              sqlite_where=text(CONDITION_OUVERTES), postgresql_where=text(CONDITION_OUVERTES)),
    )

    @property
    def reste(self) -> int:
        return self.montant - self.paye - self.avoirs


class Avoir(Base):
    __tablename__ = "avoir"
    id: Mapped[int] = mapped_column(primary_key=True)
    numero: Mapped[str] = mapped_column(String(30), unique=True)
    facture_id: Mapped[int] = mapped_column(ForeignKey("facture.id"), index=True)
    dossier_id: Mapped[int] = mapped_column(ForeignKey("dossier.id"), index=True)
    emise_le: Mapped[date] = mapped_column(Date)
    montant: Mapped[int]
    motif: Mapped[str] = mapped_column(String(200))
    affecte: Mapped[int] = mapped_column(default=0)  # part qui réduit des factures
    empreinte: Mapped[str] = mapped_column(String(64))
    fichier_id: Mapped[int | None] = mapped_column(ForeignKey("fichier_recu.id"))
    cree_le: Mapped[datetime] = mapped_column(default=maintenant)
    __table_args__ = (
        CheckConstraint("montant > 0", name="montant_positif"),
        CheckConstraint("affecte >= 0 AND affecte <= montant", name="affecte_borne"),
    )


# --- Paiements, remises, affectations -----------------------------------------------------

class Remise(Base):
    """Un lot de chèques ou de titres CESU déposés ensemble ; confirmé par le relevé DFT."""

    __tablename__ = "remise"
    id: Mapped[int] = mapped_column(primary_key=True)
    identifiant: Mapped[str] = mapped_column(String(20), unique=True)
    canal: Mapped[str] = mapped_column(String(12))  # cheque | cesu
    montant: Mapped[int] = mapped_column(default=0)
    nombre: Mapped[int] = mapped_column(default=0)
    statut: Mapped[str] = mapped_column(String(12), default="en_attente")  # en_attente | confirmee | ecart
    deposee_le: Mapped[date | None] = mapped_column(Date)
    confirmee_le: Mapped[datetime | None]
    cree_le: Mapped[datetime] = mapped_column(default=maintenant)


PAIEMENT_OUVERT = "statut IN ('a_traiter', 'en_anomalie')"


class Paiement(Base):
    """Un paiement reçu par un canal, tel que le canal l'a dit ; (canal, référence) est sa clé naturelle.

    Table volumineuse : pas de clé étrangère déclarée (voir `Facture`), des index partiels pour ce
    qui n'intéresse qu'une part des paiements (ouverts, remisés, en crédit).
    """

    __tablename__ = "paiement"
    id: Mapped[int] = mapped_column(primary_key=True)
    canal: Mapped[str] = mapped_column(identifiant(12))
    reference: Mapped[str] = mapped_column(identifiant(200))
    montant: Mapped[int]
    recu_le: Mapped[datetime]
    reference_facture: Mapped[str | None] = mapped_column(String(100))
    dossier_id: Mapped[int | None]
    remise_id: Mapped[int | None]
    # Pour une confirmation (cfonb, crcesu, pes_retour) : le paiement déjà connu qu'elle confirme.
    confirme_paiement_id: Mapped[int | None]
    details: Mapped[dict[str, Any]] = mapped_column(JsonCompact(), default=dict)
    brut: Mapped[str | None] = mapped_column(Text)
    ligne: Mapped[int | None]
    empreinte: Mapped[str] = mapped_column(String(64))
    fichier_id: Mapped[int | None]
    affecte: Mapped[int] = mapped_column(default=0)
    en_credit: Mapped[int] = mapped_column(default=0)  # excédent gardé en crédit de la famille
    rembourse: Mapped[int] = mapped_column(default=0)
    # a_traiter | affecte | partiellement_affecte | en_anomalie | confirme | annule
    statut: Mapped[str] = mapped_column(String(25), default="a_traiter")
    anomalie: Mapped[str | None] = mapped_column(String(30))
    # Un agent a décidé : le moteur ne le reprend plus de lui-même.
    decision_manuelle: Mapped[bool] = mapped_column(default=False)
    version: Mapped[int] = mapped_column(default=1)
    cree_le: Mapped[datetime] = mapped_column(default=maintenant)

    __mapper_args__ = {"version_id_col": version}
    __table_args__ = (
        UniqueConstraint("canal", "reference"),
        CheckConstraint("montant > 0", name="montant_positif"),
        CheckConstraint("affecte >= 0 AND en_credit >= 0 AND rembourse >= 0", name="parts_positives"),
        CheckConstraint("affecte + en_credit + rembourse <= montant", name="parts_bornees"),
        CheckConstraint("statut IN ('a_traiter', 'affecte', 'partiellement_affecte', 'en_anomalie', 'confirme', "
                        "'annule')", name="statut"),
        # Ce que le moteur reprend : les paiements à traiter et ceux en revue.
        Index("ix_paiement_ouvert", "statut", "anomalie", sqlite_where=text(PAIEMENT_OUVERT),
              postgresql_where=text(PAIEMENT_OUVERT)),
        Index("ix_paiement_remise_id", "remise_id", sqlite_where=text("remise_id IS NOT NULL"),
              postgresql_where=text("remise_id IS NOT NULL")),
        # Un paiement déjà confirmé (PES_Retour) ne l'est pas deux fois.
        Index("ix_paiement_confirme_paiement_id", "confirme_paiement_id",
              sqlite_where=text("confirme_paiement_id IS NOT NULL"),
              postgresql_where=text("confirme_paiement_id IS NOT NULL")),
        # Le crédit d'une famille (appliquer-credit) ; ses autres paiements se trouvent par son compte.
        Index("ix_paiement_credit", "dossier_id", sqlite_where=text("en_credit > 0"),
              postgresql_where=text("en_credit > 0")),
    )

    @property
    def excedent(self) -> int:
        return self.montant - self.affecte


class Affectation(Base):
    """Ce qu'un paiement (ou un avoir) apporte à une facture, et sa répartition sur les lignes.

    Une rangée par (source, facture) ; `parts` : [[rang de la ligne, montant], …], de somme
    `montant`. Journal en ajout seul : une annulation est une affectation de signe opposé qui
    désigne celle qu'elle annule.
    """

    __tablename__ = "affectation"
    id: Mapped[int] = mapped_column(primary_key=True)
    paiement_id: Mapped[int | None]
    avoir_id: Mapped[int | None]
    facture_id: Mapped[int] = mapped_column(index=True)
    montant: Mapped[int]
    parts: Mapped[list[list[int]]] = mapped_column(JsonCompact())
    regle: Mapped[str] = mapped_column(String(40))
    preuve: Mapped[dict[str, Any]] = mapped_column(JsonCompact(), default=dict)
    annule_id: Mapped[int | None]
    auteur: Mapped[str] = mapped_column(String(100), default="systeme")
    cree_le: Mapped[datetime] = mapped_column(default=maintenant)
    # Une affectation du moteur est elle-même l'écriture du compte famille (« paiement affecté », à la
    # date du paiement) : 'du' si elle réduit ce que la famille doit à la régie, 'tresor' si la facture
    # était titrée. NULL : un mouvement de `mouvement_compte` l'inscrit (décisions des agents, avoirs,
    # annulations). Un million de paiements, c'est un million de mouvements et d'entrées d'index de moins.
    imputation: Mapped[str | None] = mapped_column(String(6))
    __table_args__ = (
        CheckConstraint("montant <> 0", name="montant_non_nul"),
        CheckConstraint("imputation IS NULL OR (imputation IN ('du', 'tresor') AND paiement_id IS NOT NULL)",
                        name="imputation"),
        CheckConstraint("(paiement_id IS NULL) <> (avoir_id IS NULL)", name="une_source"),
        Index("ix_affectation_paiement_id", "paiement_id", sqlite_where=text("paiement_id IS NOT NULL"),
              postgresql_where=text("paiement_id IS NOT NULL")),
        Index("ix_affectation_avoir_id", "avoir_id", sqlite_where=text("avoir_id IS NOT NULL"),
              postgresql_where=text("avoir_id IS NOT NULL")),
    )


class Anomalie(Base):
    """Une entrée de la file de revue : un code, la preuve, des suggestions classées."""

    __tablename__ = "anomalie"
    id: Mapped[int] = mapped_column(primary_key=True)
    paiement_id: Mapped[int | None] = mapped_column(ForeignKey("paiement.id"), index=True)
    # Le canal du paiement en revue : le moteur cherche par canal les références inconnues à reprendre.
    canal: Mapped[str | None] = mapped_column(String(20))
    remise_id: Mapped[int | None] = mapped_column(ForeignKey("remise.id"), index=True)
    facture_id: Mapped[int | None] = mapped_column(ForeignKey("facture.id"), index=True)
    code: Mapped[str] = mapped_column(String(30), index=True)
    statut: Mapped[str] = mapped_column(String(10), default="ouverte", index=True)  # ouverte | en_cours | resolue
    raison: Mapped[str] = mapped_column(Text)
    preuve: Mapped[dict[str, Any]] = mapped_column(default=dict)
    suggestions: Mapped[list[Any]] = mapped_column(default=list)
    cree_le: Mapped[datetime] = mapped_column(default=maintenant, index=True)
    # Dernière relance du moteur sans changement (référence toujours inconnue).
    reevaluee_le: Mapped[datetime | None]
    resolue_le: Mapped[datetime | None]
    resolue_par: Mapped[str | None] = mapped_column(String(100))
    resolution: Mapped[str | None] = mapped_column(String(40))
    note: Mapped[str | None] = mapped_column(Text)


# Les anomalies que le moteur peut reprendre, par code, canal et instant de la dernière constatation : il
# ne lit que celles constatées avant l'arrivée de ce qui peut les résoudre (pas toute la file ouverte).
ANOMALIE_OUVERTE = "statut = 'ouverte'"
Index("ix_anomalie_a_reprendre", Anomalie.code, Anomalie.canal, func.coalesce(Anomalie.reevaluee_le, Anomalie.cree_le),
      sqlite_where=text(ANOMALIE_OUVERTE), postgresql_where=text(ANOMALIE_OUVERTE))


# --- Compte famille, titres, audit --------------------------------------------------------

class MouvementCompte(Base):
    """Le compte famille : un journal en ajout seul.

    Chaque mouvement dit son effet sur ce que la famille doit à la régie (`delta_du`),
    sur son crédit (`delta_credit`) et sur ce qu'elle doit au Trésor (`delta_tresor`).
    Les affectations du moteur n'y sont pas recopiées : elles portent leur imputation (voir
    `Affectation.imputation`) et le journal les lit là. Pas de clé étrangère déclarée, voir `Facture`.
    """

    __tablename__ = "mouvement_compte"
    id: Mapped[int] = mapped_column(primary_key=True)
    dossier_id: Mapped[int]
    quand: Mapped[datetime]
    nature: Mapped[str] = mapped_column(String(30))
    libelle: Mapped[str] = mapped_column(String(300))
    montant: Mapped[int]
    delta_du: Mapped[int] = mapped_column(default=0)
    delta_credit: Mapped[int] = mapped_column(default=0)
    delta_tresor: Mapped[int] = mapped_column(default=0)
    facture_id: Mapped[int | None]
    avoir_id: Mapped[int | None]
    paiement_id: Mapped[int | None]
    titre_id: Mapped[int | None]
    cree_le: Mapped[datetime] = mapped_column(default=maintenant)
    __table_args__ = (Index("ix_mouvement_compte_dossier_quand", "dossier_id", "quand", "id"),)


class Bordereau(Base):
    __tablename__ = "bordereau"
    id: Mapped[int] = mapped_column(primary_key=True)
    exercice: Mapped[int]
    numero: Mapped[int]
    regie_code: Mapped[str] = mapped_column(ForeignKey("regie.code"))
    fichier_id: Mapped[int | None] = mapped_column(ForeignKey("fichier_exporte.id"))
    nombre_pieces: Mapped[int]
    montant: Mapped[int]
    statut: Mapped[str] = mapped_column(String(10), default="emis")  # emis | transmis | accepte | rejete
    erreurs: Mapped[list[Any]] = mapped_column(default=list)
    cree_le: Mapped[datetime] = mapped_column(default=maintenant)
    __table_args__ = (UniqueConstraint("exercice", "numero"),)


class Titre(Base):
    __tablename__ = "titre"
    id: Mapped[int] = mapped_column(primary_key=True)
    facture_id: Mapped[int] = mapped_column(ForeignKey("facture.id"), index=True)
    bordereau_id: Mapped[int] = mapped_column(ForeignKey("bordereau.id"), index=True)
    exercice: Mapped[int]
    piece: Mapped[int]
    montant: Mapped[int]
    encaisse: Mapped[int] = mapped_column(default=0)
    statut: Mapped[str] = mapped_column(String(10), default="emis")
    erreurs: Mapped[list[Any]] = mapped_column(default=list)
    cree_le: Mapped[datetime] = mapped_column(default=maintenant, index=True)
    __table_args__ = (
        UniqueConstraint("exercice", "piece"),
        CheckConstraint("montant > 0", name="montant_positif"),
        CheckConstraint("statut IN ('emis', 'transmis', 'accepte', 'rejete', 'annule')", name="statut"),
    )


class LigneTitre(Base):
    __tablename__ = "ligne_titre"
    id: Mapped[int] = mapped_column(primary_key=True)
    titre_id: Mapped[int] = mapped_column(ForeignKey("titre.id"), index=True)
    rang: Mapped[int]  # la ligne de la facture
    numero: Mapped[int]  # IdLigne
    montant: Mapped[int]
    __table_args__ = (CheckConstraint("montant > 0", name="montant_positif"),)


class Audit(Base):
    """Journal d'audit : chaque action humaine (qui, quand, quoi, pourquoi, avant/après)."""

    __tablename__ = "audit"
    id: Mapped[int] = mapped_column(primary_key=True)
    quand: Mapped[datetime] = mapped_column(default=maintenant, index=True)
    qui: Mapped[str] = mapped_column(String(100))
    action: Mapped[str] = mapped_column(String(60))
    objet: Mapped[str] = mapped_column(String(60))
    objet_id: Mapped[str] = mapped_column(String(60))
    motif: Mapped[str | None] = mapped_column(Text)
    avant: Mapped[dict[str, Any]] = mapped_column(default=dict)
    apres: Mapped[dict[str, Any]] = mapped_column(default=dict)


# --- PayFiP, API du portail ---------------------------------------------------------------

class OperationPayfip(Base):
    """Une tentative de paiement en ligne (un idOp) et son panier de factures.

    La refdet envoyée à PayFiP est celle de la facture (une seule) ou celle du panier.
    """

    __tablename__ = "operation_payfip"
    id: Mapped[int] = mapped_column(primary_key=True)
    id_op: Mapped[str | None] = mapped_column(String(36), unique=True)  # nul tant que PayFiP n'a pas répondu
    refdet: Mapped[str] = mapped_column(String(30), index=True)
    numcli: Mapped[str] = mapped_column(String(6))
    regie_code: Mapped[str] = mapped_column(ForeignKey("regie.code"))
    dossier_id: Mapped[int] = mapped_column(ForeignKey("dossier.id"), index=True)
    montant: Mapped[int]
    # creee | en_attente | payee | refusee | abandonnee | expiree | echec_creation
    statut: Mapped[str] = mapped_column(String(20), default="creee", index=True)
    resultat: Mapped[str | None] = mapped_column(String(2))
    paiement_id: Mapped[int | None] = mapped_column(ForeignKey("paiement.id"))
    consultations: Mapped[int] = mapped_column(default=0)
    cree_le: Mapped[datetime] = mapped_column(default=maintenant, index=True)
    consultee_le: Mapped[datetime | None]
    terminee_le: Mapped[datetime | None]
    __table_args__ = (CheckConstraint("montant >= 100", name="montant_minimum"),)


class LignePanierPayfip(Base):
    __tablename__ = "ligne_panier_payfip"
    id: Mapped[int] = mapped_column(primary_key=True)
    operation_id: Mapped[int] = mapped_column(ForeignKey("operation_payfip.id"), index=True)
    facture_id: Mapped[int] = mapped_column(ForeignKey("facture.id"), index=True)
    montant: Mapped[int]
    __table_args__ = (CheckConstraint("montant > 0", name="montant_positif"),)


class CleApi(Base):
    """Clé d'API du portail : seule son empreinte est gardée ; révocable."""

    __tablename__ = "cle_api"
    id: Mapped[int] = mapped_column(primary_key=True)
    nom: Mapped[str] = mapped_column(String(100))
    prefixe: Mapped[str] = mapped_column(String(12), unique=True)
    empreinte: Mapped[str] = mapped_column(String(200))
    creee_le: Mapped[datetime] = mapped_column(default=maintenant)
    revoquee_le: Mapped[datetime | None]
    utilisee_le: Mapped[datetime | None]


# --- Relevés DFT -------------------------------------------------------------------------------

class ReleveDft(Base):
    """Un relevé CFONB 120 déjà lu (compte, dates, soldes) : un relevé relu est ignoré."""

    __tablename__ = "releve_dft"
    id: Mapped[int] = mapped_column(primary_key=True)
    cle: Mapped[str] = mapped_column(String(120), unique=True)
    compte: Mapped[str] = mapped_column(String(11))
    date_debut: Mapped[date] = mapped_column(Date)
    date_fin: Mapped[date] = mapped_column(Date)
    solde_debut: Mapped[int] = mapped_column(BigInteger)
    solde_fin: Mapped[int] = mapped_column(BigInteger)
    fichier_id: Mapped[int | None] = mapped_column(ForeignKey("fichier_recu.id"))


class DebitDft(Base):
    """Un débit du compte DFT qui nomme une remise ou une facture (chèque impayé, remboursement)."""

    __tablename__ = "debit_dft"
    id: Mapped[int] = mapped_column(primary_key=True)
    reference: Mapped[str] = mapped_column(String(200), unique=True)
    compte: Mapped[str] = mapped_column(String(11))
    date_operation: Mapped[date] = mapped_column(Date)
    montant: Mapped[int]
    texte: Mapped[str] = mapped_column(String(500))
    remise: Mapped[str | None] = mapped_column(String(20))
    facture_id: Mapped[int | None] = mapped_column(ForeignKey("facture.id"))
    fichier_id: Mapped[int | None] = mapped_column(ForeignKey("fichier_recu.id"))
    examine: Mapped[bool] = mapped_column(default=False)


class Remboursement(Base):
    """Un remboursement décidé par le régisseur : à exporter pour le comptable."""

    __tablename__ = "remboursement"
    id: Mapped[int] = mapped_column(primary_key=True)
    paiement_id: Mapped[int] = mapped_column(ForeignKey("paiement.id"), index=True)
    dossier_id: Mapped[int | None] = mapped_column(ForeignKey("dossier.id"), index=True)
    montant: Mapped[int]
    motif: Mapped[str] = mapped_column(Text)
    qui: Mapped[str] = mapped_column(String(100))
    statut: Mapped[str] = mapped_column(String(10), default="a_faire")  # a_faire | exporte
    cree_le: Mapped[datetime] = mapped_column(default=maintenant)
    __table_args__ = (CheckConstraint("montant > 0", name="montant_positif"),)


# --- Nuit et verrous -------------------------------------------------------------------------------

class Execution(Base):
    """Une exécution de la nuit (ou d'une tâche planifiée) : début, fin, étapes, erreurs, fichiers."""

    __tablename__ = "execution"
    id: Mapped[int] = mapped_column(primary_key=True)
    tache: Mapped[str] = mapped_column(String(30), default="nuit")
    date_metier: Mapped[date] = mapped_column(Date)
    debut: Mapped[datetime] = mapped_column(default=maintenant, index=True)
    fin: Mapped[datetime | None]
    # en_cours | termine | termine_avec_erreurs | interrompu | ignore (un autre processus tenait le verrou)
    statut: Mapped[str] = mapped_column(String(25), default="en_cours")
    processus: Mapped[str] = mapped_column(String(120))
    etapes: Mapped[list[Any]] = mapped_column(default=list)


class Verrou(Base):
    """Verrou à bail (SQLite) : un seul processus exécute une tâche à la fois."""

    __tablename__ = "verrou"
    nom: Mapped[str] = mapped_column(String(60), primary_key=True)
    detenteur: Mapped[str] = mapped_column(String(120))
    expire_le: Mapped[datetime]
