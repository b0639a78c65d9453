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
    import keras  # the file keeps the training state, which predict does not load (compile=False)

    resumable = keras.saving.load_model(tmp_path / "model.keras", safe_mode=True)
    assert resumable.optimizer.get_config()["learning_rate"]["class_name"] == "CosineDecay"
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


def test_a_checkpoint_torn_at_any_point_resumes_from_the_one_before_or_starts_afresh(image_slice, tmp_path: Path,
                                                                                      capfd):
    """A kill while Keras rewrote `latest.weights.h5` (or its metadata) left a checkpoint every rerun failed on
    ("file signature not found"). Torn at each of several points, the latest copy is replaced by the previous
    one (the double checkpoint) and the fit resumes after its epoch; with both torn the folder is discarded and
    the fit starts afresh, giving the same weights as a fit never killed."""
    import keras
    import tensorflow as tf

    from mnist_pipeline.training import PREVIOUS, callbacks, fit, readable_checkpoint, usable_checkpoint

    class KillAfterSecondEpoch(keras.callbacks.Callback):
        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            if epoch == 1:
                raise Killed

    spec = ModelSpec(kind="cnn", loss="categorical_crossentropy", hidden=[16], conv_filters=[4, 4], epochs=3,
                     early_stopping=False)
    strategy = tf.distribute.get_strategy()
    whole, _ = fit(spec, image_slice, callbacks(spec, 0, tmp_path / "whole", tmp_path / "live-whole", False), 0,
                   strategy)
    backup = tmp_path / "checkpoints" / "run"
    with pytest.raises(Killed):
        fit(spec, image_slice, [*callbacks(spec, 0, backup, tmp_path / "live", False), KillAfterSecondEpoch()], 0,
            strategy)
    assert readable_checkpoint(backup) == 2 and readable_checkpoint(backup, PREVIOUS) == 1
    pristine = {p.name: p.read_bytes() for p in backup.iterdir()}

    weights = pristine["latest.weights.h5"]
    tears = {f"weights cut at {n}": ("latest.weights.h5", weights[:n]) for n in (0, 7, 512, len(weights) // 2,
                                                                                   len(weights) - 1)}
    tears |= {"weights' signature overwritten": ("latest.weights.h5", b"\0" * 8 + weights[8:]),
              "metadata cut": ("training_metadata.json", b'{"epoch": '),
              "metadata empty": ("training_metadata.json", b"")}
    for what, (name, torn) in tears.items():
        for file, data in pristine.items():
            (backup / file).write_bytes(data)
        (backup / name).write_bytes(torn)
        assert usable_checkpoint(backup), what
        assert readable_checkpoint(backup) == 1, what
        assert "torn by a kill; resuming from the one before it (after epoch 1)" in capfd.readouterr().err, what

    model, history = fit(spec, image_slice, callbacks(spec, 0, backup, tmp_path / "live", True), 0, strategy)
    assert len(history["loss"]) == 3 and not backup.exists()  # epoch 1 from before, epochs 2 and 3 run again

    backup.mkdir()
    for file, data in pristine.items():
        (backup / file).write_bytes(data[: len(data) // 2])  # both copies torn
    assert not usable_checkpoint(backup) and not backup.exists()
    assert "no readable earlier copy; discarded it, training from the first epoch" in capfd.readouterr().err
    fresh, _ = fit(spec, image_slice, callbacks(spec, 0, backup, tmp_path / "live-fresh", False), 0, strategy)
    assert all(np.array_equal(a, b) for a, b in zip(fresh.get_weights(), whole.get_weights(), strict=True))
