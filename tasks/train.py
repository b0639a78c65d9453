"""train: fit the chosen catalogue model, seeded and deterministic, with callbacks.

Callbacks: early stopping on validation loss (best weights restored), the tutorial's threshold
stop (`stop_at_loss`), Keras' BackupAndRestore so a run killed mid-training resumes from its
last completed epoch when re-run (its history stays whole), and dvclive for per-epoch metrics
in DVC's format. With several GPUs visible the model is mirrored over them
(`train.distribute: auto`); otherwise it trains on one device.

After the fit, while the model is in memory, it predicts the test set, the validation set, a
seeded sample of the training images it was fitted on, and the test set under each distortion of
the `distortions` section (rotated, thick and thin strokes, blurred, low resolution, unevenly lit,
off centre: mnist_pipeline/distortions.py); Keras' own loss and compiled metric on the test
predictions go into the train record. The evaluate stage computes everything else from those
predictions without importing TensorFlow.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from mnist_pipeline import backends
from mnist_pipeline.catalogue import ModelSpec, model_input, model_spec
from mnist_pipeline.config import DistortionsParams, TrainParams, parse_section
from mnist_pipeline.distortions import describe, distort_prepared
from mnist_pipeline.errors import PipelineError
from mnist_pipeline.files import load_npz, read_json, save_npz, sha256_file, write_json
from mnist_pipeline.project_files import ProjectFiles
from tasks import log, run


def load_training_data(files: ProjectFiles, spec: ModelSpec, needs: str,
                       settings: TrainParams) -> dict[str, np.ndarray]:
    """x/y for train and val: prepared arrays, or cached VGG16 features for the transfer model."""
    from mnist_pipeline.training import match_labels, sample_rows

    prepared_as = read_json(files.prepare_record)["layout"]
    if needs != "rgb" and prepared_as != needs:
        raise PipelineError(f"the prepared data is laid out '{prepared_as}' but {settings.model} (kind {spec.kind}) "
                            f"takes '{needs}': set prepare.layout to auto or {needs} and re-run prepare")
    prepared = load_npz(files.prepared_data, ("x_train", "y_train", "x_val", "y_val", "train_index", "val_index"))
    data = {key: prepared[key] for key in ("x_train", "y_train", "x_val", "y_val")}
    if needs == "rgb":
        features = load_npz(files.features_data, ("x_train",))["x_train"]
        data["x_train"], data["x_val"] = features[prepared["train_index"]], features[prepared["val_index"]]
    for split in ("train", "val"):
        data[f"y_{split}"] = match_labels(data[f"y_{split}"], spec.sparse_labels)
    rows = sample_rows(len(data["x_train"]), settings.max_train_images, settings.seed)
    if len(rows) < len(data["x_train"]):
        data["x_train"], data["y_train"] = data["x_train"][rows], data["y_train"][rows]
    data["train_rows"] = rows  # rows of the prepared training split that the model is fitted on
    return data


def load_test_data(files: ProjectFiles, spec: ModelSpec, needs: str) -> tuple[np.ndarray, np.ndarray]:
    """The test set as the model takes it, read only after the fit (it plays no part in training)."""
    from mnist_pipeline.training import match_labels

    prepared = load_npz(files.prepared_data, ("x_test", "y_test"))
    x_test = load_npz(files.features_data, ("x_test",))["x_test"] if needs == "rgb" else prepared["x_test"]
    return x_test, match_labels(prepared["y_test"], spec.sparse_labels)


def distorted_test_sets(x_test: np.ndarray, needs: str, normalized: bool | str,
                        params: DistortionsParams) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """The test images under each applied distortion, as the model takes them, and what the train record says
    of them (each one's description, or why none was measured)."""
    if needs == "rgb":
        return {}, {"seed": params.seed, "measured": {}, "not_measured": (
            "the model's test images are VGG16 features of the resized images (the resize and features stages); "
            "distorted images would need both stages again")}
    return distort_prepared(x_test, normalized, params), {"seed": params.seed, "measured": describe(params),
                                                          "not_measured": None}


def fit_model(spec: ModelSpec, data: dict[str, np.ndarray], settings: TrainParams, files: ProjectFiles, backup: Path,
              resuming: bool) -> tuple[Any, dict[str, list[float]], list[Any], float]:
    """Fit with the callbacks, checkpointing to `backup`; the model, its whole history, the callbacks, seconds."""
    from mnist_pipeline import training

    stack = training.callbacks(spec, settings.early_stopping_patience, backup, files.live_dir, resuming)
    schedule = f", warmup_epochs {spec.warmup_epochs}" if spec.warmup_epochs else ""
    schedule += ", cosine decay" if spec.schedule == "cosine" else ""
    log(f"train: {settings.model} on {len(data['x_train']):,} images (val {len(data['x_val']):,}), "
        f"{spec.epochs} epochs max, batch {spec.batch_size}, {spec.optimizer} lr {spec.learning_rate}{schedule}")
    strategy, described = training.choose_strategy(distribute=settings.distribute)
    precision = "" if settings.precision == "float32" else f", {settings.precision}"
    log(f"train: backend {settings.backend} {backends.version(settings.backend)}{precision}, strategy: {described}")
    started = time.perf_counter()
    model, history = training.fit(spec, data, stack, settings.seed, strategy)
    return model, history, stack, time.perf_counter() - started


def main(params: dict[str, Any], files: ProjectFiles) -> dict[str, float]:
    """Read `train`, `models.<train.model>` and `distortions`; write the model, its predictions and the train
    record. Returns the fit's seconds for the timings folder: the record holds no time, so identical work writes
    identical files."""
    settings = parse_section(params, "train", TrainParams)
    distortions = parse_section(params, "distortions", DistortionsParams)
    models = params.get("models", {})
    needs = model_input(models, settings.model).layout
    backends.select(settings.backend)  # before Keras is imported: the engine, deterministic
    import keras

    from mnist_pipeline import training

    prepared = read_json(files.prepare_record)
    # the entry as it trains on this data (per-dataset epochs resolved), then the run's own overrides
    spec = training.effective_spec(model_spec(models, settings.model).on(prepared["dataset"]), {
        "epochs": settings.epochs, "batch_size": settings.batch_size, "learning_rate": settings.learning_rate})
    keras.config.set_dtype_policy(settings.precision)
    data = load_training_data(files, spec, needs, settings)
    key = training.run_key([spec.model_dump(), settings.model_dump()], data)
    wanted = files.checkpoint(settings.model, key)
    with training.claim_checkpoint(wanted) as (backup, resuming):
        if backup != wanted:
            log(f"train: the checkpoint {wanted} is in use by a live run with the same settings; "
                f"training from scratch with a private one, {backup}")
        elif resuming:
            log(f"train: resuming {settings.model} from the checkpoint in {backup}")
        model, history, stack, seconds = fit_model(spec, data, settings, files, backup, resuming)
        training.epoch_log_path(backup).unlink(missing_ok=True)  # the fit finished: nothing to resume
    how = training.stopped_by(spec, history, stack)
    restored = training.restored_epoch(history, stack)
    x_test, y_test = load_test_data(files, spec, needs)
    sample = training.sample_rows(len(data["x_train"]), settings.predict_train_images, settings.seed)
    distorted, distorted_record = distorted_test_sets(x_test, needs, prepared["normalized"], distortions)
    inputs = {"test": x_test, "val": data["x_val"], "train": data["x_train"][sample], **distorted}
    predictions, keras_test = training.predict_splits(model, spec, inputs, y_test, settings.predict_batch_size)
    log(f"train: predicted {len(x_test):,} test, {len(data['x_val']):,} validation and "
        f"{len(sample):,} training images for evaluate, and the test images "
        + (f"{len(distorted)} ways distorted ({', '.join(distorted_record['measured'])})" if distorted else
           f"undistorted only ({distorted_record['not_measured'] or 'distortions.apply is empty'})"))
    save_npz(files.predictions, {**predictions, "train_rows": data["train_rows"][sample]})
    training.save_model(model, files.model_file)
    write_json(files.train_record, {
        "model": settings.model, "spec": spec.model_dump(), "train_params": settings.model_dump(),
        "model_sha256": sha256_file(files.model_file),  # `mnist predict model/model.keras` checks it
        "prepare": {"normalize": prepared["normalized"]},  # the input scale the model was trained on
        "history": history, "epochs_run": len(history.get("loss", [])), "stopped_by": how,
        "restored_epoch": restored,  # the epoch whose weights were evaluated (None: the last)
        "parameters": int(model.count_params()), "run_key": key,
        "backend": backends.describe(settings.precision),  # engine, versions, device, dtype policy
        "resumed_from_checkpoint": resuming, "layers": training.layer_table(model),
        "shapes": {k: list(v.shape) for k, v in data.items() if k.startswith(("x_", "y_"))},
        "dataset": prepared.get("dataset"), "raw_sha256": prepared.get("raw_sha256"),
        "keras_on_test": keras_test,  # Keras' loss and compiled metric on the test predictions
        "predicted_train_images": [len(sample), len(data["x_train"])],  # a sample of the images fitted on
        "distortions": distorted_record,  # the distorted test sets predicted (name: what it does), or why none
    })
    log(f"train: {settings.model} done: {how}, {model.count_params():,} parameters, {seconds:.1f} s")
    return {"fit_seconds": round(seconds, 2)}


if __name__ == "__main__":
    run("train", main, __doc__, tensorflow=True)
