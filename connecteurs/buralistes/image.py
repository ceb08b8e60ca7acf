"""Rendu de la charge utile en image Data Matrix (ECC 200) : PNG pour le portail, SVG pour l'impression.

libdmtx (par pylibdmtx) fait le codage ; on relit sa matrice de modules dans le bitmap qu'il
rend, puis on dessine nous-mêmes PNG et SVG à la taille demandée, avec une zone de silence.
Seule une charge utile valide est rendue : un avis ne doit jamais porter un datamatrix faux.
"""

from __future__ import annotations

import io
from functools import lru_cache

from PIL import Image
from pylibdmtx.pylibdmtx import encode

from connecteurs.buralistes.datamatrix import decoder

Matrice = tuple[tuple[bool, ...], ...]  # [ligne][colonne], True = module sombre


def _verifier(payload: str) -> None:
    resultat = decoder(payload)
    if not resultat.valide:
        raise ValueError("charge utile invalide, pas d'image : " + resultat.resume_erreurs())


@lru_cache(maxsize=256)
def _matrice(payload: str) -> Matrice:
    code = encode(payload.encode("ascii"))
    image = Image.frombytes("RGB", (code.width, code.height), code.pixels).convert("L")
    largeur_px = image.width
    sombres = bytes(1 if v < 128 else 0 for v in image.tobytes())

    def sombre(x: int, y: int) -> bool:
        return sombres[y * largeur_px + x] == 1

    boite = Image.frombytes("L", image.size, bytes(255 * v for v in sombres)).getbbox()
    if boite is None:
        raise RuntimeError("libdmtx a rendu une image vide")
    gauche, haut, droite, bas = boite
    # Le motif de repérage commence par un module sombre en haut à gauche : sa largeur est celle d'un module.
    module = 0
    while gauche + module < droite and sombre(gauche + module, haut):
        module += 1
    if module == 0 or (droite - gauche) % module or (bas - haut) % module:
        raise RuntimeError("bitmap libdmtx inattendu : modules non carrés ou non alignés")
    colonnes, lignes, demi = (droite - gauche) // module, (bas - haut) // module, module // 2
    return tuple(
        tuple(sombre(gauche + c * module + demi, haut + r * module + demi) for c in range(colonnes))
        for r in range(lignes)
    )


def matrice_modules(payload: str) -> Matrice:
    """La grille de modules du symbole (sans zone de silence) ; ValueError si la charge utile est invalide."""
    _verifier(payload)
    return _matrice(payload)


def image_png(payload: str, *, taille_module: int = 5, marge: int = 2) -> bytes:
    """PNG noir et blanc : `taille_module` pixels par module, `marge` modules de zone de silence."""
    if taille_module < 1 or marge < 1:
        raise ValueError("taille de module et marge : au moins 1")
    grille = matrice_modules(payload)
    hauteur, largeur = len(grille), len(grille[0])
    petite = Image.new("1", (largeur + 2 * marge, hauteur + 2 * marge), 1)
    for r, ligne in enumerate(grille):
        for c, sombre in enumerate(ligne):
            if sombre:
                petite.putpixel((c + marge, r + marge), 0)
    grande = petite.resize((petite.width * taille_module, petite.height * taille_module), Image.Resampling.NEAREST)
    tampon = io.BytesIO()
    grande.save(tampon, format="PNG", optimize=True)
    return tampon.getvalue()


def image_svg(payload: str, *, taille_module: int = 5, marge: int = 2) -> str:
    """SVG autonome : un chemin fait des suites horizontales de modules sombres, coordonnées en modules."""
    if taille_module < 1 or marge < 1:
        raise ValueError("taille de module et marge : au moins 1")
    grille = matrice_modules(payload)
    hauteur, largeur = len(grille), len(grille[0])
    traits: list[str] = []
    for r, ligne in enumerate(grille):
        c = 0
        while c < largeur:
            if not ligne[c]:
                c += 1
                continue
            debut = c
            while c < largeur and ligne[c]:
                c += 1
            traits.append(f"M{debut + marge} {r + marge}h{c - debut}v1h-{c - debut}z")
    cote_l, cote_h = largeur + 2 * marge, hauteur + 2 * marge
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<svg xmlns="http://www.w3.org/2000/svg" version="1.1" width="{cote_l * taille_module}" '
        f'height="{cote_h * taille_module}" viewBox="0 0 {cote_l} {cote_h}" shape-rendering="crispEdges">'
        f'<title>Datamatrix de paiement de proximité</title>'
        f'<rect width="{cote_l}" height="{cote_h}" fill="#fff"/>'
        f'<path fill="#000" d="{"".join(traits)}"/></svg>\n'
    )
