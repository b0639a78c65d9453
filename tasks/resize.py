"""resize: OpenCV resize to S x S and gray to RGB, for models that take colour images (VGG16).

Output stays uint8 on disk. When the chosen model's kind takes 28x28 input the stage only
writes its record saying so, in well under a second and without reading the images.
"""

from __future__ import annotations

from typing import Any

from mnist_pipeline.catalogue import model_input
from mnist_pipeline.config import ResizeParams, TrainModelParams, parse_section
from mnist_pipeline.files import RAW_KEYS, load_npz, save_npz, write_json
from mnist_pipeline.images import resize_gray_to_rgb
from mnist_pipeline.project_files import ProjectFiles
from tasks import log, run


def main(params: dict[str, Any], files: ProjectFiles) -> None:
    """Read `resize` (and the chosen model's kind); write the record, plus the resized images when needed."""
    settings = parse_section(params, "resize", ResizeParams)
    model = parse_section(params, "train", TrainModelParams).model
    record: dict[str, Any] = {"size": settings.size, "interpolation": settings.interpolation}
    if model_input(params.get("models", {}), model).layout != "rgb":
        files.resized_data.unlink(missing_ok=True)
        write_json(files.resize_record, {**record, "skipped": True, "reason": "the model takes 28x28 grayscale input"})
        log(f"resize: skipped, {model} takes 28x28 grayscale input")
        return
    raw = load_npz(files.raw_data, RAW_KEYS)
    arrays = {f"x_{split}": resize_gray_to_rgb(raw[f"x_{split}"], settings.size, settings.interpolation,
                                               settings.batch) for split in ("train", "test")}
    save_npz(files.resized_data, arrays)
    write_json(files.resize_record, {**record, "skipped": False, "dtype": "uint8",
                                      "shapes": {key: list(value.shape) for key, value in arrays.items()}})
    log(f"resize: {sum(len(v) for v in arrays.values()):,} images to {settings.size}x{settings.size} RGB uint8 "
        f"({sum(v.nbytes for v in arrays.values()) / 2**20:.0f} MiB)")


if __name__ == "__main__":
    run("resize", main, __doc__)
