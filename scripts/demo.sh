#!/usr/bin/env bash
# La démonstration : une collectivité d'exemple, quelques centaines de factures, la base SQLite par défaut.
set -euo pipefail
racine="$(cd "$(dirname "$0")/.." && pwd)"
"$racine/scripts/installer.sh"
demo="$racine/demo"
rm -rf "$demo"
mkdir -p "$demo"
cd "$demo"
cp "$racine/exemples/regie.toml" regie.toml
export REGIE_LOG_NIVEAU=warning REGIE_CONFIG="$demo/regie.toml" REGIE_DATABASE_URL="sqlite:///$demo/regie.db" REGIE_DONNEES="$demo/var"
regie="$racine/.venv/bin/regie"
py="$racine/.venv/bin/python"

echo "== 1. Base de données (SQLite, $demo/regie.db)"
"$regie" init
echo
echo "== 2. Factures du mois émises par le portail"
"$py" -m regie.demo factures --nombre 300 --sortie factures-2026-05.jsonl
"$regie" factures importer factures-2026-05.jsonl
echo "   (le même fichier une seconde fois ne change rien)"
"$regie" factures importer factures-2026-05.jsonl
echo
echo "== 3. Un fichier erroné est refusé en entier, chaque erreur nommée"
"$py" -m regie.demo fichier-errone --sortie factures-erronees.jsonl
"$regie" factures importer factures-erronees.jsonl || echo "   → code de retour $? : rien n'a été appliqué ; fichier en quarantaine dans var/quarantaine/"
echo
echo "== 4. État du registre"
"$regie" etat
echo
echo "   Extrait de « regie etat --json » :"
"$regie" etat --json | "$py" -m regie.demo extrait
