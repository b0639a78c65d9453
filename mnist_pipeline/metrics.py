"""Measuring a classifier honestly from its predictions, independent of Keras' metric names.

Top-1 accuracy is argmax(prediction) == label, computed here. Keras' own metric (the
one the tutorial reported) is shown beside it, and a gap is flagged: compiling with
`binary_crossentropy` made old Keras report *binary* accuracy, which counts each of the
ten outputs as a yes/no question and so scores near 90% even for a useless model.
Also: per-class precision, recall and F1, the confusion matrix, the most confident
mistakes, and train vs validation vs test accuracy with a one-line diagnosis (training
accuracy on the seeded sample of `train.predict_train_images` training images) that also
reads the validation-loss curve and the recipe (optimizer steps, dropout, early stopping).

numpy only: no TensorFlow, Keras or scikit-learn to import (tests compare with scikit-learn).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from mnist_pipeline.catalogue import ModelSpec
from mnist_pipeline.config import EvaluateParams
from mnist_pipeline.distortions import split_name
from mnist_pipeline.models import N_CLASSES

Z95 = 1.959963984540054  # the normal quantile of a two-sided 95% interval
IMPROVING_WINDOW = 3  # epochs: validation loss "still falling" is judged over the last this many epochs
IMPROVING_DROP = 0.01  # ... and must have fallen by more than this fraction of its value before them,
IMPROVING_GAIN = 0.01  # or validation top-1 accuracy risen by more than this (MSE's loss moves in tiny steps)


def wilson_interval(correct: int, total: int, z: float = Z95) -> tuple[float, float]:
    """The 95% Wilson score interval of a proportion `correct / total` (sound near 0 and 1, unlike p +- z se)."""
    if total <= 0:
        return 0.0, 1.0
    p = correct / total
    centre = (p + z * z / (2 * total)) / (1 + z * z / total)
    half = z * np.sqrt(p * (1 - p) / total + z * z / (4 * total * total)) / (1 + z * z / total)
    return float(max(0.0, centre - half)), float(min(1.0, centre + half))


def top1(probabilities: np.ndarray, labels: np.ndarray) -> float:
    """Fraction of rows whose highest-probability class is the true class id."""
    return float(np.mean(probabilities.argmax(axis=1) == labels))


def class_ids(y: np.ndarray) -> np.ndarray:
    """(N,) ids from ids or one-hot rows."""
    return y.argmax(axis=1) if y.ndim == 2 else y.astype(np.int64)


def still_improving(val_loss: list[float], val_accuracy: list[float] | None = None) -> bool:
    """Validation loss still falling at the last epoch: the last epoch has the lowest validation loss of the run,
    and over the last IMPROVING_WINDOW epochs (fewer in a shorter run) it fell by more than IMPROVING_DROP of its
    value, or validation top-1 accuracy rose by more than IMPROVING_GAIN (an MSE loss moves in tiny steps while
    accuracy climbs). Needs two finite epochs; a diverged (non-finite) curve is not improving."""
    losses = np.asarray(val_loss, dtype=np.float64)
    if len(losses) < 2 or not np.all(np.isfinite(losses)) or losses[-1] > losses.min():
        return False
    drop, window = recent_drop(val_loss)
    gained = bool(val_accuracy) and len(val_accuracy or []) == len(val_loss) and (
        val_accuracy[-1] - val_accuracy[-1 - window] > IMPROVING_GAIN)
    return bool(drop > IMPROVING_DROP or gained)


def recent_drop(val_loss: list[float]) -> tuple[float, int]:
    """How much validation loss fell over its last IMPROVING_WINDOW epochs (fewer in a shorter run), as a
    fraction of its value before them, and over how many epochs."""
    window = min(IMPROVING_WINDOW, len(val_loss) - 1)
    before, last = val_loss[-1 - window], val_loss[-1]
    return (before - last) / before if before else 0.0, window


def optimizer_steps(epochs: int, images: int, batch_size: int) -> int:
    """Weight updates made: epochs x ceil(images / batch size) (a last partial batch is one step too)."""
    return epochs * math.ceil(images / batch_size)


def regularisation(spec: ModelSpec, patience: int) -> list[str]:
    """What the run already does against overfitting: its dropout layers' rates (in layer order), augmentation,
    weight decay, label smoothing and early stopping (`patience` epochs on validation loss, the run's: 0 is off,
    also for an entry that turns it off, ModelSpec.patience)."""
    rates = ([spec.pool_dropout] if spec.kind == "cnn" and spec.pool_dropout else []) + (
        [spec.dropout] if spec.hidden and spec.dropout else [])
    used = [f"dropout {'/'.join(f'{rate:g}' for rate in dict.fromkeys(rates))}"] if rates else []
    used += ["augmentation"] if augmented(spec) else []
    used += [f"weight decay {spec.weight_decay:g}"] if spec.weight_decay else []
    used += [f"label smoothing {spec.label_smoothing:g}"] if spec.label_smoothing else []
    return used + ([f"early stopping (patience {patience})"] if patience else [])


def augmented(spec: ModelSpec) -> bool:
    """Whether training sees randomly shifted, rotated, zoomed or brightened images."""
    amounts = spec.augment
    return amounts is not None and bool(amounts.shift or amounts.rotation or amounts.zoom or amounts.brightness)


def overfitting_advice(spec: ModelSpec, patience: int) -> str:
    """Remedies the run does not already use (or stronger ones), after saying which it does."""
    used = regularisation(spec, patience)
    has_dropout = any(u.startswith("dropout") for u in used)
    remedies = ([] if has_dropout else ["dropout"]) + ([] if patience else ["early stopping"]) + [
        "more data or stronger augmentation" if augmented(spec) else "more data or augmentation",
        *(["stronger dropout"] if has_dropout else []),
        "stronger weight decay" if spec.weight_decay else "weight decay", "a smaller net"]
    already = f"it already uses {' and '.join(used)}; " if used else ""
    return f"{already}{', '.join(remedies[:-1])} or {remedies[-1]} help"


def undertrained(train_acc: float, val_acc: float, spec: ModelSpec, epochs: int, images: int,
                 params: EvaluateParams, val_loss: list[float]) -> str:
    """The undertrained line: the last epoch, how fast validation loss still falls, the optimizer steps it
    took, and what a low training accuracy or a wide gap mean while the run is still improving."""
    steps = optimizer_steps(epochs, images, spec.batch_size)
    drop, window = recent_drop(val_loss)
    pace = f"{drop:.1%} lower than {window} epoch{'s' if window > 1 else ''} before"
    line = (f"undertrained: validation loss still falling at the last epoch (epoch {epochs}: {pace}; "
            f"{steps:,} optimizer steps = {epochs} x ceil({images:,} / {spec.batch_size})); train longer or raise "
            f"the learning rate ({spec.optimizer} at {spec.learning_rate:g})")
    if train_acc < params.underfit_train_below:
        return (f"{line}; training accuracy is only {train_acc:.1%}, but a run still improving has not shown "
                "that the model cannot fit")
    if train_acc - val_acc > params.overfit_gap:
        return f"{line}; training accuracy {train_acc:.1%} is already {train_acc - val_acc:.1%} above validation"
    return line


def diagnose(train_acc: float, val_acc: float, trained: dict[str, Any], params: EvaluateParams) -> str:
    """The Lee tutorial's lesson, look at training accuracy before test accuracy, read with the curves and the
    recipe of `trained` (the train record: history, epochs_run, shapes, spec, train_params). In order:
    undertrained (validation loss `still_improving`: it also overrides a low training accuracy, which then says
    nothing yet about the model), underfitting (training accuracy below `underfit_train_below`), overfitting
    (training minus validation accuracy above `overfit_gap`; advice beyond the regularisation the run already
    has), fine. One line starting with that word."""
    spec = ModelSpec.model_validate(trained["spec"])
    patience = spec.patience(trained["train_params"]["early_stopping_patience"])
    history, epochs = trained["history"], trained["epochs_run"]
    val_loss = history.get("val_loss", [])
    val_top1 = history.get("val_top1") or history.get("val_accuracy")  # top-1 whatever Keras' metric was
    if still_improving(val_loss, val_top1):
        return undertrained(train_acc, val_acc, spec, epochs, trained["shapes"]["x_train"][0], params, val_loss)
    if train_acc < params.underfit_train_below:
        stalled = ""
        if len(val_loss) > 1 and np.any(np.isfinite(val_loss)):
            best = int(np.nanargmin(val_loss)) + 1
            stalled = (f" and validation loss stopped falling (lowest at epoch {best} of {len(val_loss)})"
                       if best < len(val_loss) else
                       f" and its validation curve has flattened (loss less than {IMPROVING_DROP:.0%} lower and "
                       f"top-1 less than {IMPROVING_GAIN * 100:g} point higher than {recent_drop(val_loss)[1]} "
                       "epochs before)")
        return (f"underfitting: training accuracy is only {train_acc:.1%}{stalled}, so the model cannot fit even "
                "the data it trains on; change the model or the loss, not the regularisation")
    if train_acc - val_acc > params.overfit_gap:
        return (f"overfitting: training accuracy {train_acc:.1%} vs validation {val_acc:.1%} "
                f"(gap {train_acc - val_acc:.1%}); {overfitting_advice(spec, patience)}")
    return f"fine: training {train_acc:.1%} and validation {val_acc:.1%} accuracy are close"


def audit_metric(metric: str, keras_value: float, accuracy: float, params: EvaluateParams) -> dict[str, Any]:
    """Compare what Keras reported under `metric` with the true top-1 accuracy."""
    gap = keras_value - accuracy
    flagged = abs(gap) > params.metric_gap
    note = (f"Keras reported {metric} {keras_value:.2%}, true top-1 accuracy is {accuracy:.2%}"
            + (f": {metric} overstates it by {gap:.1%}" if flagged and gap > 0 else ""))
    if flagged and metric == "binary_accuracy":
        note += " (binary accuracy scores each of the 10 outputs as a separate yes/no, so 9 easy 'no's inflate it)"
    return {"keras_metric": metric, "keras_value": keras_value, "top1_accuracy": accuracy,
            "gap": gap, "flagged": flagged, "note": note}


def confident_mistakes(probabilities: np.ndarray, labels: np.ndarray, count: int) -> list[dict[str, Any]]:
    """The wrong predictions the model was surest of: index, true, predicted, probability."""
    predicted = probabilities.argmax(axis=1)
    wrong = np.flatnonzero(predicted != labels)
    confidence = probabilities[wrong, predicted[wrong]]
    order = wrong[np.argsort(-confidence, kind="stable")][:count]
    return [{"index": int(i), "true": int(labels[i]), "predicted": int(predicted[i]),
             "probability": float(probabilities[i, predicted[i]])} for i in order]


def per_class(probabilities: np.ndarray, labels: np.ndarray) -> tuple[list[dict[str, Any]], list[list[int]]]:
    """Per-class precision, recall, F1 and support; the confusion matrix (rows: true, columns: predicted).
    A class never predicted has precision 0, a class never present recall 0 (scikit-learn's zero_division=0)."""
    predicted = probabilities.argmax(axis=1)
    confusion = np.zeros((N_CLASSES, N_CLASSES), dtype=np.int64)
    np.add.at(confusion, (labels, predicted), 1)
    hits, support, claimed = np.diag(confusion), confusion.sum(axis=1), confusion.sum(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(claimed > 0, hits / claimed, 0.0)
        recall = np.where(support > 0, hits / support, 0.0)
        f1 = np.where(support + claimed > 0, 2 * hits / (support + claimed), 0.0)
    rows = [{"class": c, "precision": float(precision[c]), "recall": float(recall[c]), "f1": float(f1[c]),
             "support": int(support[c])} for c in range(N_CLASSES)]
    return rows, confusion.tolist()


def distorted_accuracy(probs: dict[str, np.ndarray], labels: np.ndarray,
                       measured: dict[str, str]) -> dict[str, dict[str, Any]]:
    """Top-1 accuracy on the test images under each distortion of `measured` (name: what it does), with its 95%
    Wilson interval; `probs` holds each one's predictions as the split `split_name(name)`."""
    out = {}
    for name, how in measured.items():
        correct = int(np.sum(probs[split_name(name)].argmax(axis=1) == labels))
        out[name] = {"how": how, "accuracy": correct / len(labels), "correct": correct, "total": len(labels),
                     "ci95": wilson_interval(correct, len(labels))}
    return out


def evaluate_classifier(probs: dict[str, np.ndarray], truth: dict[str, np.ndarray], trained: dict[str, Any],
                        params: EvaluateParams) -> dict[str, Any]:
    """All measurements of a classifier on train (a sample), validation and test, from its predictions."""
    spec, keras_test = trained["spec"], trained["keras_on_test"]
    accuracy = {split: top1(probs[split], truth[split]) for split in ("train", "val", "test")}
    sampled, train_total = trained["predicted_train_images"]
    classes, confusion = per_class(probs["test"], truth["test"])
    return {
        "metrics": {"accuracy": accuracy["test"], "loss": keras_test["loss"], "train_accuracy": accuracy["train"],
                    "val_accuracy": accuracy["val"], f"keras_{spec['metric']}": keras_test["value"],
                    "macro_f1": float(np.mean([c["f1"] for c in classes]))},
        "audit": audit_metric(spec["metric"], keras_test["value"], accuracy["test"], params),
        "diagnosis": diagnose(accuracy["train"], accuracy["val"], trained, params)
        + (f" (training accuracy on a seeded sample of {sampled:,} of {train_total:,} images)"
           if sampled < train_total else ""),
        "train_accuracy_images": [sampled, train_total],
        "intervals": {split: {"correct": int(round(accuracy[split] * len(truth[split]))), "total": len(truth[split]),
                              "ci95": wilson_interval(int(round(accuracy[split] * len(truth[split]))),
                                                      len(truth[split]))} for split in ("val", "test")},
        "per_class": classes, "confusion": confusion,
        "mistakes": confident_mistakes(probs["test"], truth["test"], params.mistakes),
        "predicted": probs["test"].argmax(axis=1).tolist(), "true": truth["test"].tolist(),
    }
