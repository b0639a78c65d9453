"""Benchmark Keras' backends side by side: the same models, data, batch and epochs on TensorFlow, JAX and PyTorch,
plus a plain PyTorch script of the catalogue's CNN.

Set up the backends once (their own venv, locked: scripts/setup-backends.sh), then run from the repository root:

    bash scripts/setup-backends.sh
    .venv-backends/bin/python -m benchmarks.bench_backends [--epochs 2] [--models cnn,mlp_512_rmsprop,modern_cnn-no-aug]

Each (model, backend) is a fresh process with KERAS_BACKEND set (a backend is chosen at Keras' import): full
Fashion-MNIST from Debian's dataset-fashion-mnist (60,000 training images, 10,000 test), scaled to [0, 1], the
catalogue entry built by mnist_pipeline.models as the pipeline builds it, fitted `--epochs` epochs with its
batch size and optimizer, seed 42. Seconds per epoch are the epochs after the first (the first holds tracing
and compilation: it is printed apart); test accuracy is top-1 on the 10,000 test images after those epochs (the
same work on each backend, not the entry's full recipe); memory is the process's peak resident set. Every
figure is printed with its ratio to TensorFlow's, all measured in this one run. `modern_cnn-no-aug` is
`modern_cnn` without augmentation (claims.yaml's variant). The plain script is the catalogue's `cnn` written in
torch.nn: the same layers, Adam 0.001, batch 128, the same images.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BACKENDS = ("tensorflow", "jax", "torch")
MODELS = ("cnn", "mlp_512_rmsprop", "modern_cnn-no-aug")
VARIANTS = {"modern_cnn-no-aug": ("modern_cnn", {"augment": None})}  # claims.yaml's configuration


def data(flat: bool) -> tuple:
    import numpy as np

    from mnist_pipeline.data.sources import read_fashion_debian

    raw = read_fashion_debian().arrays
    shape = (-1, 784) if flat else (-1, 28, 28, 1)
    x, x_test = (raw[k].astype(np.float32).reshape(shape) / np.float32(255) for k in ("x_train", "x_test"))
    return x, raw["y_train"].astype(np.int64), x_test, raw["y_test"].astype(np.int64)


def peak_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def keras_child(label: str, epochs: int) -> dict:
    """One model on the backend KERAS_BACKEND names, in this process."""
    import time

    import keras
    import numpy as np
    import yaml

    from mnist_pipeline.catalogue import model_spec
    from mnist_pipeline.models import build_model

    name, changes = VARIANTS.get(label, (label, {}))
    models = yaml.safe_load((ROOT / "params.yaml").read_text())["models"]
    spec = model_spec(models, name).model_copy(update={**changes, "epochs": epochs})
    x, y, x_test, y_test = data(spec.kind == "dense")
    keras.utils.set_random_seed(42)
    steps = -(-len(x) // spec.batch_size)
    model = build_model(spec, x.shape[1:], steps_per_epoch=steps, seed=42)
    labels = keras.utils.to_categorical(y, 10) if not spec.sparse_labels else y
    times: list[float] = []

    class Clock(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            times.append(time.perf_counter() - self.start)

    model.fit(x, labels, batch_size=spec.batch_size, epochs=epochs, verbose=0, callbacks=[Clock()])
    accuracy = float(np.mean(model.predict(x_test, batch_size=512, verbose=0).argmax(1) == y_test))
    return {"first_epoch_s": times[0], "epoch_s": sum(times[1:]) / max(1, len(times) - 1),
            "accuracy": accuracy, "peak_mb": peak_mb(), "device": device()}


def device() -> str:
    """Where the backend computes (cpu here; a GPU's name on a GPU machine)."""
    backend = os.environ.get("KERAS_BACKEND", "tensorflow")
    if backend == "torch":
        import torch

        return torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"
    if backend == "jax":
        import jax

        return str(jax.devices()[0].platform)
    import tensorflow as tf

    return "gpu" if tf.config.list_physical_devices("GPU") else "cpu"


def torch_child(epochs: int) -> dict:
    """The catalogue's `cnn` in plain torch.nn: conv 32, conv 32 (3x3, valid, relu), 2x2 max-pool, dropout 0.25,
    three dense 500 relu each with dropout 0.25, softmax 10; Adam 0.001, batch 128, cross-entropy."""
    import time

    import numpy as np
    import torch
    from torch import nn

    torch.manual_seed(42)
    x, y, x_test, y_test = data(flat=False)
    x, x_test = torch.from_numpy(x).permute(0, 3, 1, 2).contiguous(), torch.from_numpy(x_test).permute(0, 3, 1, 2)
    y = torch.from_numpy(y)
    layers: list[nn.Module] = [nn.Conv2d(1, 32, 3), nn.ReLU(), nn.Conv2d(32, 32, 3), nn.ReLU(), nn.MaxPool2d(2),
                               nn.Dropout(0.25), nn.Flatten()]
    width = 32 * 12 * 12
    for _ in range(3):
        layers += [nn.Linear(width, 500), nn.ReLU(), nn.Dropout(0.25)]
        width = 500
    model = nn.Sequential(*layers, nn.Linear(width, 10))
    optimizer = torch.optim.Adam(model.parameters(), lr=0.001, eps=1e-7)  # Keras' epsilon
    loss = nn.CrossEntropyLoss()
    generator = torch.Generator().manual_seed(42)
    times = []
    for _ in range(epochs):
        start = time.perf_counter()
        model.train()
        for batch in torch.randperm(len(x), generator=generator).split(128):
            optimizer.zero_grad()
            loss(model(x[batch]), y[batch]).backward()
            optimizer.step()
        times.append(time.perf_counter() - start)
    model.eval()
    with torch.no_grad():
        predicted = torch.cat([model(part).argmax(1) for part in x_test.split(512)]).numpy()
    return {"first_epoch_s": times[0], "epoch_s": sum(times[1:]) / max(1, len(times) - 1),
            "accuracy": float(np.mean(predicted == y_test)), "peak_mb": peak_mb(), "device": "cpu"}


def run_child(label: str, backend: str, epochs: int) -> dict:
    env = {**os.environ, "KERAS_BACKEND": "torch" if backend == "plain torch" else backend,
           "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": str(ROOT)}
    args = [sys.executable, "-m", "benchmarks.bench_backends", "--child", label, "--backend", backend,
            "--epochs", str(epochs)]
    done = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        return {"failed": (done.stderr.strip().splitlines() or ["no output"])[-1]}
    return json.loads(done.stdout.strip().splitlines()[-1])


def table(results: dict[tuple[str, str], dict]) -> list[str]:
    lines = ["| model | backend | device | s/epoch | vs TF | first epoch s | test accuracy | peak MB | vs TF |",
             "|---|---|---|---|---|---|---|---|---|"]
    for (label, backend), r in results.items():
        base = results.get((label, "tensorflow"), {})
        if "failed" in r:
            lines.append(f"| {label} | {backend} | | failed: {r['failed'][:80]} | | | | | |")
            continue
        speed = f"{r['epoch_s'] / base['epoch_s']:.2f}x" if base.get("epoch_s") else ""
        memory = f"{r['peak_mb'] / base['peak_mb']:.2f}x" if base.get("peak_mb") else ""
        lines.append(f"| {label} | {backend} | {r['device']} | {r['epoch_s']:.2f} | {speed} | {r['first_epoch_s']:.2f} "
                     f"| {r['accuracy']:.4f} | {r['peak_mb']:.0f} | {memory} |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=2, help="epochs per fit; the first is timed apart")
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--backends", default=",".join(BACKENDS))
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--backend", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        result = torch_child(args.epochs) if args.backend == "plain torch" else keras_child(args.child, args.epochs)
        print(json.dumps(result))
        return
    from importlib.metadata import version

    results: dict[tuple[str, str], dict] = {}
    for label in args.models.split(","):
        for backend in [*args.backends.split(","), *(["plain torch"] if label == "cnn" else [])]:
            print(f"[bench_backends] {label} on {backend} ...", file=sys.stderr, flush=True)
            results[(label, backend)] = run_child(label, backend, args.epochs)
    print(f"Keras {version('keras')}, {args.epochs} epochs each, full Fashion-MNIST, {os.cpu_count()} cores")
    print("\n".join(table(results)))
    if args.json:
        args.json.write_text(json.dumps({f"{k[0]}|{k[1]}": v for k, v in results.items()}, indent=2))


if __name__ == "__main__":
    main()
