"""Keras builders: one declarative builder per catalogue kind, every number from the entry.

The builders only declare layers; compiling (optimizer, loss, the tutorial's metric, and
top-1 accuracy beside a metric that is not top-1) is one function shared by all.
"""

from __future__ import annotations

from typing import Any

from mnist_pipeline.catalogue import N_CLASSES, ModelSpec

TOP1 = "top1"  # history key (and val_top1) of the added top-1 metric; reporting/plots.py reads it by this name


def optimizer(spec: ModelSpec) -> Any:
    """The tutorial's optimizer with its learning rate."""
    import keras

    if spec.optimizer == "sgd":
        return keras.optimizers.SGD(spec.learning_rate, momentum=spec.momentum, nesterov=spec.nesterov)
    if spec.optimizer == "rmsprop":
        return keras.optimizers.RMSprop(spec.learning_rate)
    return keras.optimizers.Adam(spec.learning_rate)


def compiled_metrics(spec: ModelSpec) -> list[Any]:
    """The tutorial's metric, and top-1 accuracy named TOP1 when that metric is not top-1 (`binary_accuracy`
    scores the 10 outputs as yes/no questions). Keras' `accuracy` is already top-1 for 10 softmax outputs.
    Metrics only measure: they change neither the gradients nor the random stream, so not the weights."""
    import keras

    if spec.metric == "accuracy":
        return [spec.metric]
    top1 = keras.metrics.SparseCategoricalAccuracy if spec.sparse_labels else keras.metrics.CategoricalAccuracy
    return [spec.metric, top1(name=TOP1)]


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


def build_model(spec: ModelSpec, input_shape: tuple[int, ...]) -> Any:
    """Build and compile the catalogue model for inputs of `input_shape` (no batch axis)."""
    if spec.kind == "cnn":
        model = build_cnn(spec, input_shape)
    elif spec.kind == "vgg16":
        model = build_head(spec, input_shape[-1])
    else:
        model = build_dense(spec, input_shape)
    model.compile(optimizer=optimizer(spec), loss=spec.loss, metrics=compiled_metrics(spec))
    return model

