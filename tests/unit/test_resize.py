"""resize: batched OpenCV resize equals the per-image way, stays uint8."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from mnist_pipeline.images import resize_gray_to_rgb


@pytest.mark.parametrize("batch", [1, 7, 128])
def test_batched_resize_equals_per_image(small_raw, batch):
    images = small_raw["x_train"][:300]
    ours = resize_gray_to_rgb(images, 48, "linear", batch)
    reference = np.stack([cv2.cvtColor(cv2.resize(i, (48, 48)), cv2.COLOR_GRAY2RGB) for i in images])
    assert ours.dtype == np.uint8 and ours.shape == (300, 48, 48, 3)
    assert np.array_equal(ours, reference)


def test_other_sizes_and_interpolations(small_raw):
    out = resize_gray_to_rgb(small_raw["x_test"][:5], 32, "area")
    assert out.shape == (5, 32, 32, 3)
    assert np.array_equal(out[..., 0], out[..., 2])  # gray copied to every channel
