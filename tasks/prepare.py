"""prepare: shape, scale and encode the validated data, and split off a validation set.

Images become float32 in [0, 1] (the tutorials show training breaks without x/255), flat
`(N, 784)` or `(N, 28, 28, 1)` as the chosen model's kind takes them; labels become one-hot
float32 where its loss needs it, else stay integer class ids. The validation set is a
stratified, seeded split of the training set, never Keras' `validation_split`, which takes the
tail of the data (the MNIST sample is sorted by class: its tail is all 9s).
"""

from __future__ import annotations

from typing import Any

from mnist_pipeline.catalogue import model_input
from mnist_pipeline.config import PrepareParams, TrainModelParams, parse_section
from mnist_pipeline.data.preparation import choose_encoding, prepare_arrays
from mnist_pipeline.files import RAW_KEYS, load_npz, read_json, save_npz, write_json
from mnist_pipeline.project_files import ProjectFiles
from tasks import log, run


def main(params: dict[str, Any], files: ProjectFiles) -> None:
    """Read `prepare` (and the chosen model's kind and loss); write the prepared arrays and their record."""
    settings = parse_section(params, "prepare", PrepareParams)
    model = parse_section(params, "train", TrainModelParams).model
    shape, labels = choose_encoding(settings, model_input(params.get("models", {}), model))
    validation = read_json(files.validation_record)  # exists only if validate passed
    raw = load_npz(files.raw_data, RAW_KEYS)
    arrays = prepare_arrays(raw, shape, labels, settings.val_fraction, settings.seed, settings.normalize)
    save_npz(files.prepared_data, arrays)
    counts = {split: int(len(arrays[f"y_{split}"])) for split in ("train", "val", "test")}
    write_json(files.prepare_record, {
        "layout": shape, "labels": labels, "normalized": settings.normalize,
        "val_fraction": settings.val_fraction, "seed": settings.seed,
        "dataset": validation["dataset"], "source": validation["source"], "raw_sha256": validation["raw_sha256"],
        "counts": counts, "arrays": {key: {"shape": list(v.shape), "dtype": str(v.dtype)} for key, v in arrays.items()},
    })
    scale = {True: "in [0, 1]", False: "in 0..255 (normalize: false)",
             "centered": "(x - 127) / 127, about [-1, 1] (normalize: centered)"}[settings.normalize]
    log(f"prepare: {model} takes {shape} float32 {scale} with {labels} labels; {counts['train']:,} train / "
        f"{counts['val']:,} val (stratified, seed {settings.seed}) / {counts['test']:,} test")


if __name__ == "__main__":
    run("prepare", main, __doc__)
