"""What each catalogue model takes as input: the facts the data stages need.

The model builders themselves live with the train stage; prepare and resize only
need to know the input layout and the label encoding of the chosen `train.model`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from tasks.errors import PipelineError

Layout = Literal["flat", "image", "rgb"]  # (N, 784) | (N, 28, 28, 1) | (N, S, S, 3) after resize
Labels = Literal["onehot", "sparse"]


@dataclass(frozen=True)
class ModelInput:
    """The input a model expects: layout of x and encoding of y."""

    layout: Layout
    labels: Labels


CATALOGUE: dict[str, ModelInput] = {
    "linear_regression": ModelInput("flat", "sparse"),  # trains on its own x/y; MNIST stages are unused
    "softmax_regression": ModelInput("flat", "onehot"),
    "mlp_500": ModelInput("flat", "onehot"),
    "lee_mse_sigmoid": ModelInput("flat", "onehot"),
    "lee_deep10_mse_sigmoid": ModelInput("flat", "onehot"),
    "lee_ce_sigmoid": ModelInput("flat", "onehot"),
    "lee_ce_relu": ModelInput("flat", "onehot"),
    "mlp_tanh_dropout_sgd": ModelInput("flat", "onehot"),
    "mlp_relu_adam": ModelInput("flat", "onehot"),
    "mlp_512_rmsprop": ModelInput("flat", "onehot"),
    "deep_sigmoid": ModelInput("flat", "onehot"),
    "deep_relu": ModelInput("flat", "onehot"),
    "deep_relu_dropout": ModelInput("flat", "onehot"),
    "cnn": ModelInput("image", "onehot"),
    "vgg16_transfer": ModelInput("rgb", "onehot"),
    "fashion_mlp_128": ModelInput("image", "sparse"),  # Flatten is the model's first layer
}


VARIANT = "--"  # a sweep's variant of an entry is named `<entry>--<settings>` and takes the entry's input


def model_input(name: str) -> ModelInput:
    """The input spec of catalogue model `name` (or of a variant's entry); an unknown name lists the known ones."""
    try:
        return CATALOGUE[name.split(VARIANT, 1)[0]]
    except KeyError:
        raise PipelineError(f"unknown train.model '{name}'; choose one of: {', '.join(CATALOGUE)}") from None
