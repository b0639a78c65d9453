#!/usr/bin/env bash
# The whole test suite: set up (idempotent), then run pytest. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/setup.sh
exec python -m pytest "$@"
