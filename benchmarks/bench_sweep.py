"""Benchmark the Lee grid sweep: one configuration after another vs a 2-worker Dask LocalCluster.

Run from the repository root (with .venv active):  python -m benchmarks.bench_sweep

In one run: a fresh temporary git clone of this project (offline MNIST sample), a real
Prefect server on a free port, the shared stages (fetch, validate, demo) computed once so that
both sweeps find them in the DVC cache, then `mnist sweep --lee` twice with the same small
data and epochs: `--workers 0` (sequential) and `--workers N` (LocalCluster). Prints the wall
time of each, the ratio, the per-configuration times, whether the two gave the same metrics,
and the parameters of the scaling model written in docs/scaling.md:

    T(N) ~= T_shared + ceil(C / N) * t_config * s(N)

T_shared: the sweep's own work (shared fetch + validate, Dask start-up, the leaderboard);
t_config: the mean time of one child run alone; s(N): the slowdown of one child when N run
at once on the machine's cores (measured: mean child time parallel / sequential).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

import psutil  # noqa: E402
import yaml  # noqa: E402

from mnist_pipeline.project_files import ProjectFiles  # noqa: E402
from tests.harness import free_port, make_repo, stage_env  # noqa: E402


def start_server(home: Path) -> tuple[subprocess.Popen, dict[str, str]]:
    port = free_port()
    env = {**stage_env(), "PREFECT_HOME": str(home), "PREFECT_API_URL": f"http://127.0.0.1:{port}/api",
           "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "PREFECT_LOGGING_LEVEL": "WARNING"}
    home.mkdir(parents=True, exist_ok=True)
    server = subprocess.Popen(["prefect", "server", "start", "--host", "127.0.0.1", "--port", str(port)], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/health", timeout=2):
                return server, env
        except OSError:
            time.sleep(1)
    os.killpg(server.pid, 15)
    raise SystemExit("prefect server did not answer within 120 s")


def spin(_: int = 0) -> float:
    """Seconds of a fixed single-threaded Python loop."""
    started, total = time.perf_counter(), 0
    for i in range(20_000_000):
        total += i
    return time.perf_counter() - started


def two_at_once() -> float:
    """How much slower each of two single-threaded processes runs when both run at once than one alone: the
    floor of s(2) on this machine, whatever the sweep does."""
    from concurrent.futures import ProcessPoolExecutor

    ratios = []
    with ProcessPoolExecutor(2) as pool:
        for _ in range(5):  # one short sample swung from 1.0 to 1.6 on the quiet machine: the median of five
            alone = pool.submit(spin).result()
            ratios.append(max(pool.map(spin, range(2))) / alone)
    return sorted(ratios)[2]


def cpu_seconds(process: psutil.Process) -> float:
    """CPU seconds (user + system) of a live process and its live descendants."""
    total = 0.0
    for each in [process, *process.children(recursive=True)]:
        try:
            times = each.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += times.user + times.system
    return total


def run_sweep(repo: Path, env: dict[str, str], name: str, workers: int, args: argparse.Namespace,
              server: psutil.Process) -> dict:
    command = [sys.executable, "-m", "mnist_cli", "sweep", "--lee", "--name", name, "--workers", str(workers),
               "--epochs", str(args.epochs), "--max-train-images", str(args.max_train_images), "--seed", "7"]
    if workers and args.threads:
        command += ["--threads", str(args.threads)]
    print(f"running: {' '.join(command[1:])}", flush=True)
    server_before, children_before = cpu_seconds(server), resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(command, cwd=repo, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - started
    children = resource.getrusage(resource.RUSAGE_CHILDREN)  # the sweep and every process under it, waited for
    own = (children.ru_utime + children.ru_stime) - (children_before.ru_utime + children_before.ru_stime)
    if done.returncode != 0:
        raise SystemExit(f"sweep {name} failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    files = ProjectFiles.from_params(yaml.safe_load((repo / "params.yaml").read_text()), repo)
    summary = json.loads((files.sweep_dir("mnist", name) / "sweep.json").read_text())
    summary["wall"], summary["cpu"], summary["server_cpu"] = wall, own, cpu_seconds(server) - server_before
    return summary


def metrics_by_point(summary: dict) -> dict[str, dict]:
    return {json.dumps(r["point"], sort_keys=True): {k: v for k, v in r["metrics"].items() if k != "train_seconds"}
            for r in summary["results"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", type=int, default=2, help="LocalCluster worker processes for the parallel run")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--max-train-images", type=int, default=2000)
    parser.add_argument("--threads", type=int, default=None,
                        help="threads per child in the parallel run (default: the sweep's, cores / workers)")
    args = parser.parse_args()
    print(f"command: python -m benchmarks.bench_sweep {' '.join(sys.argv[1:])}".rstrip())
    print(f"machine: {os.cpu_count()} cores; offline MNIST sample; Lee grid (8 configurations), "
          f"{args.epochs} epochs on {args.max_train_images} training images each; "
          f"load average before {os.getloadavg()[0]:.2f}\n", flush=True)
    with tempfile.TemporaryDirectory() as folder:
        repo = make_repo(Path(folder) / "project")
        server, env = start_server(Path(folder) / "prefect-home")
        try:
            # both sweeps start from the same cache: the shared stages (fetch, validate, demo) computed once here, so
            # neither sweep's shared step computes them (the first sweep used to, and the second restored them)
            warm = subprocess.run(["dvc", "repro", "validate", "demo"], cwd=repo, env=env, capture_output=True,
                                  text=True)
            if warm.returncode != 0:
                raise SystemExit(f"dvc repro validate demo failed:\n{warm.stdout[-2000:]}")
            sequential = run_sweep(repo, env, "seq", 0, args, psutil.Process(server.pid))
            parallel = run_sweep(repo, env, "par", args.workers, args, psutil.Process(server.pid))
        finally:
            os.killpg(server.pid, 15)
            server.wait()
    configs = len(sequential["results"])
    t_seq = [r["seconds"] for r in sequential["results"]]
    t_par = [r["seconds"] for r in parallel["results"]]
    t_config = sum(t_seq) / configs
    slowdown = (sum(t_par) / configs) / t_config
    shared = sequential["wall"] - sum(t_seq)
    predicted = shared + math.ceil(configs / args.workers) * t_config * slowdown
    print(f"\n{'configuration':<58} {'sequential s':>12} {'parallel s':>11} {'accuracy':>9}")
    for seq, par in zip(sequential["results"], parallel["results"]):
        point = ", ".join(f"{k}={v}" for k, v in seq["point"].items())
        print(f"{point:<58} {seq['seconds']:12.1f} {par['seconds']:11.1f} {seq['metrics']['accuracy']:9.4f}")
    same = metrics_by_point(sequential) == metrics_by_point(parallel)
    print(f"\nsequential (--workers 0):               {sequential['wall']:7.1f} s wall ({sequential['how']})")
    print(f"LocalCluster (--workers {args.workers}):             {parallel['wall']:7.1f} s wall ({parallel['how']})")
    print(f"speed-up sequential / parallel:          {sequential['wall'] / parallel['wall']:7.2f}x")
    print(f"same metrics both ways (but train time): {same}")
    print(f"scaling model: T_shared {shared:.1f} s, t_config {t_config:.1f} s, s({args.workers}) {slowdown:.2f}; "
          f"predicted T({args.workers}) {predicted:.1f} s vs measured {parallel['wall']:.1f} s")
    for name, run in (("sequential", sequential), ("parallel", parallel)):
        print(f"CPU seconds, {name}: the sweep's processes {run['cpu']:.1f}, the Prefect server "
              f"{run['server_cpu']:.1f}; cores busy on average {(run['cpu'] + run['server_cpu']) / run['wall']:.2f}")
    print(f"two single-threaded processes at once, each slower than one alone by: {two_at_once():.2f}x")
    print(f"load average after: {os.getloadavg()[0]:.2f} (1 min), {os.getloadavg()[1]:.2f} (5 min)")


if __name__ == "__main__":
    main()
