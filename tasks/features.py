"""features: run the frozen VGG16 base once over the resized images and cache its outputs.

The tutorial runs the frozen base over every image in every epoch; its output never changes,
so we compute it once here and the train stage fits only the small head on (N, 512) features:
seconds per epoch instead of minutes. For models of other kinds the stage only writes its
record saying so.
"""

from __future__ import annotations

from typing import Any

from mnist_pipeline import import_tensorflow
from mnist_pipeline.catalogue import model_input
from mnist_pipeline.config import FeaturesParams, TrainModelParams, parse_section
from mnist_pipeline.files import load_npz, save_npz, write_json
from mnist_pipeline.images import extract, vgg16_base
from mnist_pipeline.project_files import ProjectFiles
from tasks import log, run


def main(params: dict[str, Any], files: ProjectFiles) -> None:
    """Read `features` (and the chosen model's kind); write the record, plus the features for VGG16."""
    settings = parse_section(params, "features", FeaturesParams)
    model = parse_section(params, "train", TrainModelParams).model
    record: dict[str, Any] = {"weights": settings.weights}
    if model_input(params.get("models", {}), model).layout != "rgb":
        files.features_data.unlink(missing_ok=True)
        write_json(files.features_record, {**record, "skipped": True, "reason": "the model does not use VGG16"})
        log(f"features: skipped, {model} does not use VGG16")
        return
    import_tensorflow()
    import keras

    keras.utils.set_random_seed(settings.seed)  # 'none' weights are random: seeded
    resized = load_npz(files.resized_data, ("x_train", "x_test"))
    base = vgg16_base(settings.weights, resized["x_train"].shape[1])
    arrays = {}
    for split in ("train", "test"):
        log(f"features: VGG16 over {len(resized[f'x_{split}']):,} {split} images ...")
        arrays[f"x_{split}"] = extract(base, resized[f"x_{split}"], settings.batch)
    save_npz(files.features_data, arrays)
    write_json(files.features_record, {**record, "skipped": False, "dim": int(arrays["x_train"].shape[1]),
                                        "base_parameters": int(base.count_params()),  # frozen
                                        "counts": {k: len(v) for k, v in arrays.items()}})
    log(f"features: {arrays['x_train'].shape[1]}-d features cached for "
        f"{sum(len(v) for v in arrays.values()):,} images (weights: {settings.weights})")


if __name__ == "__main__":
    run("features", main, __doc__, tensorflow=True)
