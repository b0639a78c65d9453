"""The model catalogue: what each entry is, parsed from `params.yaml` `models.<name>`.

The catalogue has one source, params. An entry's `kind` decides the input layout the data
stages prepare for it, and its `loss` the label encoding; there is no separate list of names,
so any entry (a sweep's grid point written into its run's params, a renamed entry) works.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Literal, get_args

from pydantic import Field, ValidationInfo, field_validator

from mnist_pipeline.config import Dataset, Section, parse_section
from mnist_pipeline.errors import PipelineError

Kind = Literal["dense", "cnn", "vgg16"]
Loss = Literal["categorical_crossentropy", "sparse_categorical_crossentropy", "mse", "binary_crossentropy"]
Arrangement = Literal["flat", "image", "rgb"]  # of a model's x: (N, 784) | (N, 28, 28, 1) | (N, S, S, 3) resized
Labels = Literal["onehot", "sparse"]


class Augmentation(Section):
    """`models.<name>.augment`: random distortions of the training images, one Keras layer each (Keras turns
    them off at inference: evaluate and predict see the images as they are). One key, so that an ablation
    turns augmentation off with one override (`models.<name>.augment=null`); 0 leaves a distortion out."""

    shift: float = Field(default=0.0, ge=0, lt=1)  # up to this fraction of the height and of the width
    rotation: float = Field(default=0.0, ge=0, le=0.5)  # up to this fraction of a full turn, either way
    zoom: float = Field(default=0.0, ge=0, lt=1)  # in or out by up to this fraction
    # a random offset of 0 to this fraction of the [0, 1] value range added to every pixel (then clipped): grey
    # paper or dim light, which in MNIST's inverted scale (ink 1, paper 0) raises the background
    brightness: float = Field(default=0.0, ge=0, le=1)


class ModelSpec(Section):
    """One catalogue entry: architecture, training settings and what the tutorial claimed.

    `kind` and `loss` have no default: the data stages read them (and only them) from params.
    The defaults of the later fields (conv blocks, batch normalisation, augmentation, AdamW's weight decay,
    warmup and schedule, label smoothing) are off: they leave the tutorials' entries as the tutorials built them.
    """

    kind: Kind
    loss: Loss
    hidden: list[Annotated[int, Field(ge=1)]] = Field(default_factory=lambda: [500, 500])  # units of each hidden Dense
    activation: Literal["relu", "sigmoid", "tanh"] = "relu"
    dropout: float = Field(default=0.0, ge=0, lt=1)  # after each hidden layer (or those of dropout_layers)
    # the hidden layers (1-based) that dropout follows; None: every one. The Keras-concepts tutorial's dropout net
    # has none after its first layer (004, line 936): [2, 3, 4]
    dropout_layers: list[Annotated[int, Field(ge=1)]] | None = None
    # cnn without conv_blocks: 3x3 convs, then a pool
    conv_filters: list[Annotated[int, Field(ge=1)]] = Field(default_factory=lambda: [32, 32])
    conv_dropout: float | None = Field(default=None, ge=0, lt=1)  # cnn: after each max-pool; None: `dropout`
    # cnn: blocks of 3x3 'same'-padded convolutions, each block then a 2x2 max-pool and `conv_dropout`;
    # None: the tutorial's single block of `conv_filters` ('valid' padding)
    conv_blocks: list[Annotated[list[Annotated[int, Field(ge=1)]], Field(min_length=1)]] | None = Field(
        default=None, min_length=1)
    batch_norm: bool = False  # cnn: convolution (no bias) -> BatchNormalization -> relu
    # the share of its moving mean and variance BatchNormalization keeps at each step. Keras' 0.99 forgets its
    # initial variance (1) too slowly for small data: after 87 steps (3 epochs of the 3,600-image sample) 42% of
    # it is left against a first-layer batch variance near 0.002, and at inference the net predicted one class;
    # 0.9 (PyTorch's default, which PyTorch writes as 0.1) forgets it within a few dozen steps
    batch_norm_momentum: float = Field(default=0.9, gt=0, lt=1)
    augment: Augmentation | None = None  # cnn: random distortions of the training images; None: none
    optimizer: Literal["sgd", "adam", "rmsprop", "adamw"] = "adam"
    learning_rate: float = Field(default=0.001, gt=0)  # the peak learning rate under a schedule
    weight_decay: float = Field(default=0.0, ge=0)  # adamw: decoupled, Keras scales it by the learning rate
    momentum: float = Field(default=0.0, ge=0, lt=1)
    nesterov: bool = False
    label_smoothing: float = Field(default=0.0, ge=0, lt=1)  # categorical_crossentropy only
    metric: Literal["accuracy", "binary_accuracy"] = "accuracy"  # what the tutorial's Keras reported
    batch_size: int = Field(default=128, ge=1)
    # one number, or one per dataset ({mnist: 30, fashion_mnist: 7}): the offline MNIST sample has 3,600
    # training images and full Fashion-MNIST 54,000, so a recipe whose schedule spans the run may need far fewer
    # epochs on the larger set; the train stage resolves it from the prepared data's dataset (`epochs_on`)
    epochs: Annotated[int, Field(ge=1)] | dict[Dataset, Annotated[int, Field(ge=1)]] = 20
    # after a linear warmup from 0 over `warmup_epochs` (0: none), `learning_rate` until the end (constant) or
    # a cosine decay from it to 0 at the end of `epochs` (cosine)
    schedule: Literal["constant", "cosine"] = "constant"
    warmup_epochs: int = Field(default=0, ge=0)
    stop_at_loss: float | None = None  # the tutorial's threshold stop: end training when loss < this
    # false: every epoch runs whatever train.early_stopping_patience says: for an entry whose learning-rate
    # schedule is its stopping rule (stopping early would cut the schedule's low-rate tail)
    early_stopping: bool = True
    claimed: str = "not stated"
    claimed_accuracy: float | None = None  # in the tutorial's `metric`
    claim_dataset: Literal["mnist", "fashion_mnist"] = "mnist"  # the data the tutorial's number was measured on
    source: str = ""

    @field_validator("conv_blocks", "batch_norm", "augment")
    @classmethod
    def _cnn_only(cls, value: Any, info: ValidationInfo) -> Any:
        if value not in (None, False) and info.data.get("kind", "cnn") != "cnn":
            raise ValueError(f"only for kind cnn (this entry is kind {info.data['kind']})")
        return value

    @field_validator("dropout_layers")
    @classmethod
    def _hidden_layers(cls, value: list[int] | None, info: ValidationInfo) -> list[int] | None:
        hidden = info.data.get("hidden", [])
        if value is not None and (len(set(value)) != len(value) or max(value, default=0) > len(hidden)):
            raise ValueError(f"must name distinct hidden layers 1-{len(hidden)} (the entry has {len(hidden)}), "
                             f"got {value}")
        return value

    @field_validator("weight_decay")
    @classmethod
    def _adamw_only(cls, value: float, info: ValidationInfo) -> float:
        if value and info.data.get("optimizer", "adamw") != "adamw":
            raise ValueError(f"only for optimizer adamw (this entry's is {info.data['optimizer']})")
        return value

    @field_validator("label_smoothing")
    @classmethod
    def _categorical_only(cls, value: float, info: ValidationInfo) -> float:
        if value and info.data.get("loss", "categorical_crossentropy") != "categorical_crossentropy":
            raise ValueError(f"only for loss categorical_crossentropy (this entry's is {info.data['loss']})")
        return value

    @field_validator("epochs", mode="before")
    @classmethod
    def _every_dataset(cls, value: Any) -> Any:
        """A per-dataset mapping names each dataset once, each with a whole number of epochs (at least 1)."""
        if not isinstance(value, dict):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"must be a whole number of at least 1, or one per dataset ({{mnist: 30, "
                                 f"fashion_mnist: 7}}), got {value!r}")
            return value
        datasets = get_args(Dataset)
        unknown = [str(d) for d in value if d not in datasets]
        missing = [d for d in datasets if d not in value]
        if unknown or missing:
            raise ValueError(f"per-dataset epochs name each of {', '.join(datasets)}"
                             + (f"; unknown: {', '.join(unknown)}" if unknown else "")
                             + (f"; missing: {', '.join(missing)}" if missing else ""))
        bad = [f"{d}: {n!r}" for d, n in value.items() if isinstance(n, bool) or not isinstance(n, int) or n < 1]
        if bad:
            raise ValueError(f"per-dataset epochs must be whole numbers of at least 1 ({', '.join(bad)})")
        return value

    @field_validator("warmup_epochs")
    @classmethod
    def _warmup_within_epochs(cls, value: int, info: ValidationInfo) -> int:
        epochs = info.data.get("epochs", value + 1)
        shortest = min(epochs.values()) if isinstance(epochs, dict) else epochs
        if value and value >= shortest:
            raise ValueError(f"must be less than epochs ({shortest}): the schedule needs an epoch after it")
        return value

    def epochs_on(self, dataset: str) -> int:
        """The epochs this entry trains for on `dataset` (its one number, or that dataset's)."""
        return self.epochs[dataset] if isinstance(self.epochs, dict) else self.epochs

    def on(self, dataset: str) -> ModelSpec:
        """This entry as it trains on `dataset`: per-dataset epochs resolved to that dataset's number."""
        return self.model_copy(update={"epochs": self.epochs_on(dataset)})

    @property
    def sparse_labels(self) -> bool:
        return self.loss == "sparse_categorical_crossentropy"

    def patience(self, train_patience: int) -> int:
        """The early-stopping patience this entry trains with: train.early_stopping_patience, or 0 (off)."""
        return train_patience if self.early_stopping else 0

    @property
    def pool_dropout(self) -> float:
        """cnn: the dropout after each max-pool (`conv_dropout`, or `dropout` when that is unset)."""
        return self.dropout if self.conv_dropout is None else self.conv_dropout


@dataclass(frozen=True)
class ModelInput:
    """The input a model takes: layout of x and encoding of y."""

    layout: Arrangement  # of x, as prepare.layout names it
    labels: Labels


ARRANGEMENT_OF_KIND: dict[str, Arrangement] = {"dense": "flat", "cnn": "image", "vgg16": "rgb"}


def names(models: dict[str, Any]) -> list[str]:
    """The catalogue's entry names, in params order."""
    return list(models)


def entry(models: dict[str, Any], name: str) -> dict[str, Any]:
    """The raw mapping of `models.<name>`; an unknown name lists the known ones."""
    if name not in models:
        raise PipelineError(f"unknown model '{name}'; the catalogue (params.yaml models) has: {', '.join(models)}")
    raw = models[name]
    if not isinstance(raw, dict):
        raise PipelineError(f"params section 'models.{name}' must be a mapping, got {type(raw).__name__}")
    return raw


def model_spec(models: dict[str, Any], name: str) -> ModelSpec:
    """Parse `models.<name>` into a ModelSpec, naming bad keys."""
    entry(models, name)
    return parse_section({f"models.{name}": models[name]}, f"models.{name}", ModelSpec)


def input_of(kind: str, loss: str) -> ModelInput:
    """What an entry of this kind and loss takes: its kind decides the layout, its loss the labels."""
    if kind not in ARRANGEMENT_OF_KIND:
        raise PipelineError(f"unknown model kind '{kind}'; one of: {', '.join(ARRANGEMENT_OF_KIND)}")
    return ModelInput(ARRANGEMENT_OF_KIND[kind], "sparse" if loss == "sparse_categorical_crossentropy" else "onehot")


def model_input(models: dict[str, Any], name: str) -> ModelInput:
    """The input of catalogue entry `name`, from its `kind` and `loss` only (all the data stages read)."""
    raw = entry(models, name)
    missing = [key for key in ("kind", "loss") if key not in raw]
    if missing:
        raise PipelineError(f"catalogue entry models.{name} must say its {' and '.join(missing)}")
    return input_of(raw["kind"], raw["loss"])
