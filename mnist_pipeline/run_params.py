"""A run's params: the flow's parameters as overrides of the committed params.yaml (a sweep's grid point becomes a
real catalogue entry), checked with the stages' own parsers before any stage runs, and written into the run's
worktree.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from mnist_pipeline import backends
from mnist_pipeline.catalogue import entry, model_input, model_spec
from mnist_pipeline.config import (
    DataParams,
    DistortionsParams,
    EvaluateParams,
    FeaturesParams,
    FetchParams,
    PrepareParams,
    ReportParams,
    ResizeParams,
    TrainParams,
    ValidateParams,
    parse_params,
    parse_section,
)
from mnist_pipeline.project_files import ProjectFiles
from mnist_pipeline.workspace import git

# flow parameter -> (params section, key)
OVERRIDES = {"dataset": ("data", "dataset"), "model": ("train", "model"), "epochs": ("train", "epochs"),
             "batch_size": ("train", "batch_size"), "learning_rate": ("train", "learning_rate"),
             "seed": ("train", "seed"), "max_train_images": ("train", "max_train_images"),
             "backend": ("train", "backend"), "precision": ("train", "precision")}
SECTIONS = {"data": DataParams, "fetch": FetchParams, "validate": ValidateParams, "prepare": PrepareParams,
            "resize": ResizeParams, "features": FeaturesParams, "train": TrainParams, "distortions": DistortionsParams,
            "evaluate": EvaluateParams, "report": ReportParams}


def committed_params(root: Path) -> dict[str, Any]:
    """params.yaml as the last commit has it: what a run's workspace (a worktree of HEAD) starts from,
    uncommitted edits aside."""
    return parse_params(git(root, "show", "HEAD:params.yaml", check=True), "params.yaml in the last commit")


def apply_overrides(params: dict[str, Any], overrides: dict[str, Any], model_settings: dict[str, Any] | None = None,
                    variant_of: str | None = None) -> dict[str, Any]:
    """`params` with this run's overrides applied (a new mapping; `params` is not changed).

    `model_settings` changes fields of the model's catalogue entry (`models.<model>`) for this run;
    with `variant_of`, the entry is a new one: that catalogue entry with those fields changed (how a
    sweep's grid point becomes a real catalogue entry with its own registry versions and report).
    """
    out = json.loads(json.dumps(params))
    for key, value in overrides.items():
        if value is not None:
            section, name = OVERRIDES[key]
            out[section][name] = value
    if model_settings or variant_of:
        model, base = out["train"]["model"], variant_of or out["train"]["model"]
        out["models"][model] = {**entry(out["models"], base), **(model_settings or {})}
    return out


def check_run(params: dict[str, Any]) -> None:
    """Every section a run reads, and its model's catalogue entry, parse: raises the stages' own
    one-line error before any stage runs."""
    ProjectFiles.from_params(params)
    for name, section in SECTIONS.items():
        parse_section(params, name, section)
    model = params["train"]["model"]
    model_input(params.get("models", {}), model)
    model_spec(params.get("models", {}), model)
    backends.check_installed(params["train"].get("backend", "tensorflow"))  # the stages run in this interpreter's venv


class NoAliasDumper(yaml.SafeDumper):
    """YAML without anchors: a value used twice (a variant's settings) is written twice, not as `&id001` and
    `*id001`, which params files may not hold (config.NoAliasLoader)."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def write_params(folder: Path, params: dict[str, Any]) -> None:
    (folder / "params.yaml").write_text(yaml.dump(params, Dumper=NoAliasDumper, sort_keys=False))
