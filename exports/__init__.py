"""Exports vers le Trésor public : titres PES V2 (PES_Aller), lecture des acquits, journaux.

Rien ici ne touche la base : on reçoit des valeurs, on écrit ou on lit des fichiers.
"""
