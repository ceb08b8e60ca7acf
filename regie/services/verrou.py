"""Une tâche à la fois, même à plusieurs processus (grappe d'un hébergeur).

PostgreSQL : verrou consultatif de session, relâché par le serveur si le processus meurt.
SQLite : une ligne de verrou avec un bail ; un détenteur mort (même machine) est remplacé.
"""

from __future__ import annotations

import os
import socket
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

import psutil
import structlog
from sqlalchemy import delete, insert, select, text, update
from sqlalchemy.exc import IntegrityError

from regie.application import Application
from regie.registre.modeles import Verrou
from regie.registre.types import maintenant

log = structlog.get_logger()
BAIL = timedelta(hours=6)


def identite() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{int(psutil.Process().create_time())}"


def _detenteur_mort(detenteur: str) -> bool:
    hote, _, reste = detenteur.partition(":")
    pid_txt, _, debut = reste.partition(":")
    if hote != socket.gethostname() or not pid_txt.isdigit():
        return False  # autre machine : on attend la fin du bail
    try:
        p = psutil.Process(int(pid_txt))
        return int(p.create_time()) != int(debut or 0) or p.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


@contextmanager
def tache_exclusive(app: Application, nom: str) -> Iterator[bool]:
    """Rend True si ce processus tient le verrou de `nom` (et le garde jusqu'à la sortie), False sinon."""
    moi = identite()
    if app.moteur.dialect.name == "postgresql":
        cle = zlib.crc32(nom.encode()) & 0x7FFFFFFF
        with app.moteur.connect() as conn:
            obtenu = bool(conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": cle}).scalar())
            conn.commit()
            try:
                yield obtenu
            finally:
                if obtenu:
                    conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": cle})
                    conn.commit()
        return
    obtenu = _prendre_bail(app, nom, moi)
    try:
        yield obtenu
    finally:
        if obtenu:
            with app.moteur.begin() as conn:
                conn.execute(delete(Verrou).where(Verrou.nom == nom, Verrou.detenteur == moi))


def _prendre_bail(app: Application, nom: str, moi: str) -> bool:
    with app.moteur.begin() as conn:
        ligne = conn.execute(select(Verrou.detenteur, Verrou.expire_le).where(Verrou.nom == nom)).first()
        now = maintenant()
        if ligne is None:
            try:
                conn.execute(insert(Verrou), {"nom": nom, "detenteur": moi, "expire_le": now + BAIL})
                return True
            except IntegrityError:
                return False
        detenteur, expire_le = ligne
        if detenteur == moi or expire_le < now or _detenteur_mort(detenteur):
            if detenteur != moi:
                log.warning("verrou_repris", tache=nom, ancien=detenteur)
            conn.execute(update(Verrou).where(Verrou.nom == nom, Verrou.detenteur == detenteur)
                         .values(detenteur=moi, expire_le=now + BAIL))
            return True
        return False
