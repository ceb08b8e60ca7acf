"""Paiement de proximité chez les buralistes partenaires (specs/buralistes.md).

- `datamatrix` : la charge utile de 130 caractères imprimée sur la facture, construite et contrôlée ;
- `image` : son rendu en image Data Matrix (PNG, SVG) ;
- `releve` : le relevé CSV des paiements encaissés, lu en `PaiementRecu` (canal « buraliste »).

Diagnostic : `python -m connecteurs.buralistes decoder 'CHARGE UTILE'`.
"""
