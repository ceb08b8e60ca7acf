#!/usr/bin/env bash
# Régénère la migration initiale depuis les modèles (tant que rien n'est déployé) : base SQLite vide.
set -euo pipefail
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
rm -f regie/registre/migrations/versions/0001_*.py
cat > "$tmp/alembic.ini" <<INI
[alembic]
script_location = $(pwd)/regie/registre/migrations
sqlalchemy.url = sqlite:///$tmp/vide.db
INI
.venv/bin/alembic -c "$tmp/alembic.ini" revision --autogenerate --rev-id 0001 -m "schema initial" >/dev/null
f=$(ls regie/registre/migrations/versions/0001_*.py)
# Le type InstantUTC est rendu avec son module : rien à corriger ; on formate.
.venv/bin/ruff format -q "$f" || true
echo "$f"
