"""La voie rapide (msgspec) de `lire_jsonl` : mêmes objets, même empreinte, mêmes refus que pydantic."""

from __future__ import annotations

import copy
import gc
import hashlib
import io
import json
from pathlib import Path
from typing import Any

import pytest

from connecteurs.portail.factures import (
    _MEMO_MAX,
    _OBJET,
    FactureLue,
    Referentiel,
    _euros_ou_rien,
    _LecteurRapide,
    _montants_ou_rien,
    lire_jsonl,
    lire_objet,
)
from regie.application import Application
from regie.erreurs import CollecteurErreurs, FichierRefuse
from regie.jeu_essai import facture as facture_jeu
from regie.services.factures import importer_fichier_factures
from tests.test_factures_import import FACTURE

REF = Referentiel(regies=frozenset({"ENFANCE", "LOISIRS"}),
                  prestations_cesu={"CANTINE": False, "CRECHE": True, "PERISCOLAIRE": True, "LOISIRS": False})


def _f(**champs: Any) -> dict[str, Any]:
    f = copy.deepcopy(FACTURE)
    f.update(champs)
    return f


def _payeur(**champs: Any) -> dict[str, Any]:
    return _f(payeur={**FACTURE["payeur"], **champs})


def _adresse(**champs: Any) -> dict[str, Any]:
    return _payeur(adresse={**FACTURE["payeur"]["adresse"], **champs})


def _ligne(**champs: Any) -> dict[str, Any]:
    f = _f()
    f["lignes"][0].update(champs)
    return f


def _sans(objet: dict[str, Any], *chemin: Any) -> dict[str, Any]:
    o = copy.deepcopy(objet)
    cible: Any = o
    for c in chemin[:-1]:
        cible = cible[c]
    del cible[chemin[-1]]
    return o


def _inverse(o: Any) -> Any:
    """Les mêmes données, toutes les clés dans l'ordre inverse."""
    if isinstance(o, dict):
        return {k: _inverse(o[k]) for k in reversed(list(o))}
    if isinstance(o, list):
        return [_inverse(x) for x in o]
    return o


VALIDES: list[dict[str, Any]] = [
    _f(),
    _inverse(_f()),
    _f(numero="F-2026/000001"),
    _payeur(nom="LEFÈVRE-ŒUF", prenom="Aïcha « Zoé »", email=None),
    _sans(_f(), "payeur", "email"),
    _adresse(ligne2="Bât. B, escalier 3 — 2ᵉ étage", ville="LE KREMLIN-BICÊTRE"),
    _sans(_f(), "payeur", "adresse", "ligne2"),
    _adresse(ligne2=""),
    _ligne(enfant=None, naissance=None),
    _sans(_sans(_f(), "lignes", 0, "enfant"), "lignes", 0, "naissance"),
    _ligne(libelle='Repas "bio" \\ 😀 \t tab\nligne \u2028 \u0001 \u007f /'),
    _ligne(quantite="12.00"),
    _f(lignes=[{**FACTURE["lignes"][1], "quantite": "2.5", "prix_unitaire": "1.75", "montant": "4.38"}],
       montant="4.38"),
    _f(echeance=FACTURE["emise_le"]),
    *[facture_jeu(n, __import__("random").Random(n)) for n in range(1, 30)],
]


def _mauvaises() -> list[Any]:
    m: list[Any] = [
        _f(numero="F 1"), _f(numero="F-123"), _f(numero="X" * 31), _f(numero=""), _f(regie="SPORTS"),
        _f(regie=""), _f(dossier=""), _f(dossier="   "), _f(dossier="D" * 21),
        _payeur(civilite="MLLE"), _payeur(nom=" "), _payeur(prenom=""), _payeur(nom="N" * 101),
        _payeur(email="pas-une-adresse"), _payeur(email=""), _payeur(email="x@y." + "z" * 200),
        _adresse(ligne1=" "), _adresse(ville=""), _adresse(code_postal="9425"), _adresse(code_postal=94250),
        _adresse(ligne2="x" * 201), _adresse(pays="FR"), _sans(_f(), "payeur", "adresse", "ville"),
        _f(emise_le="2026-02-31"), _f(emise_le="2026/04/27"), _f(echeance="2026-04-01"), _f(echeance=None),
        _f(periode="2026-13"), _f(periode="2026-5"), _f(periode=202605), _f(lignes=[]), _f(lignes={}),
        _ligne(prestation="PISCINE"), _ligne(prestation=""), _ligne(libelle=""), _ligne(enfant=3),
        _ligne(naissance="2019-02-30"), _ligne(naissance=""), _ligne(quantite="0"), _ligne(quantite="-1"),
        _ligne(quantite="1.234"), _ligne(quantite="12", montant="42.01"), _ligne(prix_unitaire="3,50"),
        _ligne(montant="42.000"), _ligne(montant=42.0), _ligne(montant="-42.00"), _ligne(remise="1"),
        _f(montant="78.00"), _f(montant="0.00"), _f(montant="77"), _f(montant=None), _f(remise="10%"),
        _sans(_f(), "echeance"), _sans(_f(), "type"), _f(type="devis"), _f(type="avoir"),
        {"type": "avoir", "numero": "A-2026-0001", "facture": FACTURE["numero"], "emise_le": "2026-05-10",
         "montant": "7.00", "motif": "Absence"},
        [1, 2], "texte", None, 42,
    ]
    return m


def _lent(brute: bytes) -> tuple[Any, list[str]]:
    erreurs = CollecteurErreurs("f.jsonl")
    lu = lire_objet(brute, 7, REF, erreurs)
    return lu, [str(e) for e in erreurs.erreurs]


@pytest.mark.parametrize("objet", VALIDES)
def test_la_voie_rapide_rend_le_meme_objet_et_la_meme_empreinte_que_pydantic(objet: dict[str, Any]) -> None:
    for brute in (json.dumps(objet, ensure_ascii=False).encode(), json.dumps(objet).encode(),
                  json.dumps(objet, indent=1).encode()):
        lent, erreurs = _lent(brute)
        assert erreurs == [] and isinstance(lent, FactureLue)
        rapide = _LecteurRapide(REF).lire(brute, 7)
        assert rapide == lent
        # L'empreinte déjà stockée en base : SHA-256 du JSON du modèle pydantic validé.
        modele = _OBJET.validate_json(brute)
        assert rapide.empreinte == hashlib.sha256(modele.__pydantic_serializer__.to_json(modele)).hexdigest()


@pytest.mark.parametrize("objet", _mauvaises())
def test_la_voie_rapide_laisse_chaque_objet_refuse_a_la_voie_pydantic(objet: Any) -> None:
    brute = json.dumps(objet, ensure_ascii=False).encode()
    lent, erreurs = _lent(brute)
    rapide = _LecteurRapide(REF).lire(brute, 7)
    if erreurs:
        assert rapide is None
    else:  # l'avoir valide : la voie rapide le laisse aussi à pydantic
        assert lent is not None and rapide is None


@pytest.mark.parametrize("brute", [b'{"type": "facture", "numero": ', b"pas du json", b"[]", b"{}",
                                   b'{"type": "facture"} {}', b'{"type": "facture", "numero": "\\ud800"}'])
def test_la_voie_rapide_laisse_le_json_invalide_a_pydantic(brute: bytes) -> None:
    assert _LecteurRapide(REF).lire(brute, 1) is None
    assert _lent(brute)[1]


def test_lire_jsonl_rend_les_memes_objets_et_erreurs_que_la_voie_pydantic_seule() -> None:
    objets: list[Any] = [*VALIDES, *_mauvaises(), *VALIDES]
    brut = b"".join(json.dumps(o, ensure_ascii=False).encode() + b"\n" for o in objets)
    erreurs = CollecteurErreurs("f.jsonl", limite=100_000)
    lus = list(lire_jsonl(io.BytesIO(brut), "f.jsonl", REF, erreurs))
    attendues = CollecteurErreurs("f.jsonl", limite=100_000)
    attendus = [lu for i, o in enumerate(objets, 1)
                if (lu := lire_objet(json.dumps(o, ensure_ascii=False).encode(), i, REF, attendues)) is not None]
    assert lus == attendus
    assert [str(e) for e in erreurs.erreurs] == [str(e) for e in attendues.erreurs]
    assert len(erreurs.erreurs) >= len(_mauvaises()) - 1


def test_les_memos_de_la_voie_rapide_sont_bornes() -> None:
    for i in range(_MEMO_MAX + 100):
        assert _euros_ou_rien(f"{i}.00") == i * 100
        assert _montants_ou_rien(str(i + 1), "1.00", f"{i + 1}.00") == ((i + 1) * 100, 100, (i + 1) * 100)
    assert _euros_ou_rien.cache_info().currsize <= _MEMO_MAX
    assert _montants_ou_rien.cache_info().currsize <= _MEMO_MAX
    assert _euros_ou_rien("1,00") is None and _montants_ou_rien("0", "1.00", "0.00") is None
    assert _montants_ou_rien("3", "1.25", "3.76") is None  # 3 × 1,25 = 3,75


def test_le_ramasse_miettes_est_retabli_apres_un_import_refuse(app: Application, tmp_path: Path) -> None:
    chemin = tmp_path / "f.jsonl"
    chemin.write_text(json.dumps(_f(regie="X"), ensure_ascii=False) + "\n", encoding="utf-8")
    assert gc.isenabled()
    with pytest.raises(FichierRefuse):
        importer_fichier_factures(app, chemin)
    assert gc.isenabled()


def test_la_voie_rapide_laisse_une_ligne_latin1_a_la_voie_pydantic() -> None:
    brute = json.dumps(_f(), ensure_ascii=False).encode("latin-1", errors="replace")
    assert _LecteurRapide(REF).lire(brute, 1) is None
