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


class EntreeDepot(_Strict):
    """Un dossier distant d'où relever des fichiers : son canal, ou « auto » (reconnu au contenu)."""

    dossier: str = Field(min_length=1)
    canal: Literal["auto", "factures", "buraliste", "cesu", "crcesu", "cheque", "cfonb", "pes-retour",
                   "acquit"] = "auto"
    motif: str = "*"


class DepotConfig(_Strict):
    """Section propre au projet : l'échange de fichiers (SFTP en production, un dossier par défaut)."""

    type: Literal["local", "sftp"] = "local"
    dossier_local: str = "echanges"  # relatif à REGIE_DONNEES
    hote: str | None = None
    port: int = Field(default=22, ge=1, le=65535)
    utilisateur: str | None = None
    cle_privee: str | None = None  # ou REGIE_SFTP_CLE_PRIVEE
    known_hosts: str | None = None  # ou REGIE_SFTP_KNOWN_HOSTS
    dossier_depot: str = "depot"
    motif_nom: str = "{nom}"
    tentatives: int = Field(default=3, ge=1, le=20)
    entree: list[EntreeDepot] = Field(default_factory=lambda: [EntreeDepot(dossier="entree")])

    @model_validator(mode="after")
    def _sftp_complet(self) -> DepotConfig:
        if self.type == "sftp" and not (self.hote and self.utilisateur):
            raise ValueError("un dépôt SFTP exige hote et utilisateur")
        return self


class PlanificateurConfig(_Strict):
    """Section propre au projet : la cadence des tâches (heure de Paris)."""

    payfip_minutes: int = Field(default=5, ge=1, le=1440)
    boite_minutes: int = Field(default=15, ge=1, le=1440)
    nuit: str = Field(default="02:00", pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$")
    fuseau: str = "Europe/Paris"
    grace_minutes: int = Field(default=1380, ge=1)  # une nuit manquée (machine en veille) est rattrapée une fois
    remises_jours: int = Field(default=15, ge=1)


class Configuration(_Strict):
    collectivite: Collectivite
    regie: list[RegieConfig] = Field(min_length=1)
    prestation: list[PrestationConfig] = Field(min_length=1)
    payfip: PayfipConfig = PayfipConfig()
    depot: DepotConfig = DepotConfig()
    planificateur: PlanificateurConfig = PlanificateurConfig()

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
    sftp_cle_privee: str | None = None
    sftp_known_hosts: str | None = None


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
