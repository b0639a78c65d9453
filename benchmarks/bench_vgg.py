"""Benchmark VGG16 transfer: cached features (this pipeline) vs the tutorial's frozen base run every epoch.

Run from the repository root:  python -m benchmarks.bench_vgg [--train 3000] [--test 1000] [--epochs 3]

Same images (Fashion-MNIST resized to 48x48 RGB by the resize stage's function), same
head, same seed. The tutorial's way fits base + head, so every epoch runs the frozen VGG16
over every image; ours runs the base once, caches (N, 512) features, and fits the head on
them. Weights: `--weights imagenet` needs Keras' cached ImageNet file; the default `none`
(random weights) times the same computation offline.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np


def data(n_train: int, n_test: int) -> tuple[np.ndarray, ...]:
    """Stratified-enough slices of Fashion-MNIST, resized to 48x48 RGB uint8, labels one-hot."""
    import keras

    from mnist_pipeline.data.sources import read_fashion_debian
    from mnist_pipeline.images import resize_gray_to_rgb

    raw = read_fashion_debian().arrays
    x_train, x_test = resize_gray_to_rgb(raw["x_train"][:n_train], 48), resize_gray_to_rgb(raw["x_test"][:n_test], 48)
    y_train = keras.utils.to_categorical(raw["y_train"][:n_train], 10)
    y_test = keras.utils.to_categorical(raw["y_test"][:n_test], 10)
    return x_train, y_train, x_test, y_test


def head() -> list:
    """The tutorial's classifier head: Dense 500 x2 with dropout, softmax."""
    from keras import layers

    return [layers.Flatten(), layers.Dense(500, activation="relu"), layers.Dropout(0.5),
            layers.Dense(500, activation="relu"), layers.Dropout(0.5), layers.Dense(10, activation="softmax")]


def tutorial_way(base, x_train, y_train, x_test, y_test, epochs: int) -> dict[str, float]:
    """Frozen base inside the model: VGG16 runs over every image in every epoch."""
    import keras

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((48, 48, 3)), keras.layers.Lambda(keras.applications.vgg16.preprocess_input),
                              base, *head()])
    model.compile(optimizer="adam", loss="categorical_crossentropy", metrics=["accuracy"])
    started = time.perf_counter()
    model.fit(x_train.astype(np.float32), y_train, epochs=epochs, batch_size=128, verbose=0)
    fit_s = time.perf_counter() - started
    accuracy = model.evaluate(x_test.astype(np.float32), y_test, verbose=0)[1]
    return {"setup_s": 0.0, "per_epoch_s": fit_s / epochs, "accuracy": float(accuracy)}


def cached_way(base, x_train, y_train, x_test, y_test, epochs: int) -> dict[str, float]:
    """Ours: features once (the features stage's `extract`), then the head alone."""
    import keras

    from mnist_pipeline.images import extract

    started = time.perf_counter()
    f_train, f_test = extract(base, x_train, 256), extract(base, x_test, 256)
    setup_s = time.perf_counter() - started
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((f_train.shape[1],)), *head()[1:]])
    model.compile(optimizer="adam", loss="categorical_crossentropy", metrics=["accuracy"])
    started = time.perf_counter()
    model.fit(f_train, y_train, epochs=epochs, batch_size=128, verbose=0)
    fit_s = time.perf_counter() - started
    accuracy = model.evaluate(f_test, y_test, verbose=0)[1]
    return {"setup_s": setup_s, "per_epoch_s": fit_s / epochs, "accuracy": float(accuracy)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train", type=int, default=3000, help="training images")
    parser.add_argument("--test", type=int, default=1000, help="test images")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--weights", default="none", help="none (random, offline) or imagenet")
    args = parser.parse_args()

    from mnist_pipeline import import_tensorflow
    from mnist_pipeline.images import vgg16_base

    import_tensorflow()  # without TensorFlow's start-up chatter in the printed figures

    print(f"command: python -m benchmarks.bench_vgg {' '.join(sys.argv[1:])}".rstrip())
    print(f"machine: {os.cpu_count()} cores; {args.train:,} train / {args.test:,} test Fashion-MNIST images at "
          f"48x48 RGB, {args.epochs} epochs, VGG16 weights: {args.weights}\n")
    arrays = data(args.train, args.test)
    base = vgg16_base(args.weights, 48)
    results = {"tutorial": tutorial_way(base, *arrays, args.epochs), "cached": cached_way(base, *arrays, args.epochs)}
    print(f"{'way':<10}{'one-off s':>10}{'s / epoch':>11}{'total s':>9}{'accuracy':>10}")
    for way, r in results.items():
        total = r["setup_s"] + r["per_epoch_s"] * args.epochs
        print(f"{way:<10}{r['setup_s']:>10.1f}{r['per_epoch_s']:>11.2f}{total:>9.1f}{r['accuracy']:>10.4f}")
    speedup = results["tutorial"]["per_epoch_s"] / results["cached"]["per_epoch_s"]
    print(f"per-epoch speed-up of the cached head: {speedup:.0f}x; ten epochs: "
          f"{results['tutorial']['per_epoch_s'] * 10:.0f} s the tutorial's way vs "
          f"{results['cached']['setup_s'] + results['cached']['per_epoch_s'] * 10:.0f} s cached")


if __name__ == "__main__":
    main()
