"""Benchmark the overhead of a Prefect deployment run against `dvc repro` of the same configuration.

Run from the repository root (with .venv active):  python -m benchmarks.bench_prefect

In one run: a fresh temporary git clone of this project; `dvc repro` there with a small
configuration, timed; then a real Prefect server and `python -m flows.serve` for that
clone, and `prefect deployment run train-mnist/mnist ... --watch` with the same
configuration, timed from the command to its return. Prints both and the ratio.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]

from tests.harness import make_repo, prefect_server, stage_env  # noqa: E402


def timed(args: list[str], **kwargs) -> float:
    started = time.perf_counter()
    done = subprocess.run(args, capture_output=True, text=True, **kwargs)
    if done.returncode:
        sys.exit(f"{' '.join(args)} failed:\n{(done.stdout + done.stderr)[-3000:]}")
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="mlp_500")
    parser.add_argument("--epochs", type=int, default=3)
    args = parser.parse_args()
    print(f"command: python -m benchmarks.bench_prefect {' '.join(sys.argv[1:])}".rstrip())
    print(f"machine: {os.cpu_count()} cores; offline MNIST sample, {args.model}, {args.epochs} epochs\n")
    with tempfile.TemporaryDirectory() as folder:
        base = Path(folder)
        dvc_repo = make_repo(base / "dvc")
        params = yaml.safe_load((dvc_repo / "params.yaml").read_text())
        params["train"].update({"model": args.model, "epochs": args.epochs})
        (dvc_repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
        dvc_s = timed(["dvc", "repro"], cwd=dvc_repo, env=stage_env())

        flow_repo = make_repo(base / "flow")  # a cold cache, like the dvc run
        home = base / "home"
        home.mkdir()
        with prefect_server(home) as env:  # the test suite's server: waits for /api/health
            log = open(base / "serve.log", "w")
            serving = subprocess.Popen([sys.executable, "-m", "flows.serve"], cwd=flow_repo, env=env,
                                       stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
            try:
                while "train-mnist/mnist" not in subprocess.run(["prefect", "deployment", "ls"], env=env,
                                                                capture_output=True, text=True).stdout:
                    if serving.poll() is not None:
                        sys.exit("flows.serve exited:\n" + (base / "serve.log").read_text()[-3000:])
                    time.sleep(1)
                flow_s = timed(["prefect", "deployment", "run", "train-mnist/mnist", "-p", f"model={args.model}",
                                "-p", f"epochs={args.epochs}", "--watch"], env=env, cwd=flow_repo)
            finally:
                os.killpg(serving.pid, 15)
                serving.wait()
                log.close()
    print(f"dvc repro:                        {dvc_s:6.1f} s")
    print(f"prefect deployment run --watch:   {flow_s:6.1f} s")
    print(f"ratio deployment / dvc repro:     {flow_s / dvc_s:6.2f}")


if __name__ == "__main__":
    main()
