"""Jeux d'essai déterministes : factures du portail (démonstration, tests, bancs d'essai)."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from regie.montants import centimes_en_euros, produit_arrondi

NOMS = ["MARTIN", "BERNARD", "THOMAS", "PETIT", "ROBERT", "RICHARD", "DURAND", "DUBOIS", "MOREAU", "LAURENT",
        "SIMON", "MICHEL", "LEFÈVRE", "LEROY", "ROUX", "DAVID", "BERTRAND", "MOREL", "FOURNIER", "GIRARD"]
PRENOMS_ADULTES = ["Claire", "Julien", "Hélène", "Karim", "Sophie", "Nicolas", "Aïcha", "Thomas", "Zoé", "Marc"]
PRENOMS_ENFANTS = ["Léo", "Jade", "Louis", "Emma", "Noé", "Inès", "Gabriel", "Chloé", "Raphaël", "Lina"]
VILLES = [("94250", "GENTILLY"), ("94200", "IVRY-SUR-SEINE"), ("94270", "LE KREMLIN-BICÊTRE")]
# (prestation, libellé, prix unitaire en centimes, quantité max, régie)
PRESTATIONS = [("CANTINE", "Repas", 350, 20, "ENFANCE"), ("CRECHE", "Heures de crèche", 175, 80, "ENFANCE"),
               ("PERISCOLAIRE", "Accueil du soir", 225, 16, "ENFANCE"), ("LOISIRS", "Journées de centre", 1250, 10,
                                                                        "LOISIRS")]


def facture(n: int, rng: random.Random, *, periode: str = "2026-05", regie: str | None = None,
            nb_lignes: int | None = None, dossiers: int = 1000) -> dict[str, Any]:
    """La facture n (les mêmes paramètres donnent toujours la même facture)."""
    dossier = rng.randrange(1, dossiers + 1)
    nom = NOMS[dossier % len(NOMS)]
    annee, mois = (int(x) for x in periode.split("-"))
    emise = date(annee, mois, 1) - timedelta(days=4)
    cp, ville = VILLES[dossier % len(VILLES)]
    choix = [p for p in PRESTATIONS if regie is None or p[4] == regie] or PRESTATIONS
    regie_facture = regie or choix[0][4]
    choix = [p for p in choix if p[4] == regie_facture]
    lignes = []
    for i in range(nb_lignes or rng.randint(1, 3)):
        code, libelle, prix, qmax, _ = choix[i % len(choix)]
        q = rng.randint(1, qmax)
        naissance = date(annee - rng.randint(1, 10), rng.randint(1, 12), rng.randint(1, 28))
        lignes.append({"prestation": code, "libelle": libelle,
                       "enfant": f"{PRENOMS_ENFANTS[(dossier + i) % 10]} {nom}",
                       "naissance": naissance.isoformat(), "quantite": str(q),
                       "prix_unitaire": centimes_en_euros(prix),
                       "montant": centimes_en_euros(produit_arrondi(q * 100, prix))})
    total = sum(produit_arrondi(int(x["quantite"]) * 100, int(x["prix_unitaire"].replace(".", "")))
                for x in lignes)
    return {"type": "facture", "numero": f"F{annee % 100:02d}{mois:02d}-{n:07d}", "regie": regie_facture,
            "dossier": f"D{dossier:06d}",
            "payeur": {"civilite": "MME" if dossier % 2 else "M", "nom": nom,
                       "prenom": PRENOMS_ADULTES[dossier % 10],
                       "email": f"famille{dossier}@example.fr",
                       "adresse": {"ligne1": f"{dossier % 120 + 1} rue des Écoles", "ligne2": None,
                                   "code_postal": cp, "ville": ville}},
            "emise_le": emise.isoformat(), "echeance": (emise + timedelta(days=30)).isoformat(),
            "periode": periode, "lignes": lignes, "montant": centimes_en_euros(total)}


def factures(nombre: int, *, graine: int = 2026, periode: str = "2026-05", dossiers: int | None = None,
             nb_lignes: int | None = None) -> Iterator[dict[str, Any]]:
    rng = random.Random(graine)
    d = dossiers or max(1, nombre // 3)
    for n in range(1, nombre + 1):
        regie = "LOISIRS" if n % 10 == 0 else "ENFANCE"
        yield facture(n, rng, periode=periode, regie=regie, nb_lignes=nb_lignes, dossiers=d)


def ecrire_jsonl(chemin: Path, objets: Iterator[dict[str, Any]]) -> int:
    n = 0
    with chemin.open("w", encoding="utf-8") as f:
        for obj in objets:
            f.write(json.dumps(obj, ensure_ascii=False) + "\n")
            n += 1
    return n
