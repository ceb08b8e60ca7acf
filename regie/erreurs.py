"""Erreurs de fichier : des valeurs avec un lieu (fichier, ligne ou chemin XML, champ) et une raison en français."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class ErreurLigne:
    fichier: str
    ligne: int | None
    champ: str | None
    raison: str
    chemin: str | None = None  # chemin XML, pour PES

    def __str__(self) -> str:
        # Une ligne par erreur : fichier:ligne: champ: raison (le contrat de specs/cli.md).
        lieu = self.fichier
        if self.ligne is not None:
            lieu += f":{self.ligne}"
        if self.chemin:
            lieu += f":{self.chemin}"
        if self.champ:
            return f"{lieu}: {self.champ}: {self.raison}"
        return f"{lieu}: {self.raison}"

    def en_dict(self) -> dict[str, object]:
        return {"fichier": self.fichier, "ligne": self.ligne, "champ": self.champ,
                "raison": self.raison, "chemin": self.chemin}


class ErreurRegie(Exception):
    """Racine des erreurs propres au projet."""


@dataclass
class FichierRefuse(ErreurRegie):
    """Le fichier est refusé en entier ; `erreurs` les donne toutes, pas seulement la première."""

    fichier: str
    erreurs: list[ErreurLigne] = field(default_factory=list)

    def __post_init__(self) -> None:
        super().__init__(self.fichier)

    def __str__(self) -> str:
        n = len(self.erreurs)
        return f"{self.fichier} : fichier refusé ({n} erreur{'s' if n > 1 else ''})"


class CollecteurErreurs:
    """Accumule les erreurs d'un fichier ; `verifier()` lève FichierRefuse s'il y en a."""

    __slots__ = ("erreurs", "fichier", "limite")

    def __init__(self, fichier: str, limite: int = 1000) -> None:
        self.fichier = fichier
        self.erreurs: list[ErreurLigne] = []
        self.limite = limite

    def ajouter(self, ligne: int | None, champ: str | None, raison: str, chemin: str | None = None) -> None:
        if len(self.erreurs) < self.limite:
            self.erreurs.append(ErreurLigne(self.fichier, ligne, champ, raison, chemin))
        elif len(self.erreurs) == self.limite:
            self.erreurs.append(ErreurLigne(self.fichier, None, None, "trop d'erreurs : la liste s'arrête ici"))

    def __bool__(self) -> bool:
        return bool(self.erreurs)

    def verifier(self) -> None:
        if self.erreurs:
            raise FichierRefuse(self.fichier, list(self.erreurs))
