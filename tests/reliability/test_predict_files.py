"""`mnist predict` on hostile and unusual files: a swapped model, an .npz that declares a huge array,
16-bit PNG scans, phones' MPO JPEGs, file names with a newline.

The files are made here and are small on disk; the model is a tiny untrained one (labels are
compared between equivalent inputs, not with the truth).
"""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from mnist_pipeline import predict as predicting
from mnist_pipeline import registry
from mnist_pipeline.images import mnist_style, read_gray
from tests.harness import stage_env

GATE = registry.Gate(min_accuracy=0.0, tolerance=1.0)


def tiny_model(path: Path, seed: int) -> Path:
    """A real, tiny Keras model file (784 inputs, 10 classes), untrained."""
    import keras

    keras.utils.set_random_seed(seed)
    keras.Sequential([keras.Input((784,)), keras.layers.Dense(10, activation="softmax")]).save(path)
    return path


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    """A registry holding `m@v1`, a tiny model (never changed by the tests: copy it to damage it)."""
    folder = tmp_path_factory.mktemp("tiny")
    record = {"metrics": {"accuracy": 0.5}, "params": {"prepare": {"normalize": True}}}
    registry.register(folder / "reg", "m", tiny_model(folder / "model.keras", 0), record, GATE)
    return folder / "reg"


def digit(paper: int = 230, ink: int = 40) -> np.ndarray:
    """uint8 (40, 40): a '7' in `ink` on `paper`, as a scan of a written digit."""
    image = np.full((40, 40), paper, dtype=np.uint8)
    image[8:12, 10:30] = ink
    for row in range(12, 34):
        col = 28 - (row - 12) // 2
        image[row, col - 2:col + 2] = ink
    return image


def save_png(image: np.ndarray, path: Path) -> Path:
    from PIL import Image

    Image.fromarray(image).save(path)
    return path


def predict(root: Path, *args: str) -> subprocess.CompletedProcess:
    """`python -m mnist_cli predict --root ROOT ARGS`."""
    return subprocess.run([sys.executable, "-m", "mnist_cli", "predict", "--root", str(root), *args],
                          capture_output=True, text=True, env=stage_env(), timeout=600)


def rows_of(done: subprocess.CompletedProcess) -> list[dict]:
    assert "Traceback" not in done.stderr, done.stderr
    return json.loads(done.stdout)["predictions"]


@pytest.mark.bad_input
def test_swapped_model_is_refused_before_it_is_loaded(tiny: Path, tmp_path: Path):
    root = tmp_path / "reg"
    shutil.copytree(tiny, root)
    tiny_model(root / "m" / "v1" / "model.keras", 1)  # a valid model, but not the registered one
    png = save_png(digit(), tmp_path / "seven.png")
    done = predict(root, "m@v1", str(png))
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 1 and len(lines) == 1 and done.stdout == "", done.stderr
    assert lines[0].startswith("error: ") and str(root / "m" / "v1" / "model.keras") in lines[0]
    assert "sha256" in lines[0]
    checked = subprocess.run([sys.executable, "-m", "mnist_cli", "registry", "verify", "--root", str(root)],
                             capture_output=True, text=True, env=stage_env())
    assert checked.returncode == 1 and "m@v1" in checked.stderr and "sha256" in checked.stderr
    assert predict(tiny, "m@v1", str(png)).returncode == 0  # the intact registry still serves


def huge_npz(path: Path, shape: tuple[int, ...], data: bytes) -> Path:
    """An .npz whose x.npy header declares `shape` uint8 but holds only `data`."""
    member = io.BytesIO()
    np.lib.format.write_array_header_1_0(member, {"descr": "|u1", "fortran_order": False, "shape": shape})
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("x.npy", member.getvalue() + data)
    return path


@pytest.mark.bad_input
def test_npz_declaring_a_huge_array_is_refused_and_the_rest_go_on(tiny: Path, tmp_path: Path):
    folder = tmp_path / "inputs"
    folder.mkdir()
    save_png(digit(), folder / "good.png")
    huge_npz(folder / "huge.npz", (10**9, 28, 28), b"\x00" * 16)  # 784 GB declared, 16 bytes held
    huge_npz(folder / "short.npz", (2, 28, 28), b"\x00" * 100)
    np.savez(folder / "fine.npz", x=np.zeros((2, 28, 28), dtype=np.uint8))
    assert (folder / "huge.npz").stat().st_size < 1000
    done = predict(tiny, "m@v1", str(folder), "--json")
    assert done.returncode == 1, done.stderr
    rows = {Path(row["file"]).name: row for row in rows_of(done)}
    assert 0 <= rows["good.png"]["label"] <= 9 and "label" in rows["fine.npz[1]"]
    assert "declares" in rows["huge.npz"]["error"] and "declares" in rows["short.npz"]["error"]
    errors = done.stderr.strip().splitlines()
    assert len(errors) == 2 and all(line.startswith("error: ") for line in errors), done.stderr
    assert "huge.npz" in errors[0] and "short.npz" in errors[1]


@pytest.mark.bad_input
@pytest.mark.parametrize("failure", [MemoryError(), RuntimeError("boom\nsecond line"), KeyError("x")])
def test_any_failure_reading_a_file_becomes_its_error_row(tmp_path: Path, monkeypatch, failure: Exception):
    def fail(*args, **kwargs):
        raise failure

    monkeypatch.setattr(predicting, "load_npz", fail)
    monkeypatch.setattr(predicting, "read_gray", fail)
    np.savez(tmp_path / "a.npz", x=np.zeros((1, 28, 28), dtype=np.uint8))
    save_png(digit(), tmp_path / "b.png")
    items = predicting.collect([tmp_path])
    assert [Path(item.name).name for item in items] == ["a.npz", "b.png"]
    for item in items:
        assert item.image is None and item.error.startswith(item.name) and "\n" not in item.error


def test_16_bit_png_scan_reads_as_its_8_bit_equivalent(tiny: Path, tmp_path: Path):
    from PIL import Image

    gray = digit(paper=230, ink=171)  # a grey scan: pale ink, little contrast
    eight = save_png(gray, tmp_path / "eight.png")
    sixteen = save_png(gray.astype(np.uint16) * 257, tmp_path / "sixteen.png")
    with Image.open(sixteen) as image:
        assert image.mode.startswith("I")  # really a 16-bit grayscale PNG
    assert np.array_equal(read_gray(sixteen), read_gray(eight))
    assert np.array_equal(mnist_style(read_gray(sixteen)), mnist_style(read_gray(eight)))
    done = predict(tiny, "m@v1", str(eight), str(sixteen), "--json")
    assert done.returncode == 0, done.stderr
    first, second = rows_of(done)
    assert (first["label"], first["probability"]) == (second["label"], second["probability"])


def test_mpo_from_a_phone_reads_as_its_first_frame(tiny: Path, tmp_path: Path):
    from PIL import Image

    first, second = Image.fromarray(digit()), Image.fromarray(255 - digit(ink=200))
    mpo, jpeg = tmp_path / "phone.jpg", tmp_path / "plain.jpg"
    first.save(mpo, format="MPO", save_all=True, append_images=[second])
    first.save(jpeg, format="JPEG")
    with Image.open(mpo) as image:
        assert image.format == "MPO" and image.n_frames == 2
    assert np.abs(read_gray(mpo).astype(int) - read_gray(jpeg)).max() <= 2
    assert np.allclose(mnist_style(read_gray(mpo)), mnist_style(read_gray(jpeg)), atol=0.02)
    done = predict(tiny, "m@v1", str(mpo), str(jpeg), "--json")
    assert done.returncode == 0, done.stderr
    phone, plain = rows_of(done)
    assert phone["label"] == plain["label"] and abs(phone["probability"] - plain["probability"]) < 0.01


@pytest.mark.bad_input
def test_newline_in_a_file_name_keeps_each_row_and_error_on_one_line(tiny: Path, tmp_path: Path):
    folder = tmp_path / "odd"
    folder.mkdir()
    save_png(digit(), folder / "good\nseven.png")
    (folder / "bad\nname.png").write_text("not an image\n")
    done = predict(tiny, "m@v1", str(folder))
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
    table = done.stdout.strip().splitlines()
    assert len(table) == 4, done.stdout  # summary, header, two rows
    assert "bad\\nname.png" in table[2] and "good\\nseven.png" in table[3]
    errors = done.stderr.strip().splitlines()
    assert len(errors) == 1 and errors[0].startswith("error: ") and "bad\\nname.png" in errors[0], done.stderr
    as_json = rows_of(predict(tiny, "m@v1", str(folder), "--json"))
    assert [Path(row["file"]).name for row in as_json] == ["bad\nname.png", "good\nseven.png"]  # JSON keeps names
    missing = predict(tiny, "m@v1", str(tmp_path / "no\nsuch"))
    assert missing.returncode == 1 and len(missing.stderr.strip().splitlines()) == 1, missing.stderr
