"""Benchmark a GPU: the catalogue's `modern_cnn` without augmentation (claims.yaml's `modern_cnn-no-aug`) on
Fashion-MNIST, on whichever Keras backend the machine has: seconds per epoch and test accuracy.

Made for a machine with an NVIDIA GPU and PyTorch or JAX but no TensorFlow and no network: besides NumPy and
Keras it needs only this project's pure-Python model code (mnist_pipeline/models.py, backends.py, errors.py),
not TensorFlow, pydantic or PyYAML. The data travels as one `.npz`:

    # here (full Fashion-MNIST from Debian's dataset-fashion-mnist, about 30 MB):
    python -m benchmarks.bench_gpu --write-data fashion_mnist.npz
    # there, from a copy of this repository (keras installed: pip install keras, or its wheel carried over):
    KERAS_BACKEND=torch python -m benchmarks.bench_gpu --data fashion_mnist.npz [--precision mixed_float16]

The recipe is the catalogue entry's on Fashion-MNIST (SPEC below; tests/system/test_bench_gpu.py checks it
against params.yaml): conv blocks 32-32 and 64-64, AdamW 0.003 with weight decay 0.01, one warm-up epoch then
cosine decay, batch 128, 7 epochs, inputs scaled to [0, 1], seed 42. It fits all 60,000 training images (the
pipeline holds a validation split out), so its accuracy is near the catalogue's figure, not the same number.
Seconds per epoch are the epochs after the first (the first holds compilation: printed apart). `--small` is the
CPU check the suite runs: 1,000 training images, 2 epochs, 500 test images.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from types import SimpleNamespace

# models.py's ModelSpec fields for params.yaml's models.modern_cnn on fashion_mnist, augmentation off
SPEC = {
    "kind": "cnn", "loss": "categorical_crossentropy", "hidden": [128], "activation": "relu", "dropout": 0.3,
    "dropout_layers": None, "conv_filters": [32, 32], "conv_dropout": 0.1, "conv_blocks": [[32, 32], [64, 64]],
    "batch_norm": False, "batch_norm_momentum": 0.9, "augment": None, "optimizer": "adamw", "learning_rate": 0.003,
    "weight_decay": 0.01, "momentum": 0.0, "nesterov": False, "label_smoothing": 0.0, "metric": "accuracy",
    "batch_size": 128, "epochs": 7, "schedule": "cosine", "warmup_epochs": 1, "stop_at_loss": None,
    "early_stopping": False, "claimed": "not stated", "claimed_accuracy": None, "claim_dataset": "mnist",
    "source": "modern baseline (not a tutorial)",
}
ARRAYS = ("x_train", "y_train", "x_test", "y_test")


def model_spec(epochs: int) -> SimpleNamespace:
    """SPEC as models.py reads it: its fields, and ModelSpec's two derived properties."""
    pool_dropout = SPEC["dropout"] if SPEC["conv_dropout"] is None else SPEC["conv_dropout"]
    return SimpleNamespace(**{**SPEC, "epochs": epochs}, pool_dropout=pool_dropout,
                           sparse_labels=SPEC["loss"] == "sparse_categorical_crossentropy")
SMALL = {"train": 1000, "test": 500, "epochs": 2}


def write_data(path: Path) -> None:
    """Full Fashion-MNIST (Debian's dataset-fashion-mnist) as one compressed .npz of uint8 arrays."""
    import numpy as np

    from mnist_pipeline.data.sources import read_fashion_debian

    raw = read_fashion_debian().arrays
    np.savez_compressed(path, **{key: raw[key] for key in ARRAYS})
    print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB): " + ", ".join(
        f"{key} {raw[key].shape}" for key in ARRAYS))


def load(path: Path, small: bool) -> tuple:
    import numpy as np

    try:
        with np.load(path, allow_pickle=False) as data:
            missing = [key for key in ARRAYS if key not in data.files]
            if missing:
                raise SystemExit(f"error: {path} lacks {', '.join(missing)} (write it with --write-data)")
            arrays = {key: data[key] for key in ARRAYS}
    except (ValueError, OSError, EOFError) as exc:  # not an .npz, pickled, truncated
        raise SystemExit(f"error: {path}: not a readable .npz ({str(exc).splitlines()[0][:200]})") from None
    if small:
        for split, count in (("train", SMALL["train"]), ("test", SMALL["test"])):
            arrays[f"x_{split}"], arrays[f"y_{split}"] = arrays[f"x_{split}"][:count], arrays[f"y_{split}"][:count]
    x, x_test = (arrays[key].reshape(-1, 28, 28, 1).astype(np.float32) / np.float32(255) for key in ("x_train",
                                                                                                    "x_test"))
    return x, arrays["y_train"].astype(np.int64), x_test, arrays["y_test"].astype(np.int64)


def chosen_backend() -> str:
    """KERAS_BACKEND when set; otherwise the first of torch, jax and tensorflow this interpreter has."""
    import importlib.util

    from mnist_pipeline.backends import BACKENDS

    if os.environ.get("KERAS_BACKEND"):
        return os.environ["KERAS_BACKEND"]
    for name in ("torch", "jax", "tensorflow"):
        if name in BACKENDS and importlib.util.find_spec(name) is not None:
            return name
    raise SystemExit("error: none of torch, jax or tensorflow is installed")


def run(data: Path, small: bool, precision: str, seed: int = 42) -> dict:
    from mnist_pipeline import backends
    from mnist_pipeline.errors import PipelineError

    try:
        backends.select(chosen_backend(), "KERAS_BACKEND")
    except PipelineError as exc:
        raise SystemExit(f"error: {exc}") from None
    import keras
    import numpy as np

    from mnist_pipeline.models import build_model

    spec = model_spec(SMALL["epochs"] if small else SPEC["epochs"])
    x, y, x_test, y_test = load(data, small)
    keras.config.set_dtype_policy(precision)
    keras.utils.set_random_seed(seed)
    model = build_model(spec, x.shape[1:], steps_per_epoch=-(-len(x) // spec.batch_size), seed=seed)
    times: list[float] = []

    class Clock(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.started = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            times.append(time.perf_counter() - self.started)
            print(f"epoch {epoch + 1}/{spec.epochs}: {times[-1]:.2f} s, loss {logs['loss']:.4f}", flush=True)

    model.fit(x, keras.utils.to_categorical(y, 10), batch_size=spec.batch_size, epochs=spec.epochs, verbose=0,
              callbacks=[Clock()], shuffle=True)
    probabilities = model.predict(x_test, batch_size=1024, verbose=0)
    engine = backends.describe(precision)
    return {"backend": engine["name"], "version": engine["version"], "keras": engine["keras"],
            "device": engine["device"], "precision": precision, "train_images": len(x), "test_images": len(x_test),
            "epochs": spec.epochs, "first_epoch_s": round(times[0], 2),
            "s_per_epoch": round(float(np.mean(times[1:])), 2),
            "test_accuracy": round(float(np.mean(np.argmax(probabilities, axis=1) == y_test)), 4)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--data", type=Path, help=".npz with x_train, y_train, x_test, y_test (uint8 images)")
    source.add_argument("--write-data", type=Path, metavar="NPZ", help="write full Fashion-MNIST there and stop")
    parser.add_argument("--small", action="store_true", help="the CPU check: 1,000 images, 2 epochs")
    parser.add_argument("--precision", default="float32", choices=("float32", "mixed_float16", "mixed_bfloat16"),
                        help="Keras' dtype policy for the fit (mixed_float16 on an NVIDIA GPU)")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args(argv)
    if args.write_data:
        write_data(args.write_data)
        return
    if not args.data.is_file():
        raise SystemExit(f"error: {args.data}: no such file (write it with --write-data)")
    result = run(args.data, args.small, args.precision)
    print(f"{'mode':<6} {'backend':<18} {'device':<28} {'precision':<15} {'s/epoch':>8} {'first':>7} {'test acc':>9}")
    print(f"{'small' if args.small else 'full':<6} {result['backend'] + ' ' + result['version']:<18} "
          f"{result['device']:<28} {result['precision']:<15} {result['s_per_epoch']:>8.2f} "
          f"{result['first_epoch_s']:>7.2f} {result['test_accuracy']:>9.4f}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
