"""The catalogue comparison: real `dvc exp run`s in a temporary git repository, killed and resumed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
import yaml

from tests.harness import dvc, make_repo, stage_env


def safe_pgid(pid: int) -> int | None:
    """The process group of `pid`, None when the process is gone."""
    try:
        return os.getpgid(pid)
    except ProcessLookupError:
        return None


def catalogue(repo: Path) -> dict:
    path = repo / "reports/mnist/catalogue.json"
    return json.loads(path.read_text()) if path.is_file() else {}


@pytest.mark.e2e
@pytest.mark.fault
def test_compare_killed_mid_run_then_retry_failed_finishes_from_the_right_params(tmp_path: Path):
    repo = make_repo(tmp_path)
    base = (repo / "params.yaml").read_text()
    args = [sys.executable, "-m", "mnist_cli", "compare", "--dataset", "mnist", "--models", "mlp_500-raw,mlp_500",
            "--seeds", "1", "--set", "train.epochs=1"]
    first = subprocess.Popen(args, cwd=repo, env=stage_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             text=True, start_new_session=True)
    deadline = time.monotonic() + 600
    second_log = repo / "reports/mnist/logs/mlp_500-raw-s42.log"
    # wait until the unscaled run is saved and the scaled run's `dvc exp run` is training
    while "Running stage 'train'" not in (second_log.read_text() if second_log.is_file() else ""):
        assert first.poll() is None, first.stdout.read()
        assert time.monotonic() < deadline, "the second configuration never started training"
        time.sleep(0.5)
    edited = (repo / "params.yaml").read_text()
    group = [p for p in psutil.process_iter() if safe_pgid(p.pid) == first.pid]
    os.killpg(first.pid, signal.SIGKILL)
    first.wait()
    # as a user would, retry once the killed processes are gone: until its orphans are reaped, DVC
    # sees the killed `dvc exp run` in .dvc/tmp/rwlock as alive and refuses to start
    _, alive = psutil.wait_procs(group, timeout=60)
    assert not alive, f"killed processes still present after 60 s: {alive}"
    saved = catalogue(repo)
    assert saved["complete"] is False and [r["label"] for r in saved["results"]] == ["mlp_500"]
    assert edited != base  # `dvc exp run -S` had rewritten params.yaml, and SIGKILL left it so
    head = subprocess.run(["git", "symbolic-ref", "-q", "HEAD"], cwd=repo, capture_output=True, text=True)
    assert head.returncode != 0  # ... and HEAD detached

    again = subprocess.run(args + ["--retry-failed"], cwd=repo, env=stage_env(), capture_output=True, text=True,
                           timeout=900)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "the last comparison was interrupted; restoring the params.yaml it started from" in again.stderr
    assert "[1/2] mlp_500 seed 42: kept from the last run" in again.stderr
    assert "[2/2] mlp_500-raw seed 42: running" in again.stderr
    assert (repo / "params.yaml").read_text() == base
    head = subprocess.run(["git", "symbolic-ref", "--short", "HEAD"], cwd=repo, capture_output=True, text=True)
    assert head.stdout.strip() == "main"
    done = catalogue(repo)
    assert done["complete"] is True and [r["label"] for r in done["results"]] == ["mlp_500", "mlp_500-raw"]
    assert all(0.1 < r.get("metrics", {}).get("accuracy", 0) <= 1 for r in done["results"]), done["results"]
    # the scaled run really ran on x/255: its experiment's params say so
    shown = json.loads(dvc(repo, "exp", "show", "--json").stdout)
    normalize = [rev["data"]["params"]["params.yaml"]["data"]["prepare"]["normalize"]
                 for entry in shown for experiment in entry.get("experiments") or [] for rev in experiment["revs"]]
    assert sorted(normalize) == [False, True]

    report = (repo / "reports/mnist/catalogue.md").read_text()
    assert "prepare.normalize: false → true" in report  # the scaling lesson names its one setting
    assert "[mlp\\_500-raw](runs/mlp_500-raw/report.md)" in report
    own = (repo / "reports/mnist/runs/mlp_500-raw/report.md").read_text()  # each run's own report, linked
    assert f"Test accuracy **{done['results'][1]['metrics']['accuracy']:.2%}**" in own
    assert (repo / "reports/mnist/leaderboard.png").stat().st_size > 1000
    check = subprocess.run([sys.executable, "-m", "mnist_cli", "check-reports"], cwd=repo, env=stage_env(),
                           capture_output=True, text=True, timeout=120)
    assert "rests on 1 seeds, not 3" in check.stderr and "does not resolve" not in check.stderr, check.stderr
    assert yaml.safe_load(done["base_params"])["train"]["model"] == yaml.safe_load(base)["train"]["model"]

    # after a configuration's recipe changes, --rerun runs it again and keeps the rest
    rerun = subprocess.run(args + ["--retry-failed", "--rerun", "mlp_500-raw"], cwd=repo, env=stage_env(),
                           capture_output=True, text=True, timeout=900)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert "[1/2] mlp_500 seed 42: kept from the last run" in rerun.stderr
    assert "[2/2] mlp_500-raw seed 42: running" in rerun.stderr
    assert [r["label"] for r in catalogue(repo)["results"]] == ["mlp_500", "mlp_500-raw"]


@pytest.mark.bad_input
def test_compare_refuses_unknown_models_and_malformed_set(tmp_path: Path):
    repo = make_repo(tmp_path)
    for extra, message in ((["--models", "mlp_9000"], "error: unknown models ['mlp_9000']"),
                           (["--set", "train.epochs"], "error: --set needs KEY=VALUE, got 'train.epochs'"),
                           (["--rerun", "cnn"], "error: --rerun needs --retry-failed"),
                           (["--models", "cnn", "--retry-failed", "--rerun", "mlp_500"],
                            "error: --rerun ['mlp_500']: not among the configurations this comparison runs")):
        run = subprocess.run([sys.executable, "-m", "mnist_cli", "compare", *extra], cwd=repo, env=stage_env(),
                             capture_output=True, text=True, timeout=120)
        assert run.returncode == 1 and message in run.stderr, run.stderr
    assert not (repo / "reports/mnist/catalogue.json").exists()


def test_a_failed_runs_reason_is_the_stages_error_or_dvcs_first_error_line():
    """`mnist compare` recorded the last line of DVC's error, its advice `you can manually remove
    '.dvc/tmp/rwlock'`, as a failure reason."""
    from mnist_pipeline.comparison import failure_reason

    dvc_lock = ["Reproducing experiment 'x'", "ERROR: Unable to acquire lock. Most likely another DVC process is "
                "running or was terminated abruptly.", "you can manually remove '.dvc/tmp/rwlock'"]
    assert failure_reason(dvc_lock).startswith("ERROR: Unable to acquire lock")
    ours = ["Running stage 'train':", "error: train: out of memory (...)", "ERROR: failed to reproduce 'train'"]
    assert failure_reason(ours) == "error: train: out of memory (...)"
    assert failure_reason(["Killed", ""]) == "Killed" and failure_reason([]) == "unknown error"
