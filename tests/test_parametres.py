"""La configuration fausse arrête le programme au démarrage, avec la clé et la raison, en français."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from regie.parametres import ConfigurationInvalide, charger_configuration
from tests.conftest import CONFIG_EXEMPLE

BONNE = CONFIG_EXEMPLE.read_text(encoding="utf-8")


def _ecrire(tmp_path: Path, texte: str) -> Path:
    chemin = tmp_path / "regie.toml"
    chemin.write_text(texte, encoding="utf-8")
    return chemin


def test_la_configuration_d_exemple_est_valide() -> None:
    c = charger_configuration(CONFIG_EXEMPLE)
    assert set(c.regies) == {"ENFANCE", "LOISIRS"}
    assert c.prestations["CRECHE"].cesu is True
    assert c.collectivite.siren == "219400999"


@pytest.mark.parametrize("remplacer, par, cle, raison", [
    ('payfip_numcli = "012345"', 'payfip_numcli = "12345"', "regie[0].payfip_numcli", "format"),
    ('siret = "21940099900017"', 'siret = "2194009990001"', "collectivite.siret", "format"),
    ('mode = "regie"', 'mode = "mixte"', "regie[0].mode", "valeur permise"),
    ('delai_titre_jours = 30', 'delai_titre_jours = "30"', "regie[0].delai_titre_jours", "entier"),
    ('cesu = false', 'cesu = false\ncouleur = "bleu"', "prestation[0].couleur", "clé inconnue"),
    ('codique = "094012"', 'ancien_codique = "094012"', "collectivite.codique", "manquante"),
    ('code = "CRECHE"', 'code = "CANTINE"', "(racine)", "défini deux fois"),
])
def test_une_cle_fausse_est_nommee_avec_sa_raison(tmp_path: Path, remplacer: str, par: str, cle: str,
                                                  raison: str) -> None:
    assert remplacer in BONNE
    chemin = _ecrire(tmp_path, BONNE.replace(remplacer, par, 1))
    with pytest.raises(ConfigurationInvalide) as exc:
        charger_configuration(chemin)
    texte = str(exc.value)
    assert f"« {cle} »" in texte
    assert raison in texte


def test_un_toml_illisible_est_refuse(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationInvalide, match="TOML invalide"):
        charger_configuration(_ecrire(tmp_path, "[collectivite\nnom="))


def test_la_commande_s_arrete_au_demarrage_sur_une_configuration_fausse(tmp_path: Path) -> None:
    chemin = _ecrire(tmp_path, BONNE.replace('code_produit = "043"', 'code_produit = "43"'))
    env = dict(os.environ, REGIE_CONFIG=str(chemin), REGIE_DATABASE_URL=f"sqlite:///{tmp_path}/r.db")
    res = subprocess.run([sys.executable, "-m", "regie.cli", "init"], env=env, capture_output=True, text=True,
                         check=False)
    assert res.returncode == 2
    assert "regie[0].code_produit" in res.stderr
    assert "configuration invalide" in res.stderr
    assert not (tmp_path / "r.db").exists()
