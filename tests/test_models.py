"""Every catalogue entry builds from params and trains one epoch on a small real slice."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

from tasks.catalogue import CATALOGUE, model_input
from tasks.config import EvaluateParams
from tasks.errors import PipelineError
from tasks.evaluate import audit_metric, diagnose, top1
from tasks.models import build_model, model_spec
from tasks.prepare import prepare_arrays
from tasks.train import match_labels

ROOT = Path(__file__).resolve().parents[1]
MODELS = yaml.safe_load((ROOT / "params.yaml").read_text())["models"]


def test_catalogue_and_params_agree():
    assert set(MODELS) == set(CATALOGUE)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_entry_builds_and_trains_one_epoch(name: str, small_raw):
    import keras

    spec = model_spec(MODELS, name).model_copy(update={"epochs": 1})
    keras.utils.set_random_seed(0)
    if spec.kind == "linear":
        model = build_model(spec, (1,))
        history = model.fit(np.arange(6, dtype=np.float32), np.arange(6, dtype=np.float32) * 2 - 1, verbose=0)
        assert np.isfinite(history.history["loss"][0])
        return
    needs = model_input(name)
    layout = "flat" if needs.layout == "flat" else "image"
    data = prepare_arrays(small_raw, layout, needs.labels, 0.1, seed=0)
    x_train, x_val = data["x_train"], data["x_val"]
    if spec.kind == "vgg16":  # the head trains on 512-d features of the frozen base
        from tasks.features import extract, vgg16_base
        from tasks.resize import resize_gray_to_rgb

        base = vgg16_base("none", 48)
        x_train = extract(base, resize_gray_to_rgb(small_raw["x_train"][data["train_index"]][:64], 48), 32)
        x_val = extract(base, resize_gray_to_rgb(small_raw["x_train"][data["val_index"]][:16], 48), 32)
        data["y_train"], data["y_val"] = data["y_train"][:64], data["y_val"][:16]
        assert x_train.shape == (64, 512)
    model = build_model(spec, x_train.shape[1:])
    y_train = match_labels(data["y_train"], spec.sparse_labels)
    history = model.fit(x_train, y_train, validation_data=(x_val, match_labels(data["y_val"], spec.sparse_labels)),
                        epochs=1, batch_size=spec.batch_size, verbose=0)
    assert np.isfinite(history.history["loss"][0]) and model.output_shape == (None, 10)
    assert spec.metric in history.history


def test_unknown_model_and_bad_spec_are_named():
    with pytest.raises(PipelineError, match="unknown train.model 'resnet'"):
        model_spec(MODELS, "resnet")
    with pytest.raises(PipelineError, match=r"mlp_500\.activaton"):
        model_spec({"mlp_500": {"activaton": "relu"}}, "mlp_500")


def test_binary_accuracy_gap_is_flagged():
    audit = audit_metric("binary_accuracy", 0.95, 0.62, EvaluateParams())
    assert audit["flagged"] and "overstates it by 33.0%" in audit["note"]
    assert not audit_metric("accuracy", 0.9701, 0.9700, EvaluateParams())["flagged"]


def test_diagnosis():
    params = EvaluateParams()
    assert diagnose(0.11, 0.11, params).startswith("underfitting")
    assert diagnose(1.0, 0.95, params).startswith("overfitting")
    assert diagnose(0.97, 0.96, params).startswith("fine")


def test_top1_ignores_metric_names():
    probabilities = np.array([[0.1, 0.9], [0.8, 0.2], [0.4, 0.6]])
    assert top1(probabilities, np.array([1, 0, 0])) == pytest.approx(2 / 3)


@pytest.mark.parametrize("name", ["deep_relu", "mlp_512_rmsprop"])
def test_evaluate_matches_keras_and_samples_training_accuracy(name: str, small_raw):
    """The Keras metric beside top-1 is what model.evaluate reports, computed on the same predictions;
    training accuracy is measured on the seeded sample `train_sample` and says so."""
    import keras

    from tasks.evaluate import evaluate_classifier

    spec = model_spec(MODELS, name).model_copy(update={"epochs": 1})
    data = prepare_arrays(small_raw, "flat", model_input(name).labels, 0.1, seed=0)
    keras.utils.set_random_seed(0)
    model = build_model(spec, (784,))
    model.fit(data["x_train"], match_labels(data["y_train"], spec.sparse_labels), epochs=1, verbose=0)
    y_test = match_labels(data["y_test"], spec.sparse_labels)
    expected = model.evaluate(data["x_test"], y_test, verbose=0, return_dict=True)[spec.metric]

    result = evaluate_classifier(model, spec.model_dump(), dict(data), EvaluateParams(train_sample=100))
    assert result["metrics"][f"keras_{spec.metric}"] == pytest.approx(expected, abs=1e-6)
    assert result["train_accuracy_images"] == [100, len(data["x_train"])]
    assert f"sample of 100 of {len(data['x_train']):,} images" in result["diagnosis"]
    whole = evaluate_classifier(model, spec.model_dump(), dict(data), EvaluateParams(train_sample=None))
    assert whole["train_accuracy_images"] == [len(data["x_train"])] * 2 and "sample" not in whole["diagnosis"]
    assert whole["metrics"]["accuracy"] == result["metrics"]["accuracy"]
