"""Validation of raw images and labels: pandera schemas over small tables computed from the arrays.

Arrays become small tables first (one row per split, one row per image, one row for
the dataset), computed with vectorised numpy, and pandera checks those tables. So the
schemas stay readable and 70,000 images validate in well under a second. A failure
raises one line naming each failed check, its split and a few offending indices.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import pandera.pandas as pa
from pandera.errors import SchemaErrors

from mnist_pipeline.config import ValidateParams
from mnist_pipeline.errors import PipelineError
from mnist_pipeline.files import ArrayHeader
from mnist_pipeline.models import N_CLASSES

SPLITS = ("train", "test")
IMAGE_SHAPE = "28x28"


# --- the raw file against the fetch record ---------------------------------------------


def check_recorded_headers(headers: dict[str, ArrayHeader], recorded: dict[str, Any], where: str) -> None:
    """Refuse a raw file whose headers differ from what fetch recorded writing it (before its data is read).

    fetch checked the source against the `data` limits, so a raw file that matches its record is bounded too.
    """
    for key, header in headers.items():
        expected = recorded.get(key, {})
        if (list(header.shape), str(header.dtype)) != (expected.get("shape"), expected.get("dtype")):
            raise PipelineError(f"{where}: {key} is {list(header.shape)} {header.dtype} but fetch recorded "
                                f"{expected.get('shape')} {expected.get('dtype')}: not the file fetch wrote; "
                                "rerun fetch")


# --- arrays -> tables ------------------------------------------------------------------


def split_row(images: np.ndarray, labels: np.ndarray) -> dict[str, Any]:
    """One split's structural facts: dtypes, shapes, counts, classes, balance."""
    n_images = int(images.shape[0]) if images.ndim else 0
    integer_labels = labels.dtype.kind in "iu" and labels.ndim == 1
    in_range = (labels[(labels >= 0) & (labels < N_CLASSES)].astype(np.int64) if integer_labels
                else np.array([], np.int64))
    class_counts = np.bincount(in_range, minlength=N_CLASSES)
    present = class_counts[class_counts > 0]
    return {
        "images_dtype": str(images.dtype),
        "image_shape": "x".join(str(d) for d in images.shape[1:]) or "scalar",
        "n_images": n_images,
        "n_labels": int(labels.shape[0]) if labels.ndim else 0,
        "labels_dtype": str(labels.dtype),
        "labels_ndim": int(labels.ndim),
        "n_classes": int((class_counts > 0).sum()),
        "missing_classes": str([c for c in range(N_CLASSES) if class_counts[c] == 0]),
        "class_ratio": float(present.min() / present.max()) if len(present) else 0.0,
        "class_counts": class_counts.tolist(),
    }


def image_table(images: np.ndarray, labels: np.ndarray) -> pd.DataFrame:
    """One row per image: its label, pixel minimum and maximum, and NaN count."""
    flat = images.reshape(len(images), -1)  # (N, 784)
    is_float = flat.dtype.kind == "f"
    nan_count = np.isnan(flat).sum(axis=1) if is_float else np.zeros(len(flat), np.int64)
    return pd.DataFrame({
        "label": labels.astype(np.int64),
        "pixel_min": np.nanmin(flat, axis=1).astype(np.float64) if is_float else flat.min(axis=1).astype(np.float64),
        "pixel_max": np.nanmax(flat, axis=1).astype(np.float64) if is_float else flat.max(axis=1).astype(np.float64),
        "nan_count": nan_count.astype(np.int64),
    })


def duplicate_stats(train: np.ndarray, test: np.ndarray) -> dict[str, Any]:
    """Exact duplicate images: test images whose bytes also occur in train, and within each split."""
    train_rows = {row.tobytes() for row in np.ascontiguousarray(train).reshape(len(train), -1)}
    test_flat = np.ascontiguousarray(test).reshape(len(test), -1)
    shared = [i for i, row in enumerate(test_flat) if row.tobytes() in train_rows]
    return {
        "shared_train_test": len(shared),
        "shared_fraction_of_test": len(shared) / max(len(test), 1),
        "shared_test_indices_sample": shared[:10],
        "within_train": len(train) - len(train_rows),
        "within_test": len(test) - len({row.tobytes() for row in test_flat}),
    }


# --- schemas ---------------------------------------------------------------------------


def named(builtin: Callable[..., pa.Check], *args: Any, label: str) -> pa.Check:
    """A built-in pandera check reported under a readable label."""
    return builtin(*args, name=label, error=label)


def split_schema(min_class_ratio: float) -> pa.DataFrameSchema:
    """Checks on one split as a whole."""
    return pa.DataFrameSchema(
        {
            "images_dtype": pa.Column(str, named(pa.Check.isin, ["uint8"], label="images are uint8")),
            "image_shape": pa.Column(str, named(pa.Check.eq, IMAGE_SHAPE, label="images are 28x28")),
            "n_images": pa.Column(int, named(pa.Check.gt, 0, label="split is not empty")),
            "labels_ndim": pa.Column(int, named(pa.Check.eq, 1, label="labels are a 1-D array")),
            "labels_dtype": pa.Column(str, pa.Check(lambda s: s.map(lambda d: np.dtype(d).kind in "iu"),
                                                   name="labels are integers")),
            "n_classes": pa.Column(int, named(pa.Check.eq, N_CLASSES, label="all ten classes present")),
            "class_ratio": pa.Column(float, named(pa.Check.ge, min_class_ratio, label="class balance")),
        },
        checks=[pa.Check(lambda df: df["n_images"] == df["n_labels"], name="image and label counts match")],
    )


IMAGE_SCHEMA = pa.DataFrameSchema({
    "label": pa.Column(int, named(pa.Check.isin, list(range(N_CLASSES)), label="labels in 0..9")),
    "pixel_min": pa.Column(float, named(pa.Check.ge, 0, label="pixels >= 0")),
    "pixel_max": pa.Column(float, named(pa.Check.le, 255, label="pixels <= 255")),
    "nan_count": pa.Column(int, named(pa.Check.eq, 0, label="no NaN pixels")),
})


def dataset_schema(max_shared: float) -> pa.DataFrameSchema:
    """Checks across splits."""
    return pa.DataFrameSchema({
        "shared_fraction_of_test": pa.Column(
            float, named(pa.Check.le, max_shared, label="train/test duplicates")),
    })


def failures(schema: pa.DataFrameSchema, table: pd.DataFrame, where: str, explain: Callable[[str, pd.DataFrame], str],
             examples: int) -> list[str]:
    """Validate `table` lazily; one phrase per failed check."""
    try:
        schema.validate(table, lazy=True)
    except SchemaErrors as errors:
        cases = errors.failure_cases.drop_duplicates(subset=["check", "index"])  # frame-wide checks repeat per column
        phrases = []
        for check, group in cases.groupby("check", sort=False):
            phrases.append(f"[{where}] check '{check}' failed: {explain(str(check), group.head(examples))}"
                           + (f" ({len(group)} in all)" if len(group) > examples else ""))
        return phrases
    return []


def explain_split(row: dict[str, Any]) -> Callable[[str, pd.DataFrame], str]:
    """Say what was found for a failed split-level check."""
    def explain(check: str, _: pd.DataFrame) -> str:
        facts = {
            "images are uint8": f"images dtype is {row['images_dtype']}",
            "images are 28x28": f"image shape is {row['image_shape']}",
            "split is not empty": "no images",
            "labels are a 1-D array": f"labels have {row['labels_ndim']} dimensions",
            "labels are integers": f"labels dtype is {row['labels_dtype']}",
            "all ten classes present": f"missing classes {row['missing_classes']}",
            "class balance": f"rarest/commonest class ratio {row['class_ratio']:.2f}",
            "image and label counts match": f"{row['n_images']} images vs {row['n_labels']} labels",
        }
        return facts.get(check, "see the summary")
    return explain


def explain_images(check: str, group: pd.DataFrame) -> str:
    """Name offending image indices and their values."""
    indices = [int(i) for i in group["index"]]
    values = [v.item() if hasattr(v, "item") else v for v in group["failure_case"]]
    what = {"no NaN pixels": "NaN pixels per image", "labels in 0..9": "labels",
            "pixels >= 0": "lowest pixels", "pixels <= 255": "highest pixels"}.get(check, "values")
    return f"indices {indices} ({what} {values})"


def validate_arrays(arrays: dict[str, np.ndarray], params: ValidateParams) -> dict[str, Any]:
    """Check the four raw arrays; return the summary or raise one PipelineError line."""
    rows = {split: split_row(arrays[f"x_{split}"], arrays[f"y_{split}"]) for split in SPLITS}
    problems: list[str] = []
    for split, row in rows.items():
        table = pd.DataFrame([{k: v for k, v in row.items() if k != "class_counts"}])
        problems += failures(split_schema(params.min_class_ratio), table, split, explain_split(row), params.examples)
    shaped = all(rows[s]["image_shape"] == IMAGE_SHAPE and rows[s]["n_images"] == rows[s]["n_labels"]
                 and rows[s]["labels_ndim"] == 1 and rows[s]["n_images"] > 0
                 and np.dtype(rows[s]["labels_dtype"]).kind in "iu" for s in SPLITS)
    if shaped:  # per-image checks make sense only on well-formed arrays
        for split in SPLITS:
            table = image_table(arrays[f"x_{split}"], arrays[f"y_{split}"])
            problems += failures(IMAGE_SCHEMA, table, split, explain_images, params.examples)
    duplicates = duplicate_stats(arrays["x_train"], arrays["x_test"]) if shaped else {}
    if duplicates:
        table = pd.DataFrame([{"shared_fraction_of_test": float(duplicates["shared_fraction_of_test"])}])
        problems += failures(dataset_schema(params.max_shared_duplicates), table, "train/test",
                             lambda *_: f"{duplicates['shared_train_test']} test images also in train "
                                        f"(limit {params.max_shared_duplicates:.2%} of test), "
                                        "e.g. test indices "
                                        f"{duplicates['shared_test_indices_sample'][:params.examples]}",
                             params.examples)
    if problems:
        raise PipelineError("data failed validation: " + "; ".join(problems))
    return {"splits": rows, "duplicates": duplicates,
            "thresholds": {"max_shared_duplicates": params.max_shared_duplicates,
                           "min_class_ratio": params.min_class_ratio},
            "checks": [c.name for s in (split_schema(0), IMAGE_SCHEMA) for col in s.columns.values()
                       for c in col.checks] + ["image and label counts match", "train/test duplicates"]}
