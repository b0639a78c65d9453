#!/usr/bin/env bash
# The main job: set up (idempotent), then run the default pipeline end to end with DVC.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/setup.sh
echo "[main] dvc repro (params.yaml defaults)" >&2
dvc repro "$@"
dataset=$(python -c "import yaml; p = yaml.safe_load(open('params.yaml')); print(p['data']['dataset'], p['train']['model'])")
set -- $dataset
echo "[main] done: report in reports/$1/$2/report.md, metrics in evaluation/metrics.json, stage record in dvc.lock (README: 'The pipeline')" >&2
