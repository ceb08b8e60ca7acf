"""`regie factures datamatrix NUMERO` : la charge utile du reste dû, entre guillemets, et son image."""

from __future__ import annotations

import argparse
import io
import json
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from pylibdmtx.pylibdmtx import decode
from sqlalchemy import select

from connecteurs.buralistes.datamatrix import charge_utile, decoder
from regie.application import Application
from regie.commandes_boite import ajouter_commandes
from regie.registre.modeles import Facture
from regie.services.factures import importer_fichier_factures
from tests.test_factures_import import avoir, facture

NUMERO = "F01-26-05-0000123"
SQLITE_SEUL = pytest.mark.parametrize("url_base", ["sqlite"], indirect=True)


def importer(app: Application, tmp_path: Path, *objets: dict[str, Any]) -> None:
    chemin = tmp_path / f"portail_{len(list(tmp_path.glob('portail_*')))}.jsonl"
    chemin.write_text("".join(json.dumps(o, ensure_ascii=False) + "\n" for o in objets), encoding="utf-8")
    importer_fichier_factures(app, chemin)


def numero_dette(app: Application, numero: str = NUMERO) -> int:
    with app.moteur.connect() as conn:
        return int(conn.execute(select(Facture.numero_dette).where(Facture.numero == numero)).scalar_one())


def commande(app: Application, *argv: str) -> int:
    analyseur = argparse.ArgumentParser()
    sous = analyseur.add_subparsers(dest="commande", required=True)
    sous_factures = sous.add_parser("factures").add_subparsers(dest="action", required=True)
    ajouter_commandes(sous, sous_factures)
    args = analyseur.parse_args(["factures", "datamatrix", *argv])
    code: int = args.faire(app, args)
    return code


def relire_png(chemin: Path) -> list[str]:
    return [r.data.decode("ascii") for r in decode(Image.open(io.BytesIO(chemin.read_bytes())).convert("L"))]


def test_la_charge_utile_du_reste_du_est_affichee_entre_guillemets_et_dessinee_en_png_et_svg(
        app: Application, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    importer(app, tmp_path, facture(NUMERO), avoir("A01-26-05-0000001", NUMERO, "10.00"))  # 77.00 - 10.00
    png, svg = tmp_path / "dm.png", tmp_path / "dm.svg"
    capsys.readouterr()  # les journaux de l'import

    assert commande(app, NUMERO, "--png", str(png), "--svg", str(svg)) == 0

    premiere = capsys.readouterr().out.splitlines()[0]
    assert premiere.startswith('"' + " " * 64) and premiere.endswith('"')
    payload = premiere[1:-1]
    attendu = charge_utile(code_etablissement="019", periode="2026-05", code_produit="043",
                           numero_dette=numero_dette(app), codique="094012", montant_centimes=6700)
    assert payload == attendu and len(payload) == 130
    lu = decoder(payload)
    assert lu.valide and lu.montant_centimes == 6700 and lu.numero_dette == numero_dette(app)
    assert relire_png(png) == [payload]
    assert svg.read_text(encoding="utf-8").startswith('<?xml version="1.0" encoding="UTF-8"?>\n<svg ')


def test_la_regie_de_la_facture_donne_le_code_produit(
        app: Application, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    importer(app, tmp_path, facture("F02-26-05-0000001", regie="LOISIRS"))
    capsys.readouterr()

    assert commande(app, "F02-26-05-0000001", "--svg", str(tmp_path / "dm.svg")) == 0

    lu = decoder(capsys.readouterr().out.splitlines()[0][1:-1])
    assert (lu.valide, lu.code_produit, lu.montant_centimes) == (True, "044", 7700)
    assert not list(tmp_path.glob("*.png"))  # seulement l'image demandée


@SQLITE_SEUL
def test_sans_option_l_image_png_est_ecrite_dans_le_dossier_courant(
        app: Application, tmp_path: Path, regie_cli: Any) -> None:
    importer(app, tmp_path, facture(NUMERO))

    fait = regie_cli("factures", "datamatrix", NUMERO)

    assert fait.returncode == 0, fait.stderr
    payload = fait.stdout.splitlines()[0][1:-1]
    assert decoder(payload).montant_centimes == 7700
    assert relire_png(tmp_path / f"datamatrix-{NUMERO}.png") == [payload]


@SQLITE_SEUL
def test_une_facture_inconnue_sort_en_1_avec_un_message_en_francais(
        app: Application, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert commande(app, "F99-00-00-0000000", "--png", str(tmp_path / "x.png")) == 1
    sortie = capsys.readouterr()
    assert "facture « F99-00-00-0000000 » inconnue" in sortie.err
    assert sortie.out == "" and not (tmp_path / "x.png").exists()


@SQLITE_SEUL
def test_une_facture_sans_reste_du_n_a_pas_de_datamatrix(
        app: Application, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    importer(app, tmp_path, facture(NUMERO), avoir("A01-26-05-0000001", NUMERO, "77.00"))

    assert commande(app, NUMERO, "--png", str(tmp_path / "x.png")) == 1

    assert "rien à payer, pas de datamatrix" in capsys.readouterr().err
    assert not (tmp_path / "x.png").exists()
