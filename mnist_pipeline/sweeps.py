"""Sweeps: a grid over model settings, each grid point a real catalogue entry.

A grid point is the `base` entry with the grid's settings changed (`depth` N means N hidden
layers of the base's first layer width), named from its settings, e.g.
`lee_mse_sigmoid--grid-ce-relu-d10`, so its versions and reports never mix with the base's.
The name is only a name: the entry itself is written into the run's params, and its `kind` and
`loss` tell the data stages what it takes.
"""

from __future__ import annotations

import itertools
import re
from typing import Any

from mnist_pipeline.config import MODEL_NAME
from mnist_pipeline.errors import PipelineError

GRID_KEYS = {"loss": str, "activation": str, "depth": int, "optimizer": str, "learning_rate": float,
             "dropout": float, "batch_size": int, "epochs": int}
SHORT = {"mse": "mse", "categorical_crossentropy": "ce", "sparse_categorical_crossentropy": "sce",
         "binary_crossentropy": "bce"}
PREFIX = {"depth": "d", "learning_rate": "lr", "dropout": "do", "batch_size": "bs", "epochs": "e"}
LEE_GRID = {"loss": ["mse", "categorical_crossentropy"], "activation": ["sigmoid", "relu"], "depth": [2, 10]}


def parse_grid(items: list[str]) -> dict[str, list[Any]]:
    """`key=v1,v2` strings into {key: [typed values]}; an unknown key or a bad value is one error line."""
    grid: dict[str, list[Any]] = {}
    for item in items:
        key, _, values = item.partition("=")
        if key not in GRID_KEYS or not values:
            raise PipelineError(f"bad --grid {item!r}: use KEY=V1,V2 with KEY one of {', '.join(GRID_KEYS)}")
        try:
            grid[key] = [GRID_KEYS[key](v) for v in values.split(",")]
        except ValueError:
            raise PipelineError(f"bad --grid {item!r}: {key} takes {GRID_KEYS[key].__name__} values") from None
    return grid


def variant_name(base: str, prefix: str, point: dict[str, Any]) -> str:
    """A readable slug for a grid point, e.g. lee_mse_sigmoid--grid-ce-relu-d10; refused if it is not a slug.

    """
    parts = [PREFIX.get(k, "") + str(SHORT.get(v, v)).replace(".", "p") for k, v in point.items()]
    name = base + "--" + "-".join([prefix, *parts]).lower()
    if not re.match(MODEL_NAME, name):
        raise PipelineError(f"grid point {point} gives the model name {name!r}, which is not a slug (a-z, 0-9, _ "
                            f"and -, at most 64 characters); use a shorter --name")
    return name


def model_settings(base: dict[str, Any], point: dict[str, Any]) -> dict[str, Any]:
    """The catalogue fields a grid point changes; `depth` repeats the base's first hidden width."""
    settings = {k: v for k, v in point.items() if k != "depth"}
    if "depth" in point:
        settings["hidden"] = [base.get("hidden", [500])[0]] * point["depth"]
    settings.update({"claimed": "not stated", "claimed_accuracy": None})
    return settings


def configurations(catalogue: dict[str, Any], models: list[str], grid: dict[str, list[Any]], base: str,
                   prefix: str) -> list[dict[str, Any]]:
    """One dict of `train-mnist` arguments per configuration: the named catalogue entries, then the grid."""
    unknown = [m for m in [*models, *([base] if grid else [])] if m not in catalogue]
    if unknown:
        raise PipelineError(f"unknown catalogue models {unknown}; the catalogue has: {', '.join(catalogue)}")
    configs = [{"label": m, "model": m} for m in models]
    for values in itertools.product(*grid.values()) if grid else []:
        point = dict(zip(grid, values))
        name = variant_name(base, prefix, point)
        configs.append({"label": name, "model": name, "variant_of": base,
                        "model_settings": model_settings(catalogue[base], point), "point": point})
    labels = [c["label"] for c in configs]
    if len(set(labels)) != len(labels):
        twice = sorted({x for x in labels if labels.count(x) > 1})
        raise PipelineError(f"the sweep names a configuration twice: {twice}")
    if not configs:
        raise PipelineError("nothing to sweep: give --models and/or --grid")
    return configs


def check_sweep(grid: dict[str, Any], name: str) -> None:
    """The grid's keys are known and the sweep's name is a slug (it names folders)."""
    for key in grid:
        if key not in GRID_KEYS:
            raise PipelineError(f"unknown grid key {key!r}; use one of {', '.join(GRID_KEYS)}")
    if not re.match(MODEL_NAME, name):
        raise PipelineError(f"sweep name {name!r} is not a slug (a-z, 0-9, _ and -)")
