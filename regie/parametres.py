"""Configuration : `regie.toml` (specs/configuration.md) et variables d'environnement.

Une configuration fausse arrête le programme au démarrage, avec la clé et la raison.
"""

from __future__ import annotations

import tomllib
from functools import cached_property
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from regie.erreurs import ErreurRegie
from regie.validation import chemin_erreur, message_erreur


class ConfigurationInvalide(ErreurRegie):
    def __init__(self, fichier: str, erreurs: list[str]) -> None:
        super().__init__(fichier)
        self.fichier = fichier
        self.erreurs = erreurs

    def __str__(self) -> str:
        return "\n".join(f"{self.fichier} : {e}" for e in self.erreurs)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class Collectivite(_Strict):
    nom: str = Field(min_length=1, max_length=100)
    siret: str = Field(pattern=r"^[0-9]{14}$")
    codique: str = Field(pattern=r"^[0-9]{6}$")
    code_collectivite: str = Field(pattern=r"^[0-9]{3}$")
    code_budget: str = Field(pattern=r"^[0-9A-Z][0-9]$")
    code_etablissement: str = Field(pattern=r"^[0-9]{3}$")

    @property
    def siren(self) -> str:
        return self.siret[:9]


class RegieConfig(_Strict):
    code: str = Field(pattern=r"^[A-Z0-9_]{1,20}$")
    libelle: str = Field(min_length=1, max_length=100)
    mode: Literal["regie", "titre"]
    payfip_numcli: str = Field(pattern=r"^[0-9]{6}$")
    dft_compte: str = Field(pattern=r"^[0-9A-Z]{11}$")
    delai_titre_jours: int = Field(ge=0, le=3650)
    code_produit: str = Field(pattern=r"^[0-9]{3}$")


class PrestationConfig(_Strict):
    code: str = Field(pattern=r"^[A-Z0-9_]{1,20}$")
    libelle: str = Field(min_length=1, max_length=100)
    nature: str = Field(pattern=r"^[0-9]{1,12}$")
    code_produit_local: str = Field(pattern=r"^[A-Za-z0-9]{1,4}$")
    cesu: bool


class PayfipConfig(_Strict):
    """Section propre au projet : le service PayFiP (l'adresse peut venir de l'environnement)."""

    saisie: Literal["T", "X", "W"] = "T"
    url_notification: str = "http://127.0.0.1:8000/payfip/notification"
    url_retour: str = "http://127.0.0.1:8000/payfip/retour"


class Configuration(_Strict):
    collectivite: Collectivite
    regie: list[RegieConfig] = Field(min_length=1)
    prestation: list[PrestationConfig] = Field(min_length=1)
    payfip: PayfipConfig = PayfipConfig()

    @model_validator(mode="after")
    def _codes_uniques(self) -> Configuration:
        for nom, codes in (("regie", [r.code for r in self.regie]),
                           ("prestation", [p.code for p in self.prestation])):
            vus: set[str] = set()
            for code in codes:
                if code in vus:
                    raise ValueError(f"le code {nom} « {code} » est défini deux fois")
                vus.add(code)
        comptes = [r.dft_compte for r in self.regie]
        if len(set(comptes)) != len(comptes):
            raise ValueError("deux régies ont le même compte DFT")
        return self

    @cached_property
    def regies(self) -> dict[str, RegieConfig]:
        return {r.code: r for r in self.regie}

    @cached_property
    def prestations(self) -> dict[str, PrestationConfig]:
        return {p.code: p for p in self.prestation}


class Environnement(BaseSettings):
    """Ce qui vient de l'environnement : adresses et secrets, jamais dans le TOML en production."""

    model_config = SettingsConfigDict(env_prefix="REGIE_", extra="ignore")

    database_url: str = "sqlite:///regie.db"
    config: Path = Path("regie.toml")
    log_json: bool = False
    donnees: Path = Path("var")  # boîte d'envoi, quarantaine, boîte de réception locale
    payfip_endpoint: str = "https://www.payfip.gouv.fr/tpa/services/securite"


def charger_configuration(chemin: Path | str) -> Configuration:
    chemin = Path(chemin)
    nom = str(chemin)
    try:
        brut = chemin.read_bytes()
    except OSError as exc:
        raise ConfigurationInvalide(nom, [f"fichier de configuration illisible ({exc.strerror})"]) from exc
    try:
        donnees = tomllib.loads(brut.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise ConfigurationInvalide(nom, ["le fichier n'est pas en UTF-8"]) from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigurationInvalide(nom, [f"TOML invalide : {exc}"]) from exc
    try:
        return Configuration.model_validate(donnees)
    except ValidationError as exc:
        erreurs = []
        for err in exc.errors():
            cle = chemin_erreur(err["loc"])
            erreurs.append(f"clé « {cle} » : {message_erreur(dict(err))}")
        raise ConfigurationInvalide(nom, erreurs) from exc
