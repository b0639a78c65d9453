"""Predict with a registered model: on an .npz of 28x28 images, or on PNG/JPEG files and folders.

Images go through one path, whatever the model: photos are made MNIST-like
(`mnist_pipeline.images.mnist_style`), then turned into what the model was trained on, scaled as the
prepare stage scaled them (`prepare.normalize` in the version's record). A VGG16 transfer
head (any entry of kind `vgg16`) gets the resize stage's own function and the features stage's
frozen base, rebuilt from the version's `resize` and `features` params.

A file that cannot be read, whatever it raises, becomes its own error item (one line naming the
file) and the other files go on; `load_npz` refuses an .npz member that declares more bytes than it
holds before numpy allocates them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mnist_pipeline import import_tensorflow
from mnist_pipeline.config import FeaturesParams, ResizeParams, parse_section
from mnist_pipeline.distortions import from_unit
from mnist_pipeline.errors import PipelineError, first_line
from mnist_pipeline.files import load_npz, sha256_file
from mnist_pipeline.images import extract, image_files, mnist_style, read_gray, resize_gray_to_rgb, vgg16_base
from mnist_pipeline.project_files import TRAIN_RECORD

NPZ_KEYS = ("x", "images", "x_test")


@dataclass(frozen=True)
class Item:
    """One input: an image ready for the model (28x28 in [0, 1]) or the reason it could not be read."""

    name: str
    image: np.ndarray | None = None
    error: str | None = None


SCALE_SLACK = 1e-3  # rounding a float image may carry past its scale's ends (clipped back)


def image_scale(image: np.ndarray) -> float | None:
    """What one image's values are divided by to lie in [0, 1]: 1 for a float image in 0..1, 255 for one in
    0..255 (every integer image, unless it passes 255); None when no scale explains its values."""
    low, high = float(image.min()), float(image.max())
    if np.issubdtype(image.dtype, np.integer):
        return 255.0 if low >= 0 and high <= 255 else None
    if low < -SCALE_SLACK:
        return None
    if high <= 1 + SCALE_SLACK:
        return 1.0
    return 255.0 if high <= 255 * (1 + SCALE_SLACK) else None


def npz_items(path: Path) -> list[Item]:
    """(N, 28, 28) images from an .npz, one item each, each image scaled on its own (uint8 or 0..255 values,
    or float 0..1): one odd image never rescales the others, and an image no scale explains is refused."""
    arrays = load_npz(path)
    key = next((k for k in NPZ_KEYS if k in arrays), None)
    if key is None:
        raise PipelineError(f"{path}: no 'x', 'images' or 'x_test' array (found {list(arrays)})")
    images = arrays[key]
    if images.ndim != 3 or images.shape[1:] != (28, 28):
        raise PipelineError(f"{path}: images must be (N, 28, 28), got {images.shape}")
    if not len(images):
        raise PipelineError(f"{path}: '{key}' holds no images")
    if images.dtype == np.bool_ or not np.issubdtype(images.dtype, np.number) or not np.isfinite(images).all():
        raise PipelineError(f"{path}: images must be finite numbers, got {images.dtype}")
    items = []
    for i, image in enumerate(images):
        scale = image_scale(image)
        name = f"{path.name}[{i}]"
        if scale is None:
            items.append(Item(name, error=f"{name}: values from {image.min():g} to {image.max():g} are neither "
                                          f"0..1 nor 0..255"))
        else:
            items.append(Item(name, np.clip(image.astype(np.float32) / scale, 0, 1)))
    return items


def refused(path: Path, exc: BaseException) -> Item:
    """The item of a file that could not be read: a one-line error naming the file, whatever was raised."""
    if isinstance(exc, PipelineError):
        message = str(exc)  # ours: one line, and it may start with the file's name
    elif isinstance(exc, MemoryError):
        message = "too large to load into memory"
    else:
        text = str(exc).strip()
        message = f"unreadable ({type(exc).__name__}: {text.splitlines()[0][:200] if text else 'no detail'})"
    return Item(str(path), error=message if message.startswith(str(path)) else f"{path}: {message}")


def file_items(path: Path) -> list[Item]:
    """Items of one file: every image of an .npz, or the one image of any other file (tried as PNG/JPEG).
    Any failure becomes the file's error item, so one bad file never stops the others."""
    try:
        if not path.is_file():  # a FIFO would block the read for ever; a device or socket is no image either
            raise PipelineError(f"{path}: not a regular file")
        if path.suffix.lower() == ".npz":
            return npz_items(path)
        return [Item(str(path), mnist_style(read_gray(path)))]
    except Exception as exc:  # MemoryError, numpy's and Pillow's own errors: all mean "this file is bad"
        return [refused(path, exc)]


def collect(paths: list[Path]) -> list[Item]:
    """Every input named: .npz files, image files, and every file inside the folders named."""
    items: list[Item] = []
    for path in image_files(paths):
        items += file_items(path)
    return items


def to_model_input(images: np.ndarray, model: Any, params: dict[str, Any], kind: str) -> np.ndarray:
    """float (N, 28, 28) in [0, 1] -> what this model (of catalogue `kind`) was trained on."""
    # [0, 1] -> the scale prepare gave the version's training data (`prepare.normalize`), as the distortions do
    scaled = from_unit(images, params.get("prepare", {}).get("normalize", True), images.shape)
    shape = tuple(model.input_shape)
    if shape[1:] == (784,):
        return scaled.reshape(len(images), 784)
    if shape[1:] == (28, 28, 1):
        return scaled[..., np.newaxis]
    if kind == "vgg16":
        return vgg16_features(images, params)
    raise PipelineError(f"this model takes {shape}: predict supports 28x28, 784 and VGG16-head models")


def vgg16_features(images: np.ndarray, params: dict[str, Any]) -> np.ndarray:
    """The features stage's output for these images: resize stage's function, then the frozen base."""
    import keras

    if "resize" not in params or "features" not in params:
        raise PipelineError("this version's record has no resize/features params: re-register it to predict")
    resize = parse_section(params, "resize", ResizeParams)
    features = parse_section(params, "features", FeaturesParams)
    uint8 = np.round(images * 255).astype(np.uint8)
    rgb = resize_gray_to_rgb(uint8, resize.size, resize.interpolation, resize.batch)
    keras.utils.set_random_seed(features.seed)  # as the features stage: 'none' weights are seeded
    return extract(vgg16_base(features.weights, resize.size), rgb, features.batch)


def load_model(path: Path) -> Any:
    """A registered model, loaded with Keras' safe mode: a model carrying code (a Lambda layer) is refused.
    Loaded without its training state (`compile=False`): predicting needs no optimizer, and the one a backend saved
    may load on no other (Keras' PyTorch backend saves its own Adam class), so a model from any backend loads."""
    import_tensorflow()
    import keras

    try:
        return keras.saving.load_model(path, safe_mode=True, compile=False)
    except Exception as exc:  # Keras raises ValueError for unsafe code, others for a corrupt file
        raise PipelineError(f"{path}: refused to load the model ({first_line(exc, 200)})") from None


def local_record(path: Path) -> dict[str, Any]:
    """What predict needs to know of a model file the train stage wrote (`model/model.keras`), from the train
    record beside it (train.json): how its inputs were scaled, its catalogue kind, its sha256, which is checked
    here so that a changed or swapped file is never loaded. A file without that record is refused."""
    trained_path = path.with_name(TRAIN_RECORD)
    if not path.is_file():
        raise PipelineError(f"{path}: no such model file")
    try:
        trained = json.loads(trained_path.read_text())
    except (OSError, ValueError):
        raise PipelineError(f"{path}: no train record ({trained_path.name}) beside it to say how its inputs were "
                            "made; predict a model the train stage wrote, or a registered version "
                            "(NAME@vN)") from None
    if "prepare" not in trained or not isinstance(trained.get("model_sha256"), str):
        raise PipelineError(f"{trained_path}: written before train recorded the input scale and the model's "
                            "sha256; run `dvc repro train` again")
    if trained["spec"].get("kind") == "vgg16":
        raise PipelineError(f"{path}: a VGG16 head predicts from the features stage's output; register it (a "
                            "deployment run) and predict the version")
    actual = sha256_file(path)
    if actual != trained["model_sha256"]:
        raise PipelineError(f"{path}: sha256 {actual[:12]}... is not the {trained['model_sha256'][:12]}... its train "
                            "record names (the file was changed or swapped); refused to load it")
    return {"params": {"prepare": trained["prepare"]}, "model_spec": trained["spec"], "model": trained["model"]}


def predict(model: Any, record: dict[str, Any], items: list[Item]) -> list[dict[str, Any]]:
    """One row per item: label, probability and top-3 classes, or the item's error. `record` is the
    version's registry record (its params and model spec say how the model's inputs were made)."""
    good = [i for i, item in enumerate(items) if item.error is None]
    probabilities: dict[int, np.ndarray] = {}
    if good:
        kind = record.get("model_spec", {}).get("kind", "")
        x = to_model_input(np.stack([items[i].image for i in good]), model, record.get("params", {}), kind)
        probabilities = dict(zip(good, np.asarray(model.predict(x, verbose=0))))
    rows = []
    for i, item in enumerate(items):
        if item.error is not None:
            rows.append({"file": item.name, "error": item.error})
            continue
        p = probabilities[i]
        rows.append({"file": item.name, "label": int(p.argmax()), "probability": round(float(p.max()), 4),
                     "top3": [{"label": int(c), "probability": round(float(p[c]), 4)} for c in np.argsort(-p)[:3]]})
    return rows
