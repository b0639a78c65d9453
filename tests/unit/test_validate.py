"""The validate stage's checks, on real images with one defect each."""

from __future__ import annotations

import numpy as np
import pytest

from mnist_pipeline.config import ValidateParams
from mnist_pipeline.data.validation import validate_arrays
from mnist_pipeline.errors import PipelineError

PARAMS = ValidateParams()


def fails(arrays, match: str, params: ValidateParams = PARAMS) -> str:
    with pytest.raises(PipelineError, match=match) as caught:
        validate_arrays(arrays, params)
    message = str(caught.value)
    assert "\n" not in message  # one line
    return message


def test_real_sample_passes(mnist_sample):
    summary = validate_arrays(mnist_sample, PARAMS)
    assert summary["splits"]["test"]["class_counts"] == [100] * 10
    assert summary["duplicates"]["shared_train_test"] == 0
    assert "labels in 0..9" in summary["checks"]


def test_full_fashion_mnist_passes(fashion):
    summary = validate_arrays(fashion, PARAMS)
    assert summary["splits"]["train"]["n_images"] == 60000


def test_labels_out_of_range_name_indices(small_raw):
    labels = small_raw["y_train"].astype(np.int64)
    labels[[3, 40]] = [10, -1]
    message = fails({**small_raw, "y_train": labels}, "labels in 0..9")
    assert "[train]" in message and "indices [3, 40]" in message and "labels [10, -1]" in message


def test_nan_in_float_images(small_raw):
    images = small_raw["x_test"].astype(np.float32)
    images[7, 3, 3] = np.nan
    message = fails({**small_raw, "x_test": images}, "no NaN pixels")
    assert "indices [7]" in message and "images are uint8" in message


def test_wrong_dtype(small_raw):
    fails({**small_raw, "x_train": small_raw["x_train"].astype(np.int32)}, "images dtype is int32")


def test_wrong_shape(small_raw):
    fails({**small_raw, "x_train": small_raw["x_train"].reshape(600, 784)}, "image shape is 784")


def test_pixels_above_255(small_raw):
    images = small_raw["x_train"].astype(np.float32)
    images[11, 0, 0] = 300.0
    fails({**small_raw, "x_train": images}, r"pixels <= 255.*indices \[11\]")


def test_count_mismatch(small_raw):
    fails({**small_raw, "y_test": small_raw["y_test"][:-1]}, "200 images vs 199 labels")


def test_empty_split(small_raw):
    empty = {**small_raw, "x_test": small_raw["x_test"][:0], "y_test": small_raw["y_test"][:0]}
    fails(empty, r"\[test\] check 'split is not empty'")


def test_missing_class(small_raw):
    keep = small_raw["y_test"] != 4
    message = fails({**small_raw, "x_test": small_raw["x_test"][keep], "y_test": small_raw["y_test"][keep]},
                    "all ten classes present")
    assert "missing classes [4]" in message


def test_class_imbalance(small_raw):
    keep = (small_raw["y_train"] != 2) | (np.arange(600) % 10 == 0)  # keep a tenth of the 2s
    fails({**small_raw, "x_train": small_raw["x_train"][keep], "y_train": small_raw["y_train"][keep]},
          "class balance")


def test_shared_duplicates_reported_then_failed(small_raw):
    leaked = small_raw["x_test"].copy()
    leaked[:2] = small_raw["x_train"][:2]  # 1% of 200 test images
    summary = validate_arrays({**small_raw, "x_test": leaked}, PARAMS)
    assert summary["duplicates"]["shared_train_test"] == 2
    leaked[:10] = small_raw["x_train"][:10]
    message = fails({**small_raw, "x_test": leaked}, "train/test duplicates")
    assert "10 test images also in train" in message


def test_float_labels(small_raw):
    fails({**small_raw, "y_train": small_raw["y_train"].astype(np.float64)}, "labels are integers")
