"""la clé du payeur recopiée dans l'état des factures, au bout de l'index des restes

La famille du tireur d'un chèque se cherchait par l'index des restes, en lisant chaque facture ouverte
de ce reste pour n'en garder que celles du payeur : des milliers de lectures par chèque quand un
tarif est courant. Avec la clé du payeur dans l'index, le filtre se fait dans l'index.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-02 20:00:00
"""

from alembic import op
import sqlalchemy as sa

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

OUVERTES = "statut IN ('emise', 'partiellement_payee')"


def _index_des_restes(*colonnes: str) -> None:
    op.drop_index("ix_etat_facture_reste_du", table_name="etat_facture",
                  sqlite_where=sa.text(OUVERTES), postgresql_where=sa.text(OUVERTES))
    op.create_index("ix_etat_facture_reste_du", "etat_facture", ["reste_du", "statut", "montant", "facture_id",
                                                                  *colonnes], unique=False,
                    sqlite_where=sa.text(OUVERTES), postgresql_where=sa.text(OUVERTES))


def upgrade() -> None:
    # Sans recopier la table (ALTER TABLE … ADD COLUMN, y compris sous SQLite).
    op.add_column("etat_facture", sa.Column("payeur_cle", sa.String(length=210), server_default="",
                                            nullable=False))
    op.execute("UPDATE etat_facture SET payeur_cle = (SELECT f.payeur_cle FROM facture f "
               "WHERE f.id = etat_facture.facture_id)")
    _index_des_restes("payeur_cle")


def downgrade() -> None:
    _index_des_restes()
    # ALTER TABLE … DROP COLUMN (SQLite ≥ 3.35) : le mode « batch » recopierait la table et ne sait pas
    # réécrire sa colonne calculée.
    op.drop_column("etat_facture", "payeur_cle")
