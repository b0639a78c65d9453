"""The diagnosis reads the validation-loss curve and the recipe, not only train vs validation accuracy."""

from __future__ import annotations

import pytest
import yaml

from mnist_pipeline.catalogue import model_spec
from mnist_pipeline.config import EvaluateParams
from mnist_pipeline.metrics import diagnose, optimizer_steps, overfitting_advice, regularisation, still_improving
from tests.harness import ROOT

MODELS = yaml.safe_load((ROOT / "params.yaml").read_text())["models"]
PARAMS = EvaluateParams()  # underfitting below 80% training accuracy, overfitting above a 3-point gap


def record(val_loss: list[float], model: str = "mlp_500", patience: int = 3, images: int = 3_600,
           **spec: object) -> dict:
    """A train record (model/train.json) with only what the diagnosis reads."""
    return {"spec": model_spec(MODELS, model).model_copy(update=spec).model_dump(),
            "train_params": {"early_stopping_patience": patience}, "epochs_run": len(val_loss),
            "history": {"loss": [v * 0.9 for v in val_loss], "val_loss": val_loss},
            "shapes": {"x_train": [images, 784], "y_train": [images, 10]}}


FALLING = [0.9, 0.6, 0.45, 0.40, 0.38]  # best at the last epoch, 0.45 -> 0.38 over the last 3: still falling
STALLED = [0.9, 0.5, 0.45, 0.45, 0.45, 0.449]  # best at the last epoch but only 0.2% below 3 epochs before
ROSE = [0.5, 0.3, 0.32, 0.35, 0.4]  # best at epoch 2


def test_still_improving_rule():
    assert still_improving(FALLING) and still_improving([0.25, 0.145])  # two epochs: against the first
    assert not still_improving(STALLED) and not still_improving(ROSE)
    assert not still_improving([0.3, 0.2, 0.1, 0.15])  # fell over the window, but the last is not the best
    assert not still_improving([0.5]) and not still_improving([])  # one epoch says nothing about a trend
    assert not still_improving([0.5, float("nan"), 0.3])  # a diverged run is not improving


def test_optimizer_steps_count_the_last_partial_batch():
    assert optimizer_steps(5, 3_600, 100) == 180
    assert optimizer_steps(5, 3_601, 100) == 185


def test_still_falling_is_undertrained_with_the_steps_taken():
    line = diagnose(0.97, 0.96, record(FALLING, images=3_601), PARAMS)  # "fine" by accuracy alone
    assert line == ("undertrained: validation loss still falling at the last epoch (epoch 5: 36.7% lower than 3 "
                    "epochs before; 185 optimizer steps = 5 x ceil(3,601 / 100)); train longer or raise the "
                    "learning rate (adam at 0.001)")


def test_a_low_training_accuracy_still_improving_is_undertrained_not_underfitting():
    line = diagnose(0.30, 0.29, record(FALLING, model="lee_mse_sigmoid"), PARAMS)
    assert line.startswith("undertrained: validation loss still falling at the last epoch (epoch 5: 36.7% lower "
                           "than 3 epochs before; 180 optimizer")
    assert "(sgd at 0.1); training accuracy is only 30.0%" in line


def test_mse_still_learning_is_undertrained_though_its_loss_barely_moves():
    """Lee's MSE + sigmoid net: its loss falls in tiny steps while validation accuracy climbs (the tutorial's ~11%
    is a net that needs far more steps); that is undertrained, not a model that cannot fit."""
    slow = record([0.0900, 0.0899, 0.0898, 0.0897, 0.0896], model="lee_mse_sigmoid")
    slow["history"]["val_accuracy"] = [0.10, 0.15, 0.22, 0.26, 0.30]
    assert not still_improving(slow["history"]["val_loss"])  # by the loss alone: 0.3% in 3 epochs
    assert diagnose(0.30, 0.30, slow, PARAMS).startswith("undertrained: validation loss still falling")
    slow["history"]["val_accuracy"] = [0.10, 0.295, 0.30, 0.30, 0.30]  # accuracy flat too: it has stalled
    assert diagnose(0.30, 0.30, slow, PARAMS).startswith("underfitting:")


def test_underfitting_when_the_curve_has_stalled():
    line = diagnose(0.11, 0.11, record(STALLED, model="lee_mse_sigmoid"), PARAMS)
    assert line.startswith("underfitting: training accuracy is only 11.0% and its validation curve has flattened "
                           "(loss less than 1% lower and top-1 less than 1 point higher than 3 epochs before)")
    assert "change the model or the loss" in line
    assert diagnose(0.11, 0.11, record([2.3]), PARAMS).startswith("underfitting: training accuracy is only 11.0%,")


def test_overfitting_advice_skips_the_regularisation_the_run_has():
    both = diagnose(1.0, 0.95, record(ROSE, model="mlp_relu_adam"), PARAMS)  # dropout 0.5, early stopping on
    assert both == ("overfitting: training accuracy 100.0% vs validation 95.0% (gap 5.0%); it already uses "
                    "dropout 0.5 and early stopping (patience 3); more data or augmentation, stronger dropout, "
                    "weight decay or a smaller net help")
    assert "dropout or early stopping" not in both
    neither = diagnose(1.0, 0.95, record(ROSE, patience=0), PARAMS)  # mlp_500: no dropout, no early stopping
    assert neither.endswith("(gap 5.0%); dropout, early stopping, more data or augmentation, weight decay or a "
                            "smaller net help")
    only_stopping = diagnose(1.0, 0.95, record(ROSE), PARAMS)
    assert "it already uses early stopping (patience 3); dropout, more data" in only_stopping


def test_regularisation_names_the_dropout_layers_the_model_has():
    assert regularisation(model_spec(MODELS, "cnn"), 3) == ["dropout 0.25", "early stopping (patience 3)"]
    assert regularisation(model_spec(MODELS, "cnn").model_copy(update={"dropout": 0.5}), 0) == ["dropout 0.25/0.5"]
    # softmax regression has no hidden layer, so a dropout setting adds no dropout layer
    assert regularisation(model_spec(MODELS, "softmax_regression").model_copy(update={"dropout": 0.5}), 0) == []
    # the modern entry also regularises with augmentation and weight decay: the advice asks for more of them
    # (its schedule ends the run: no early stopping whatever train.early_stopping_patience says)
    modern = model_spec(MODELS, "modern_cnn").on("mnist")
    assert regularisation(modern, modern.patience(3)) == ["dropout 0.1/0.3", "augmentation", "weight decay 0.01"]
    assert regularisation(modern.model_copy(update={"early_stopping": True}), 3)[-1] == "early stopping (patience 3)"
    smoothed = modern.model_copy(update={"label_smoothing": 0.1})
    assert regularisation(smoothed, 0)[-1] == "label smoothing 0.1"
    assert overfitting_advice(modern, modern.patience(3)).endswith(
        "; early stopping, more data or stronger augmentation, stronger dropout, stronger weight decay or a "
        "smaller net help")


def test_fine_when_the_curve_has_settled_and_accuracies_are_close():
    fine = "fine: training 97.0% and validation 96.0% accuracy are close"
    assert diagnose(0.97, 0.96, record(STALLED), PARAMS) == fine
    assert diagnose(0.97, 0.96, record(ROSE), PARAMS).startswith("fine")


@pytest.mark.parametrize("val_loss", [FALLING, STALLED, ROSE, [0.4]])
def test_one_line_starting_with_the_diagnosis(val_loss: list[float]):
    for train_acc, val_acc in ((0.3, 0.3), (1.0, 0.9), (0.97, 0.96)):
        line = diagnose(train_acc, val_acc, record(val_loss), PARAMS)
        assert "\n" not in line and line.split(":")[0] in ("undertrained", "underfitting", "overfitting", "fine")
