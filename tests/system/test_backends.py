"""The pipeline on each Keras backend: `dvc exp run -S train.backend=...` in a real git repository, with the venv
that has JAX and PyTorch (scripts/setup-backends.sh; scripts/test.sh makes it before the suite runs)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
import yaml

from mnist_pipeline.files import load_npz
from tests.harness import ROOT, make_repo, stage_env

BACKENDS_VENV = ROOT / ".venv-backends"
pytestmark = [pytest.mark.e2e, pytest.mark.skipif(
    not (BACKENDS_VENV / "bin" / "python").is_file(),
    reason="no .venv-backends: bash scripts/setup-backends.sh makes it (scripts/test.sh does, before the suite)")]


def backends_env() -> dict[str, str]:
    """As a user of .venv-backends runs dvc: its bin first on PATH (its dvc, and its python for every stage)."""
    env = stage_env()
    env["PATH"] = f"{BACKENDS_VENV / 'bin'}{os.pathsep}{env['PATH']}"
    env["VIRTUAL_ENV"] = str(BACKENDS_VENV)
    env["KERAS_BACKEND"] = "tensorflow"  # the shell's choice; train.backend wins (the record says which trained)
    return env


def dvc(repo: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(["dvc", *args], cwd=repo, env=env or backends_env(), stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, timeout=900)


def test_each_backend_trains_through_dvc_exp_run_and_a_rerun_writes_the_same_files(tmp_path: Path):
    repo = make_repo(tmp_path / "repo")
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["train"].update(epochs=1, max_train_images=1500, predict_train_images=500)  # the tutorial CNN, short
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    subprocess.run(["git", "commit", "-qam", "short CNN"], cwd=repo, env=stage_env(), check=True)

    accuracies = {}
    for backend in ("jax", "torch"):
        ran = dvc(repo, "exp", "run", "-n", f"on-{backend}", "-S", f"train.backend={backend}")
        assert ran.returncode == 0, ran.stdout[-3000:]
        assert f"train: backend {backend} " in ran.stdout, ran.stdout[-3000:]
        record = json.loads((repo / "model/train.json").read_text())
        assert record["backend"]["name"] == backend and record["backend"]["device"] == "CPU", record["backend"]
        assert record["backend"]["precision"] == "float32" and record["epochs_run"] == 1
        report = (repo / "report/report.md").read_text()
        assert f"| backend | {backend} {record['backend']['version']} (Keras " in report
        accuracies[backend] = json.loads((repo / "evaluation/metrics.json").read_text())["accuracy"]
        assert accuracies[backend] > 0.5, accuracies  # one epoch of the CNN on 1,500 real digits learns

        # the same seed on the same backend: training again from scratch writes the same model and predictions
        # (dvc.lock holds every output's hash; evaluate computes the metrics from those predictions alone)
        lock = (repo / "dvc.lock").read_text()
        again = dvc(repo, "repro", "--force", "--single-item", "train")
        assert again.returncode == 0 and "Running stage 'train'" in again.stdout, again.stdout[-3000:]
        assert (repo / "dvc.lock").read_text() == lock, backend

        # a model trained on this backend loads and predicts with TensorFlow (the main venv's `mnist predict`,
        # which has no JAX or PyTorch and ignores the shell's KERAS_BACKEND), giving the backend's own labels
        x_test = load_npz(repo / "data/prepared/prepared.npz", ("x_test",))["x_test"][:200]
        np.savez(repo / "test200.npz", x=(x_test.reshape(-1, 28, 28) * 255).round().astype(np.uint8))
        shown = subprocess.run(["mnist", "predict", "model/model.keras", "test200.npz", "--json"], cwd=repo,
                               env={**stage_env(), "KERAS_BACKEND": backend}, capture_output=True, text=True,
                               timeout=300)
        assert shown.returncode == 0, shown.stderr[-2000:]
        labels = [row["label"] for row in json.loads(shown.stdout)["predictions"]]
        theirs = load_npz(repo / "model/predictions.npz", ("test",))["test"][:200].argmax(axis=1)
        assert np.mean(np.array(labels) == theirs) >= 0.98, backend  # re-scaled 8-bit pixels: a rare tie may flip

    table = dvc(repo, "exp", "show", "--no-pager", "--csv")
    assert table.returncode == 0, table.stdout
    rows = {line.split(",")[0]: line for line in table.stdout.splitlines()}
    assert {"on-jax", "on-torch"} <= set(rows), table.stdout

    # a layer too big for memory is one line on each backend, as on TensorFlow (reliability/test_bad_inputs.py)
    for backend in ("jax", "torch"):
        done = dvc(repo, "exp", "run", "-S", f"train.backend={backend}", "-S", "models.cnn.hidden=[1000000000]")
        errors = [line for line in done.stdout.splitlines() if line.startswith("error:")]
        assert done.returncode != 0 and "Traceback" not in done.stdout, done.stdout[-3000:]
        assert len(errors) == 1 and errors[0].startswith("error: train: out of memory (") and \
            "allocat" in errors[0], errors
        subprocess.run(["git", "checkout", "-q", "main"], cwd=repo, capture_output=True)  # DVC leaves HEAD detached


def test_one_thread_for_a_flow_run_is_a_setting_jax_accepts():
    """A flow run's `threads: 1` sets XLA's CPU flags too; XLA aborts on a flag it does not know, so this proves the
    flags are real for the locked jaxlib (and that JAX computes under them)."""
    from flows.train_mnist import thread_env

    env = {**backends_env(), **thread_env(1)}
    assert "intra_op_parallelism_threads=1" in env["XLA_FLAGS"]
    ran = subprocess.run([str(BACKENDS_VENV / "bin" / "python"), "-c",
                          "import jax.numpy as jnp; print(float((jnp.ones((300, 300)) @ jnp.ones((300, 300))).sum()))"],
                         env=env, capture_output=True, text=True, timeout=120)
    assert ran.returncode == 0 and ran.stdout.strip() == "27000000.0", ran.stderr[-2000:]
