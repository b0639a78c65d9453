"""Checkpoints are never shared with a live run: a deployment run's worktree and the project's own workspace
share `checkpoints/`, and a run with the same settings must neither resume from nor touch a live run's."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.harness import stage_env, workspace


@pytest.mark.fault
def test_a_run_never_reads_a_live_runs_checkpoint(data_dir: Path, tmp_path: Path, run_stage):
    """Two workspaces sharing checkpoints/ (as a deployment run's worktree and the project do), same settings:
    while the first trains (here frozen with SIGSTOP right after its first checkpoint), the second neither
    resumes from nor touches the first's checkpoint; it trains from scratch in a private one and finishes."""
    shared = tmp_path / "shared-checkpoints"
    shared.mkdir()
    settings = {"train": {"model": "mlp_500", "epochs": 6, "max_train_images": 1000, "early_stopping_patience": 0}}
    for name in ("first", "second"):
        (tmp_path / name).mkdir()
    first, second = (workspace(data_dir, tmp_path / name, settings) for name in ("first", "second"))
    for folder in (first, second):
        (folder / "checkpoints").symlink_to(shared, target_is_directory=True)
    live = subprocess.Popen([sys.executable, "-m", "tasks.train"], cwd=first, env=stage_env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 300
        while not list(shared.glob("*/training_metadata.json")):
            assert live.poll() is None and time.monotonic() < deadline, "the first run never checkpointed"
            time.sleep(0.05)
        os.killpg(live.pid, signal.SIGSTOP)
        checkpoint = next(p for p in shared.iterdir() if p.is_dir())
        before = {p.name: p.read_bytes() for p in checkpoint.iterdir()}
        done = run_stage("train", second)
        assert done.returncode == 0, done.stderr[-2000:]
        assert "is in use by a live run with the same settings" in done.stderr and "resuming" not in done.stderr
        assert {p.name: p.read_bytes() for p in checkpoint.iterdir()} == before  # the live run's, untouched
        record = json.loads((second / "model/train.json").read_text())
        assert record["resumed_from_checkpoint"] is False and record["epochs_run"] == 6
        assert sorted(p.name for p in shared.iterdir() if "-pid" in p.name) == []  # the private one is gone
    finally:
        os.killpg(live.pid, signal.SIGKILL)
        live.wait()
