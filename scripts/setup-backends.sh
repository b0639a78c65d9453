#!/usr/bin/env bash
# The optional Keras backends, JAX and PyTorch (CPU builds), in their own virtual environment .venv-backends:
# requirements.lock exactly, as scripts/setup.sh installs it, then requirements-backends.lock (its pins agree with
# the main lock), then this project (editable, --no-deps). The main .venv stays exactly requirements.lock.
# For `dvc exp run -S train.backend=jax|torch`, the tests on those backends (scripts/test.sh runs this),
# benchmarks/bench_backends.py and the GPU notes (docs/gpu.md); safe to run again.
#   bash scripts/setup-backends.sh && .venv-backends/bin/python -m benchmarks.bench_backends
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYTHON="${PYTHON:-python3}"
VENV="$ROOT/.venv-backends"
say() { printf '[setup-backends] %s\n' "$*" >&2; }

want="$(cat "$ROOT/requirements.lock" "$ROOT/requirements-backends.lock" "$ROOT/pyproject.toml" | sha256sum | cut -d' ' -f1)"
stamp="$VENV/.requirements.sha256"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  say "already matches requirements.lock and requirements-backends.lock"
  exit 0
fi
[ -x "$VENV/bin/python" ] || { say "creating .venv-backends with $($PYTHON --version 2>&1)"; "$PYTHON" -m venv "$VENV"; }
pip_only="$(mktemp)"
awk '/^pip==/{p=1} p{print} p&&!/\\$/{exit}' "$ROOT/requirements.lock" > "$pip_only"
"$VENV/bin/python" -m pip install -q --disable-pip-version-check --no-deps --require-hashes -r "$pip_only"
rm -f "$pip_only"
say "installing requirements.lock, then requirements-backends.lock (JAX, PyTorch CPU)"
"$VENV/bin/python" -m pip install -qq --disable-pip-version-check --no-deps --require-hashes -r "$ROOT/requirements.lock"
"$VENV/bin/python" -m pip install -qq --disable-pip-version-check --no-deps --require-hashes \
  -r "$ROOT/requirements-backends.lock"
"$VENV/bin/python" -m pip install -qq --disable-pip-version-check --no-deps --no-build-isolation -e "$ROOT"
"$VENV/bin/python" -m pip check >&2
echo "$want" > "$stamp"
say "ready: $("$VENV/bin/python" -c 'import jax, torch, keras; print(f"jax {jax.__version__}, torch {torch.__version__}, keras {keras.__version__}")')"
