"""The sweep flow: child train-mnist runs on a real Dask LocalCluster, through the served deployment."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from flows.sweep import child_threads
from tests.harness import ROOT, prefect, versions

SMALL = {"dataset": "mnist", "epochs": 1, "max_train_images": 500}


def without_time(metrics: dict) -> dict:
    return {k: v for k, v in metrics.items() if k != "train_seconds"}


def sweep_json(repo: Path, name: str) -> dict:
    return json.loads((repo / "reports/mnist/sweeps" / name / "sweep.json").read_text())


def test_sweep_on_a_local_cluster_matches_one_after_another_and_a_failure_fails_alone(prefect_env, served: Path):
    # through the deployment: a catalogue entry and a two-point grid, one point broken (learning_rate -1)
    parameters = {**SMALL, "models": ["deep_relu"], "grid": {"learning_rate": [0.001, -1.0]}, "base": "lee_ce_relu",
                  "name": "par", "workers": 2}
    args = [x for key, value in parameters.items() for x in ("-p", f"{key}={json.dumps(value)}")]
    run = prefect(prefect_env, "deployment", "run", "sweep/lee-grid", *args, "--watch", cwd=served)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    parallel = sweep_json(served, "par")
    threads = child_threads(2, None)  # each child's share of this machine's cores
    assert parallel["how"] == f"on a Dask LocalCluster of 2 workers, {threads} thread{'s' * (threads > 1)} per child"
    assert parallel["common"]["threads"] == threads
    by_label = {r["label"]: r for r in parallel["results"]}
    assert list(by_label) == ["deep_relu", "lee_ce_relu--par-lr0p001", "lee_ce_relu--par-lr-1p0"]
    broken = by_label["lee_ce_relu--par-lr-1p0"]
    assert "failed" in broken and "learning_rate" in broken["failed"]
    assert versions(served, "lee_ce_relu--par-lr-1p0") == []  # a failed child registers nothing
    good = [by_label["deep_relu"], by_label["lee_ce_relu--par-lr0p001"]]
    for result in good:
        assert result["version"].endswith("@v1") and 0.1 < result["metrics"]["accuracy"] <= 1
        # shared preprocessing: fetch, validate and the demo never ran in a child; training did
        assert not {"fetch", "validate", "demo"} & set(result["stages_run"])
        assert "train" in result["stages_run"]
    assert versions(served, "deep_relu") == ["v1"]
    refs = subprocess.run(["git", "for-each-ref", "--format=%(refname)", "refs/exps"], cwd=served,
                          capture_output=True, text=True).stdout
    assert all(result["experiment"] in refs for result in good)  # each child is a DVC experiment, demo included
    record = json.loads((served / "registry/lee_ce_relu--par-lr0p001/v1/record.json").read_text())
    assert record["model_spec"]["learning_rate"] == 0.001 and record["model_spec"]["activation"] == "relu"
    board = (served / "reports/mnist/sweeps/par/leaderboard.md").read_text()
    assert "failed" in board and "learning\\_rate" in board
    assert "fetch 0 time(s), validate 0 time(s), demo 0 time(s) in the children" in board
    assert (served / "reports/mnist/sweeps/par/leaderboard.png").stat().st_size > 1000
    assert not list((served / ".dvc/tmp/sweeps").glob("*.dvc.lock"))  # the shared lock file is gone

    # the same configurations one after another, from the CLI: the same metrics
    cli = [sys.executable, "-m", "mnist_cli", "sweep", "--models", "deep_relu", "--grid", "learning_rate=0.001",
           "--base", "lee_ce_relu", "--name", "seq", "--epochs", "1", "--max-train-images", "500", "--workers", "0"]
    again = subprocess.run(cli, cwd=served, env=prefect_env, capture_output=True, text=True, timeout=900)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    sequential = {r["label"]: r for r in sweep_json(served, "seq")["results"]}
    assert sweep_json(served, "seq")["how"] == "one after another"
    for mine, theirs in (("deep_relu", "deep_relu"), ("lee_ce_relu--seq-lr0p001", "lee_ce_relu--par-lr0p001")):
        assert without_time(sequential[mine]["metrics"]) == without_time(by_label[theirs]["metrics"])
    # deep_relu again is the same work (data, params and code: the same stage hashes): it registers no duplicate
    assert sequential["deep_relu"]["duplicate_of"] == "deep_relu@v1" and versions(served, "deep_relu") == ["v1"]


@pytest.mark.bad_input
@pytest.mark.parametrize("args, message", [
    (["--grid", "colour=red"], "bad --grid 'colour=red': use KEY=V1,V2 with KEY one of loss"),
    (["--grid", "depth=two"], "bad --grid 'depth=two': depth takes int values"),
    (["--models", "resnet"], "unknown catalogue models ['resnet']"),
    ([], "nothing to sweep: give --models and/or --grid"),
    (["--grid", "activation=relu", "--name", "../x"], "is not a slug"),
    (["--grid", "activation=relu", "--threads", "0"], "--threads must be at least 1, not 0"),
])
def test_bad_sweeps_are_refused_before_anything_runs(tmp_path: Path, args: list[str], message: str):
    root = ROOT
    run = subprocess.run([sys.executable, "-m", "mnist_cli", "sweep", *args], cwd=root, capture_output=True, text=True,
                         timeout=120, env={"PATH": str(Path(sys.executable).parent) + ":/usr/bin:/bin",
                                           "PREFECT_API_URL": "http://127.0.0.1:9/api", "HOME": str(tmp_path)})
    assert run.returncode == 1 and message in run.stderr and run.stderr.count("\n") == 1, run.stderr


def test_a_sweep_that_fails_after_its_shared_step_leaves_no_lock_file(prefect_env, served: Path):
    """The shared preprocessing writes a dvc.lock copy for the children; a sweep that then fails as a whole
    (here: no Dask scheduler at --address) must remove it (it used to stay behind)."""
    from tests.harness import free_port

    args = [sys.executable, "-m", "mnist_cli", "sweep", "--models", "mlp_500", "--epochs", "1",
            "--max-train-images", "500", "--name", "nocluster", "--address", f"tcp://127.0.0.1:{free_port()}"]
    done = subprocess.run(args, cwd=served, env={**prefect_env, "DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT": "5s"},
                          capture_output=True, text=True, timeout=600)
    assert done.returncode != 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert not list((served / ".dvc/tmp/sweeps").glob("nocluster-*.dvc.lock"))


@pytest.mark.fault
def test_a_sweep_on_a_real_dask_scheduler_survives_a_worker_killed_mid_child(prefect_env, served: Path,
                                                                             tmp_path: Path):
    """`mnist sweep --address` against `dask scheduler` and two `dask worker` processes started from the venv (not
    a LocalCluster): one worker is SIGKILLed while its child trains. The sweep still ends (no hang): the killed
    child is retried on the other worker or fails alone, every child that succeeded is registered, and their
    metrics equal the same configurations run one after another (`--workers 0`)."""
    import os
    import signal
    import time

    from tests.harness import free_port, stage_env

    port, bin_dir = free_port(), Path(sys.executable).parent
    env = {**prefect_env, **{k: v for k, v in stage_env().items() if k.startswith("GIT_")},
           "PYTHONPATH": str(served), "TMPDIR": str(tmp_path / "work")}  # the workers import this repository's flows
    (tmp_path / "work").mkdir()
    logs = [open(tmp_path / name, "w") for name in ("scheduler.log", "worker-a.log", "worker-b.log")]
    scheduler = subprocess.Popen([str(bin_dir / "dask"), "scheduler", "--host", "127.0.0.1", "--port", str(port),
                                  "--no-dashboard"], cwd=served, env=env, stdout=logs[0], stderr=subprocess.STDOUT,
                                 start_new_session=True)
    address = f"tcp://127.0.0.1:{port}"
    workers = [subprocess.Popen([str(bin_dir / "dask"), "worker", address, "--nworkers", "1", "--nthreads", "1",
                                 "--no-dashboard", "--name", name], cwd=served, env=env, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)
               for name, log in (("a", logs[1]), ("b", logs[2]))]
    processes = [scheduler, *workers]
    try:
        cli = [sys.executable, "-m", "mnist_cli", "sweep", "--models", "deep_relu", "--grid", "learning_rate=0.001",
               "--base", "lee_ce_relu", "--name", "addr", "--epochs", "1", "--max-train-images", "500",
               "--address", address]
        sweep = subprocess.Popen(cli, cwd=served, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                 text=True)
        killed, deadline = None, time.monotonic() + 600
        while killed is None and sweep.poll() is None and time.monotonic() < deadline:
            for owner in (tmp_path / "work").glob("train-mnist-*/owner.json"):  # a child's worktree, and its pid
                victim = worker_of(owner, workers)
                if victim is not None:
                    os.killpg(victim.pid, signal.SIGKILL)  # the nanny and its worker, mid-child
                    killed = victim
                    break
            time.sleep(0.5)
        output, _ = sweep.communicate(timeout=max(60, deadline - time.monotonic()))
    finally:
        for process in processes:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in processes:
            process.wait(timeout=60)
        for log in logs:
            log.close()
    assert killed is not None, "no child started on a worker"
    assert "leaderboard:" in output, output[-3000:]  # it ended with its leaderboard, not a hang or a traceback
    results = {r["label"]: r for r in sweep_json(served, "addr")["results"]}
    assert sweep_json(served, "addr")["how"] == f"on the Dask scheduler at {address}"
    assert set(results) == {"deep_relu", "lee_ce_relu--addr-lr0p001"}
    good = [r for r in results.values() if "failed" not in r]
    assert good, results  # the other worker's child at least
    for result in results.values():
        if "failed" in result:  # the killed one may fail alone, with its reason
            assert result["failed"].strip(), result
    for result in good:
        model = result["version"].split("@")[0]
        assert versions(served, model), model  # registered
    one_by_one = subprocess.run([*cli[:-2], "--name", "addr-seq", "--workers", "0"], cwd=served, env=prefect_env,
                                capture_output=True, text=True, timeout=900)
    assert one_by_one.returncode == 0, one_by_one.stdout[-3000:] + one_by_one.stderr[-3000:]
    sequential = {r["label"].replace("addr-seq", "addr"): r for r in sweep_json(served, "addr-seq")["results"]}
    for result in good:
        assert without_time(result["metrics"]) == without_time(sequential[result["label"]]["metrics"]), result


def worker_of(owner: Path, workers: list[subprocess.Popen]) -> subprocess.Popen | None:
    """The `dask worker` (its process group) whose process made the worktree `owner` describes, if it lives."""
    import os

    try:
        group = os.getpgid(json.loads(owner.read_text())["pid"])
    except (OSError, ValueError, KeyError):  # gone already, or owner.json half written
        return None
    return next((w for w in workers if w.pid == group and w.poll() is None), None)
