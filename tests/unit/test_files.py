"""The edge: deterministic, atomic writes and safe loads."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mnist_pipeline.errors import PipelineError
from mnist_pipeline.files import load_npz, save_npz, sha256_file, write_json


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


def test_json_is_written_atomically(tmp_path: Path, monkeypatch):
    """A write that fails after the new content is on disk (here: at the fsync) leaves the old file whole
    and no temporary file; and a reader running beside a writer only ever sees a complete file."""
    import json
    import os
    import subprocess
    import sys

    target = tmp_path / "x.json"
    write_json(target, {"b": 1, "a": 2})
    assert target.read_text().startswith('{\n  "a": 2')  # sorted, indented

    def broken_fsync(fd: int) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(os, "fsync", broken_fsync)
    with pytest.raises(OSError, match="Input/output error"):
        write_json(target, {"a": "new", "big": list(range(1000))})
    monkeypatch.undo()
    assert json.loads(target.read_text()) == {"a": 2, "b": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["x.json"]

    writer = ("import sys\nfrom pathlib import Path\nfrom mnist_pipeline.files import write_json\n"
              "for i in range(300):\n    write_json(Path(sys.argv[1]), {'i': i, 'pad': 'x' * 200_000})\n")
    process = subprocess.Popen([sys.executable, "-c", writer, str(target)])
    reads = 0
    while process.poll() is None or reads == 0:
        record = json.loads(target.read_text())  # a torn file would not parse
        assert set(record) in ({"a", "b"}, {"i", "pad"})
        reads += 1
    assert process.returncode == 0 and reads > 10


def test_load_npz_refuses_pickled_objects(tmp_path: Path):
    np.savez(tmp_path / "obj.npz", x_train=np.array([{"evil": 1}], dtype=object))
    with pytest.raises(PipelineError, match="pickled Python objects; refused"):
        load_npz(tmp_path / "obj.npz")


def test_load_npz_names_missing_keys(tmp_path: Path):
    np.savez(tmp_path / "k.npz", images=np.zeros((2, 28, 28), np.uint8))
    with pytest.raises(PipelineError, match=r"missing keys \['x_train'\]"):
        load_npz(tmp_path / "k.npz", ("x_train",))


@pytest.mark.bad_input
def test_a_corrupt_record_is_one_line_naming_it(tmp_path: Path):
    """A flipped byte in a JSON record (restored from a corrupt DVC cache) crashed evaluate with a JSONDecodeError
    traceback; read_json says which file and what to run."""
    from mnist_pipeline.files import read_json

    for name, content in (("flipped.json", b'{"accuracy": 0.9\x01}'), ("binary.json", b"\xff\xfe\x00"),
                          ("list.json", b"[1, 2]")):
        (tmp_path / name).write_bytes(content)
        with pytest.raises(PipelineError, match=f"{name}: corrupt record") as raised:
            read_json(tmp_path / name)
        assert "\n" not in str(raised.value)
