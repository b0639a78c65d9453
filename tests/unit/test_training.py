"""training.fit with a learning-rate schedule: the steps it counts, resuming from a checkpoint, the saved model."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import yaml

from mnist_pipeline.catalogue import ModelSpec, model_spec
from mnist_pipeline.data.preparation import prepare_arrays
from tests.harness import ROOT

MODELS = yaml.safe_load((ROOT / "params.yaml").read_text())["models"]


class Killed(Exception):
    """Stands in for a SIGKILL after the first epoch's checkpoint."""


@pytest.fixture
def image_slice(small_raw) -> dict[str, np.ndarray]:
    """256 training, 60 validation and 200 test images of the small slice, as the cnn kinds take them."""
    data = prepare_arrays(small_raw, "image", "onehot", 0.1, seed=0)
    return {"x_train": data["x_train"][:256], "y_train": data["y_train"][:256], "x_val": data["x_val"],
            "y_val": data["y_val"], "x_test": data["x_test"]}


def two_epochs() -> ModelSpec:
    """modern_cnn for 2 epochs: 1 of warmup, 1 of cosine decay."""
    return model_spec(MODELS, "modern_cnn").model_copy(update={"epochs": 2})


def test_schedule_spans_the_fit_and_the_saved_model_predicts_the_same(image_slice, tmp_path: Path):
    """fit gives the schedule ceil(images / batch) steps an epoch, so the rate reaches 0 at the fit's last step; the
    .keras file (augmentation layers, batch norm, AdamW and its schedule) loads in predict's safe mode and gives the
    same probabilities."""
    import tensorflow as tf

    from mnist_pipeline.predict import load_model
    from mnist_pipeline.training import fit, save_model

    spec = two_epochs()
    model, history = fit(spec, image_slice, [], seed=0, strategy=tf.distribute.get_strategy())
    steps = math.ceil(256 / spec.batch_size)
    assert len(history["loss"]) == 2 and np.all(np.isfinite(history["loss"]))
    assert int(model.optimizer.iterations) == 2 * steps
    assert float(model.optimizer.learning_rate) == pytest.approx(0.0, abs=1e-9)  # decayed to 0 at the last step

    save_model(model, tmp_path / "model.keras")
    loaded = load_model(tmp_path / "model.keras")
    assert [type(layer).__name__ for layer in loaded.layers] == [type(layer).__name__ for layer in model.layers]
    assert loaded.optimizer.get_config()["learning_rate"]["class_name"] == "CosineDecay"
    x_test = image_slice["x_test"]
    assert np.array_equal(loaded.predict(x_test, verbose=0), model.predict(x_test, verbose=0))


def test_resumed_fit_continues_the_schedule(image_slice, tmp_path: Path):
    """Killed after its first epoch, the fit resumes from BackupAndRestore's checkpoint with the optimizer's
    iteration count restored: the schedule goes on from the second epoch (it does not warm up again) and ends at
    0 after 2 epochs' steps; the epoch log keeps the whole history."""
    import keras
    import tensorflow as tf

    from mnist_pipeline.training import callbacks, epoch_log_path, fit

    class KillAfterFirstEpoch(keras.callbacks.Callback):
        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            raise Killed

    spec, strategy = two_epochs(), tf.distribute.get_strategy()
    backup, live = tmp_path / "checkpoints" / "run", tmp_path / "live"
    with pytest.raises(Killed):  # the train stage's callbacks, then the kill (after the checkpoint is written)
        fit(spec, image_slice, [*callbacks(spec, 0, backup, live, False), KillAfterFirstEpoch()], 0, strategy)
    assert (backup / "training_metadata.json").is_file() and epoch_log_path(backup).is_file()

    model, history = fit(spec, image_slice, callbacks(spec, 0, backup, live, True), 0, strategy)
    assert int(model.optimizer.iterations) == 2 * math.ceil(256 / spec.batch_size)
    assert float(model.optimizer.learning_rate) == pytest.approx(0.0, abs=1e-9)
    assert len(history["loss"]) == 2  # the epoch before the kill and the one after the resume
    assert not backup.exists()  # the finished fit deleted its checkpoint


def test_an_entry_without_early_stopping_trains_every_epoch(image_slice, tmp_path: Path):
    """train.early_stopping_patience applies to every entry but one that turns it off (its schedule ends
    the run): with a learning rate that cannot improve the validation loss, patience 1 stops the default
    entry after 2 epochs and the same entry with early_stopping false runs all 4."""
    from mnist_pipeline.training import callbacks, choose_strategy, fit

    strategy, _ = choose_strategy(distribute="none")
    ran = {}
    for stops in (True, False):
        spec = ModelSpec(kind="cnn", loss="categorical_crossentropy", hidden=[8], conv_filters=[4, 4], epochs=4,
                         learning_rate=1e-12, early_stopping=stops)
        backup, live = tmp_path / f"backup-{stops}", tmp_path / f"live-{stops}"
        _, history = fit(spec, image_slice, callbacks(spec, 1, backup, live, False), 0, strategy)
        ran[stops] = len(history["loss"])
    assert ran == {True: 2, False: 4}


def test_identical_weights_save_to_identical_bytes(tmp_path: Path):
    """The .keras zip Keras writes carries the time of saving (the weights' entry and metadata.json's
    date_saved), so dvc.lock named a new model file on every run; save_model writes none of it, and the file
    loads in safe mode with the same predictions."""
    import json
    import zipfile

    import keras

    from mnist_pipeline.training import ZIP_EPOCH, save_model

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation="softmax")])
    first, second = tmp_path / "a.keras", tmp_path / "b.keras"
    save_model(model, first)
    model.save(tmp_path / "plain.keras")  # Keras' own file: dated
    save_model(model, second)
    assert first.read_bytes() == second.read_bytes()
    with zipfile.ZipFile(first) as ours, zipfile.ZipFile(tmp_path / "plain.keras") as theirs:
        assert [i.filename for i in ours.infolist()] == [i.filename for i in theirs.infolist()]
        assert all(i.date_time == ZIP_EPOCH for i in ours.infolist())
        assert "date_saved" in json.loads(theirs.read("metadata.json"))
        assert "date_saved" not in json.loads(ours.read("metadata.json"))
        assert ours.read("model.weights.h5") == theirs.read("model.weights.h5")
    x = np.ones((2, 4), dtype=np.float32)
    loaded = keras.saving.load_model(first, safe_mode=True)
    assert np.array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))
