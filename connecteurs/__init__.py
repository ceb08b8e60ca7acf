"""Connecteurs : chaque source (format ou pair) devient des enregistrements normalisés.

Aucune politique de rapprochement ni base de données ici : un connecteur connaît son format.
"""
