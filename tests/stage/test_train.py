"""train and evaluate through their CLIs: determinism, resume after SIGKILL, report contents."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest

from mnist_pipeline.files import load_npz
from tests.harness import ROOT, stage_env, workspace

QUICK = {"train": {"model": "mlp_500", "epochs": 2, "max_train_images": 1000}}


def run_all(folder: Path, run_stage, stages: tuple[str, ...]) -> None:
    for stage in stages:
        result = run_stage(stage, folder)
        assert result.returncode == 0, f"{stage}: {result.stderr[-2000:]}"


def test_same_seed_same_metrics(data_dir: Path, tmp_path: Path, run_stage):
    results = []
    for attempt in ("a", "b"):
        (tmp_path / attempt).mkdir()
        folder = workspace(data_dir, tmp_path / attempt, QUICK)
        run_all(folder, run_stage, ("train", "evaluate"))
        results.append((json.loads((folder / "model/train.json").read_text())["history"],
                        (folder / "evaluation/metrics.json").read_bytes(),
                        (folder / "model/model.keras").read_bytes()))
    (history_a, metrics_a, model_a), (history_b, metrics_b, model_b) = results
    assert history_a == history_b
    # identical work, identical files: no timing among the metrics (dvc metrics diff compares them), and the model
    # file carries no time of saving (dvc.lock names it)
    assert metrics_a == metrics_b and b"seconds" not in metrics_a
    assert model_a == model_b

    # evaluate works from train's predictions and the prepared labels: it loads no TensorFlow,
    # Keras or scikit-learn (their imports cost seconds per run) and gets the same figures again
    probe = ("import runpy, sys\ntry:\n    runpy.run_module('tasks.evaluate', run_name='__main__')\n"
             "except SystemExit as done:\n    assert done.code == 0, done.code\n"
             "print(sorted(m for m in ('tensorflow', 'keras', 'sklearn') if m in sys.modules))")
    loaded = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path / "b", env=stage_env(),
                            capture_output=True, text=True)
    assert loaded.returncode == 0 and loaded.stdout.strip() == "[]", loaded.stdout + loaded.stderr[-2000:]
    assert json.loads((tmp_path / "b/evaluation/metrics.json").read_text()) == json.loads(metrics_b)


def test_epochs_per_dataset_follow_the_prepared_data(data_dir: Path, tmp_path: Path, run_stage):
    """An entry with one epoch count per dataset trains the prepared data's (the MNIST sample's here), records
    that number as its spec, and a run's train.epochs still overrides it."""
    entry = {"kind": "dense", "loss": "categorical_crossentropy", "hidden": [32],
             "epochs": {"mnist": 1, "fashion_mnist": 3}}
    for name, epochs, expected in (("a", None, 1), ("b", 2, 2)):
        (tmp_path / name).mkdir()
        folder = workspace(data_dir, tmp_path / name, {
            "train": {"model": "small", "epochs": epochs, "max_train_images": 500, "early_stopping_patience": 0},
            "models": {"small": entry}, "distortions": {"apply": []}})
        result = run_stage("train", folder)
        assert result.returncode == 0, result.stderr[-2000:]
        trained = json.loads((folder / "model/train.json").read_text())
        assert (trained["dataset"], trained["spec"]["epochs"], trained["epochs_run"]) == ("mnist", expected, expected)
        said = [line for line in (result.stdout + result.stderr).splitlines() if line.startswith("Epoch ")]
        assert said == [f"Epoch {n}/{expected}" for n in range(1, expected + 1)], said  # one epoch: "Epoch 1/1" too


@pytest.mark.fault
def test_killed_training_resumes_from_checkpoint(data_dir: Path, tmp_path: Path, run_stage):
    folder = workspace(data_dir, tmp_path, {"train": {"model": "mlp_500", "epochs": 20,
                                                      "early_stopping_patience": 0}})
    process = subprocess.Popen([sys.executable, "-m", "tasks.train"], cwd=folder, env=stage_env(),
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 300
    while not list((folder / "checkpoints").glob("*/training_metadata.json")):  # an epoch has completed
        assert process.poll() is None, "training ended before it could be killed"
        assert time.monotonic() < deadline, "no checkpoint within 300 s"
        time.sleep(0.2)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    assert not (folder / "model/model.keras").exists()  # nothing half-written

    before = json.loads(next((folder / "checkpoints").glob("*.epochs.json")).read_text())  # epochs done when killed
    resumed = run_stage("train", folder)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "resuming mlp_500 from the checkpoint" in resumed.stderr
    record = json.loads((folder / "model/train.json").read_text())
    # the whole history: the epochs before the kill and those after the resume (it used to hold only the latter)
    assert record["epochs_run"] == 20 and len(record["history"]["loss"]) == 20 == len(record["history"]["val_loss"])
    assert record["history"]["loss"][0] == before[0]["loss"]  # epoch 1 ran before the kill
    assert record["stopped_by"] == "all 20 epochs"
    assert (folder / "model/model.keras").is_file()
    left = [p.name for p in (folder / "checkpoints").iterdir() if not p.name.endswith(".lock")]
    assert left == []  # backup and epoch log removed after success (the empty lock file stays)


def test_train_refuses_data_prepared_in_another_layout(data_dir: Path, tmp_path: Path, run_stage):
    """train checks the layout prepare recorded, not the catalogue's: flat data for the cnn is one line."""
    folder = workspace(data_dir, tmp_path, {"prepare": {"layout": "flat"}, "train": {"model": "cnn", "epochs": 1}})
    done = run_stage("train", folder)
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert done.returncode == 1 and len(errors) == 1, done.stderr[-2000:]
    assert "the prepared data is laid out 'flat' but cnn (kind cnn) takes 'image'" in errors[0]
    assert not (folder / "model").exists()


def test_timings_go_where_params_say(data_dir: Path, tmp_path: Path, run_stage):
    """paths.timings moves the writers too (every stage's entry); the train stage's entry has the fit alone, and
    the report holds no time (identical work writes an identical report)."""
    folder = workspace(data_dir, tmp_path, {**QUICK, "paths": {"timings": "elsewhere/times"}})
    run_all(folder, run_stage, ("train", "evaluate", "report"))
    assert sorted(p.name for p in (folder / "elsewhere/times").iterdir()) == ["evaluate.json", "report.json",
                                                                             "train.json"]
    assert not (folder / "timings").exists()
    assert json.loads((folder / "elsewhere/times/train.json").read_text())["fit_seconds"] > 0
    report = (folder / "report/report.md").read_text()
    assert "Times are not in this report" in report and "seconds" not in report.replace("stage's seconds", "")
    assert "seconds" not in json.loads((folder / "model/train.json").read_text())


HOSTILE = "<img src=x onerror=alert(1)> | [click](javascript:alert(1)) # not a heading"


def test_report_sections_images_and_numbers(data_dir: Path, tmp_path: Path, run_stage):
    folder = workspace(data_dir, tmp_path, {**QUICK, "models": {**_models(), "mlp_500": {
        **_models()["mlp_500"], "loss": "binary_crossentropy", "metric": "binary_accuracy", "claimed": HOSTILE,
        "source": HOSTILE}}})
    run_all(folder, run_stage, ("train", "evaluate", "report"))
    report_dir = folder / "report"
    text = (report_dir / "report.md").read_text()
    for section in ("## Data", "## Model", "## Training", "## Test metrics", "## Claimed by the tutorial",
                    "## Warnings", "## Lineage"):
        assert section in text
    for image in ("samples.png", "curves.png", "confusion.png", "mistakes.png"):
        assert f"]({image})" in text and (report_dir / image).stat().st_size > 1000
    metrics = json.loads((folder / "evaluation/metrics.json").read_text())
    assert f"Test accuracy **{metrics['accuracy']:.2%}**" in text
    assert f"| accuracy | {metrics['accuracy']:.4f} |" in text
    assert "**Metric audit: flagged.**" in text  # binary accuracy of a 10-class model
    assert "3,600 / 400 / 1,000" in text  # train / validation / test of the sample
    restored = json.loads((folder / "model/train.json").read_text())["restored_epoch"]
    assert "| evaluated weights |" in text and (restored is None or f"epoch {restored}" in text
                                                   or f"the last epoch's ({restored})" in text)
    assert "\\<img" in text and not re.search(r"(?<!\\)<img|(?<!\\)\]\(javascript", text)  # user text escaped


def _models() -> dict:
    import yaml

    return yaml.safe_load((ROOT / "params.yaml").read_text())["models"]


def test_mixed_precision_trains_and_a_backend_not_installed_is_one_line(data_dir: Path, tmp_path: Path, run_stage):
    """train.precision sets the fit's dtype policy (the output layer stays float32, so probabilities sum to 1);
    a train.backend whose package this venv lacks is refused in one line, before any data is read."""
    folder = workspace(data_dir, tmp_path, {"train": {**QUICK["train"], "epochs": 1, "precision": "mixed_bfloat16"}})
    run_all(folder, run_stage, ("train",))
    record = json.loads((folder / "model/train.json").read_text())
    assert record["backend"]["name"] == "tensorflow" and record["backend"]["precision"] == "mixed_bfloat16"
    assert record["backend"]["device"] == "CPU" and record["history"]["loss"][0] > 0
    config = json.loads(zipfile.ZipFile(folder / "model/model.keras").read("config.json"))
    policies = [layer["config"]["dtype"]["config"]["name"] for layer in config["config"]["layers"]
                if layer["class_name"] != "InputLayer"]
    assert policies[-1] == "float32" and set(policies[:-1]) == {"mixed_bfloat16"}, policies
    test = load_npz(folder / "model/predictions.npz", ("test",))["test"]
    assert abs(test.sum(axis=1) - 1).max() < 1e-3

    missing = next((name for name in ("jax", "torch") if importlib.util.find_spec(name) is None), None)
    if missing is None:
        pytest.skip("this venv has every backend")
    (folder / "params.yaml").write_text((folder / "params.yaml").read_text().replace(
        "backend: tensorflow", f"backend: {missing}"))
    refused = run_stage("train", folder)
    assert refused.returncode == 1
    assert refused.stderr.strip().splitlines()[-1].startswith(
        f"error: train: train.backend {missing}: {missing} is not installed in "), refused.stderr[-2000:]
    assert "Traceback" not in refused.stderr
