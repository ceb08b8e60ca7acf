#!/usr/bin/env bash
# Toute la suite de tests, installation comprise : lint, typage, tests (SQLite et PostgreSQL).
set -euo pipefail
racine="$(cd "$(dirname "$0")/.." && pwd)"
"$racine/scripts/installer.sh" --tests
cd "$racine"
echo "== ruff"
.venv/bin/ruff check .
echo "== mypy"
.venv/bin/mypy
echo "== pytest"
exec .venv/bin/pytest -n "${REGIE_TESTS_PROCESSUS:-3}" -q -p no:cacheprovider "$@"
