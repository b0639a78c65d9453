#!/usr/bin/env bash
# One command for the Prefect side: start the local server (SQLite under .prefect/, settings in
# prefect.toml) and serve the deployments (train-mnist/mnist, train-mnist/fashion-mnist,
# sweep/lee-grid) from this project. Ctrl-C, or SIGTERM to this script (`kill %1` when it runs in the
# background, where bash ignores Ctrl-C), stops both within seconds.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/setup.sh
port="${PREFECT_PORT:-4200}"
export PREFECT_API_URL="${PREFECT_API_URL:-http://127.0.0.1:$port/api}"
prefect server start --host 127.0.0.1 --port "$port" > .prefect-server.log 2>&1 &
server=$!
serving=""
stop() {  # the deployments first (while the server still answers them), then the server
  trap - INT TERM EXIT
  [ -n "$serving" ] && kill -TERM "$serving" 2>/dev/null && wait "$serving" 2>/dev/null
  kill -TERM "$server" 2>/dev/null && wait "$server" 2>/dev/null
  echo "[prefect] stopped the deployments and the server" >&2
}
trap 'stop; exit 130' INT
trap 'stop; exit 143' TERM
trap stop EXIT
echo "[prefect] server starting on http://127.0.0.1:$port (log: .prefect-server.log)" >&2
for _ in $(seq 120); do
  if python -c "import urllib.request, sys; urllib.request.urlopen(sys.argv[1] + '/health', timeout=2)" \
      "$PREFECT_API_URL" 2>/dev/null; then break; fi
  kill -0 $server 2>/dev/null || { echo "error: prefect: the server stopped; see .prefect-server.log" >&2; exit 1; }
  sleep 1
done
echo "[prefect] UI: http://127.0.0.1:$port  serving the deployments (Ctrl-C or kill $$ stops both)" >&2
python -m flows.serve &
serving=$!
wait "$serving"
