"""The edge: deterministic, atomic writes and safe loads."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tasks.errors import PipelineError
from tasks.files import load_npz, save_npz, sha256_file, write_json


def test_npz_bytes_are_deterministic(tmp_path: Path, small_raw):
    save_npz(tmp_path / "a.npz", small_raw)
    save_npz(tmp_path / "b.npz", small_raw)
    assert sha256_file(tmp_path / "a.npz") == sha256_file(tmp_path / "b.npz")
    loaded = load_npz(tmp_path / "a.npz")
    assert all(np.array_equal(loaded[k], small_raw[k]) for k in small_raw)


def test_failed_write_keeps_the_old_file(tmp_path: Path, small_raw):
    target = tmp_path / "out.npz"
    save_npz(target, small_raw)
    before = sha256_file(target)
    with pytest.raises(ValueError):
        save_npz(target, {"ok": np.zeros(3), "bad": np.array([{"a": 1}], dtype=object)})  # pickling refused
    assert sha256_file(target) == before
    assert [p.name for p in tmp_path.iterdir()] == ["out.npz"]  # no temporary leftovers


def test_json_is_written_atomically(tmp_path: Path):
    write_json(tmp_path / "x.json", {"b": 1, "a": 2})
    assert (tmp_path / "x.json").read_text().startswith('{\n  "a": 2')


def test_load_npz_refuses_pickled_objects(tmp_path: Path):
    np.savez(tmp_path / "obj.npz", x_train=np.array([{"evil": 1}], dtype=object))
    with pytest.raises(PipelineError, match="pickled Python objects; refused"):
        load_npz(tmp_path / "obj.npz")


def test_load_npz_names_missing_keys(tmp_path: Path):
    np.savez(tmp_path / "k.npz", images=np.zeros((2, 28, 28), np.uint8))
    with pytest.raises(PipelineError, match=r"missing keys \['x_train'\]"):
        load_npz(tmp_path / "k.npz", ("x_train",))
