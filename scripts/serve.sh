#!/usr/bin/env bash
# Serve the train-mnist deployments (train-mnist/mnist, train-mnist/fashion-mnist) to the local server.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/setup.sh
export PREFECT_HOME="${PREFECT_HOME:-$PWD/.prefect}"
export PREFECT_API_URL="${PREFECT_API_URL:-http://127.0.0.1:${PREFECT_PORT:-4200}/api}"
exec python -m flows.serve
