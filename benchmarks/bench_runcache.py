"""Benchmark DVC's run-cache: returning to a configuration tried before, restored vs recomputed.

Run from the repository root (with .venv active):  python -m benchmarks.bench_runcache

In one run, in a fresh temporary git clone of this project (offline MNIST sample): `dvc repro` of the
default configuration (every stage computed), then another model (`mlp_500`, 2 epochs), then the default
configuration again. The third `dvc repro` restores the default's prepare, train, evaluate and report
from the run-cache instead of recomputing them. Prints the three times, the stages restored, and the
restore time next to the compute time it saves.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from tests.harness import make_repo, stage_env


def repro(repo: Path) -> tuple[float, str]:
    started = time.perf_counter()
    done = subprocess.run(["dvc", "repro"], cwd=repo, capture_output=True, text=True, env=stage_env())
    if done.returncode:
        sys.exit(f"dvc repro failed:\n{(done.stdout + done.stderr)[-3000:]}")
    return time.perf_counter() - started, done.stdout


def set_model(repo: Path, model: str, epochs: int | None) -> None:
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["train"].update({"model": model, "epochs": epochs})
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def stage_seconds(repo: Path) -> dict[str, float]:
    return {p.stem: json.loads(p.read_text())["seconds"] for p in sorted((repo / "timings").glob("*.json"))}


def main() -> None:
    print("command: python -m benchmarks.bench_runcache")
    with tempfile.TemporaryDirectory() as folder:
        repo = make_repo(Path(folder))
        model = yaml.safe_load((repo / "params.yaml").read_text())["train"]["model"]
        print(f"machine: {os.cpu_count()} cores; offline MNIST sample; the default model {model}\n")
        first, _ = repro(repo)
        computed = stage_seconds(repo)
        metrics = (repo / "evaluation/metrics.json").read_text()
        set_model(repo, "mlp_500", 2)
        other, _ = repro(repo)
        set_model(repo, model, None)
        again, output = repro(repo)
        restored = re.findall(r"Stage '(\w+)' is cached - skipping run", output)
        ran = re.findall(r"Running stage '(\w+)'", output)
        same = (repo / "evaluation/metrics.json").read_text() == metrics
    saved = sum(computed.get(stage, 0.0) for stage in restored)
    print(f"dvc repro, {model}, every stage computed:   {first:6.1f} s")
    print(f"dvc repro, mlp_500 (2 epochs):               {other:6.1f} s")
    print(f"dvc repro, {model} again:                    {again:6.1f} s  (restored from the run-cache: "
          f"{', '.join(restored) or 'none'}; ran: {', '.join(ran) or 'none'})")
    print(f"compute time of the restored stages:       {saved:6.1f} s  (train alone {computed.get('train', 0):.1f} s)")
    print(f"ratio restore / first run:                 {again / first:6.2f}")
    print(f"metrics after the restore identical to the computed run's: {same}")


if __name__ == "__main__":
    main()
