"""Aides des tests de scénario : fichiers de chaque canal écrits comme les vrais systèmes les écrivent."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from sqlalchemy import select

from connecteurs.buralistes.datamatrix import charge_utile
from connecteurs.cfonb.cfonb120 import ecrire_montant
from regie.application import Application
from regie.montants import centimes_en_euros, euros_en_centimes
from regie.registre.modeles import Facture
from regie.services.etat import etat
from regie.services.factures import importer_fichier_factures
from regie.services.paiements import importer_fichier_paiements
from tests.test_factures_import import FACTURE, facture

__all__ = ["FACTURE", "facture"]


class Scenario:
    """Un registre, des fichiers qu'on dépose, l'état qu'on lit."""

    def __init__(self, app: Application, dossier: Path) -> None:
        self.app = app
        self.dossier = dossier
        self.n = 0

    def _chemin(self, nom: str) -> Path:
        self.n += 1
        return self.dossier / f"{self.n:03d}_{nom}"

    def factures(self, *objets: dict[str, Any]) -> None:
        chemin = self._chemin("factures.jsonl")
        chemin.write_text("".join(json.dumps(o, ensure_ascii=False) + "\n" for o in objets), encoding="utf-8")
        importer_fichier_factures(self.app, chemin)

    def importer(self, canal: str, contenu: bytes, nom: str = "fichier", **options: Any) -> Any:
        chemin = self._chemin(nom)
        chemin.write_bytes(contenu)
        return importer_fichier_paiements(self.app, canal, chemin, **options)

    def dette(self, numero: str) -> int:
        with self.app.moteur.connect() as c:
            return int(c.execute(select(Facture.numero_dette).where(Facture.numero == numero)).scalar_one())

    def datamatrix(self, numero: str, montant: str = "42.00", periode: str = "2026-05") -> str:
        col = self.app.config.collectivite
        return charge_utile(code_etablissement=col.code_etablissement, periode=periode, code_produit="043",
                            numero_dette=self.dette(numero), codique=col.codique,
                            montant_centimes=euros_en_centimes(montant))

    def buraliste(self, *lignes: tuple[str, str, str, str], date_heure: str = "2026-05-12T17:42:10+02:00",
                  **options: Any) -> Any:
        """lignes : (transaction, datamatrix, montant, mode)."""
        texte = "transaction;date_heure;datamatrix;montant;mode;point_de_vente\r\n" + "".join(
            f'{t};{date_heure};"{dm}";{m};{mode};TAB-94-0117\r\n' for t, dm, m, mode in lignes)
        return self.importer("buraliste", b"\xef\xbb\xbf" + texte.encode(), "releve.csv", **options)

    def cheques(self, *lignes: tuple[str, str, str, str, str], recu_le: str = "2026-05-15") -> Any:
        """lignes : (remise, numero, tireur, montant, facture)."""
        texte = "remise;numero_cheque;tireur;banque;montant;facture;recu_le\r\n" + "".join(
            f"{r};{n};{t};CCM;{m};{f};{recu_le}\r\n" for r, n, t, m, f in lignes)
        return self.importer("cheque", texte.encode(), "cheques.csv")

    def cesu(self, *lignes: tuple[str, str, int, str, str, str], **options: Any) -> Any:
        """lignes : (remise, numero_titre, millesime, valeur, facture, recu_le)."""
        texte = "remise;numero_titre;support;emetteur;millesime;valeur;facture;recu_le\r\n" + "".join(
            f"{r};{n};PAPIER;EDENRED;{mil};{v};{f};{d}\r\n" for r, n, mil, v, f, d in lignes)
        return self.importer("cesu", texte.encode(), "cesu.csv", **options)

    def crcesu(self, remise: str, nombre: int, titres: str, frais: str = "0.00") -> Any:
        verse = centimes_en_euros(euros_en_centimes(titres) - euros_en_centimes(frais))
        texte = ("remise;rembourse_le;nombre_titres;montant_titres;frais;montant_verse\r\n"
                 f"{remise};2026-06-02;{nombre};{titres};{frais};{verse}\r\n")
        return self.importer("crcesu", texte.encode(), "crcesu.csv")

    def cfonb(self, *mouvements: tuple[str, str, str], compte: str = "00012345678", jour: str = "150526",
              solde: int = 0, **options: Any) -> Any:
        """mouvements : (montant signé en euros, libellé, complément) ; un relevé 01..07 sans fin de ligne."""
        def rec(code: str, corps: dict[int, str]) -> str:
            ligne = [" "] * 120
            entete = f"{code}30001    00001EUR2 {compte}"
            ligne[0:len(entete)] = entete
            for pos, val in corps.items():
                ligne[pos - 1:pos - 1 + len(val)] = val
            return "".join(ligne)

        total = solde
        enregs = [rec("01", {35: jour, 91: ecrire_montant(solde)})]
        for i, (montant, libelle, complement) in enumerate(mouvements, 1):
            c = euros_en_centimes(montant, negatif_permis=True)
            total += c
            enregs.append(rec("04", {33: "05" if c > 0 else "01", 35: jour, 43: jour, 49: libelle[:31].ljust(31),
                                     82: f"{i:07d}", 91: ecrire_montant(c)}))
            if complement:
                enregs.append(rec("05", {33: "05", 35: jour, 46: "LIB", 49: complement[:70]}))
        enregs.append(rec("07", {35: jour, 91: ecrire_montant(total)}))
        return self.importer("cfonb", "".join(enregs).encode("latin-1"), "releve.cfonb", **options)

    def etat(self) -> dict[str, Any]:
        return etat(self.app)

    def facture(self, numero: str) -> dict[str, Any]:
        return next(f for f in self.etat()["factures"] if f["numero"] == numero)

    def paiement(self, canal: str, reference: str) -> dict[str, Any]:
        return next(p for p in self.etat()["paiements"] if (p["canal"], p["reference"]) == (canal, reference))

    def famille(self, dossier: str) -> dict[str, Any]:
        return next(f for f in self.etat()["familles"] if f["dossier"] == dossier)


def autre(numero: str, montant: str = "42.00", dossier: str = "D004512", **champs: Any) -> dict[str, Any]:
    """Une facture d'une seule ligne de cantine."""
    f = facture(numero, dossier=dossier, **champs)
    q = euros_en_centimes(montant)
    f["lignes"] = [{"prestation": "CANTINE", "libelle": "Repas", "enfant": "Léo MARTIN", "naissance": "2019-03-02",
                    "quantite": "1", "prix_unitaire": montant, "montant": centimes_en_euros(q)}]
    f["montant"] = montant
    return f
