#!/usr/bin/env bash
# La démonstration : une nuit complète sur la base SQLite par défaut.
#   factures du portail, fichiers de chaque canal déposés dans la boîte, un paiement PayFiP
#   (simulateur local), puis `regie nuit` et ce qu'un agent verrait le matin.
set -euo pipefail
racine="$(cd "$(dirname "$0")/.." && pwd)"
"$racine/scripts/installer.sh"
demo="$racine/demo"
rm -rf "$demo"
mkdir -p "$demo"
cd "$demo"
cp "$racine/exemples/regie.toml" regie.toml
port_payfip=${REGIE_DEMO_PORT_PAYFIP:-8089}
export REGIE_LOG_NIVEAU=error REGIE_CONFIG="$demo/regie.toml" REGIE_DATABASE_URL="sqlite:///$demo/regie.db" \
       REGIE_DONNEES="$demo/var" REGIE_PAYFIP_ENDPOINT="http://127.0.0.1:$port_payfip/tpa/services/securite"
regie="$racine/.venv/bin/regie"
py="$racine/.venv/bin/python"

titre() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

titre "1. La base (SQLite : $demo/regie.db)"
"$regie" init

titre "2. Le simulateur PayFiP sur la boucle locale (port $port_payfip)"
"$py" -m connecteurs.payfip.simulateur --port "$port_payfip" > "$demo/simulateur.log" 2>&1 &
simulateur=$!
trap 'kill $simulateur 2>/dev/null || true' EXIT
for _ in $(seq 50); do
  "$py" -c "import socket; socket.create_connection(('127.0.0.1', $port_payfip), 0.2)" 2>/dev/null && break
  sleep 0.1
done
echo "   simulateur prêt : $REGIE_PAYFIP_ENDPOINT"

titre "3. Les fichiers de la nuit arrivent dans la boîte de réception (var/echanges/entree)"
"$py" -m regie.demo jeu-de-nuit --dossier "$demo/var/echanges/entree" --nombre 300
echo "   (dont un fichier de chèques erroné : il sera refusé en entier et mis en quarantaine)"

titre "4. Les factures du mois sont importées (le portail les pousse aussi par l'API)"
"$regie" factures importer "$demo/var/echanges/entree/01_factures_2026-05.jsonl"

titre "5. Une famille paie deux factures en ligne (PayFiP)"
"$py" -m regie.demo payfip --page "http://127.0.0.1:$port_payfip/tpa/paiementws.web"

titre "6. La nuit du 20 juin 2026 : relever, importer, rapprocher, émettre les titres, déposer"
set +e
"$regie" nuit --date 2026-06-20
code=$?
set -e
echo "   → code de retour $code (1 : un fichier a été refusé, la nuit le signale ; le reste est fait)"

titre "7. Ce que l'agent trouve le matin"
"$regie" etat
"$regie" anomalies lister --limite 8 | tail -n 25

titre "8. Le compte d'une famille"
dossier=$("$regie" etat --json | "$py" -c "import json,sys; e=json.load(sys.stdin); print(next(p for p in e['familles'] if p['credit'] != '0.00' or p['du'] != '0.00')['dossier'])")
"$regie" compte "$dossier"

titre "9. Ce qui est parti au Trésor et les journaux"
ls -1 "$demo/var/echanges/depot" "$demo/var/journaux"

titre "Pour aller plus loin"
cat <<TXT
   Les pages des agents et l'API du portail :
     printf 'demo-agent\n' | REGIE_CONFIG=$demo/regie.toml REGIE_DATABASE_URL=sqlite:///$demo/regie.db \\
       $regie utilisateurs creer agent --role agent --nom "Agent de démonstration"
     REGIE_CONFIG=$demo/regie.toml REGIE_DATABASE_URL=sqlite:///$demo/regie.db $regie serveur
   puis http://127.0.0.1:8000/ (file de revue, compte famille, journal d'audit) et http://127.0.0.1:8000/docs (API).
   L'état complet : regie etat --json ; la file de revue : regie anomalies lister.
TXT
