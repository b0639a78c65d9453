"""features: run the frozen VGG16 base once over the resized images and cache its outputs.

The tutorial runs the frozen base over every image in every epoch; its output never
changes, so we compute it once here and the train stage fits only the small head on
(N, 512) features: seconds per epoch instead of minutes. For models that do not use
VGG16 the stage only writes `features.json` saying so.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from tasks import import_tensorflow
from tasks.catalogue import model_input
from tasks.config import FeaturesParams, TrainModelParams, load_params, parse_section
from tasks.errors import PipelineError
from tasks.files import load_npz, save_npz, write_json
from tasks.stage import exit_now, log, run_stage

FEATURES_FILE = "features.npz"
META_FILE = "features.json"
VGG16_NOTOP = "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5"
VGG16_URL = "https://storage.googleapis.com/tensorflow/keras-applications/vgg16/" + VGG16_NOTOP


def keras_models_dir() -> Path:
    """Where Keras caches downloaded weights (`$KERAS_HOME/models`, default ~/.keras/models)."""
    import os

    return Path(os.environ.get("KERAS_HOME", Path.home() / ".keras")) / "models"


def weights_error(detail: str) -> PipelineError:
    return PipelineError(
        f"VGG16 ImageNet weights unavailable ({detail}): put {VGG16_NOTOP} from {VGG16_URL} "
        f"into {keras_models_dir()}/, or set features.weights to a local .h5 path or 'none' (random weights)"
    )


def vgg16_base(weights: str, size: int) -> Any:
    """The frozen VGG16 convolutional base for (size, size, 3) inputs."""
    import keras

    if weights not in ("imagenet", "none") and not Path(weights).is_file():
        raise weights_error(f"file not found: {weights}")
    try:
        base = keras.applications.VGG16(include_top=False, input_shape=(size, size, 3),
                                        weights=None if weights == "none" else weights)
    except Exception as exc:  # Keras' download raises several kinds; all mean "no weights"
        if weights == "imagenet":
            raise weights_error(str(exc).splitlines()[0][:200]) from None
        raise
    base.trainable = False
    return base


def extract(base: Any, images: np.ndarray, batch: int) -> np.ndarray:
    """uint8 (N, S, S, 3) -> float32 (N, 512): the base's output, flattened."""
    import keras

    outputs = []
    for start in range(0, len(images), batch):
        chunk = keras.applications.vgg16.preprocess_input(images[start:start + batch].astype(np.float32))
        outputs.append(np.asarray(base(chunk, training=False)).reshape(len(chunk), -1))
    return np.concatenate(outputs).astype(np.float32)


def main() -> None:
    """Read `features` (and `train.model`); write `features.json`, plus `features.npz` for VGG16."""
    params_file = load_params()
    params = parse_section(params_file, "features", FeaturesParams)
    model = parse_section(params_file, "train", TrainModelParams).model
    out_dir = Path(params.out_dir)
    record: dict[str, Any] = {"model": model, "weights": params.weights}
    if model_input(model).layout != "rgb":
        (out_dir / FEATURES_FILE).unlink(missing_ok=True)
        write_json(out_dir / META_FILE, {**record, "skipped": True, "reason": f"{model} does not use VGG16"})
        log(f"features: skipped, {model} does not use VGG16")
        return
    import_tensorflow()
    import keras

    keras.utils.set_random_seed(params.seed)  # 'none' weights are random: seeded
    resized = load_npz(Path(params.resized_dir) / "resized.npz", ("x_train", "x_test"))
    base = vgg16_base(params.weights, resized["x_train"].shape[1])
    arrays = {}
    for split in ("train", "test"):
        log(f"features: VGG16 over {len(resized[f'x_{split}']):,} {split} images ...")
        arrays[f"x_{split}"] = extract(base, resized[f"x_{split}"], params.batch)
    save_npz(out_dir / FEATURES_FILE, arrays)
    write_json(out_dir / META_FILE, {**record, "skipped": False, "dim": int(arrays["x_train"].shape[1]),
                                     "counts": {k: len(v) for k, v in arrays.items()}})
    log(f"features: {arrays['x_train'].shape[1]}-d features cached for "
        f"{sum(len(v) for v in arrays.values()):,} images (weights: {params.weights})")


if __name__ == "__main__":
    exit_now(run_stage("features", main))  # skips TensorFlow's second-long shutdown
