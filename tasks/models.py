"""The model catalogue: one declarative Keras builder per kind, every number from params.

`params.yaml` `models.<name>` holds each tutorial's settings; unset keys take the
defaults below. The builders only declare layers; compiling (optimizer, loss, the
tutorial's metric) is one function shared by all.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from tasks.config import Section
from tasks.errors import PipelineError

Kind = Literal["dense", "cnn", "vgg16", "linear"]
Loss = Literal["categorical_crossentropy", "sparse_categorical_crossentropy", "mse", "binary_crossentropy"]
N_CLASSES = 10


class ModelSpec(Section):
    """One catalogue entry: architecture, training settings and what the tutorial claimed."""

    kind: Kind = "dense"
    hidden: list[int] = Field(default_factory=lambda: [500, 500])  # units of each hidden Dense layer
    activation: Literal["relu", "sigmoid", "tanh"] = "relu"
    dropout: float = Field(default=0.0, ge=0, lt=1)  # after each hidden layer
    conv_filters: list[int] = Field(default_factory=lambda: [32, 32])  # cnn: 3x3 convolutions, then 2x2 max-pool
    conv_dropout: float | None = Field(default=None, ge=0, lt=1)  # cnn: after the max-pool; None: `dropout`
    optimizer: Literal["sgd", "adam", "rmsprop"] = "adam"
    learning_rate: float = Field(default=0.001, gt=0)
    momentum: float = Field(default=0.0, ge=0, lt=1)
    nesterov: bool = False
    loss: Loss = "categorical_crossentropy"
    metric: Literal["accuracy", "binary_accuracy"] = "accuracy"  # what the tutorial's Keras reported
    batch_size: int = Field(default=128, ge=1)
    epochs: int = Field(default=20, ge=1)
    stop_at_loss: float | None = None  # the tutorial's threshold stop: end training when loss < this
    claimed: str = "not stated"
    claimed_accuracy: float | None = None
    source: str = ""

    @property
    def sparse_labels(self) -> bool:
        return self.loss == "sparse_categorical_crossentropy"

    @property
    def pool_dropout(self) -> float:
        """cnn: the dropout after the max-pool (`conv_dropout`, or `dropout` when that is unset)."""
        return self.dropout if self.conv_dropout is None else self.conv_dropout


def model_spec(models: dict[str, Any], name: str) -> ModelSpec:
    """Parse `models.<name>` from params into a ModelSpec, naming bad keys."""
    from tasks.config import parse_section

    if name not in models:
        raise PipelineError(f"unknown train.model '{name}'; choose one of: {', '.join(models)}")
    return parse_section(models, name, ModelSpec)


def optimizer(spec: ModelSpec) -> Any:
    """The tutorial's optimizer with its learning rate."""
    import keras

    if spec.optimizer == "sgd":
        return keras.optimizers.SGD(spec.learning_rate, momentum=spec.momentum, nesterov=spec.nesterov)
    if spec.optimizer == "rmsprop":
        return keras.optimizers.RMSprop(spec.learning_rate)
    return keras.optimizers.Adam(spec.learning_rate)


def dense_head(spec: ModelSpec) -> list[Any]:
    """Hidden Dense layers (each followed by dropout when set) and the softmax output."""
    from keras import layers

    stack: list[Any] = []
    for units in spec.hidden:
        stack.append(layers.Dense(units, activation=spec.activation))
        if spec.dropout:
            stack.append(layers.Dropout(spec.dropout))
    return [*stack, layers.Dense(N_CLASSES, activation="softmax")]


def build_dense(spec: ModelSpec, input_shape: tuple[int, ...]) -> Any:
    """MLPs and softmax regression: (N, 784) or (N, 28, 28, 1) -> (N, 10) probabilities."""
    import keras
    from keras import layers

    flatten = [layers.Flatten()] if len(input_shape) > 1 else []
    return keras.Sequential([keras.Input(shape=input_shape), *flatten, *dense_head(spec)])


def build_cnn(spec: ModelSpec, input_shape: tuple[int, ...]) -> Any:
    """The CSDN CNN: 3x3 convolutions, 2x2 max-pool, dropout, then the dense head."""
    import keras
    from keras import layers

    convs = [layers.Conv2D(filters, 3, activation="relu") for filters in spec.conv_filters]
    return keras.Sequential([
        keras.Input(shape=input_shape),  # (28, 28, 1)
        *convs,
        layers.MaxPooling2D(2),
        layers.Dropout(spec.pool_dropout),
        layers.Flatten(),
        *dense_head(spec),
    ])


def build_head(spec: ModelSpec, feature_dim: int) -> Any:
    """VGG16 transfer: the trainable head over cached features of the frozen base, (N, 512)."""
    import keras

    return keras.Sequential([keras.Input(shape=(feature_dim,)), *dense_head(spec)])


def build_linear(spec: ModelSpec) -> Any:
    """The single-neuron demo: Dense(1) learning y = 2x - 1."""
    import keras
    from keras import layers

    return keras.Sequential([keras.Input(shape=(1,)), layers.Dense(1)])


def build_model(spec: ModelSpec, input_shape: tuple[int, ...]) -> Any:
    """Build and compile the catalogue model for inputs of `input_shape` (no batch axis)."""
    if spec.kind == "cnn":
        model = build_cnn(spec, input_shape)
    elif spec.kind == "vgg16":
        model = build_head(spec, input_shape[-1])
    elif spec.kind == "linear":
        model = build_linear(spec)
    else:
        model = build_dense(spec, input_shape)
    metrics = [] if spec.kind == "linear" else [spec.metric]
    model.compile(optimizer=optimizer(spec), loss=spec.loss, metrics=metrics)
    return model
