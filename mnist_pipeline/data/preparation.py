"""Preparing validated data for a model: shape, scale, encode, and split off a validation set.

Images become float32 in [0, 1] by default (`prepare.normalize`; raw 0..255 and (x-127)/127, the tutorials'
other scalings, are one setting away, and the catalogue judges their lessons), flat `(N, 784)` or
`(N, 28, 28, 1)` as the chosen model takes them; labels become one-hot float32 where the loss needs it, else
stay integer class ids. The validation set is a stratified, seeded split of the training set, never Keras'
`validation_split`, which takes the tail of the data (the MNIST sample is sorted by class: its tail is all 9s).
"""

from __future__ import annotations

import math

import numpy as np

from mnist_pipeline.catalogue import ModelInput
from mnist_pipeline.config import PrepareParams
from mnist_pipeline.errors import PipelineError
from mnist_pipeline.models import N_CLASSES


def normalize(images: np.ndarray) -> np.ndarray:
    """uint8 (N, 28, 28) -> float32 (N, 28, 28) in [0, 1]."""
    return images.astype(np.float32) / np.float32(255)


def to_float(images: np.ndarray, scale: bool | str) -> np.ndarray:
    """uint8 -> float32 as `prepare.normalize` says: True x/255, False raw 0..255, "centered" (x-127)/127."""
    if scale == "centered":
        return (images.astype(np.float32) - np.float32(127)) / np.float32(127)
    return normalize(images) if scale else images.astype(np.float32)


def reshape(images: np.ndarray, layout: str) -> np.ndarray:
    """(N, 28, 28) -> (N, 784) for `flat`, (N, 28, 28, 1) for `image`."""
    if layout == "flat":
        return images.reshape(len(images), -1)
    return images[..., np.newaxis]


def encode_labels(labels: np.ndarray, encoding: str) -> np.ndarray:
    """(N,) class ids -> (N, 10) one-hot float32, or (N,) int64 for `sparse`."""
    ids = labels.astype(np.int64)
    if encoding == "onehot":
        return np.eye(N_CLASSES, dtype=np.float32)[ids]
    return ids


def _approximate_mode(counts: np.ndarray, draws: int, rng: np.random.RandomState) -> np.ndarray:
    """How many of `draws` to take from each class: proportional, floored, then the largest remainders
    get one more each (ties broken by `rng`). scikit-learn's `utils.extmath._approximate_mode`."""
    continuous = counts / counts.sum() * draws
    floored = np.floor(continuous)
    need = int(draws - floored.sum())
    if need > 0:
        remainder = continuous - floored
        for value in np.sort(np.unique(remainder))[::-1]:
            (tied,) = np.where(remainder == value)
            take = min(len(tied), need)
            floored[rng.choice(tied, size=take, replace=False)] += 1
            need -= take
            if need == 0:
                break
    return floored.astype(int)


def stratified_val_split(labels: np.ndarray, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Sorted indices (train, val): every class in the same proportion in both, seeded.

    Step for step the algorithm of scikit-learn's `train_test_split(stratify=...)` (its
    StratifiedShuffleSplit), so the split is the one earlier versions of this stage made with
    scikit-learn (tests/test_prepare.py compares the two), without importing scikit-learn, which
    costs about a second per process.
    """
    n_val = math.ceil(val_fraction * len(labels))
    n_train = len(labels) - n_val
    classes, inverse, counts = np.unique(labels, return_inverse=True, return_counts=True)
    if counts.min() < 2 or min(n_train, n_val) < len(classes):
        raise PipelineError(f"cannot split {len(labels):,} images into {n_train:,} train / {n_val:,} validation "
                            f"with every class in both (prepare.val_fraction {val_fraction}, "
                            f"smallest class {counts.min():,} images)")
    by_class = np.split(np.argsort(inverse, kind="stable"), np.cumsum(counts)[:-1])
    rng = np.random.RandomState(seed)
    train_counts = _approximate_mode(counts, n_train, rng)
    val_counts = _approximate_mode(counts - train_counts, n_val, rng)
    train, val = [], []
    for members, n, v in zip(by_class, train_counts, val_counts):
        shuffled = members.take(rng.permutation(len(members)), mode="clip")
        train.append(shuffled[:n])
        val.append(shuffled[n:n + v])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(val))


def prepare_arrays(raw: dict[str, np.ndarray], layout: str, labels: str, val_fraction: float,
                   seed: int, scale: bool | str = True) -> dict[str, np.ndarray]:
    """Raw uint8 arrays -> model-ready train/val/test arrays plus the split indices."""
    train_index, val_index = stratified_val_split(raw["y_train"], val_fraction, seed)
    x_train, x_test = reshape(to_float(raw["x_train"], scale), layout), reshape(to_float(raw["x_test"], scale), layout)
    y_train, y_test = encode_labels(raw["y_train"], labels), encode_labels(raw["y_test"], labels)
    return {
        "x_train": x_train[train_index], "y_train": y_train[train_index],
        "x_val": x_train[val_index], "y_val": y_train[val_index],
        "x_test": x_test, "y_test": y_test,
        "train_index": train_index, "val_index": val_index,  # rows of the raw train split
    }


def choose_encoding(settings: PrepareParams, needs: ModelInput) -> tuple[str, str]:
    """Layout and label encoding: explicit `prepare` settings, or what the model takes (its kind and loss)."""
    layout = settings.layout if settings.layout != "auto" else ("flat" if needs.layout == "flat" else "image")
    labels = settings.labels if settings.labels != "auto" else needs.labels
    return layout, labels
