"""Keras builders: one declarative builder per catalogue kind, every number from the entry.

The builders only declare layers; compiling (optimizer and its learning-rate schedule, loss, the
tutorial's metric, and top-1 accuracy beside a metric that is not top-1) is one function shared by all.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mnist_pipeline.errors import PipelineError

if TYPE_CHECKING:  # at run time any object with ModelSpec's fields builds (benchmarks/bench_gpu.py: no pydantic)
    from mnist_pipeline.catalogue import ModelSpec

N_CLASSES = 10
TOP1 = "top1"  # history key (and val_top1) of the top-1 metric train adds beside a tutorial metric that is not top-1


def learning_rate(spec: ModelSpec, steps_per_epoch: int | None) -> Any:
    """`learning_rate` itself (constant, no warmup), or a Keras schedule over the run's optimizer steps, epochs x
    `steps_per_epoch`: a linear warmup from 0 to `learning_rate` over the first `warmup_epochs`, then that rate
    (constant: CosineDecay with alpha 1 is Keras' warmup-then-constant) or a cosine decay to 0 at the last step.
    Keras evaluates it at the optimizer's iteration count, which a resumed run restores."""
    import keras

    if spec.schedule == "constant" and not spec.warmup_epochs:
        return spec.learning_rate
    if steps_per_epoch is None:
        raise PipelineError(f"schedule {spec.schedule} with warmup_epochs {spec.warmup_epochs} needs the number of "
                            "optimizer steps per epoch to build the model")
    if isinstance(spec.epochs, dict):
        raise PipelineError(f"epochs {spec.epochs} are per dataset: build from the entry as it trains on one "
                            "(ModelSpec.on(dataset))")
    if spec.warmup_epochs >= spec.epochs:
        raise PipelineError(f"warmup_epochs ({spec.warmup_epochs}) must be less than epochs ({spec.epochs}): "
                            "the schedule needs an epoch after the warmup (a shorter run: warmup_epochs 0)")
    warmup, rest = spec.warmup_epochs * steps_per_epoch, (spec.epochs - spec.warmup_epochs) * steps_per_epoch
    floor = 1.0 if spec.schedule == "constant" else 0.0  # the final rate, as a fraction of learning_rate
    if not warmup:
        return keras.optimizers.schedules.CosineDecay(spec.learning_rate, rest, alpha=floor)
    return keras.optimizers.schedules.CosineDecay(0.0, rest, alpha=floor, warmup_target=spec.learning_rate,
                                                  warmup_steps=warmup)


def optimizer(spec: ModelSpec, steps_per_epoch: int | None = None) -> Any:
    """The entry's optimizer with its learning rate or schedule."""
    import keras

    rate = learning_rate(spec, steps_per_epoch)
    if spec.optimizer == "sgd":
        return keras.optimizers.SGD(rate, momentum=spec.momentum, nesterov=spec.nesterov)
    if spec.optimizer == "rmsprop":
        return keras.optimizers.RMSprop(rate)
    if spec.optimizer == "adamw":
        return keras.optimizers.AdamW(rate, weight_decay=spec.weight_decay)
    return keras.optimizers.Adam(rate)


def loss(spec: ModelSpec) -> Any:
    """The entry's loss by its Keras name, or categorical cross-entropy against smoothed one-hot labels."""
    import keras

    if spec.label_smoothing:
        return keras.losses.CategoricalCrossentropy(label_smoothing=spec.label_smoothing)
    return spec.loss


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
    """Hidden Dense layers (each, or each of `dropout_layers`, followed by dropout when set) and the softmax
    output."""
    from keras import layers

    stack: list[Any] = []
    for position, units in enumerate(spec.hidden, start=1):
        stack.append(layers.Dense(units, activation=spec.activation))
        if spec.dropout and (spec.dropout_layers is None or position in spec.dropout_layers):
            stack.append(layers.Dropout(spec.dropout))
    return [*stack, layers.Dense(N_CLASSES, activation="softmax", dtype="float32")]  # float32 under mixed precision


def build_dense(spec: ModelSpec, input_shape: tuple[int, ...]) -> Any:
    """MLPs and softmax regression: (N, 784) or (N, 28, 28, 1) -> (N, 10) probabilities."""
    import keras
    from keras import layers

    flatten = [layers.Flatten()] if len(input_shape) > 1 else []
    return keras.Sequential([keras.Input(shape=input_shape), *flatten, *dense_head(spec)])


def augmentation(spec: ModelSpec, seed: int | None) -> list[Any]:
    """Random shifts, rotations and zoom (`augment`), a layer for each amount that is set. Keras applies them in
    training only (model.predict and model(x) leave images as they are). Each layer has its own seed (one
    seed in all three would tie a shift to a rotation); None: drawn from keras.utils.set_random_seed's.
    Uncovered pixels are 0: the background of images scaled to [0, 1] (prepare.normalize true) or raw (false);
    centered images have a background of -1, so their uncovered border would be grey."""
    from keras import layers

    amounts, fill = spec.augment, {"fill_mode": "constant", "fill_value": 0.0}
    seeds = [None if seed is None else seed + i for i in range(4)]
    stack: list[Any] = []
    if amounts and amounts.shift:
        stack.append(layers.RandomTranslation(amounts.shift, amounts.shift, seed=seeds[0], **fill))
    if amounts and amounts.rotation:
        stack.append(layers.RandomRotation(amounts.rotation, seed=seeds[1], **fill))
    if amounts and amounts.zoom:
        stack.append(layers.RandomZoom(amounts.zoom, seed=seeds[2], **fill))
    if amounts and amounts.brightness:  # last: the layers above fill what they uncover with the paper's 0
        stack.append(layers.RandomBrightness((0.0, amounts.brightness), value_range=(0.0, 1.0), seed=seeds[3]))
    return stack


def convolution(spec: ModelSpec, filters: int, padding: str) -> list[Any]:
    """A 3x3 convolution with relu; with batch normalisation between them when `batch_norm` (the convolution
    then has no bias: the normalisation's offset replaces it)."""
    from keras import layers

    if spec.batch_norm:
        return [layers.Conv2D(filters, 3, padding=padding, use_bias=False),
                layers.BatchNormalization(momentum=spec.batch_norm_momentum), layers.Activation("relu")]
    return [layers.Conv2D(filters, 3, padding=padding, activation="relu")]


def conv_stack(spec: ModelSpec, input_shape: tuple[int, ...]) -> list[Any]:
    """The convolution blocks, each ending in a 2x2 max-pool and dropout: `conv_blocks` ('same' padding, so
    (28, 28) -> (14, 14) -> (7, 7)), or the tutorial's one block of `conv_filters` ('valid': 28 -> 26 -> 24 -> 12)."""
    from keras import layers

    blocks, padding = (spec.conv_blocks, "same") if spec.conv_blocks else ([spec.conv_filters], "valid")
    if min(input_shape[:2]) < 2 ** len(blocks):
        raise PipelineError(f"conv_blocks: {len(blocks)} blocks halve {input_shape[:2]} images to nothing")
    stack: list[Any] = []
    for block in blocks:
        stack += [layer for filters in block for layer in convolution(spec, filters, padding)]
        stack += [layers.MaxPooling2D(2), layers.Dropout(spec.pool_dropout)]
    return stack


def build_cnn(spec: ModelSpec, input_shape: tuple[int, ...], seed: int | None = None) -> Any:
    """CNNs: augmentation (training only), convolution blocks, then the dense head; (N, 28, 28, 1) -> (N, 10).
    The catalogue's `cnn` (the CSDN tutorial's): two 3x3 convolutions, one 2x2 max-pool, dropout, the head."""
    import keras
    from keras import layers

    return keras.Sequential([
        keras.Input(shape=input_shape),  # (28, 28, 1)
        *augmentation(spec, seed),
        *conv_stack(spec, input_shape),
        layers.Flatten(),
        *dense_head(spec),
    ])


def build_head(spec: ModelSpec, feature_dim: int) -> Any:
    """VGG16 transfer: the trainable head over cached features of the frozen base, (N, 512)."""
    import keras

    return keras.Sequential([keras.Input(shape=(feature_dim,)), *dense_head(spec)])


def build_model(spec: ModelSpec, input_shape: tuple[int, ...], steps_per_epoch: int | None = None,
                seed: int | None = None) -> Any:
    """Build and compile the catalogue model for inputs of `input_shape` (no batch axis). `steps_per_epoch`
    (optimizer steps in one epoch of the fit) sizes a learning-rate schedule; `seed` seeds the augmentation."""
    if spec.kind == "cnn":
        model = build_cnn(spec, input_shape, seed)
    elif spec.kind == "vgg16":
        model = build_head(spec, input_shape[-1])
    else:
        model = build_dense(spec, input_shape)
    model.compile(optimizer=optimizer(spec, steps_per_epoch), loss=loss(spec), metrics=compiled_metrics(spec))
    return model

