#!/usr/bin/env bash
# The main job: set up (idempotent), then run the default pipeline end to end with DVC.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/setup.sh
echo "[main] dvc repro (params.yaml defaults)" >&2
dvc repro "$@"
report=$(python -c "from mnist_pipeline.config import read_params; from mnist_pipeline.project_files import PARAMS_FILE, ProjectFiles
p = read_params(PARAMS_FILE); print(ProjectFiles.from_params(p).report)")
echo "[main] done: report in $report, metrics in evaluation/metrics.json, stage record in dvc.lock (docs/pipeline.md)" >&2
