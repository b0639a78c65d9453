"""predict on real images: photos made from held-out digits, bad files, unsafe models."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from mnist_pipeline import registry
from mnist_pipeline.errors import PipelineError
from mnist_pipeline.images import mnist_style, read_gray
from tests.harness import stage_env

GATE = registry.Gate(min_accuracy=0.0, tolerance=1.0)
N_PHOTOS = 120


def photo(digit: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A held-out MNIST digit as if photographed: dark ink on light, uneven paper, bigger, off-centre."""
    import cv2

    height, width = int(rng.integers(60, 240)), int(rng.integers(60, 240))
    paper = rng.uniform(170, 245) + rng.normal(0, 4, (height, width)) + np.linspace(0, 15, width)[np.newaxis]
    size = int(rng.integers(28, min(height, width) - 4))  # the 28x28 digit field, scaled up
    ink = cv2.resize(digit, (size, size), interpolation=cv2.INTER_CUBIC).astype(np.float32) / 255
    top, left = int(rng.integers(0, height - size + 1)), int(rng.integers(0, width - size + 1))
    darkness = rng.uniform(0.7, 1.0)
    region = paper[top:top + size, left:left + size]
    paper[top:top + size, left:left + size] = region * (1 - darkness * np.clip(ink, 0, 1))
    return np.clip(paper, 0, 255).astype(np.uint8)


def save(image: np.ndarray, path: Path, rng: np.random.Generator) -> Path:
    from PIL import Image

    if path.suffix == ".jpg":
        Image.fromarray(image).save(path, quality=int(rng.integers(40, 90)))
    else:
        Image.fromarray(image).convert("RGB").save(path)  # colour PNG, as a screenshot would be
    return path


@pytest.fixture(scope="module")
def trained(mnist_sample, tmp_path_factory) -> tuple[Path, float]:
    """The catalogue CNN trained briefly on the MNIST sample, registered; its clean accuracy on N_PHOTOS test digits."""
    import keras
    import yaml

    from mnist_pipeline.catalogue import model_spec
    from mnist_pipeline.models import build_model
    from tests.harness import ROOT

    folder = tmp_path_factory.mktemp("registry")
    keras.utils.set_random_seed(0)
    spec = model_spec(yaml.safe_load((ROOT / "params.yaml").read_text())["models"], "cnn")
    model = build_model(spec, (28, 28, 1))  # the catalogue's builder, compiled as the train stage does
    x = mnist_sample["x_train"][..., np.newaxis] / 255
    model.fit(x, keras.utils.to_categorical(mnist_sample["y_train"], 10), epochs=3, batch_size=64, verbose=0)
    model.save(folder / "model.keras")
    record = {"metrics": {"accuracy": 0.0}, "params": {"prepare": {"normalize": True}, "train": {"model": "cnn"}}}
    registry.register(folder / "reg", "cnn", folder / "model.keras", record, GATE)
    clean = model.predict(mnist_sample["x_test"][:N_PHOTOS, ..., np.newaxis] / 255, verbose=0).argmax(1)
    return folder / "reg", float((clean == mnist_sample["y_test"][:N_PHOTOS]).mean())


def cli(root: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mnist_cli", "predict", "--root", str(root), *args],
                          capture_output=True, text=True, env=stage_env(), timeout=600)


def test_mnist_style_undoes_the_photo(mnist_sample):
    rng = np.random.default_rng(1)
    digit = mnist_sample["x_test"][0]
    got = mnist_style(photo(digit, rng))
    assert got.shape == (28, 28) and got.dtype == np.float32 and 0 <= got.min() and got.max() == 1
    assert np.corrcoef(got.ravel(), digit.ravel() / 255)[0, 1] > 0.8
    rows, cols = np.nonzero(got > 0.25)
    assert rows.max() - rows.min() < 21 and cols.max() - cols.min() < 21  # fitted into 20x20


@pytest.mark.bad_input
def test_blank_image_is_refused():
    with pytest.raises(PipelineError, match="no ink"):
        mnist_style(np.full((50, 50), 230, dtype=np.uint8))


def test_photos_of_held_out_digits_score_near_clean_accuracy(trained, mnist_sample, tmp_path: Path):
    root, clean = trained
    rng = np.random.default_rng(7)
    folder = tmp_path / "photos"
    folder.mkdir()
    for i in range(N_PHOTOS):
        save(photo(mnist_sample["x_test"][i], rng), folder / f"{i:03d}.{'jpg' if i % 2 else 'png'}", rng)
    done = cli(root, "cnn@champion", str(folder), "--json")
    assert done.returncode == 0, done.stderr
    rows = json.loads(done.stdout)["predictions"]
    labels = np.array([row["label"] for row in rows])
    accuracy = float((labels == mnist_sample["y_test"][:N_PHOTOS]).mean())
    print(f"clean test accuracy {clean:.3f}, photos {accuracy:.3f} ({N_PHOTOS} images)")
    assert clean > 0.85 and accuracy >= clean - 0.06
    assert all(len(row["top3"]) == 3 and row["top3"][0]["label"] == row["label"] for row in rows)
    table = cli(root, "cnn@champion", str(folder / "000.png"), str(folder / "001.jpg"))
    assert table.returncode == 0 and "2 predicted, 0 refused" in table.stdout and "001.jpg" in table.stdout


def bad_files(folder: Path) -> dict[str, str]:
    """Files that must be refused, and the words their error must contain."""
    from PIL import Image

    folder.mkdir()
    (folder / "notes.txt").write_text("not an image\n")
    (folder / "fake.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 50)
    buffer = folder / "whole.png"
    Image.fromarray(np.full((64, 64), 255, dtype=np.uint8)).save(buffer)
    (folder / "truncated.png").write_bytes(buffer.read_bytes()[:60])
    buffer.unlink()
    Image.new("L", (7000, 7000), 255).save(folder / "bomb.png")  # 49 MP in a few KiB
    (folder / "huge.jpg").write_bytes(b"\xff\xd8\xff" + bytes(21 * 2**20))
    Image.new("L", (40, 40), 240).save(folder / "blank.png")
    Image.new("L", (40, 40), 0).save(folder / "bitmap.bmp")
    return {"notes.txt": "not an image", "fake.png": "unreadable", "truncated.png": "unreadable",
            "bomb.png": "decompression bomb", "huge.jpg": "over the limit", "blank.png": "no ink",
            "bitmap.bmp": "only PNG and JPEG"}


@pytest.mark.bad_input
def test_bad_files_are_refused_one_by_one_and_the_rest_go_on(trained, mnist_sample, tmp_path: Path):
    root, _ = trained
    folder = tmp_path / "mixed"
    expected = bad_files(folder)
    save(photo(mnist_sample["x_test"][1], np.random.default_rng(3)), folder / "good.png", np.random.default_rng(3))
    assert (folder / "bomb.png").stat().st_size < 200_000
    done = cli(root, "cnn@v1", str(folder), "--json")
    assert done.returncode == 1 and "Traceback" not in done.stderr
    rows = {Path(row["file"]).name: row for row in json.loads(done.stdout)["predictions"]}
    assert rows["good.png"]["label"] == int(mnist_sample["y_test"][1])
    errors = done.stderr.strip().splitlines()
    assert len(errors) == len(expected)
    for name, words in expected.items():
        assert words in rows[name]["error"] and name in rows[name]["error"]
        assert any(line.startswith("error: ") and name in line and words in line for line in errors)


@pytest.mark.bad_input
def test_single_bad_file_and_missing_path(trained, tmp_path: Path):
    root, _ = trained
    (tmp_path / "x.png").write_text("hello")
    done = cli(root, "cnn@v1", str(tmp_path / "x.png"))
    expected = f"error: {tmp_path / 'x.png'}: not an image (PNG or JPEG expected)"
    assert done.returncode == 1 and done.stderr.strip() == expected
    missing = cli(root, "cnn@v1", str(tmp_path / "nope"))
    assert missing.returncode == 1 and missing.stderr.strip() == f"error: {tmp_path / 'nope'}: no such file or folder"


def test_read_gray_composites_transparency_on_white(tmp_path: Path):
    from PIL import Image

    rgba = np.zeros((30, 30, 4), dtype=np.uint8)  # fully transparent black = white paper
    rgba[10:20, 14:16] = (0, 0, 0, 255)  # an opaque black stroke
    Image.fromarray(rgba, "RGBA").save(tmp_path / "stroke.png")
    gray = read_gray(tmp_path / "stroke.png")
    assert gray[0, 0] == 255 and gray[15, 15] == 0


@pytest.mark.bad_input
def test_model_carrying_code_is_refused(tmp_path: Path, mnist_sample):
    """safe_mode: a .keras file with a Lambda layer (arbitrary Python) is never loaded."""
    import keras

    marker = tmp_path / "pwned"
    model = keras.Sequential([keras.Input((784,)),
                              keras.layers.Lambda(eval(f"lambda x: x + len(str(open({str(marker)!r}, 'w')))")),
                              keras.layers.Dense(10, activation="softmax")])
    model.save(tmp_path / "evil.keras")
    marker.unlink()  # building the model ran the lambda once: the marker shows whether it runs again
    root = tmp_path / "reg"
    registry.register(root, "evil", tmp_path / "evil.keras", {"metrics": {"accuracy": 0.5}}, GATE)
    np.savez(tmp_path / "digits.npz", x=mnist_sample["x_test"][:3])
    done = cli(root, "evil@v1", str(tmp_path / "digits.npz"))
    assert done.returncode == 1 and "refused to load the model" in done.stderr and "Lambda" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and not marker.exists()


def test_vgg16_head_predicts_through_the_resize_and_features_stages_code(mnist_sample, tmp_path: Path):
    """The 48x48 RGB path: same pixels and features as the resize and features stages make. Any entry of kind
    vgg16 takes it, whatever its name (here a sweep variant's; predict used to know only 'vgg16_transfer')."""
    import keras

    from mnist_pipeline.images import extract, resize_gray_to_rgb, vgg16_base

    params = {"resize": {"size": 48, "interpolation": "linear"}, "features": {"weights": "none", "seed": 5},
              "prepare": {"normalize": True}, "train": {"model": "vgg16_transfer--grid-do0p3"}}
    images = mnist_sample["x_test"][:40]
    keras.utils.set_random_seed(5)
    stage_features = extract(vgg16_base("none", 48), resize_gray_to_rgb(images, 48), 256)
    keras.utils.set_random_seed(0)
    head = keras.Sequential([keras.Input((stage_features.shape[1],)), keras.layers.Dense(10, activation="softmax")])
    head.save(tmp_path / "head.keras")
    registry.register(tmp_path / "reg", "vgg16_transfer--grid-do0p3", tmp_path / "head.keras",
                      {"metrics": {"accuracy": 0.5}, "params": params,
                       "model_spec": {"kind": "vgg16", "loss": "categorical_crossentropy"}}, GATE)
    np.savez(tmp_path / "digits.npz", x=images)
    done = cli(tmp_path / "reg", "vgg16_transfer--grid-do0p3@v1", str(tmp_path / "digits.npz"), "--json")
    assert done.returncode == 0, done.stderr
    rows = json.loads(done.stdout)["predictions"]
    expected = head.predict(stage_features, verbose=0)
    assert [row["label"] for row in rows] == expected.argmax(1).tolist()
    assert np.allclose([row["probability"] for row in rows], expected.max(1), atol=2e-4)


def test_a_model_file_the_train_stage_wrote_predicts_like_its_registered_version(trained, mnist_sample, tmp_path):
    """`mnist predict model/model.keras ...`: the same predictions as the registered version of the same file,
    from the train record beside it (its input scale, its sha256); a file changed after training, one without its
    record and a VGG16 head are each refused in one line."""
    import shutil

    from mnist_pipeline.files import sha256_file
    from mnist_pipeline.training import reproducible_zip

    root, _ = trained
    model = tmp_path / "model" / "model.keras"
    model.parent.mkdir()
    shutil.copyfile(root / "cnn" / "v1" / "model.keras", model)
    spec = registry.read_record(root, "cnn", 1).get("model_spec") or {"kind": "cnn"}
    record = {"model": "cnn", "spec": spec, "model_sha256": sha256_file(model), "prepare": {"normalize": True}}
    (model.parent / "train.json").write_text(json.dumps(record))
    np.savez(tmp_path / "digits.npz", x=mnist_sample["x_test"][:20])
    local, registered = (cli(root, str(model), str(tmp_path / "digits.npz"), "--json"),
                         cli(root, "cnn@v1", str(tmp_path / "digits.npz"), "--json"))
    assert local.returncode == 0 and registered.returncode == 0, local.stderr + registered.stderr
    assert json.loads(local.stdout)["model"] == str(model)
    assert json.loads(local.stdout)["predictions"] == json.loads(registered.stdout)["predictions"]

    reproducible_zip(model, tmp_path / "changed.keras")  # the same weights, other bytes
    shutil.copyfile(tmp_path / "changed.keras", model)
    changed = cli(root, str(model), str(tmp_path / "digits.npz"))
    assert changed.returncode == 1 and changed.stderr.count("\n") == 1 and "is not the" in changed.stderr
    (model.parent / "train.json").write_text(json.dumps({**record, "spec": {"kind": "vgg16"},
                                                         "model_sha256": sha256_file(model)}))
    vgg = cli(root, str(model), str(tmp_path / "digits.npz"))
    assert vgg.returncode == 1 and "VGG16 head" in vgg.stderr
    (model.parent / "train.json").unlink()
    alone = cli(root, str(model), str(tmp_path / "digits.npz"))
    assert alone.returncode == 1 and alone.stderr.count("\n") == 1 and "no train record" in alone.stderr


@pytest.mark.bad_input
def test_each_npz_image_is_scaled_on_its_own_and_values_no_scale_explains_are_refused(trained, mnist_sample,
                                                                                      tmp_path: Path):
    """`.npz` images used to be scaled per file: one value at 1.0001 in one image divided every image of the file by
    255, and -1e30 was predicted with full confidence. Each image now takes its own scale (0..1 or 0..255), an
    image no scale explains is refused on its own row, a file of no images says so, and a FIFO is no file."""
    import os

    root, _ = trained
    clean = (mnist_sample["x_test"][:4] / 255).astype(np.float32)
    alone = json.loads(cli(root, "cnn@v1", str(save_npz(tmp_path / "clean.npz", clean)), "--json").stdout)
    odd = clean.copy()
    odd[1, 0, 0] = 1.0001  # rounding past 1 in one image
    odd[2] *= 255  # one image on the 0..255 scale
    odd[3, 5, 5] = -1e30
    done = cli(root, "cnn@v1", str(save_npz(tmp_path / "odd.npz", odd)), "--json")
    assert done.returncode == 1 and "Traceback" not in done.stderr
    rows = json.loads(done.stdout)["predictions"]
    for row, clean_row in zip(rows[:3], alone["predictions"][:3], strict=True):
        assert row["label"] == clean_row["label"] and row["probability"] == pytest.approx(clean_row["probability"],
                                                                                         abs=1e-4)
    assert "odd.npz[3]: values from -1e+30 to 1 are neither 0..1 nor 0..255" in rows[3]["error"]
    assert done.stderr.strip() == f"error: {rows[3]['error']}"

    empty = cli(root, "cnn@v1", str(save_npz(tmp_path / "empty.npz", clean[:0])))
    assert empty.returncode == 1 and "empty.npz: 'x' holds no images" in empty.stderr
    os.mkfifo(tmp_path / "pipe.npz")
    piped = cli(root, "cnn@v1", str(tmp_path / "pipe.npz"))
    assert piped.returncode == 1 and piped.stderr.strip() == f"error: {tmp_path / 'pipe.npz'}: not a regular file"


def save_npz(path: Path, images: np.ndarray) -> Path:
    np.savez(path, x=images)
    return path
