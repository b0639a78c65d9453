"""Fitting a catalogue model: seeded, deterministic, with the tutorials' callbacks, resumable.

Import after `mnist_pipeline.backends.select()`: this module imports Keras.
Callbacks: early stopping on validation loss (best weights restored), the tutorial's
threshold stop (`stop_at_loss`), Keras' BackupAndRestore so a run killed mid-training resumes
from its last completed epoch, an epoch log beside that backup so a resumed run's history is
whole, and dvclive for per-epoch metrics in DVC's format.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import sys
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import keras
import numpy as np
from filelock import FileLock, Timeout

from mnist_pipeline import backends
from mnist_pipeline.catalogue import ModelSpec
from mnist_pipeline.files import atomic_path
from mnist_pipeline.models import N_CLASSES, build_model


class StopAtLoss(keras.callbacks.Callback):
    """End training once the epoch's training loss drops below `threshold` (the Fashion-MNIST tutorial's callback)."""

    def __init__(self, threshold: float) -> None:
        super().__init__()
        self.threshold = threshold
        self.stopped_epoch: int | None = None

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if logs is not None and logs.get("loss", float("inf")) < self.threshold:
            self.stopped_epoch = epoch
            self.model.stop_training = True


class EpochLog(keras.callbacks.Callback):
    """Each finished epoch's metrics in a JSON file, kept across a kill: `history` is every epoch run,
    also when BackupAndRestore resumed the fit (Keras' own History holds only the epochs since). A one-epoch
    fit also gets its "Epoch 1/1" line, which Keras leaves out, so every run's log shows its epochs."""

    def __init__(self, path: Path) -> None:
        super().__init__()
        self.path = path
        self.epochs: list[dict[str, float]] = json.loads(path.read_text()) if path.is_file() else []

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        if self.params.get("verbose") and self.params.get("epochs") == 1:  # Keras says "Epoch i/n" only for n > 1
            print("Epoch 1/1", flush=True)

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        self.epochs = self.epochs[:epoch] + [{k: float(v) for k, v in (logs or {}).items()}]
        with atomic_path(self.path) as tmp:
            tmp.write_text(json.dumps(self.epochs))

    @property
    def history(self) -> dict[str, list[float]]:
        keys = dict.fromkeys(k for epoch in self.epochs for k in epoch)
        return {key: [epoch[key] for epoch in self.epochs if key in epoch] for key in keys}


def effective_spec(spec: ModelSpec, overrides: dict[str, Any]) -> ModelSpec:
    """The catalogue entry with the run-level overrides (epochs, batch_size, learning_rate) that are set."""
    return spec.model_copy(update={key: value for key, value in overrides.items() if value is not None})


def match_labels(y: np.ndarray, sparse: bool) -> np.ndarray:
    """Labels as the loss needs them: class ids (N,) or one-hot (N, 10)."""
    if sparse:
        return y if y.ndim == 1 else y.argmax(axis=1)
    return y if y.ndim == 2 else np.eye(N_CLASSES, dtype=np.float32)[y]


def sample_rows(total: int, n: int | None, seed: int) -> np.ndarray:
    """Sorted indices of a seeded random sample of n of `total` rows (all rows when n is None or too large)."""
    if n is None or n >= total:
        return np.arange(total)
    return np.sort(np.random.default_rng(seed).choice(total, size=n, replace=False))


def run_key(settings: list[Any], data: dict[str, np.ndarray]) -> str:
    """Identifies a training run: same settings and data give the same key (for resuming)."""
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True).encode())
    for key in sorted(data):
        digest.update(np.ascontiguousarray(data[key]).tobytes())
    return digest.hexdigest()[:16]


def callbacks(spec: ModelSpec, patience: int, backup_dir: Path, live_dir: Path, resuming: bool) -> list[Any]:
    """Backup-and-restore, the epoch log, early stopping (`patience`: train.early_stopping_patience, unless
    the entry turns early stopping off), threshold stop, dvclive."""
    from dvclive.keras import DVCLiveCallback

    from dvclive import Live

    # the epoch log first: it is never older than the backup, so a resumed run's history has no gap
    stack: list[Any] = [EpochLog(epoch_log_path(backup_dir)),
                        keras.callbacks.BackupAndRestore(str(backup_dir), save_freq="epoch", delete_checkpoint=True,
                                                         double_checkpoint=True)]
    patience = spec.patience(patience)
    if patience:
        stack.append(keras.callbacks.EarlyStopping(monitor="val_loss", patience=patience, restore_best_weights=True))
    if spec.stop_at_loss is not None:
        stack.append(StopAtLoss(spec.stop_at_loss))
    stack.append(DVCLiveCallback(live=Live(str(live_dir), dvcyaml=False, save_dvc_exp=False, resume=resuming)))
    return stack


def epoch_log_path(backup_dir: Path) -> Path:
    """The epoch log lives beside the backup folder (BackupAndRestore deletes that folder when the fit ends)."""
    return backup_dir.with_name(backup_dir.name + ".epochs.json")


@contextmanager
def claim_checkpoint(backup: Path) -> Iterator[tuple[Path, bool]]:
    """The checkpoint folder this run may use while it trains, and whether it resumes from it.

    `backup` (resumed when a killed run left it) unless a live run holds it: then a private folder
    beside it and a fresh start, so a run never reads another live run's checkpoint (a deployment run
    and the project's own `dvc repro` with the same settings share `checkpoints/`). The claim is a
    file lock, which the operating system releases when its process dies, SIGKILL included.
    """
    backup.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(backup.with_name(backup.name + ".lock"))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        private = backup.with_name(f"{backup.name}-pid{os.getpid()}")
        try:
            yield private, False
        finally:
            shutil.rmtree(private, ignore_errors=True)
            epoch_log_path(private).unlink(missing_ok=True)
        return
    try:
        yield backup, usable_checkpoint(backup)
    finally:
        lock.release()


WEIGHTS, METADATA, PREVIOUS = "latest.weights.h5", "training_metadata.json", ".bkp"


def readable_checkpoint(folder: Path, suffix: str = "") -> int | None:
    """The epoch a checkpoint (weights and metadata, `suffix` "" for the latest, PREVIOUS for the one before)
    holds when both files read whole; None when either is missing or torn. Every weight is read, so a file cut
    short anywhere fails here and not halfway through loading it into the model."""
    import h5py

    try:
        epoch = json.loads((folder / (METADATA + suffix)).read_text())["epoch"]
        with h5py.File(folder / (WEIGHTS + suffix), "r") as weights:
            weights.visititems(lambda _, item: item[()] if isinstance(item, h5py.Dataset) else None)
    except (OSError, ValueError, KeyError, TypeError, RuntimeError):
        return None
    return epoch if isinstance(epoch, int) and epoch >= 0 else None


def usable_checkpoint(folder: Path) -> bool:
    """Whether a fit may resume from `folder`. A kill while Keras rewrote the latest checkpoint leaves it torn:
    the previous one (BackupAndRestore's double checkpoint) takes its place; when neither reads, the folder is
    discarded and the fit starts afresh. Either way one line says so."""
    if not folder.exists():
        return False
    if readable_checkpoint(folder) is not None:
        return True
    previous = readable_checkpoint(folder, PREVIOUS)
    if previous is not None:
        for name in (WEIGHTS, METADATA):
            os.replace(folder / (name + PREVIOUS), folder / name)
        print(f"train: the checkpoint in {folder} was torn by a kill; resuming from the one before it "
              f"(after epoch {previous})", file=sys.stderr, flush=True)
        return True
    shutil.rmtree(folder)
    epoch_log_path(folder).unlink(missing_ok=True)
    print(f"train: the checkpoint in {folder} was torn by a kill and has no readable earlier copy; "
          f"discarded it, training from the first epoch", file=sys.stderr, flush=True)
    return False


def choose_strategy(devices: list[str] | None = None, distribute: str = "auto") -> tuple[Any, str]:
    """MirroredStrategy over `devices` (default: the visible GPUs) when there are several and
    `distribute` is auto; otherwise the default single-device strategy. Returns it and a one-line
    description. Only the TensorFlow backend mirrors: JAX and PyTorch train on their first device."""
    if keras.backend.backend() != "tensorflow":
        visible = backends.gpus() if devices is None else devices
        kind = "GPU" if visible else "CPU"
        unused = (f", {len(visible)} visible: only the tensorflow backend trains on several"
                  if len(visible) > 1 else "")
        return backends.OneDevice(), f"default (1 device: {kind}{unused})"
    import tensorflow as tf

    if devices is None:
        devices = [device.name for device in tf.config.list_logical_devices("GPU")]
    if distribute == "auto" and len(devices) > 1:
        kinds = sorted({name.split(":")[-2] for name in devices})
        return tf.distribute.MirroredStrategy(devices), f"MirroredStrategy over {len(devices)} {'/'.join(kinds)}s"
    kind = devices[0].split(":")[-2] if devices else "CPU"
    unused = f", {len(devices)} visible, train.distribute {distribute}" if len(devices) > 1 else ""
    return tf.distribute.get_strategy(), f"default (1 device: {kind}{unused})"


def fit(spec: ModelSpec, data: dict[str, np.ndarray], stack: list[Any], seed: int,
        strategy: Any) -> tuple[Any, dict[str, list[float]]]:
    """Build the model inside `strategy`'s scope and fit it; returns the model and its per-epoch history,
    every epoch of this configuration's fit, also those run before a resume.
    `batch_size` is the global batch: a MirroredStrategy splits it over its replicas, so an epoch is
    ceil(images / batch_size) optimizer steps either way (what a learning-rate schedule counts in)."""
    keras.utils.set_random_seed(seed)
    steps_per_epoch = math.ceil(len(data["x_train"]) / spec.batch_size)
    with strategy.scope():
        model = build_model(spec, data["x_train"].shape[1:], steps_per_epoch, seed)
    verbose = 1 if sys.stdout.isatty() else 2
    fitted = model.fit(data["x_train"], data["y_train"], validation_data=(data["x_val"], data["y_val"]),
                       batch_size=spec.batch_size, epochs=spec.epochs, callbacks=stack, verbose=verbose, shuffle=True)
    logs = [callback for callback in stack if isinstance(callback, EpochLog)]
    if logs:  # every epoch, also those before a resume
        return model, logs[0].history
    return model, {key: [float(v) for v in values] for key, values in fitted.history.items()}


def stopped_by(spec: ModelSpec, history: dict[str, list[float]], stack: list[Any]) -> str:
    """Why training ended: all epochs, early stopping, or the loss threshold."""
    for callback in stack:
        if isinstance(callback, StopAtLoss) and callback.stopped_epoch is not None:
            return f"loss below {spec.stop_at_loss} after epoch {callback.stopped_epoch + 1}"
        if isinstance(callback, keras.callbacks.EarlyStopping) and 0 < callback.stopped_epoch < spec.epochs - 1:
            return f"early stopping after epoch {callback.stopped_epoch + 1} (best weights restored)"
    return f"all {len(history.get('loss', []))} epochs"


def restored_epoch(history: dict[str, list[float]], stack: list[Any]) -> int | None:
    """The epoch (1-based) whose weights the model ends with when early stopping restores the best ones:
    Keras restores the lowest validation loss's weights at the end of training whether or not it stopped
    early (the first epoch reaching the minimum). None when nothing is restored."""
    restores = any(isinstance(c, keras.callbacks.EarlyStopping) and c.restore_best_weights for c in stack)
    losses = history.get("val_loss", [])
    return int(np.argmin(losses)) + 1 if restores and losses else None


def predict_splits(model: Any, spec: ModelSpec, inputs: dict[str, np.ndarray], y_test: np.ndarray,
                   batch_size: int) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """The fitted model's class probabilities on each split of `inputs` (test, val, train); and what Keras
    itself reports on the test predictions: the loss, and the compiled metric (the number the tutorial
    printed), from the model's metric objects (what model.evaluate gives, without a second pass)."""
    probs = {split: np.asarray(model.predict(x, batch_size=batch_size, verbose=0), dtype=np.float32)
             for split, x in inputs.items()}
    loss = float(np.mean(keras.ops.convert_to_numpy(keras.losses.get(spec.loss)(y_test, probs["test"]))))
    model.reset_metrics()
    reported = {name: float(value) for name, value in model.compute_metrics(inputs["test"], y_test,
                                                                            probs["test"]).items()}
    value = float(reported.get(spec.metric, reported.get("compile_metrics", float("nan"))))
    return probs, {"loss": loss, "metric": spec.metric, "value": value}


def layer_table(model: Any) -> list[list[str]]:
    """Name, type, output shape and parameter count of each layer, for the report."""
    return [[layer.name, type(layer).__name__, str(tuple(layer.output.shape)), f"{layer.count_params():,}"]
            for layer in model.layers]


def save_model(model: Any, path: Path) -> None:
    """Save atomically (Keras writes a temporary .keras file that is then moved into place), and byte-identical
    for identical weights: `reproducible_zip` drops what records the time of saving."""
    with atomic_path(path) as tmp:
        keras_tmp = tmp.with_suffix(".keras")
        try:
            model.save(keras_tmp)
            reproducible_zip(keras_tmp, tmp)
        finally:  # a full disk must not leave Keras' file behind either
            keras_tmp.unlink(missing_ok=True)


ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)  # the earliest time a zip entry can carry


def renumbered(node: Any, ids: dict[Any, int]) -> Any:
    """A Keras config with every `shared_object_id` replaced by 1, 2, ... in order of first appearance (the ids
    only pair the uses of one shared object within the file)."""
    if isinstance(node, dict):
        return {key: (ids.setdefault(value, len(ids) + 1) if key == "shared_object_id" else renumbered(value, ids))
                for key, value in node.items()}
    if isinstance(node, list):
        return [renumbered(item, ids) for item in node]
    return node


def reproducible_zip(source: Path, target: Path) -> None:
    """`source` (a .keras zip) rewritten to `target` with every entry dated ZIP_EPOCH, in its own order and
    compression, without metadata.json's `date_saved` (Keras loads without it), and with config.json's
    `shared_object_id`s numbered in order of appearance: Keras stamps the weights' entry and the metadata with the
    time of saving and names a shared object by its Python id(), so two saves of the same weights differed."""
    with zipfile.ZipFile(source) as old, zipfile.ZipFile(target, "w") as new:
        for info in old.infolist():
            data = old.read(info)
            if info.filename == "metadata.json":
                metadata = json.loads(data)
                metadata.pop("date_saved", None)
                data = json.dumps(metadata).encode()
            elif info.filename == "config.json":
                data = json.dumps(renumbered(json.loads(data), {})).encode()
            entry = zipfile.ZipInfo(info.filename, date_time=ZIP_EPOCH)
            entry.compress_type, entry.external_attr = info.compress_type, info.external_attr
            new.writestr(entry, data)
