#!/usr/bin/env bash
# Start a local Prefect server (SQLite under .prefect/) on 127.0.0.1:${PREFECT_PORT:-4200}. Stop with Ctrl-C.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/setup.sh
export PREFECT_HOME="${PREFECT_HOME:-$PWD/.prefect}" PREFECT_SERVER_ANALYTICS_ENABLED=false
exec prefect server start --host 127.0.0.1 --port "${PREFECT_PORT:-4200}"
