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
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from regie.registre.types import InstantUTC, Json, maintenant

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
    recu_le: Mapped[datetime] = mapped_column(default=maintenant)
    __table_args__ = (
        CheckConstraint("statut IN ('importe', 'refuse')", name="statut"),
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
    numero: Mapped[str] = mapped_column(String(20), unique=True)
    cree_le: Mapped[datetime] = mapped_column(default=maintenant)


class Facture(Base):
    __tablename__ = "facture"
    id: Mapped[int] = mapped_column(primary_key=True)
    numero: Mapped[str] = mapped_column(String(30), unique=True)
    regie_code: Mapped[str] = mapped_column(ForeignKey("regie.code"))
    dossier_id: Mapped[int] = mapped_column(ForeignKey("dossier.id"), index=True)
    emise_le: Mapped[date] = mapped_column(Date)
    echeance: Mapped[date] = mapped_column(Date, index=True)
    periode: Mapped[str] = mapped_column(String(7))
    montant: Mapped[int]
    paye: Mapped[int] = mapped_column(default=0)
    avoirs: Mapped[int] = mapped_column(default=0)
    # emise | partiellement_payee | payee | annulee | titree (specs/cli.md)
    statut: Mapped[str] = mapped_column(String(20), default="emise")
    # Calculé par la base (une colonne : l'index reste utilisable par les deux bases) : le moteur
    # cherche les factures dont le reste égale un montant (famille du tireur, suggestions).
    reste_du: Mapped[int] = mapped_column(Computed("montant - paye - avoirs", persisted=True))
    numero_dette: Mapped[int] = mapped_column(BigInteger, unique=True)
    refdet: Mapped[str] = mapped_column(String(30), index=True)
    civilite: Mapped[str] = mapped_column(String(3))
    nom: Mapped[str] = mapped_column(String(100))
    prenom: Mapped[str] = mapped_column(String(100))
    email: Mapped[str | None] = mapped_column(String(200))
    adresse1: Mapped[str] = mapped_column(String(200))
    adresse2: Mapped[str | None] = mapped_column(String(200))
    code_postal: Mapped[str] = mapped_column(String(10))
    ville: Mapped[str] = mapped_column(String(100))
    empreinte: Mapped[str] = mapped_column(String(64))
    fichier_id: Mapped[int | None] = mapped_column(ForeignKey("fichier_recu.id"))
    # Indexé : le moteur lit max(cree_le) (la dernière arrivée) à chaque passage.
    cree_le: Mapped[datetime] = mapped_column(default=maintenant, index=True)

    lignes: Mapped[list[LigneFacture]] = relationship(
        back_populates="facture", order_by="LigneFacture.rang")

    __table_args__ = (
        CheckConstraint("montant > 0", name="montant_positif"),
        CheckConstraint("paye >= 0 AND avoirs >= 0", name="paye_avoirs_positifs"),
        CheckConstraint("paye + avoirs <= montant", name="reste_positif"),
        CheckConstraint("statut IN ('emise', 'partiellement_payee', 'payee', 'annulee', 'titree')",
                        name="statut"),
        # Suggestions « reste égal au montant » et tableau de bord.
        Index("ix_facture_statut_montant", "statut", "montant"),
        # Reste égal à un montant : famille du tireur (reste seul), factures entamées (statut, montant).
        Index("ix_facture_reste_du", "reste_du", "statut", "montant"),
    )

    @property
    def reste(self) -> int:
        return self.montant - self.paye - self.avoirs


class LigneFacture(Base):
    __tablename__ = "ligne_facture"
    id: Mapped[int] = mapped_column(primary_key=True)
    facture_id: Mapped[int] = mapped_column(ForeignKey("facture.id"))
    rang: Mapped[int]
    prestation_code: Mapped[str] = mapped_column(ForeignKey("prestation.code"))
    libelle: Mapped[str] = mapped_column(String(200))
    enfant: Mapped[str | None] = mapped_column(String(200))
    naissance: Mapped[date | None] = mapped_column(Date)
    quantite_centiemes: Mapped[int]
    prix_unitaire: Mapped[int]
    montant: Mapped[int]
    eligible_cesu: Mapped[bool]
    paye: Mapped[int] = mapped_column(default=0)
    avoirs: Mapped[int] = mapped_column(default=0)

    facture: Mapped[Facture] = relationship(back_populates="lignes")

    __table_args__ = (
        UniqueConstraint("facture_id", "rang"),
        CheckConstraint("montant >= 0", name="montant_positif"),
        CheckConstraint("paye >= 0 AND avoirs >= 0 AND paye + avoirs <= montant", name="reste_positif"),
    )


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


class Paiement(Base):
    __tablename__ = "paiement"
    id: Mapped[int] = mapped_column(primary_key=True)
    canal: Mapped[str] = mapped_column(String(12))
    reference: Mapped[str] = mapped_column(String(200))
    montant: Mapped[int]
    recu_le: Mapped[datetime]
    reference_facture: Mapped[str | None] = mapped_column(String(100), index=True)
    dossier_id: Mapped[int | None] = mapped_column(ForeignKey("dossier.id"), index=True)
    remise_id: Mapped[int | None] = mapped_column(ForeignKey("remise.id"), index=True)
    # Pour une confirmation (cfonb, crcesu, pes_retour) : le paiement déjà connu qu'elle confirme.
    confirme_paiement_id: Mapped[int | None] = mapped_column(ForeignKey("paiement.id"))
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)
    brut: Mapped[str | None] = mapped_column(Text)
    ligne: Mapped[int | None]
    empreinte: Mapped[str] = mapped_column(String(64))
    fichier_id: Mapped[int | None] = mapped_column(ForeignKey("fichier_recu.id"), index=True)
    affecte: Mapped[int] = mapped_column(default=0)
    en_credit: Mapped[int] = mapped_column(default=0)  # excédent gardé en crédit de la famille
    rembourse: Mapped[int] = mapped_column(default=0)
    # a_traiter | affecte | partiellement_affecte | en_anomalie | confirme | annule
    statut: Mapped[str] = mapped_column(String(25), default="a_traiter", index=True)
    anomalie: Mapped[str | None] = mapped_column(String(30), index=True)
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
    )

    @property
    def excedent(self) -> int:
        return self.montant - self.affecte


class Affectation(Base):
    """Part d'un paiement (ou d'un avoir) affectée à une ligne de facture.

    Journal en ajout seul : une annulation est une affectation de signe opposé
    qui désigne celle qu'elle annule.
    """

    __tablename__ = "affectation"
    id: Mapped[int] = mapped_column(primary_key=True)
    paiement_id: Mapped[int | None] = mapped_column(ForeignKey("paiement.id"), index=True)
    avoir_id: Mapped[int | None] = mapped_column(ForeignKey("avoir.id"), index=True)
    facture_id: Mapped[int] = mapped_column(ForeignKey("facture.id"), index=True)
    ligne_id: Mapped[int] = mapped_column(ForeignKey("ligne_facture.id"))
    montant: Mapped[int]
    regle: Mapped[str] = mapped_column(String(40))
    preuve: Mapped[dict[str, Any]] = mapped_column(default=dict)
    annule_id: Mapped[int | None] = mapped_column(ForeignKey("affectation.id"))
    auteur: Mapped[str] = mapped_column(String(100), default="systeme")
    cree_le: Mapped[datetime] = mapped_column(default=maintenant)
    __table_args__ = (
        CheckConstraint("montant <> 0", name="montant_non_nul"),
        CheckConstraint("(paiement_id IS NULL) <> (avoir_id IS NULL)", name="une_source"),
    )


class Anomalie(Base):
    """Une entrée de la file de revue : un code, la preuve, des suggestions classées."""

    __tablename__ = "anomalie"
    id: Mapped[int] = mapped_column(primary_key=True)
    paiement_id: Mapped[int | None] = mapped_column(ForeignKey("paiement.id"), index=True)
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


# --- Compte famille, titres, audit --------------------------------------------------------

class MouvementCompte(Base):
    """Le compte famille : un journal en ajout seul.

    Chaque mouvement dit son effet sur ce que la famille doit à la régie (`delta_du`),
    sur son crédit (`delta_credit`) et sur ce qu'elle doit au Trésor (`delta_tresor`).
    """

    __tablename__ = "mouvement_compte"
    id: Mapped[int] = mapped_column(primary_key=True)
    dossier_id: Mapped[int] = mapped_column(ForeignKey("dossier.id"))
    quand: Mapped[datetime]
    nature: Mapped[str] = mapped_column(String(30))
    libelle: Mapped[str] = mapped_column(String(300))
    montant: Mapped[int]
    delta_du: Mapped[int] = mapped_column(default=0)
    delta_credit: Mapped[int] = mapped_column(default=0)
    delta_tresor: Mapped[int] = mapped_column(default=0)
    facture_id: Mapped[int | None] = mapped_column(ForeignKey("facture.id"))
    avoir_id: Mapped[int | None] = mapped_column(ForeignKey("avoir.id"))
    paiement_id: Mapped[int | None] = mapped_column(ForeignKey("paiement.id"))
    titre_id: Mapped[int | None] = mapped_column(ForeignKey("titre.id"))
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
    ligne_id: Mapped[int] = mapped_column(ForeignKey("ligne_facture.id"))
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
