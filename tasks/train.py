"""train: fit the chosen catalogue model, seeded and deterministic, with callbacks.

Callbacks: early stopping on validation loss (best weights restored), the tutorial's
threshold stop (`stop_at_loss`), Keras' BackupAndRestore so a run killed mid-training
resumes from its last completed epoch when re-run, and dvclive for per-epoch metrics
in DVC's format. With several GPUs visible the model is mirrored over them
(`tf.distribute.MirroredStrategy`, `train.distribute: auto`); otherwise it trains on one
device. Writes `model/model.keras` and `model/train.json` (history, settings, data lineage,
how training stopped).

After the fit, while TensorFlow is loaded and the model is in memory, the saved model predicts
the test set, the validation set and a seeded sample of the training images it was fitted on
(`model/predictions.npz`), and Keras' own loss and compiled metric on the test predictions go
into train.json. The evaluate stage computes everything else from those predictions and the
prepared labels without importing TensorFlow (its import and shutdown cost about 4.5 s per
process on these machines, a quarter of the pipeline's fixed cost).
"""

from __future__ import annotations

import hashlib
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from tasks import import_tensorflow
from tasks.catalogue import model_input
from tasks.config import TrainParams, load_params, parse_section
from tasks.errors import PipelineError
from tasks.files import atomic_path, load_npz, read_json, save_npz, write_json
from tasks.models import ModelSpec, build_model, model_spec
from tasks.stage import exit_now, log, run_stage

MODEL_FILE = "model.keras"
META_FILE = "train.json"
PREDICTIONS_FILE = "predictions.npz"
LINEAR_X = np.array([-1.0, 0.0, 1.0, 2.0, 3.0, 4.0], dtype=np.float32)  # the demo's data: y = 2x - 1
LINEAR_Y = 2 * LINEAR_X - 1


def effective_spec(spec: ModelSpec, params: TrainParams) -> ModelSpec:
    """The catalogue entry with the run-level overrides of `train` applied."""
    overrides = {key: getattr(params, key) for key in ("epochs", "batch_size", "learning_rate")
                 if getattr(params, key) is not None}
    return spec.model_copy(update=overrides)


def match_labels(y: np.ndarray, sparse: bool) -> np.ndarray:
    """Labels as the loss needs them: class ids (N,) or one-hot (N, 10)."""
    if sparse:
        return y if y.ndim == 1 else y.argmax(axis=1)
    return y if y.ndim == 2 else np.eye(10, dtype=np.float32)[y]


def sample_rows(total: int, n: int | None, seed: int) -> np.ndarray:
    """Sorted indices of a seeded random sample of n of `total` rows (all rows when n is None or too large)."""
    if n is None or n >= total:
        return np.arange(total)
    return np.sort(np.random.default_rng(seed).choice(total, size=n, replace=False))


def load_training_data(params: TrainParams, spec: ModelSpec, model: str) -> dict[str, np.ndarray]:
    """x/y for train and val: prepared arrays, or cached VGG16 features for the transfer model."""
    prepared = load_npz(Path(params.prepared_dir) / "prepared.npz",
                        ("x_train", "y_train", "x_val", "y_val", "train_index", "val_index"))
    data = {key: prepared[key] for key in ("x_train", "y_train", "x_val", "y_val")}
    made_for = read_json(Path(params.prepared_dir) / "prepare.json")["model"]
    if model_input(made_for).layout != model_input(model).layout and model_input(model).layout != "rgb":
        raise PipelineError(f"prepared data was shaped for {made_for}, not {model}: re-run prepare (dvc repro does)")
    if model_input(model).layout == "rgb":
        features = load_npz(Path(params.features_dir) / "features.npz", ("x_train",))["x_train"]
        data["x_train"], data["x_val"] = features[prepared["train_index"]], features[prepared["val_index"]]
    for split in ("train", "val"):
        data[f"y_{split}"] = match_labels(data[f"y_{split}"], spec.sparse_labels)
    rows = sample_rows(len(data["x_train"]), params.max_train_images, params.seed)
    if len(rows) < len(data["x_train"]):
        data["x_train"], data["y_train"] = data["x_train"][rows], data["y_train"][rows]
    data["train_rows"] = rows  # rows of the prepared training split that the model is fitted on
    return data


def load_test_data(params: TrainParams, spec: ModelSpec, model: str) -> tuple[np.ndarray, np.ndarray]:
    """The test set as the model takes it, read only after the fit (it plays no part in training)."""
    prepared = load_npz(Path(params.prepared_dir) / "prepared.npz", ("x_test", "y_test"))
    x_test = prepared["x_test"]
    if model_input(model).layout == "rgb":
        x_test = load_npz(Path(params.features_dir) / "features.npz", ("x_test",))["x_test"]
    return x_test, match_labels(prepared["y_test"], spec.sparse_labels)


def predict_splits(model: Any, spec: ModelSpec, params: TrainParams, data: dict[str, np.ndarray],
                   x_test: np.ndarray, y_test: np.ndarray) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """The fitted model's class probabilities on test, validation and a seeded sample of its training images;
    and what Keras itself reports on the test predictions: the loss, and the compiled metric (the number
    the tutorial printed), from the model's metric objects (what model.evaluate gives, without a second pass)."""
    import keras

    sample = sample_rows(len(data["x_train"]), params.predict_train_images, params.seed)
    inputs = {"test": x_test, "val": data["x_val"], "train": data["x_train"][sample]}
    probs = {split: np.asarray(model.predict(x, batch_size=params.predict_batch_size, verbose=0), dtype=np.float32)
             for split, x in inputs.items()}
    loss = float(np.mean(keras.ops.convert_to_numpy(keras.losses.get(spec.loss)(y_test, probs["test"]))))
    model.reset_metrics()
    reported = {name: float(value) for name, value in model.compute_metrics(x_test, y_test, probs["test"]).items()}
    value = float(reported.get(spec.metric, reported.get("compile_metrics", float("nan"))))
    arrays = {**probs, "train_rows": data["train_rows"][sample]}  # rows of the prepared training split
    return arrays, {"loss": loss, "metric": spec.metric, "value": value}


def run_key(spec: ModelSpec, params: TrainParams, data: dict[str, np.ndarray]) -> str:
    """Identifies a training run: same settings and data give the same key (for resuming)."""
    digest = hashlib.sha256(json.dumps([spec.model_dump(), params.model_dump()], sort_keys=True).encode())
    for key in sorted(data):
        digest.update(np.ascontiguousarray(data[key]).tobytes())
    return digest.hexdigest()[:16]


def callbacks(spec: ModelSpec, params: TrainParams, backup_dir: Path, resuming: bool) -> list[Any]:
    """Early stopping, threshold stop, backup-and-restore, dvclive."""
    import keras
    from dvclive import Live
    from dvclive.keras import DVCLiveCallback

    from tasks.callbacks import StopAtLoss

    stack: list[Any] = [keras.callbacks.BackupAndRestore(str(backup_dir), save_freq="epoch", delete_checkpoint=True)]
    if params.early_stopping_patience:
        stack.append(keras.callbacks.EarlyStopping(monitor="val_loss", patience=params.early_stopping_patience,
                                                   restore_best_weights=True))
    if spec.stop_at_loss is not None:
        stack.append(StopAtLoss(spec.stop_at_loss))
    live = Live(params.live_dir, dvcyaml=False, save_dvc_exp=False, resume=resuming)
    stack.append(DVCLiveCallback(live=live))
    return stack


def choose_strategy(devices: list[str] | None = None, distribute: str = "auto") -> tuple[Any, str]:
    """MirroredStrategy over `devices` (default: the visible GPUs) when there are several and
    `distribute` is auto; otherwise TensorFlow's default single-device strategy. Returns it and a
    one-line description."""
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
    """Build the model inside `strategy`'s scope and fit it; returns the model and its per-epoch history.
    `batch_size` is the global batch: a MirroredStrategy splits it over its replicas."""
    import keras

    keras.utils.set_random_seed(seed)
    with strategy.scope():
        model = build_model(spec, data["x_train"].shape[1:])
    verbose = 1 if sys.stdout.isatty() else 2
    history = model.fit(data["x_train"], data["y_train"], validation_data=(data["x_val"], data["y_val"]),
                        batch_size=spec.batch_size, epochs=spec.epochs, callbacks=stack, verbose=verbose,
                        shuffle=True)
    return model, {key: [float(v) for v in values] for key, values in history.history.items()}


def fit_linear(spec: ModelSpec, seed: int, live_dir: str) -> tuple[Any, dict[str, list[float]]]:
    """The single-neuron demo on its own six points (no validation data: nothing to stop early on)."""
    import keras
    from dvclive import Live
    from dvclive.keras import DVCLiveCallback

    keras.utils.set_random_seed(seed)
    model = build_model(spec, (1,))
    live = DVCLiveCallback(live=Live(live_dir, dvcyaml=False, save_dvc_exp=False))
    history = model.fit(LINEAR_X, LINEAR_Y, epochs=spec.epochs, batch_size=spec.batch_size, verbose=0,
                        callbacks=[live])
    return model, {key: [float(v) for v in values] for key, values in history.history.items()}


def stopped_by(spec: ModelSpec, history: dict[str, list[float]], stack: list[Any]) -> str:
    """Why training ended: all epochs, early stopping, or the loss threshold."""
    for callback in stack:
        if type(callback).__name__ == "StopAtLoss" and callback.stopped_epoch is not None:
            return f"loss below {spec.stop_at_loss} after epoch {callback.stopped_epoch + 1}"
        if type(callback).__name__ == "EarlyStopping" and 0 < callback.stopped_epoch < spec.epochs - 1:
            return f"early stopping after epoch {callback.stopped_epoch + 1} (best weights restored)"
    return f"all {len(history.get('loss', []))} epochs" if len(history.get("loss", [])) >= spec.epochs else "resumed run"


def layer_table(model: Any) -> list[list[str]]:
    """Name, type, output shape and parameter count of each layer, for the report."""
    return [[layer.name, type(layer).__name__, str(tuple(layer.output.shape)), f"{layer.count_params():,}"]
            for layer in model.layers]


def save_model(model: Any, path: Path) -> None:
    """Save atomically: Keras writes a temporary .keras file that is then moved into place."""
    with atomic_path(path) as tmp:
        keras_tmp = tmp.with_suffix(".keras")
        model.save(keras_tmp)
        keras_tmp.replace(tmp)


def main() -> None:
    """Read `train` and `models.<train.model>`; write `model/model.keras` and `model/train.json`."""
    import_tensorflow()
    import tensorflow as tf

    params_file = load_params()
    params = parse_section(params_file, "train", TrainParams)
    spec = effective_spec(model_spec(params_file.get("models", {}), params.model), params)
    tf.config.experimental.enable_op_determinism()
    started = time.perf_counter()
    if spec.kind == "linear":
        model, history, how, key = *fit_linear(spec, params.seed, params.live_dir), f"all {spec.epochs} epochs", "linear"
        shapes: dict[str, Any] = {"x_train": [len(LINEAR_X), 1]}
        resuming = False
        predictions = {"at_10": np.asarray(model.predict(np.array([[10.0]], dtype=np.float32), verbose=0))[0]}
        keras_test: dict[str, Any] | None = None
        predicted_train: list[int] | None = None
    else:
        data = load_training_data(params, spec, params.model)
        key = run_key(spec, params, data)
        backup = Path(params.checkpoint_dir) / f"{params.model}-{key}"
        resuming = backup.exists()
        if resuming:
            log(f"train: resuming {params.model} from the checkpoint in {backup}")
        stack = callbacks(spec, params, backup, resuming)
        log(f"train: {params.model} on {len(data['x_train']):,} images (val {len(data['x_val']):,}), "
            f"{spec.epochs} epochs max, batch {spec.batch_size}, {spec.optimizer} lr {spec.learning_rate}")
        strategy, described = choose_strategy(distribute=params.distribute)
        log(f"train: strategy: {described}")
        model, history = fit(spec, data, stack, params.seed, strategy)
        how = stopped_by(spec, history, stack)
        shapes = {k: list(v.shape) for k, v in data.items() if k.startswith(("x_", "y_"))}
    seconds = time.perf_counter() - started
    if spec.kind != "linear":
        x_test, y_test = load_test_data(params, spec, params.model)
        predictions, keras_test = predict_splits(model, spec, params, data, x_test, y_test)
        predicted_train = [len(predictions["train"]), len(data["x_train"])]  # a sample of the images fitted on
        log(f"train: predicted {len(x_test):,} test, {len(data['x_val']):,} validation and "
            f"{len(predictions['train']):,} training images for evaluate")
    out_dir = Path(params.out_dir)
    save_npz(out_dir / PREDICTIONS_FILE, predictions)
    save_model(model, out_dir / MODEL_FILE)
    prepared = {} if spec.kind == "linear" else read_json(Path(params.prepared_dir) / "prepare.json")
    write_json(out_dir / META_FILE, {
        "model": params.model, "spec": spec.model_dump(), "train_params": params.model_dump(),
        "history": history, "epochs_run": len(history.get("loss", [])), "stopped_by": how,
        "parameters": int(model.count_params()), "seconds": round(seconds, 2), "run_key": key,
        "resumed_from_checkpoint": resuming, "layers": layer_table(model),
        "shapes": shapes, "dataset": prepared.get("dataset"), "raw_sha256": prepared.get("raw_sha256"),
        "keras_on_test": keras_test,  # Keras' loss and compiled metric on the test predictions
        "predicted_train_images": predicted_train,
    })
    log(f"train: {params.model} done: {how}, {model.count_params():,} parameters, {seconds:.1f} s")


if __name__ == "__main__":
    exit_now(run_stage("train", main))  # skips TensorFlow's second-long shutdown
