"""Typed, frozen views of `params.yaml`, one model per stage section.

Each stage parses only the sections `dvc.yaml` says it reads. An unknown key, a
missing section or a value of the wrong type fails at once with the key's name.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from tasks.errors import PipelineError

PARAMS_FILE = Path("params.yaml")
MODEL_NAME = r"^[a-z0-9][a-z0-9_-]{0,63}$"  # model names become folder names: no '/', no '..'

Dataset = Literal["mnist", "fashion_mnist"]
Source = Literal["auto", "path", "cache", "offline", "download"]


class Section(BaseModel):
    """Base for a params section: frozen, strict, unknown keys refused."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class DataParams(Section):
    """`data`: which dataset the fetch stage produces and where it comes from."""

    dataset: Dataset = "mnist"
    source: Source = "auto"
    path: str | None = None  # a local .npz, or a folder with the four IDX files
    mirror: str | None = None  # base URL overriding the canonical download mirror
    cache_dir: str = "data/cache"
    retries: int = Field(default=3, ge=0, le=10)
    timeout_s: float = Field(default=30.0, gt=0)
    sample_test_size: int = Field(default=1000, ge=1000)  # mnist sample: held-out test images
    seed: int = 42
    out_dir: str = "data/raw"


class ValidateParams(Section):
    """`validate`: thresholds of the data checks."""

    max_shared_duplicates: float = Field(default=0.01, ge=0, le=1)  # fraction of test images also in train
    min_class_ratio: float = Field(default=0.5, ge=0, le=1)  # rarest / commonest class count, per split
    examples: int = Field(default=5, ge=1, le=50)  # offending indices named in an error
    raw_dir: str = "data/raw"
    out_dir: str = "data/validated"


class PrepareParams(Section):
    """`prepare`: input layout, label encoding and the stratified validation split."""

    layout: Literal["auto", "flat", "image"] = "auto"  # auto: what train.model takes
    labels: Literal["auto", "onehot", "sparse"] = "auto"  # auto: what train.model's loss needs
    normalize: bool = True  # x / 255; false keeps raw 0..255 values (the tutorials' lesson on why not)
    val_fraction: float = Field(default=0.1, gt=0, lt=0.5)
    seed: int = 42
    raw_dir: str = "data/raw"
    validated_dir: str = "data/validated"
    out_dir: str = "data/prepared"


class ResizeParams(Section):
    """`resize`: the OpenCV resize to RGB for models that take larger colour images."""

    size: int = Field(default=48, ge=32, le=224)  # VGG16 needs at least 32x32
    interpolation: Literal["nearest", "linear", "area", "cubic"] = "linear"
    batch: int = Field(default=128, ge=1, le=128)  # images per cv2.resize call
    raw_dir: str = "data/raw"
    validated_dir: str = "data/validated"
    out_dir: str = "data/resized"


class FeaturesParams(Section):
    """`features`: the frozen VGG16 base, run once over the resized images."""

    weights: str = "imagenet"  # imagenet (Keras' download and cache) | none (random) | path to an .h5
    batch: int = Field(default=256, ge=1)
    seed: int = 42
    resized_dir: str = "data/resized"
    out_dir: str = "data/features"


class TrainParams(Section):
    """`train`: which catalogue model, run-level overrides, callbacks and where things go."""

    model: str = Field(default="cnn", pattern=MODEL_NAME)  # a slug: it names folders (reports, registry)
    seed: int = 42
    epochs: int | None = Field(default=None, ge=1)  # None: the catalogue entry's
    batch_size: int | None = Field(default=None, ge=1)
    learning_rate: float | None = Field(default=None, gt=0)
    early_stopping_patience: int = Field(default=3, ge=0)  # on val_loss; 0 turns it off
    max_train_images: int | None = Field(default=None, ge=10)  # a seeded random subset, for quick runs
    distribute: Literal["auto", "none"] = "auto"  # auto: MirroredStrategy when several GPUs are visible
    predict_train_images: int | None = Field(default=10_000, ge=1)  # training images predicted after the fit
    predict_batch_size: int = Field(default=512, ge=1)  # batch of those predictions (not of training)
    prepared_dir: str = "data/prepared"
    features_dir: str = "data/features"
    checkpoint_dir: str = "checkpoints"  # per-run backups for resuming a killed run (not versioned)
    live_dir: str = "dvclive"
    out_dir: str = "model"


class EvaluateParams(Section):
    """`evaluate`: thresholds of the diagnosis and the metric audit."""

    underfit_train_below: float = Field(default=0.8, ge=0, le=1)  # train accuracy below this: underfitting
    overfit_gap: float = Field(default=0.03, ge=0, le=1)  # train minus validation accuracy above this: overfitting
    metric_gap: float = Field(default=0.005, ge=0, le=1)  # Keras' metric vs true top-1 beyond this: flagged
    mistakes: int = Field(default=16, ge=1, le=100)  # most confident mistakes kept
    prepared_dir: str = "data/prepared"
    model_dir: str = "model"
    out_dir: str = "evaluation"


class ReportParams(Section):
    """`report`: where the records come from and where reports go."""

    raw_dir: str = "data/raw"
    validated_dir: str = "data/validated"
    prepared_dir: str = "data/prepared"
    model_dir: str = "model"
    evaluation_dir: str = "evaluation"
    timings_dir: str = "timings"
    out_dir: str = "reports"  # the report lands in <out_dir>/<dataset>/<model>/


class RegistryParams(Section):
    """`registry`: where versions go and the promotion gate."""

    dir: str = "registry"
    min_accuracy: float = Field(default=0.5, ge=0, le=1)  # the floor: below it a version is never champion
    tolerance: float = Field(default=0.01, ge=0, le=1)  # may be this much worse than the champion and still bless


class TrainModelParams(BaseModel):
    """The part of `train` that the data stages read: the model's name only."""

    model_config = ConfigDict(extra="ignore", frozen=True, strict=True)
    model: str = Field(default="cnn", pattern=MODEL_NAME)


S = TypeVar("S", bound=BaseModel)


def load_params(path: Path = PARAMS_FILE) -> dict[str, Any]:
    """The whole params file as a dict; a clear error when missing or not a mapping."""
    if not path.is_file():
        raise PipelineError(f"params file not found: {path}")
    try:
        params = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise PipelineError(f"{path} is not valid YAML: {str(exc).splitlines()[0]}") from exc
    if not isinstance(params, dict):
        raise PipelineError(f"{path} must hold a mapping of sections")
    return params


def parse_section(params: dict[str, Any], name: str, model: type[S]) -> S:
    """Parse `params[name]` into `model`, naming the offending key on failure."""
    raw = params.get(name, {})
    if not isinstance(raw, dict):
        raise PipelineError(f"params section '{name}' must be a mapping, got {type(raw).__name__}")
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{name}.{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()
        )
        raise PipelineError(f"bad params: {problems}") from None
