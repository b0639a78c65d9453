"""Every catalogue entry builds from params and trains one epoch on a small real slice."""

from __future__ import annotations

import math

import numpy as np
import pytest
import yaml

from mnist_pipeline.catalogue import input_of, model_input, model_spec
from mnist_pipeline.config import EvaluateParams
from mnist_pipeline.data.preparation import prepare_arrays
from mnist_pipeline.errors import PipelineError
from mnist_pipeline.metrics import audit_metric, class_ids, per_class, top1
from mnist_pipeline.models import augmentation, build_model, learning_rate
from mnist_pipeline.reporting.plots import top1_key
from mnist_pipeline.training import match_labels, predict_splits, sample_rows
from tests.harness import ROOT  # noqa: E402

MODELS = yaml.safe_load((ROOT / "params.yaml").read_text())["models"]


def test_catalogue_is_one_source():
    """Every entry says its kind and loss, and they alone decide what the data stages make for it: a renamed
    entry (or a sweep's grid point written into params) takes what its kind and loss say, whatever its name."""
    for name, entry in MODELS.items():
        assert {"kind", "loss"} <= set(entry), name
    assert model_input(MODELS, "cnn") == input_of("cnn", "categorical_crossentropy")
    assert model_input(MODELS, "fashion_mlp_128").labels == "sparse"
    renamed = {"my_vgg": MODELS["vgg16_transfer"],
               "x--y": {**MODELS["mlp_500"], "loss": "sparse_categorical_crossentropy"}}
    assert model_input(renamed, "my_vgg").layout == "rgb"
    assert model_input(renamed, "x--y") == input_of("dense", "sparse_categorical_crossentropy")
    with pytest.raises(PipelineError, match="must say its kind"):
        model_input({"odd": {"loss": "mse"}}, "odd")


@pytest.mark.parametrize("name", sorted(MODELS))
def test_entry_builds_and_trains_one_epoch(name: str, small_raw):
    import keras

    spec = model_spec(MODELS, name).model_copy(update={"epochs": 1, "warmup_epochs": 0})  # 1 epoch: no warmup
    keras.utils.set_random_seed(0)
    needs = model_input(MODELS, name)
    layout = "flat" if needs.layout == "flat" else "image"
    data = prepare_arrays(small_raw, layout, needs.labels, 0.1, seed=0)
    x_train, x_val = data["x_train"], data["x_val"]
    if spec.kind == "vgg16":  # the head trains on 512-d features of the frozen base
        from mnist_pipeline.images import extract, resize_gray_to_rgb, vgg16_base

        base = vgg16_base("none", 48)
        x_train = extract(base, resize_gray_to_rgb(small_raw["x_train"][data["train_index"]][:64], 48), 32)
        x_val = extract(base, resize_gray_to_rgb(small_raw["x_train"][data["val_index"]][:16], 48), 32)
        data["y_train"], data["y_val"] = data["y_train"][:64], data["y_val"][:16]
        assert x_train.shape == (64, 512)
    model = build_model(spec, x_train.shape[1:], steps_per_epoch=math.ceil(len(x_train) / spec.batch_size), seed=0)
    y_train = match_labels(data["y_train"], spec.sparse_labels)
    history = model.fit(x_train, y_train, validation_data=(x_val, match_labels(data["y_val"], spec.sparse_labels)),
                        epochs=1, batch_size=spec.batch_size, verbose=0)
    assert np.isfinite(history.history["loss"][0]) and model.output_shape == (None, 10)
    assert spec.metric in history.history
    assert {top1_key(spec.metric), f"val_{top1_key(spec.metric)}"} <= set(history.history)  # the curves' top-1


def test_unknown_model_and_bad_spec_are_named():
    with pytest.raises(PipelineError, match="unknown model 'resnet'"):
        model_spec(MODELS, "resnet")
    with pytest.raises(PipelineError, match=r"mlp_500\.activaton"):
        model_spec({"mlp_500": {"activaton": "relu"}}, "mlp_500")


def test_binary_accuracy_gap_is_flagged():
    audit = audit_metric("binary_accuracy", 0.95, 0.62, EvaluateParams())
    assert audit["flagged"] and "overstates it by 33.0%" in audit["note"]
    assert not audit_metric("accuracy", 0.9701, 0.9700, EvaluateParams())["flagged"]


def test_top1_ignores_metric_names():
    probabilities = np.array([[0.1, 0.9], [0.8, 0.2], [0.4, 0.6]])
    assert top1(probabilities, np.array([1, 0, 0])) == pytest.approx(2 / 3)


@pytest.mark.parametrize("name", ["deep_relu", "mlp_512_rmsprop"])
def test_predictions_keras_figures_and_evaluate(name: str, small_raw):
    """train's predictions: Keras' loss and metric on them equal model.evaluate's; the training sample is
    seeded and its rows are recorded; evaluate (numpy only) gets top-1 and per-class figures that equal
    scikit-learn's, and says when training accuracy comes from a sample."""
    import keras
    from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

    from mnist_pipeline.metrics import evaluate_classifier

    spec = model_spec(MODELS, name).model_copy(update={"epochs": 1})
    data = prepare_arrays(small_raw, "flat", model_input(MODELS, name).labels, 0.1, seed=0)
    keras.utils.set_random_seed(0)
    model = build_model(spec, (784,))
    y_train = match_labels(data["y_train"], spec.sparse_labels)
    model.fit(data["x_train"], y_train, epochs=1, verbose=0)
    y_test = match_labels(data["y_test"], spec.sparse_labels)
    expected = model.evaluate(data["x_test"], y_test, verbose=0, return_dict=True)
    sample = sample_rows(len(data["x_train"]), 100, seed=42)
    inputs = {"test": data["x_test"], "val": data["x_val"], "train": data["x_train"][sample]}

    probs, keras_test = predict_splits(model, spec, inputs, y_test, batch_size=512)
    assert keras_test["value"] == pytest.approx(expected[spec.metric], abs=1e-6)  # the tutorial's metric, still
    # the top-1 metric compiled beside binary accuracy is top-1: argmax(prediction) == label
    assert expected[top1_key(spec.metric)] == pytest.approx(top1(probs["test"], class_ids(data["y_test"])), abs=1e-6)
    # the loss of the predicted probabilities (clipped at Keras' epsilon); model.evaluate works from the
    # logits and differs where outputs saturate, so the loss is checked against Keras' loss function
    by_function = keras.ops.convert_to_numpy(keras.losses.get(spec.loss)(y_test, probs["test"]))
    assert keras_test["loss"] == pytest.approx(float(np.mean(by_function)), rel=1e-6)
    assert len(probs["train"]) == 100 and list(sample) == sorted(set(sample))
    assert np.array_equal(sample_rows(len(data["x_train"]), 100, seed=42), sample)  # seeded

    truth = {"train": class_ids(data["y_train"])[sample], "val": class_ids(data["y_val"]),
             "test": class_ids(data["y_test"])}
    trained = {"spec": spec.model_dump(), "keras_on_test": keras_test,
               "predicted_train_images": [100, len(data["x_train"])], "history": {"val_loss": [0.5]},
               "epochs_run": 1, "train_params": {"early_stopping_patience": 3}, "shapes": {"x_train": [len(y_train)]}}
    result = evaluate_classifier(probs, truth, trained, EvaluateParams())
    assert result["metrics"]["accuracy"] == pytest.approx(float(np.mean(probs["test"].argmax(1) == truth["test"])))
    assert f"sample of 100 of {len(data['x_train']):,} images" in result["diagnosis"]
    precision, recall, f1, support = precision_recall_fscore_support(
        truth["test"], probs["test"].argmax(1), labels=list(range(10)), zero_division=0)
    assert [c["precision"] for c in result["per_class"]] == pytest.approx(list(precision))
    assert [c["recall"] for c in result["per_class"]] == pytest.approx(list(recall))
    assert [c["f1"] for c in result["per_class"]] == pytest.approx(list(f1))
    assert [c["support"] for c in result["per_class"]] == list(support)
    expected = confusion_matrix(truth["test"], probs["test"].argmax(1), labels=list(range(10)))
    assert result["confusion"] == expected.tolist()


def test_per_class_with_classes_never_predicted_or_absent():
    """scikit-learn's zero_division=0: a class never predicted has precision 0, an absent class recall 0."""
    from sklearn.metrics import precision_recall_fscore_support

    labels = np.array([0, 0, 1, 1, 2, 2, 3])
    predicted = np.array([0, 1, 1, 1, 0, 0, 4])  # 2 and 3 never predicted, 4 predicted but absent
    classes, _ = per_class(np.eye(10)[predicted], labels)
    expected = precision_recall_fscore_support(labels, predicted, labels=list(range(10)), zero_division=0)
    for key, values in zip(("precision", "recall", "f1"), expected[:3]):
        assert [c[key] for c in classes] == pytest.approx(list(values))


def test_cnn_dropout_rates():
    """`conv_dropout` is the dropout after the max-pool, `dropout` the one after each dense layer (the catalogue's
    cnn: 0.25 both, the tutorial's); without `conv_dropout`, `dropout` is used for both."""
    def rates(overrides: dict) -> list[float]:
        spec = model_spec({"cnn": {**MODELS["cnn"], **overrides}}, "cnn")
        return [layer.rate for layer in build_model(spec, (28, 28, 1)).layers if type(layer).__name__ == "Dropout"]

    assert rates({}) == [0.25] * 4
    assert rates({"dropout": 0.5}) == [0.25, 0.5, 0.5, 0.5]
    assert rates({"dropout": 0.4, "conv_dropout": None}) == [0.4] * 4


def test_dropout_after_chosen_hidden_layers_only():
    """`dropout_layers`: the Keras-concepts tutorial's dropout net has none after its first layer (004, line 936);
    a layer the entry does not have, or one named twice, is refused naming the key."""
    def follows(overrides: dict) -> list[int]:
        model = build_model(model_spec({"d": {**MODELS["deep_relu_dropout"], **overrides}}, "d"), (784,))
        kinds = [type(layer).__name__ for layer in model.layers]
        return [kinds[:i].count("Dense") for i, kind in enumerate(kinds) if kind == "Dropout"]

    assert follows({}) == [1, 2, 3, 4]
    assert follows({"dropout_layers": [2, 3, 4]}) == [2, 3, 4]
    for bad in ([5], [2, 2]):
        with pytest.raises(PipelineError, match=r"d\.dropout_layers"):
            model_spec({"d": {**MODELS["deep_relu_dropout"], "dropout_layers": bad}}, "d")


def test_restored_epoch_is_the_first_lowest_validation_loss():
    """Keras restores the best weights at the end of training even without stopping early: the report must say
    which epoch's weights it evaluated, not only how training stopped."""
    import keras

    from mnist_pipeline.training import restored_epoch

    history = {"val_loss": [0.5, 0.3, 0.4, 0.3]}
    restoring = [keras.callbacks.EarlyStopping(monitor="val_loss", patience=3, restore_best_weights=True)]
    assert restored_epoch(history, restoring) == 2
    assert restored_epoch(history, []) is None
    assert restored_epoch({}, restoring) is None


# The tutorials' entries as they were built before the modern fields existed (commit e602448): layer types in
# order and parameter counts. The new fields' defaults must leave them exactly so (the same initial weights for
# a seed too: checked once by hashing them before and after, not here, where a Keras upgrade would break it).
TUTORIAL_BUILDS = {
    "cnn": ("Conv2D Conv2D MaxPooling2D Dropout Flatten Dense Dropout Dense Dropout Dense Dropout Dense", 2_820_078),
    "deep_relu": ("Dense Dense Dense Dense Dense", 185_300),
    "deep_relu_dropout": ("Dense Dropout Dense Dropout Dense Dropout Dense Dropout Dense", 185_300),
    "deep_sigmoid": ("Dense Dense Dense Dense Dense", 185_300),
    "fashion_mlp_128": ("Dense Dense", 101_770),
    "lee_ce_relu": ("Dense Dense Dense", 648_010),
    "lee_ce_sigmoid": ("Dense Dense Dense", 648_010),
    "lee_deep10_mse_sigmoid": (" ".join(["Dense"] * 11), 2_652_010),
    "lee_mse_sigmoid": ("Dense Dense Dense", 648_010),
    "mlp_500": ("Dense Dense Dense", 648_010),
    "mlp_512_rmsprop": ("Dense Dense Dense", 669_706),
    "mlp_relu_adam": ("Dense Dropout Dense Dropout Dense Dropout Dense", 898_510),
    "mlp_tanh_dropout_sgd": ("Dense Dropout Dense Dropout Dense Dropout Dense", 898_510),
    "softmax_regression": ("Dense", 7_850),
    "vgg16_transfer": ("Dense Dropout Dense Dropout Dense", 512_010),
}
INPUT_SHAPE = {"dense": (784,), "cnn": (28, 28, 1), "vgg16": (512,)}


@pytest.mark.parametrize("name", sorted(TUTORIAL_BUILDS))
def test_tutorial_entries_build_as_before(name: str):
    """Same layers, parameters, optimizer at a constant learning rate, and loss by its Keras name."""
    spec = model_spec(MODELS, name)
    model = build_model(spec, INPUT_SHAPE[spec.kind])
    assert (" ".join(type(layer).__name__ for layer in model.layers), model.count_params()) == TUTORIAL_BUILDS[name]
    assert type(model.optimizer).__name__.lower() == spec.optimizer
    assert float(model.optimizer.learning_rate) == pytest.approx(spec.learning_rate)
    assert model.optimizer.get_config()["learning_rate"] == pytest.approx(spec.learning_rate)  # a float, no schedule
    assert model.loss == spec.loss


def test_modern_cnn_builds_from_its_entry():
    """Augmentation, two 'same'-padded blocks of conv -> relu, the head; AdamW on a cosine schedule; and with
    batch_norm (the ablation's modern_cnn-bn) conv without bias -> batch norm -> relu."""
    import keras

    spec = model_spec(MODELS, "modern_cnn").on("mnist")
    model = build_model(spec, (28, 28, 1), steps_per_epoch=29, seed=0)
    block = "Conv2D " * 2 + "MaxPooling2D Dropout "
    assert " ".join(type(layer).__name__ for layer in model.layers) == (
        "RandomTranslation RandomRotation RandomZoom RandomBrightness " + block * 2 + "Flatten Dense Dropout Dense")
    pools = [layer.output.shape[1:] for layer in model.layers if type(layer).__name__ == "MaxPooling2D"]
    assert pools == [(14, 14, 32), (7, 7, 64)]
    convs = [layer for layer in model.layers if type(layer).__name__ == "Conv2D"]
    assert [(c.filters, c.padding, c.use_bias) for c in convs] == [(32, "same", True), (32, "same", True),
                                                                  (64, "same", True), (64, "same", True)]
    assert [layer.rate for layer in model.layers if type(layer).__name__ == "Dropout"] == [0.1, 0.1, 0.3]
    assert isinstance(model.optimizer, keras.optimizers.AdamW) and model.optimizer.weight_decay == 0.01
    assert model.optimizer.get_config()["learning_rate"]["class_name"] == "CosineDecay"
    assert spec.patience(3) == 0  # the schedule ends the run, not early stopping

    normalised = build_model(spec.model_copy(update={"batch_norm": True}), (28, 28, 1), steps_per_epoch=29, seed=0)
    block = "Conv2D BatchNormalization Activation " * 2 + "MaxPooling2D Dropout "
    names = " ".join(type(layer).__name__ for layer in normalised.layers[4:])
    assert names == block * 2 + "Flatten Dense Dropout Dense"
    assert {layer.momentum for layer in normalised.layers if type(layer).__name__ == "BatchNormalization"} == {0.9}
    assert not any(layer.use_bias for layer in normalised.layers if type(layer).__name__ == "Conv2D")


def test_brightness_raises_the_background_only_in_training():
    """`augment.brightness` adds one random offset in [0, brightness] to every pixel of an image (clipped to
    [0, 1]): paper 0 becomes grey, ink stays at most 1."""
    import keras

    from mnist_pipeline.catalogue import Augmentation

    spec = model_spec(MODELS, "modern_cnn").model_copy(update={"augment": Augmentation(brightness=0.5)})
    layer = keras.Sequential([keras.Input(shape=(28, 28, 1)), *augmentation(spec, seed=0)])
    x = np.zeros((256, 28, 28, 1), np.float32)
    x[:, 10:18, 10:18] = 1.0
    out = keras.ops.convert_to_numpy(layer(x, training=True))
    background = out[:, 0, 0, 0]
    assert np.allclose(out[:, :5, :5, 0], background[:, None, None])  # one offset per image
    assert 0 <= background.min() < 0.05 and 0.45 < background.max() <= 0.5 and np.all(out[:, 12, 12, 0] == 1.0)
    assert np.array_equal(keras.ops.convert_to_numpy(layer(x, training=False)), x)


def test_augmentation_only_in_training(small_raw):
    """Keras applies the random shifts, rotations and zoom in training only: at inference the layers pass images
    through unchanged, so model(x) is deterministic and equals model.predict (what evaluate and predict use)."""
    import keras

    spec = model_spec(MODELS, "modern_cnn").on("mnist")
    x = (small_raw["x_test"][:64, ..., np.newaxis] / 255).astype(np.float32)  # (64, 28, 28, 1) in [0, 1]
    augment = keras.Sequential([keras.Input(shape=(28, 28, 1)), *augmentation(spec, seed=0)])
    assert np.array_equal(keras.ops.convert_to_numpy(augment(x, training=False)), x)
    moved = keras.ops.convert_to_numpy(augment(x, training=True))
    assert moved.shape == x.shape and np.mean(np.abs(moved - x) > 0.1) > 0.05  # pixels really move in training
    again = keras.Sequential([keras.Input(shape=(28, 28, 1)), *augmentation(spec, seed=0)])
    assert np.array_equal(keras.ops.convert_to_numpy(again(x, training=True)), moved)  # seeded

    model = build_model(spec, (28, 28, 1), steps_per_epoch=29, seed=0)
    first, second = (keras.ops.convert_to_numpy(model(x, training=False)) for _ in range(2))
    assert np.array_equal(first, second)
    np.testing.assert_allclose(model.predict(x, verbose=0), first, rtol=0, atol=1e-6)


def test_cosine_schedule_counts_the_runs_steps():
    """Linear warmup from 0 over warmup_epochs x steps_per_epoch, then cosine decay to 0 at the last step (or
    the learning rate to the end: schedule constant)."""
    spec = model_spec(MODELS, "modern_cnn").model_copy(update={"epochs": 15})  # 1 epoch of warmup, peak 0.003
    schedule = learning_rate(spec, steps_per_epoch=10)  # 10 warmup steps, 140 decay steps
    rates = [float(schedule(step)) for step in (0, 5, 10, 80, 150, 200)]
    assert rates[:3] == pytest.approx([0.0, 0.0015, 0.003])
    assert rates[3] == pytest.approx(0.0015)  # halfway through the decay
    assert rates[4:] == pytest.approx([0.0, 0.0], abs=1e-9)
    no_warmup = learning_rate(spec.model_copy(update={"warmup_epochs": 0}), steps_per_epoch=10)
    assert [float(no_warmup(step)) for step in (0, 75, 150)] == pytest.approx([0.003, 0.0015, 0.0], abs=1e-9)
    flat = learning_rate(spec.model_copy(update={"schedule": "constant"}), steps_per_epoch=10)  # warmup, then flat
    assert [float(flat(step)) for step in (0, 5, 10, 80, 150, 200)] == pytest.approx([0, 0.0015] + [0.003] * 4)
    assert learning_rate(model_spec(MODELS, "cnn"), None) == 0.001  # constant, no warmup: the number, as before
    with pytest.raises(PipelineError, match="needs the number of optimizer steps per epoch"):
        learning_rate(spec, None)
    with pytest.raises(PipelineError, match=r"warmup_epochs \(1\) must be less than epochs \(1\)"):
        learning_rate(spec.model_copy(update={"epochs": 1}), 10)  # train.epochs=1 without warmup_epochs=0


@pytest.mark.parametrize(("name", "change", "named"), [
    ("mlp_500", {"augment": {"shift": 0.1}}, r"models\.mlp_500\.augment: .*only for kind cnn"),
    ("mlp_500", {"batch_norm": True}, r"models\.mlp_500\.batch_norm: .*only for kind cnn"),
    ("mlp_500", {"conv_blocks": [[32]]}, r"models\.mlp_500\.conv_blocks: .*only for kind cnn"),
    ("modern_cnn", {"augment": {"rotation": 0.7}}, r"models\.modern_cnn\.augment\.rotation: .*less than or equal"),
    ("modern_cnn", {"augment": {"zoom": -0.1}}, r"models\.modern_cnn\.augment\.zoom: .*greater than or equal to 0"),
    ("modern_cnn", {"augment": {"shift": "0.1"}}, r"models\.modern_cnn\.augment\.shift: .*valid number"),
    ("modern_cnn", {"augment": {"shfit": 0.1}}, r"models\.modern_cnn\.augment\.shfit: .*not permitted"),
    ("modern_cnn", {"augment": 0.1}, r"models\.modern_cnn\.augment: .*valid dictionary"),
    ("modern_cnn", {"conv_blocks": []}, r"models\.modern_cnn\.conv_blocks: .*at least 1 item"),
    ("modern_cnn", {"conv_blocks": [[32], []]}, r"models\.modern_cnn\.conv_blocks\.1: .*at least 1 item"),
    ("modern_cnn", {"conv_blocks": [[32, 0]]}, r"models\.modern_cnn\.conv_blocks\.0\.1: .*greater than or equal to 1"),
    ("modern_cnn", {"batch_norm": "yes"}, r"models\.modern_cnn\.batch_norm: .*valid boolean"),
    ("modern_cnn", {"batch_norm_momentum": 1.0}, r"models\.modern_cnn\.batch_norm_momentum: .*less than 1"),
    ("modern_cnn", {"optimizer": "lamb"}, r"models\.modern_cnn\.optimizer: .*'adamw'"),
    ("modern_cnn", {"optimizer": "adam"}, r"models\.modern_cnn\.weight_decay: .*only for optimizer adamw"),
    ("modern_cnn", {"weight_decay": -0.01}, r"models\.modern_cnn\.weight_decay: .*greater than or equal to 0"),
    ("modern_cnn", {"schedule": "onecycle"}, r"models\.modern_cnn\.schedule: .*'constant' or 'cosine'"),
    ("modern_cnn", {"epochs": 1}, r"models\.modern_cnn\.warmup_epochs: .*less than epochs \(1\)"),
    ("cnn", {"warmup_epochs": 12}, r"models\.cnn\.warmup_epochs: .*less than epochs \(12\)"),
    ("modern_cnn", {"epochs": {"mnist": 30}}, r"models\.modern_cnn\.epochs: .*name each of mnist, fashion_mnist; "
                                              r"missing: fashion_mnist"),
    ("modern_cnn", {"epochs": {"mnist": 30, "fashion_mnist": 7, "kmnist": 5}},
     r"models\.modern_cnn\.epochs: .*unknown: kmnist"),
    ("modern_cnn", {"epochs": {"mnist": 30, "fashion_mnist": 0}},
     r"models\.modern_cnn\.epochs: .*whole numbers of at least 1 \(fashion_mnist: 0\)"),
    ("cnn", {"epochs": 0}, r"models\.cnn\.epochs: .*whole number of at least 1, or one per dataset .*got 0"),
    ("modern_cnn", {"epochs": {"mnist": 30, "fashion_mnist": 1}},
     r"models\.modern_cnn\.warmup_epochs: .*less than epochs \(1\)"),  # the shorter dataset's run counts
    ("modern_cnn", {"warmup_epochs": 1.5}, r"models\.modern_cnn\.warmup_epochs: .*valid integer"),
    ("modern_cnn", {"label_smoothing": 1.0}, r"models\.modern_cnn\.label_smoothing: .*less than 1"),
    ("fashion_mlp_128", {"label_smoothing": 0.1},
     r"models\.fashion_mlp_128\.label_smoothing: .*only for loss categorical_crossentropy"),
])
def test_bad_modern_values_are_refused_naming_the_key(name: str, change: dict, named: str):
    """One error, naming the key (and the setting it conflicts with)."""
    with pytest.raises(PipelineError, match=named) as refused:
        model_spec({name: {**MODELS[name], **change}}, name)
    assert str(refused.value).count("models.") == 1, str(refused.value)


def test_epochs_per_dataset_resolve_to_the_datas_own():
    """modern_cnn trains 30 epochs on the MNIST sample and 7 on full Fashion-MNIST; one number serves both."""
    spec = model_spec(MODELS, "modern_cnn")
    assert spec.epochs == {"mnist": 30, "fashion_mnist": 7}
    assert (spec.on("mnist").epochs, spec.on("fashion_mnist").epochs) == (30, 7)
    assert spec.epochs == {"mnist": 30, "fashion_mnist": 7}  # `on` makes a copy: the entry is unchanged
    assert model_spec(MODELS, "cnn").on("fashion_mnist").epochs == 12


def test_too_many_conv_blocks_is_named():
    spec = model_spec({"deep": {**MODELS["modern_cnn"], "conv_blocks": [[8]] * 5}}, "deep")
    with pytest.raises(PipelineError, match=r"conv_blocks: 5 blocks halve \(28, 28\) images to nothing"):
        build_model(spec, (28, 28, 1), steps_per_epoch=1)


def test_label_smoothing_smooths_the_training_loss_only():
    """label_smoothing compiles Keras' categorical cross-entropy with smoothed targets; none keeps the loss's name."""
    import keras

    spec = model_spec({"m": {**MODELS["modern_cnn"], "label_smoothing": 0.1}}, "m").on("mnist")
    model = build_model(spec, (28, 28, 1), steps_per_epoch=1)
    assert isinstance(model.loss, keras.losses.CategoricalCrossentropy) and model.loss.label_smoothing == 0.1
    unsmoothed = build_model(model_spec(MODELS, "modern_cnn").on("mnist"), (28, 28, 1), steps_per_epoch=1)
    assert unsmoothed.loss == "categorical_crossentropy"
