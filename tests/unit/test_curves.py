"""Learning curves show top-1 accuracy whatever metric the tutorial compiled (binary accuracy sits near 0.90)."""

from __future__ import annotations

from pathlib import Path

import yaml

from mnist_pipeline import models
from mnist_pipeline.catalogue import model_spec
from mnist_pipeline.reporting import plots
from tests.harness import ROOT

MODELS = yaml.safe_load((ROOT / "params.yaml").read_text())["models"]
BINARY_HISTORY = {"loss": [0.37, 0.20], "binary_accuracy": [0.90, 0.93], "top1": [0.26, 0.67],
                  "val_loss": [0.25, 0.145], "val_binary_accuracy": [0.915, 0.96], "val_top1": [0.54, 0.81]}


def test_top1_is_compiled_beside_a_metric_that_is_not_top1():
    import keras

    binary = models.compiled_metrics(model_spec(MODELS, "deep_relu"))
    assert binary[0] == "binary_accuracy" and isinstance(binary[1], keras.metrics.CategoricalAccuracy)
    assert binary[1].name == plots.top1_key("binary_accuracy")  # the name train writes is the one the plot reads
    sparse = model_spec(MODELS, "fashion_mlp_128").model_copy(update={"metric": "binary_accuracy"})
    assert isinstance(models.compiled_metrics(sparse)[1], keras.metrics.SparseCategoricalAccuracy)
    assert models.compiled_metrics(model_spec(MODELS, "mlp_500")) == ["accuracy"]  # already top-1


def test_curve_panels_plot_loss_and_top1_not_binary_accuracy():
    panels = plots.curve_panels(BINARY_HISTORY, "binary_accuracy")
    assert panels == {"loss": ([0.37, 0.20], [0.25, 0.145]), "accuracy (top-1)": ([0.26, 0.67], [0.54, 0.81])}
    accuracy = {"loss": [0.3], "accuracy": [0.9], "val_loss": [0.2], "val_accuracy": [0.95]}
    assert plots.curve_panels(accuracy, "accuracy")["accuracy (top-1)"] == ([0.9], [0.95])
    old = {key: values for key, values in BINARY_HISTORY.items() if "top1" not in key}  # trained before top1
    assert plots.curve_panels(old, "binary_accuracy")["accuracy (top-1): no 'top1' in this run's history"] == ([], [])


def test_curves_png_draws_the_panels(tmp_path: Path):
    path = tmp_path / "curves.png"
    plots.curves_png(path, BINARY_HISTORY, "binary_accuracy", restored=1)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 1000
