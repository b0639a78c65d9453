"""The model catalogue: what each entry is, parsed from `params.yaml` `models.<name>`.

The catalogue has one source, params. An entry's `kind` decides the input layout the data
stages prepare for it, and its `loss` the label encoding; there is no separate list of names,
so any entry (a sweep's grid point written into its run's params, a renamed entry) works.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from pydantic import Field

from mnist_pipeline.config import Section, parse_section
from mnist_pipeline.errors import PipelineError

Kind = Literal["dense", "cnn", "vgg16"]
Loss = Literal["categorical_crossentropy", "sparse_categorical_crossentropy", "mse", "binary_crossentropy"]
Layout = Literal["flat", "image", "rgb"]  # (N, 784) | (N, 28, 28, 1) | (N, S, S, 3) after resize
Labels = Literal["onehot", "sparse"]
N_CLASSES = 10


class ModelSpec(Section):
    """One catalogue entry: architecture, training settings and what the tutorial claimed.

    `kind` and `loss` have no default: the data stages read them (and only them) from params.
    """

    kind: Kind
    loss: Loss
    hidden: list[int] = Field(default_factory=lambda: [500, 500])  # units of each hidden Dense layer
    activation: Literal["relu", "sigmoid", "tanh"] = "relu"
    dropout: float = Field(default=0.0, ge=0, lt=1)  # after each hidden layer
    conv_filters: list[int] = Field(default_factory=lambda: [32, 32])  # cnn: 3x3 convolutions, then 2x2 max-pool
    conv_dropout: float | None = Field(default=None, ge=0, lt=1)  # cnn: after the max-pool; None: `dropout`
    optimizer: Literal["sgd", "adam", "rmsprop"] = "adam"
    learning_rate: float = Field(default=0.001, gt=0)
    momentum: float = Field(default=0.0, ge=0, lt=1)
    nesterov: bool = False
    metric: Literal["accuracy", "binary_accuracy"] = "accuracy"  # what the tutorial's Keras reported
    batch_size: int = Field(default=128, ge=1)
    epochs: int = Field(default=20, ge=1)
    stop_at_loss: float | None = None  # the tutorial's threshold stop: end training when loss < this
    claimed: str = "not stated"
    claimed_accuracy: float | None = None  # in the tutorial's `metric`
    claim_dataset: Literal["mnist", "fashion_mnist"] = "mnist"  # the data the tutorial's number was measured on
    source: str = ""

    @property
    def sparse_labels(self) -> bool:
        return self.loss == "sparse_categorical_crossentropy"

    @property
    def pool_dropout(self) -> float:
        """cnn: the dropout after the max-pool (`conv_dropout`, or `dropout` when that is unset)."""
        return self.dropout if self.conv_dropout is None else self.conv_dropout


@dataclass(frozen=True)
class ModelInput:
    """The input a model takes: layout of x and encoding of y."""

    layout: Layout
    labels: Labels


LAYOUT_OF_KIND: dict[str, Layout] = {"dense": "flat", "cnn": "image", "vgg16": "rgb"}


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
    if kind not in LAYOUT_OF_KIND:
        raise PipelineError(f"unknown model kind '{kind}'; one of: {', '.join(LAYOUT_OF_KIND)}")
    return ModelInput(LAYOUT_OF_KIND[kind], "sparse" if loss == "sparse_categorical_crossentropy" else "onehot")


def model_input(models: dict[str, Any], name: str) -> ModelInput:
    """The input of catalogue entry `name`, from its `kind` and `loss` only (all the data stages read)."""
    raw = entry(models, name)
    missing = [key for key in ("kind", "loss") if key not in raw]
    if missing:
        raise PipelineError(f"catalogue entry models.{name} must say its {' and '.join(missing)}")
    return input_of(raw["kind"], raw["loss"])
