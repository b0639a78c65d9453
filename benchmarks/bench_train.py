"""Benchmark training on full Fashion-MNIST: accuracy and time, and the pipeline's overhead.

Run from the repository root (with .venv active):

    python -m benchmarks.bench_train [--models mlp_512_rmsprop,cnn,cnn_head_dropout] [--repeat 3] [--json out.json]

The configurations: `mlp_512_rmsprop` and `cnn` as the catalogue has them (the tutorials'
settings), and `cnn_head_dropout`: the same CNN with dropout 0.5 after each of its dense
layers (`models.cnn.dropout`; `conv_dropout` after the convolutions stays 0.25), set through
params as a user would with `dvc exp run -S models.cnn.dropout=0.5`.

For each configuration, in one run:
  1. a bare Keras script (what a tutorial reader writes: load, /255, build the same layers,
     fit the same epochs on the same training images, evaluate), timed as a whole process;
  2. `dvc repro` of the same configuration in a fresh temporary git clone of this project
     (fetch, validate, prepare, train, evaluate, report), timed as a whole.
It prints test accuracy and seconds of each, and the ratio dvc/bare. Early stopping is off
in both, so both train exactly the catalogue entry's epochs.

On a shared machine the fit itself varies by 10-20% from run to run, more than the overhead
being measured, so each row also splits the time into the fit (timed inside both) and the
rest (imports, data loading, evaluation, report, DVC), and `--repeat N` alternates the two
N times and prints the medians.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from mnist_pipeline.catalogue import ModelSpec, model_spec
from mnist_pipeline.project_files import ProjectFiles

ROOT = Path(__file__).resolve().parents[1]
GOALS = {"cnn": 0.92, "mlp_512_rmsprop": 0.88}
# label: (catalogue model, overrides of its params entry)
CONFIGS = {"mlp_512_rmsprop": ("mlp_512_rmsprop", {}), "cnn": ("cnn", {}),
           "cnn_head_dropout": ("cnn", {"dropout": 0.5})}

BARE_SCRIPT = r'''
import sys, json, time, numpy as np, keras
sys.path.insert(0, {root!r})
from mnist_pipeline.data.sources import read_fashion_debian
from mnist_pipeline.data.preparation import stratified_val_split
keras.utils.set_random_seed(42)
raw = read_fashion_debian().arrays
train_index, val_index = stratified_val_split(raw["y_train"], 0.1, 42)   # the same training images
shape = {shape!r}
x = raw["x_train"].astype("float32") / 255
x_test = raw["x_test"].astype("float32") / 255
x, x_test = x.reshape((-1,) + shape), x_test.reshape((-1,) + shape)
y, y_test = keras.utils.to_categorical(raw["y_train"], 10), keras.utils.to_categorical(raw["y_test"], 10)
layers = keras.layers
model = keras.Sequential({layers})
model.compile(optimizer={optimizer}, loss="categorical_crossentropy", metrics=["accuracy"])
started = time.perf_counter()
model.fit(x[train_index], y[train_index], validation_data=(x[val_index], y[val_index]),
          batch_size={batch}, epochs={epochs}, verbose=2)
fit_seconds = time.perf_counter() - started
loss, acc = model.evaluate(x_test, y_test, verbose=0)
print(json.dumps({{"accuracy": acc, "fit_seconds": fit_seconds}}))
'''

def bare_layers(spec: ModelSpec) -> tuple[tuple[int, ...], str, str]:
    """Input shape, the Keras layer list (as source) and the optimizer of a catalogue entry, written out
    the way a tutorial does it, so the bare script trains exactly the pipeline's model."""
    dense = "".join(f"layers.Dense({units}, activation={spec.activation!r}), "
                    + (f"layers.Dropout({spec.dropout}), " if spec.dropout else "")
                    for units in spec.hidden)
    optimizer = {"adam": "Adam", "rmsprop": "RMSprop"}[spec.optimizer]
    optimizer = f"keras.optimizers.{optimizer}({spec.learning_rate})"
    if spec.kind == "cnn":
        convs = "".join(f"layers.Conv2D({filters}, 3, activation='relu'), " for filters in spec.conv_filters)
        return ((28, 28, 1), f"[keras.Input((28, 28, 1)), {convs}layers.MaxPooling2D(2), "
                f"layers.Dropout({spec.pool_dropout}), layers.Flatten(), {dense}"
                "layers.Dense(10, activation='softmax')]",
                optimizer)
    return (784,), f"[keras.Input((784,)), {dense}layers.Dense(10, activation='softmax')]", optimizer


def bare(spec: ModelSpec) -> tuple[float, float, float]:
    """Seconds, test accuracy and seconds inside model.fit of the bare Keras script, as one process."""
    shape, layers, optimizer = bare_layers(spec)
    code = BARE_SCRIPT.format(root=str(ROOT), shape=shape, layers=layers, optimizer=optimizer,
                              batch=spec.batch_size, epochs=spec.epochs)
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    seconds = time.perf_counter() - started
    result = json.loads(done.stdout.strip().splitlines()[-1])
    return seconds, result["accuracy"], result["fit_seconds"]


def pipeline(label: str, model: str, overrides: dict) -> tuple[float, float, float]:
    """Seconds of `dvc repro` in a fresh clone, the test accuracy it measured, and seconds of training
    inside the train stage (loading its arrays and the fit)."""
    from tests.harness import make_repo, stage_env

    with tempfile.TemporaryDirectory() as folder:
        repo = make_repo(Path(folder))
        params = yaml.safe_load((repo / "params.yaml").read_text())
        params["data"]["dataset"] = "fashion_mnist"
        params["train"].update({"model": model, "early_stopping_patience": 0})
        params["models"][model].update(overrides)
        (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
        started = time.perf_counter()
        subprocess.run(["dvc", "repro"], cwd=repo, env=stage_env(), check=True, capture_output=True)
        seconds = time.perf_counter() - started
        files = ProjectFiles.from_params(params, repo)
        stages = {f.stem: json.loads(f.read_text())["seconds"] for f in sorted(files.folder("timings").glob("*.json"))}
        print(f"  {label} dvc repro {seconds:.0f} s; inside the stages: "
              + ", ".join(f"{name} {s:.1f}" for name, s in stages.items() if s >= 0.1)
              + f"; the rest (process starts, imports, DVC) {seconds - sum(stages.values()):.1f}", flush=True)
        fit_seconds = json.loads(files.train_record.read_text())["seconds"]
        return seconds, json.loads(files.metrics.read_text())["accuracy"], fit_seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="mlp_512_rmsprop,cnn,cnn_head_dropout",
                        help=f"comma-separated, of: {', '.join(CONFIGS)}")
    parser.add_argument("--repeat", type=int, default=1, help="alternate bare and dvc this many times; medians")
    parser.add_argument("--json", help="also write the figures to this JSON file")
    args = parser.parse_args()
    catalogue = yaml.safe_load((ROOT / "params.yaml").read_text())["models"]
    print(f"command: python -m benchmarks.bench_train {' '.join(sys.argv[1:])}".rstrip())
    print(f"machine: {os.cpu_count()} cores; full Fashion-MNIST (54,000 train / 6,000 val / 10,000 test)\n")
    print(f"{'configuration':<24}{'epochs':>7}{'bare s':>8}{'(fit':>6}{'rest)':>7}{'bare acc':>10}{'dvc s':>8}"
          f"{'(fit':>6}{'rest)':>7}{'dvc acc':>9}{'ratio':>7}  goal")
    figures: dict[str, list[dict[str, float]]] = {}
    for label in args.models.split(","):
        if label not in CONFIGS:
            parser.error(f"unknown configuration {label!r}; choose from: {', '.join(CONFIGS)}")
        model, overrides = CONFIGS[label]
        spec = model_spec({model: {**catalogue[model], **overrides}}, model).on("fashion_mnist")
        goal = GOALS.get(model)
        for _ in range(args.repeat):
            bare_s, bare_acc, bare_fit = bare(spec)
            dvc_s, dvc_acc, dvc_fit = pipeline(label, model, overrides)
            row = {"bare_seconds": bare_s, "bare_accuracy": bare_acc, "bare_fit": bare_fit, "dvc_seconds": dvc_s,
                   "dvc_accuracy": dvc_acc, "dvc_fit": dvc_fit, "ratio": dvc_s / bare_s}
            figures.setdefault(label, []).append(row)
            print(line(label, spec.epochs, row, goal), flush=True)
        if args.repeat > 1:
            runs = figures[label]
            medians = {key: statistics.median(r[key] for r in runs) for key in runs[0]}
            print(line(f"{label} median", spec.epochs, medians, goal), flush=True)
            print(f"  fixed cost outside the fit (median): bare {medians['bare_seconds'] - medians['bare_fit']:.1f} s,"
                  f" dvc {medians['dvc_seconds'] - medians['dvc_fit']:.1f} s; fit: bare {medians['bare_fit']:.1f} s,"
                  f" dvc {medians['dvc_fit']:.1f} s ({medians['dvc_fit'] / medians['bare_fit']:.2f}x)", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2))


def line(label: str, epochs: int, row: dict[str, float], goal: float | None) -> str:
    """One table row: seconds (fit, rest), accuracy, ratio and the accuracy goal's verdict."""
    verdict = f">= {goal}: {'pass' if row['dvc_accuracy'] >= goal else 'FAIL'}" if goal else ""
    return (f"{label:<24}{epochs:>7}{row['bare_seconds']:>8.0f}{row['bare_fit']:>6.0f}"
            f"{row['bare_seconds'] - row['bare_fit']:>7.1f}{row['bare_accuracy']:>10.4f}{row['dvc_seconds']:>8.0f}"
            f"{row['dvc_fit']:>6.0f}{row['dvc_seconds'] - row['dvc_fit']:>7.1f}{row['dvc_accuracy']:>9.4f}"
            f"{row['ratio']:>7.2f}  {verdict}")


if __name__ == "__main__":
    main()
