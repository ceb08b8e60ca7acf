#!/bin/sh
# Installe le serveur OpenSSH pour les tests SFTP (tests/sshd.py) ; sans effet s'il est déjà là.
set -eu
if command -v /usr/sbin/sshd >/dev/null 2>&1; then
    exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    SUDO="sudo"
fi
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y --no-install-recommends openssh-server
