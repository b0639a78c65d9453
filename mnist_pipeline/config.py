"""Typed, frozen views of the params sections: one model per stage section, plus the run's folders.

Parsing is pure: callers hand in the mapping they read (a stage its `params.yaml`, a flow its
workspace's). An unknown key, a missing section or a value of the wrong type fails at once with
the key's name. Folders are not stage knobs: they live in the `paths` section, named once
(`mnist_pipeline.project_files`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from mnist_pipeline.errors import PipelineError, first_line

MODEL_NAME = r"^[a-z0-9][a-z0-9_-]{0,63}$"  # model names become folder names: no '/', no '..'

Dataset = Literal["mnist", "fashion_mnist"]
DATASET_NAMES = {"mnist": "MNIST", "fashion_mnist": "Fashion-MNIST"}  # how reports, cards and verdicts name them
Source = Literal["auto", "path", "cache", "offline", "download"]


class Section(BaseModel):
    """Base for a params section: frozen, strict, unknown keys refused."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class DataParams(Section):
    """`data`: which dataset the run is on (the fetch stage produces it; the first column of the run's params
    in `dvc exp show`)."""

    dataset: Dataset = "mnist"


class FetchParams(Section):
    """`fetch`: where the fetch stage reads the dataset from, and the limits on what it reads."""

    source: Source = "auto"
    path: str | None = None  # a local .npz, or a folder with the four IDX files
    mirror: str | None = None  # base URL overriding the canonical download mirror
    cache_dir: str = "data/cache"  # downloads, sha256-verified (not a DVC output: a source)
    retries: int = Field(default=3, ge=0, le=10)
    timeout_s: float = Field(default=30.0, gt=0)
    # mnist sample: held-out test images, of 5,000; at most 4,800 leaves 20 a class for training and validation
    sample_test_size: int = Field(default=1000, ge=1000, le=4800)
    seed: int = 42
    # Limits on what a source's headers may declare, checked before any data is read or inflated
    # (so a small hostile file cannot take unbounded memory or time). Full MNIST / Fashion-MNIST:
    # 60,000 + 10,000 images of 28x28 uint8, 55 MB in all.
    max_images: int = Field(default=1_000_000, ge=1)  # items per array (per split)
    max_image_pixels: int = Field(default=4096, ge=1)  # values per item (dims after the first): 64x64
    max_megabytes: int = Field(default=1000, ge=1)  # the four arrays together, in MB of 10^6 bytes


class ValidateParams(Section):
    """`validate`: thresholds of the data checks."""

    max_shared_duplicates: float = Field(default=0.01, ge=0, le=1)  # fraction of test images also in train
    min_class_ratio: float = Field(default=0.5, ge=0, le=1)  # rarest / commonest class count, per split
    examples: int = Field(default=5, ge=1, le=50)  # offending indices named in an error


class PrepareParams(Section):
    """`prepare`: input layout, label encoding and the stratified validation split."""

    layout: Literal["auto", "flat", "image"] = "auto"  # auto: what the model's kind takes
    labels: Literal["auto", "onehot", "sparse"] = "auto"  # auto: what the model's loss needs
    # true: x / 255 into [0, 1]; false: raw 0..255 (the tutorials' lesson on why not); centered: (x - 127) / 127,
    # about [-1, 1] (the CSDN tutorial's claim that it breaks relu training)
    normalize: bool | Literal["centered"] = True
    val_fraction: float = Field(default=0.1, gt=0, lt=0.5)
    seed: int = 42


class ResizeParams(Section):
    """`resize`: the OpenCV resize to RGB for models that take larger colour images."""

    size: int = Field(default=48, ge=32, le=224)  # VGG16 needs at least 32x32
    interpolation: Literal["nearest", "linear", "area", "cubic"] = "linear"
    batch: int = Field(default=128, ge=1, le=128)  # images per cv2.resize call


class FeaturesParams(Section):
    """`features`: the frozen VGG16 base, run once over the resized images."""

    weights: str = "imagenet"  # imagenet (Keras' download and cache) | none (random) | path to an .h5
    batch: int = Field(default=256, ge=1)
    seed: int = 42


class TrainParams(Section):
    """`train`: which catalogue model, run-level overrides and callbacks."""

    model: str = Field(default="cnn", pattern=MODEL_NAME)  # a slug: it names folders (reports, registry)
    seed: int = 42
    epochs: int | None = Field(default=None, ge=1)  # None: the catalogue entry's
    batch_size: int | None = Field(default=None, ge=1)
    learning_rate: float | None = Field(default=None, gt=0)
    early_stopping_patience: int = Field(default=3, ge=0)  # on val_loss; 0 turns it off
    max_train_images: int | None = Field(default=None, ge=10)  # a seeded random subset, for quick runs
    distribute: Literal["auto", "none"] = "auto"  # auto: MirroredStrategy when several GPUs are visible (tensorflow)
    backend: Literal["tensorflow", "jax", "torch"] = "tensorflow"  # Keras' engine (mnist_pipeline/backends.py)
    precision: Literal["float32", "mixed_float16", "mixed_bfloat16"] = "float32"  # the fit's dtype policy
    predict_train_images: int | None = Field(default=10_000, ge=1)  # training images predicted after the fit
    predict_batch_size: int = Field(default=512, ge=1)  # batch of those predictions (not of training)


Distortion = Literal["rotation", "thick", "thin", "blur", "low_resolution", "uneven_lighting", "off_centre"]


class DistortionsParams(Section):
    """`distortions`: the held-out test images made as hard as real handwriting photos, each way on its own;
    the train stage predicts them beside the clean ones (mnist_pipeline/distortions.py says what each does)."""

    apply: list[Distortion] = Field(default_factory=lambda: list(Distortion.__args__))  # in this order; []: none
    seed: int = 42  # the random angles, directions and shifts
    rotation_min_degrees: float = Field(default=15.0, ge=0, le=90)  # each image turned by an angle drawn
    rotation_max_degrees: float = Field(default=25.0, ge=0, le=90)  # ... uniformly in this range, either way
    thick_pixels: int = Field(default=3, ge=2, le=7)  # grey dilation over a square this wide: thicker strokes
    thin_pixels: int = Field(default=2, ge=2, le=7)  # grey erosion over a square this wide: thinner strokes
    blur_sigma: float = Field(default=1.0, gt=0, le=5)  # Gaussian blur, in pixels
    low_resolution_pixels: int = Field(default=10, ge=4, le=27)  # averaged down to this a side, bilinear back up
    lighting_drop: float = Field(default=0.5, ge=0, le=1)  # the light falls linearly by this fraction across
    lighting_offset: float = Field(default=0.1, ge=0, lt=1)  # ... grey paper: background this far from black
    shift_min_pixels: float = Field(default=4.0, ge=0, le=10)  # each image moved by a whole-pixel offset whose
    shift_max_pixels: float = Field(default=6.0, ge=0, le=10)  # ... length is in this range, any direction

    @model_validator(mode="after")
    def ranges_in_order(self) -> DistortionsParams:
        for low, high in (("rotation_min_degrees", "rotation_max_degrees"), ("shift_min_pixels", "shift_max_pixels")):
            if getattr(self, low) > getattr(self, high):
                raise ValueError(f"{low} {getattr(self, low)} is above {high} {getattr(self, high)}")
        if len(set(self.apply)) < len(self.apply):
            raise ValueError(f"apply names a distortion twice: {self.apply}")
        return self


class EvaluateParams(Section):
    """`evaluate`: thresholds of the diagnosis and the metric audit."""

    underfit_train_below: float = Field(default=0.8, ge=0, le=1)  # train accuracy below this: underfitting
    overfit_gap: float = Field(default=0.03, ge=0, le=1)  # train minus validation accuracy above this: overfitting
    metric_gap: float = Field(default=0.005, ge=0, le=1)  # Keras' metric vs true top-1 beyond this: flagged
    mistakes: int = Field(default=16, ge=1, le=100)  # most confident mistakes kept


class ReportParams(Section):
    """`report`: how many sample images per class the report shows."""

    samples_per_class: int = Field(default=2, ge=1, le=8)


class DemoParams(Section):
    """`demo`: the single-neuron y = 2x - 1 demo (its own task type: no MNIST data, no accuracy)."""

    optimizer: Literal["sgd"] = "sgd"
    learning_rate: float = Field(default=0.01, gt=0)
    epochs: int = Field(default=500, ge=1)  # each one full-batch step on the six points, as in the tutorial
    seed: int = 42
    at: float = 10.0  # the tutorial predicts y at this x
    claimed: float = 18.98  # what the tutorial's model predicted there
    source: str = "single-neuron demo"


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


MAX_PARAMS_BYTES = 1_000_000  # this project's is about 40 KB; DVC took 99 s over `dvc status` on a 6.5 MB one


class NoAliasLoader(yaml.SafeLoader):
    """YAML without aliases: a few hundred bytes of nested `*alias`es expand to gigabytes (a "billion laughs")."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            mark = self.peek_event().start_mark
            raise PipelineError(f"{self.name} uses a YAML alias (line {mark.line + 1}); params files may not: nested "
                                f"aliases expand to gigabytes")
        return super().compose_node(parent, index)


def read_params(path: Path) -> dict[str, Any]:
    """A params file as a dict; a clear error when missing, larger than MAX_PARAMS_BYTES, using YAML aliases, not
    YAML, or not a mapping."""
    if not path.is_file():
        raise PipelineError(f"params file not found: {path}")
    size = path.stat().st_size
    if size > MAX_PARAMS_BYTES:  # before reading it
        raise PipelineError(f"{path} is {size:,} bytes; a params file may hold at most {MAX_PARAMS_BYTES:,}")
    return parse_params(path.read_text(encoding="utf-8"), str(path))


def parse_params(text: str, where: str) -> dict[str, Any]:
    """Params text (a file's, or the params a comparison recorded) as a dict, with read_params' checks; `where`
    names it in the error."""
    if len(text.encode()) > MAX_PARAMS_BYTES:
        raise PipelineError(f"{where} is {len(text.encode()):,} bytes; a params file may hold at most "
                            f"{MAX_PARAMS_BYTES:,}")
    loader = NoAliasLoader(text)  # what yaml.load does, with `where` as the name its errors give
    loader.name = where
    try:
        params = loader.get_single_data()
    except yaml.YAMLError as exc:
        raise PipelineError(f"{where} is not valid YAML: {first_line(exc)}") from exc
    finally:
        loader.dispose()
    if not isinstance(params, dict):
        raise PipelineError(f"{where} must hold a mapping of sections")
    return params


def parse_section(params: dict[str, Any], name: str, model: type[S]) -> S:
    """Parse `params[name]` into `model`; a missing section or a bad key is one error naming it."""
    if name not in params:
        raise PipelineError(f"params section '{name}' is missing")
    raw = params[name]
    if not isinstance(raw, dict):
        raise PipelineError(f"params section '{name}' must be a mapping, got {type(raw).__name__}")
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{name}.{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()
        )
        raise PipelineError(f"bad params: {problems}") from None
