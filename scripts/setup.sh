#!/usr/bin/env bash
# Set up a fresh machine for this project; safe to run again (it skips what is done).
#   - Debian packages dataset-fashion-mnist (full Fashion-MNIST for offline runs), chromium and
#     chromium-driver (the tests look at the Prefect UI in a real headless browser); needs root or sudo
#   - .venv with every Python dependency pinned (with hashes) in requirements.lock, then this
#     project itself, editable and without dependencies (its packages and the `mnist` command)
# Sourced by scripts/main.sh and scripts/test.sh; leaves .venv/bin first on PATH.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYTHON="${PYTHON:-python3}"

say() { printf '[setup] %s\n' "$*" >&2; }

install_debian_packages() {
  local wanted=(dataset-fashion-mnist git chromium chromium-driver)  # chromium: the Prefect UI test
  local missing=()
  for pkg in "${wanted[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  if ! command -v apt-get >/dev/null; then
    say "no apt-get: install ${missing[*]} yourself (offline Fashion-MNIST needs dataset-fashion-mnist)"
    return 0
  fi
  local sudo=""
  if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null; then sudo="sudo"; else
      say "not root and no sudo: cannot install ${missing[*]}"; return 0; fi
  fi
  say "installing Debian packages: ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
}

install_python_packages() {
  local venv="$ROOT/.venv" stamp="$ROOT/.venv/.requirements.sha256"
  local want
  # keyed on both files: the lock (what is installed) and pyproject.toml (the project's own install)
  want="$(cat "$ROOT/requirements.lock" "$ROOT/pyproject.toml" | sha256sum | cut -d' ' -f1)"
  if [ ! -x "$venv/bin/python" ]; then
    say "creating virtual environment .venv with $($PYTHON --version 2>&1)"
    "$PYTHON" -m venv "$venv"
  fi
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
    say "Python packages already match requirements.lock and pyproject.toml"
  else
    say "installing pinned Python packages from requirements.lock (first time: a few minutes)"
    # Install exactly what the lock names, whatever the index serves later:
    #  1. the locked pip first (a new venv's own pip, 23.2 here, resolves the lock differently: it
    #     matched prefect's httpx[http2] to a newer httpx than the locked one, 2026-12-04);
    #  2. every locked distribution with --no-deps (no resolver run: the lock is the resolution);
    #  3. pip check, then scripts/check_lock.py: every requirement of every installed distribution,
    #     extras included, is met by the lock and nothing else was installed.
    local pip_only
    pip_only="$(mktemp)"
    awk '/^pip==/{p=1} p{print} p&&!/\\$/{exit}' "$ROOT/requirements.lock" > "$pip_only"
    "$venv/bin/python" -m pip install -q --disable-pip-version-check --no-deps --require-hashes -r "$pip_only"
    rm -f "$pip_only"
    "$venv/bin/python" -m pip install -qq --disable-pip-version-check --no-deps --require-hashes \
      -r "$ROOT/requirements.lock"
    # the project itself; every dependency came from the lock. With setuptools (64+, editable
    # installs) in the venv, build with it rather than fetch a build environment from the index.
    local isolation=()
    if "$venv/bin/python" -c 'import sys, setuptools; sys.exit(int(setuptools.__version__.split(".")[0]) < 64)' \
        2>/dev/null; then
      isolation=(--no-build-isolation)
    fi
    say "installing this project (editable, --no-deps)"
    # -qq: errors only, not setuptools' generic warning about editable installs of a flat layout
    "$venv/bin/python" -m pip install -qq --disable-pip-version-check --no-deps "${isolation[@]}" -e "$ROOT"
    "$venv/bin/python" -m pip check >&2 || { say "pip check failed: the lock is inconsistent (re-lock: docs/pipeline.md, Dependencies and pins)"; exit 1; }
    "$venv/bin/python" "$ROOT/scripts/check_lock.py" || exit 1
    echo "$want" > "$stamp"
  fi
}

install_debian_packages
install_python_packages
export PATH="$ROOT/.venv/bin:$PATH"
export VIRTUAL_ENV="$ROOT/.venv"
export TF_CPP_MIN_LOG_LEVEL="${TF_CPP_MIN_LOG_LEVEL:-3}"  # the same default as mnist_pipeline/__init__.py
