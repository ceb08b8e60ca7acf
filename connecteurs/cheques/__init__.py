"""Connecteur chèques : bordereaux de remise du guichet."""

from connecteurs.cheques.remises import lire_remise_cheques

__all__ = ["lire_remise_cheques"]
