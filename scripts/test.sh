#!/usr/bin/env bash
# The whole test suite: set up (idempotent), lint (ruff), then run pytest. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/setup.sh
bash scripts/setup-backends.sh  # .venv-backends: the tests on JAX and PyTorch (tests/system/test_backends.py)
echo "[test] ruff check ." >&2
ruff check .
exec python -m pytest "$@"
