"""Le registre : modèles, schéma (Alembic), moteur et unité de travail."""
