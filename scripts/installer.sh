#!/usr/bin/env bash
# Installe tout ce qu'il faut sur une machine neuve (Debian, Python 3.11+) ; sans effet si c'est déjà fait.
#   scripts/installer.sh           : l'application (démonstration)
#   scripts/installer.sh --tests   : plus ce qu'exigent les tests (sshd, Chromium, outils)
set -euo pipefail
cd "$(dirname "$0")/.."
tests=0
[ "${1:-}" = "--tests" ] && tests=1

paquets=()
ldconfig -p 2>/dev/null | grep -q 'libdmtx\.so\.0' || paquets+=(libdmtx0b)
if [ $tests = 1 ]; then
  [ -x /usr/sbin/sshd ] || paquets+=(openssh-server)
  command -v ssh-keygen >/dev/null || paquets+=(openssh-client)
  command -v chromium >/dev/null || paquets+=(chromium)
  command -v wrk >/dev/null || paquets+=(wrk)  # bancs d'essai de l'API : la charge vient d'un second processus
fi
if [ ${#paquets[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  echo "Installation des paquets Debian : ${paquets[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${paquets[@]}" >/dev/null
fi

[ -x .venv/bin/python ] || python3 -m venv .venv
extras="postgresql,natif"
[ $tests = 1 ] && extras="dev"
# On ne réinstalle que si pyproject.toml a changé.
empreinte="$(sha256sum pyproject.toml | cut -c1-16)-$extras"
if [ ! -f ".venv/.installe-$empreinte" ]; then
  .venv/bin/python -m pip install -q --upgrade pip 2>&1 | grep -v '^WARNING: Location' || true
  .venv/bin/python -m pip install -q -e ".[$extras]" 2>&1 | grep -v '^WARNING: Location' || true
  .venv/bin/python -c "import regie, sqlalchemy, pylibdmtx" >/dev/null
  rm -f .venv/.installe-*
  touch ".venv/.installe-$empreinte"
fi
# Les modules du chemin chaud du rapprochement compilés en C par mypyc (regie/natif.py) ; refaits seulement
# si leurs sources ont changé, sans effet sans compilateur (les sources tournent alors telles quelles).
.venv/bin/python scripts/compiler_natif.py
# Les modules du projet précompilés : là où l'environnement interdit d'écrire les .pyc
# (PYTHONDONTWRITEBYTECODE), chaque commande `regie` les recompilerait (≈ 0,06 s par démarrage).
.venv/bin/python -m compileall -q -j 0 regie connecteurs rapprochement exports scheduler.py >/dev/null
