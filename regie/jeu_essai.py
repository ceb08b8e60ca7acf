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


def ecrire_jeu_de_nuit(dossier: Path, *, nombre: int = 300, code_etablissement: str = "019",
                       codique: str = "094012", avec_fichier_errone: bool = False) -> list[Path]:
    """Les fichiers d'une nuit : factures du portail et paiements de chaque canal qui s'y rapportent.

    Les numéros de dette sont ceux qu'une base neuve attribue (1, 2, ... dans l'ordre du fichier).
    """
    from connecteurs.buralistes.datamatrix import charge_utile
    from connecteurs.cfonb.cfonb120 import ecrire_montant

    dossier.mkdir(parents=True, exist_ok=True)
    objets = list(factures(nombre, dossiers=max(1, nombre // 3)))
    ecrits = [dossier / "01_factures_2026-05.jsonl"]
    ecrire_jsonl(ecrits[0], iter(objets))
    produit = {"ENFANCE": "043", "LOISIRS": "044"}
    montants = [int(o["montant"].replace(".", "")) for o in objets]

    # Paiements de proximité : un sur sept, partiels ou complets ; un en espèces au-delà de 300 €.
    lignes = ["transaction;date_heure;datamatrix;montant;mode;point_de_vente"]
    for i in range(0, nombre, 7):
        o = objets[i]
        dm = charge_utile(code_etablissement=code_etablissement, periode=o["periode"], code_produit=produit[o["regie"]],
                          numero_dette=i + 1, codique=codique, montant_centimes=montants[i])
        paye = montants[i] if i % 2 else max(100, montants[i] // 2)
        mode = "ESPECES" if i % 3 else "CARTE"
        lignes.append(f'PP-2026-{i:07d};2026-06-{1 + i % 28:02d}T17:42:10+02:00;"{dm}";'
                      f"{centimes_en_euros(paye)};{mode};TAB-94-0117")
    dm = charge_utile(code_etablissement=code_etablissement, periode=objets[3]["periode"], code_produit="043",
                      numero_dette=4, codique=codique, montant_centimes=45000)
    lignes.append(f'PP-2026-9999999;2026-06-03T10:00:00+02:00;"{dm}";450.00;ESPECES;TAB-94-0117')
    ecrits.append(dossier / "02_releve_buralistes.csv")
    ecrits[-1].write_bytes(b"\xef\xbb\xbf" + ("\r\n".join(lignes) + "\r\n").encode())

    # Chèques : une remise, dont un sans numéro de facture (le tireur) et un pour une facture inconnue.
    cheques = ["remise;numero_cheque;tireur;banque;montant;facture;recu_le"]
    total_remise = 0
    for k, i in enumerate(range(2, nombre, 11)):
        o = objets[i]
        tireur = f"{o['payeur']['nom']} {o['payeur']['prenom']}".upper()
        facture_citee = "" if k == 1 else o["numero"]
        cheques.append(f"RC-2026-031;{1000 + k};{tireur};CCM;{o['montant']};{facture_citee};2026-06-05")
        total_remise += montants[i]
    cheques.append("RC-2026-031;9999;DUPONT JEAN;LBP;25.00;F9912-0000001;2026-06-05")
    total_remise += 2500
    ecrits.append(dossier / "03_remise_cheques.csv")
    ecrits[-1].write_text("\r\n".join(cheques) + "\r\n", encoding="utf-8")

    # CESU : des titres pour les factures avec de la crèche ; le CRCESU rembourse la remise.
    cesu = ["remise;numero_titre;support;emetteur;millesime;valeur;facture;recu_le"]
    total_cesu = nb_cesu = 0
    for k, i in enumerate(range(1, nombre, 13)):
        o = objets[i]
        if not any(lg["prestation"] == "CRECHE" for lg in o["lignes"]):
            continue
        cesu.append(f"R-2026-014;04123456{k:05d};PAPIER;EDENRED;2026;20.00;{o['numero']};2026-06-04")
        total_cesu += 2000
        nb_cesu += 1
    ecrits.append(dossier / "04_titres_cesu.csv")
    ecrits[-1].write_text("\r\n".join(cesu) + "\r\n", encoding="utf-8")
    frais = nb_cesu * 10
    ecrits.append(dossier / "05_remboursement_crcesu.csv")
    ecrits[-1].write_text("remise;rembourse_le;nombre_titres;montant_titres;frais;montant_verse\r\n"
                          f"R-2026-014;2026-06-15;{nb_cesu};{centimes_en_euros(total_cesu)};"
                          f"{centimes_en_euros(frais)};{centimes_en_euros(total_cesu - frais)}\r\n", encoding="utf-8")

    # Relevé DFT (CFONB 120, Latin-1, sans fin de ligne) : remises confirmées et deux virements.
    def rec(code: str, corps: dict[int, str]) -> str:
        ligne = [" "] * 120
        entete = f"{code}30001    00001EUR2 00012345678"
        ligne[:len(entete)] = entete
        for pos, val in corps.items():
            ligne[pos - 1:pos - 1 + len(val)] = val
        return "".join(ligne)

    virement = objets[5]
    mouvements = [(total_remise, "REMISE RC-2026-031", ""), (total_cesu - frais, "REMISE R-2026-014", "CRCESU"),
                  (montants[5], f"VIR {virement['payeur']['nom']}", f"FACTURE {virement['numero']}"),
                  (3000, "VIR INCONNU", "CANTINE JUIN")]
    enregs = [rec("01", {35: "160626", 91: ecrire_montant(0)})]
    for n, (m, libelle, info) in enumerate(mouvements, 1):
        enregs.append(rec("04", {33: "05", 35: "160626", 43: "160626", 49: libelle[:31].ljust(31), 82: f"{n:07d}",
                                 91: ecrire_montant(m)}))
        if info:
            enregs.append(rec("05", {33: "05", 35: "160626", 46: "LIB", 49: info}))
    enregs.append(rec("07", {35: "160626", 91: ecrire_montant(sum(m for m, _, _ in mouvements))}))
    ecrits.append(dossier / "06_releve_dft.cfonb")
    ecrits[-1].write_bytes("".join(enregs).encode("latin-1"))

    if avec_fichier_errone:
        ecrits.append(dossier / "07_cheques_errone.csv")
        ecrits[-1].write_text("remise;numero_cheque;tireur;banque;montant;facture;recu_le\r\n"
                              "RC-2026-032;1;MARTIN;CCM;42,00;F2605-0000001;2026-06-31\r\n", encoding="utf-8")
    return ecrits
