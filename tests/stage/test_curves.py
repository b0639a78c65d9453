"""A binary_crossentropy entry through train and evaluate: its history, dvclive and curves have top-1 accuracy
beside the tutorial's binary accuracy, and the diagnosis reads the recorded curve."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from mnist_pipeline.metrics import still_improving
from mnist_pipeline.reporting.plots import curve_panels, curves_png
from tests.harness import workspace

BINARY = {"train": {"model": "deep_relu", "epochs": 2, "max_train_images": 1000}}


def test_binary_entry_records_and_plots_top1(data_dir: Path, tmp_path: Path, run_stage):
    folder = workspace(data_dir, tmp_path, BINARY)
    for stage in ("train", "evaluate"):
        done = run_stage(stage, folder)
        assert done.returncode == 0, f"{stage}: {done.stderr[-2000:]}"
    trained = json.loads((folder / "model/train.json").read_text())
    evaluation = json.loads((folder / "evaluation/evaluation.json").read_text())
    history, epochs = trained["history"], trained["epochs_run"]
    assert trained["spec"]["metric"] == "binary_accuracy" and epochs == 2
    for key in ("loss", "binary_accuracy", "top1", "val_loss", "val_binary_accuracy", "val_top1"):
        assert len(history[key]) == epochs, key
    # the reported number is still the tutorial's metric; top-1 is what evaluate measures from the predictions
    assert trained["keras_on_test"]["metric"] == "binary_accuracy"
    assert evaluation["metrics"]["keras_binary_accuracy"] == trained["keras_on_test"]["value"]
    evaluated = (trained["restored_epoch"] or epochs) - 1
    assert history["val_top1"][evaluated] == pytest.approx(evaluation["metrics"]["val_accuracy"], abs=1e-6)
    assert {p.name for p in (folder / "dvclive/plots/metrics").rglob("*.tsv")} >= {"top1.tsv", "binary_accuracy.tsv"}

    panels = curve_panels(history, trained["spec"]["metric"])
    assert panels["accuracy (top-1)"] == (history["top1"], history["val_top1"])
    curves_png(tmp_path / "curves.png", history, trained["spec"]["metric"], trained["restored_epoch"])
    assert (tmp_path / "curves.png").stat().st_size > 1000

    diagnosis = evaluation["diagnosis"]
    if still_improving(history["val_loss"], history["val_top1"]):  # two epochs on 1,000 images: expected
        steps = epochs * math.ceil(1000 / trained["spec"]["batch_size"])
        assert diagnosis.startswith("undertrained: validation loss still falling at the last epoch (epoch 2: ")
        assert f"; {steps} optimizer steps = 2 x ceil(1,000 / 128))" in diagnosis
    else:
        assert diagnosis.split(":")[0] in ("underfitting", "overfitting", "fine")
