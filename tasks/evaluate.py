"""evaluate: measure the trained model honestly, independent of Keras' metric names.

Top-1 accuracy is argmax(prediction) == label, computed here. Keras' own metric (the
one the tutorial reported) is shown beside it, and a gap is flagged: compiling with
`binary_crossentropy` made old Keras report *binary* accuracy, which counts each of the
ten outputs as a yes/no question and so scores near 90% even for a useless model.
Also: per-class precision, recall and F1, the confusion matrix, the most confident
mistakes, and train vs validation vs test accuracy with a one-line diagnosis (training
accuracy on the seeded sample of `train.predict_train_images` training images).

The probabilities come from `model/predictions.npz`, which the train stage wrote with the
saved model right after the fit; the true labels come from the prepared data. This stage
imports neither TensorFlow nor Keras (numpy only), so it takes a fraction of a second.
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path
from typing import Any

import numpy as np

from tasks.config import EvaluateParams, TrainModelParams, load_params, parse_section
from tasks.errors import PipelineError
from tasks.files import atomic_path, load_npz, read_json, write_json
from tasks.stage import log, run_stage

METRICS_FILE = "metrics.json"
DETAIL_FILE = "evaluation.json"
CONFUSION_FILE = "confusion.csv"


def top1(probabilities: np.ndarray, labels: np.ndarray) -> float:
    """Fraction of rows whose highest-probability class is the true class id."""
    return float(np.mean(probabilities.argmax(axis=1) == labels))


def class_ids(y: np.ndarray) -> np.ndarray:
    """(N,) ids from ids or one-hot rows."""
    return y.argmax(axis=1) if y.ndim == 2 else y.astype(np.int64)


def diagnose(train_acc: float, val_acc: float, params: EvaluateParams) -> str:
    """The Lee tutorial's lesson: look at training accuracy before test accuracy."""
    if train_acc < params.underfit_train_below:
        return (f"underfitting: training accuracy is only {train_acc:.1%}, so the model cannot fit even the data "
                "it trains on; change the model or the loss, not the regularisation")
    if train_acc - val_acc > params.overfit_gap:
        return (f"overfitting: training accuracy {train_acc:.1%} vs validation {val_acc:.1%} "
                f"(gap {train_acc - val_acc:.1%}); more data, dropout or early stopping help")
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
    confusion = np.zeros((10, 10), dtype=np.int64)
    np.add.at(confusion, (labels, predicted), 1)
    hits, support, claimed = np.diag(confusion), confusion.sum(axis=1), confusion.sum(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(claimed > 0, hits / claimed, 0.0)
        recall = np.where(support > 0, hits / support, 0.0)
        f1 = np.where(support + claimed > 0, 2 * hits / (support + claimed), 0.0)
    rows = [{"class": c, "precision": float(precision[c]), "recall": float(recall[c]), "f1": float(f1[c]),
             "support": int(support[c])} for c in range(10)]
    return rows, confusion.tolist()


def load_truth(prepared_dir: str, predictions: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """True class ids for each predicted split, from the prepared data (labels only: the images stay on disk)."""
    prepared = load_npz(Path(prepared_dir) / "prepared.npz", ("y_train", "y_val", "y_test"))
    truth = {"train": class_ids(prepared["y_train"])[predictions["train_rows"]],
             "val": class_ids(prepared["y_val"]), "test": class_ids(prepared["y_test"])}
    for split, ids in truth.items():
        if len(ids) != len(predictions[split]):
            raise PipelineError(f"the predictions in model/ are for {len(predictions[split]):,} {split} images but the "
                                f"prepared data has {len(ids):,}: re-run train (dvc repro does)")
    return truth


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
        "diagnosis": diagnose(accuracy["train"], accuracy["val"], params)
        + (f" (training accuracy on a seeded sample of {sampled:,} of {train_total:,} images)"
           if sampled < train_total else ""),
        "train_accuracy_images": [sampled, train_total],
        "per_class": classes, "confusion": confusion,
        "mistakes": confident_mistakes(probs["test"], truth["test"], params.mistakes),
        "predicted": probs["test"].argmax(axis=1).tolist(), "true": truth["test"].tolist(),
    }


def evaluate_linear(prediction: float) -> dict[str, Any]:
    """The single-neuron demo: what it predicts at x = 10 (the truth is 19)."""
    return {"metrics": {"prediction_at_10": prediction, "error_at_10": abs(prediction - 19.0)},
            "diagnosis": f"predict(10) = {prediction:.4f} (y = 2x - 1 gives 19)"}


def write_confusion_csv(path: Path, true: list[int], predicted: list[int]) -> None:
    """One row per test image, the layout `dvc plots` wants for a confusion matrix."""
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["actual", "predicted"])
        writer.writerows(zip(true, predicted))


def main() -> None:
    """Read `evaluate`; write `evaluation/metrics.json`, `evaluation.json` and `confusion.csv`."""
    params_file = load_params()
    params = parse_section(params_file, "evaluate", EvaluateParams)
    model_name = parse_section(params_file, "train", TrainModelParams).model
    model_dir = Path(params.model_dir)
    trained = read_json(model_dir / "train.json")
    predictions = load_npz(model_dir / "predictions.npz")
    if trained["spec"]["kind"] == "linear":
        result = evaluate_linear(float(predictions["at_10"][0]))
    else:
        result = evaluate_classifier(predictions, load_truth(params.prepared_dir, predictions), trained, params)
    result["metrics"]["parameters"] = trained["parameters"]
    result["metrics"]["train_seconds"] = trained["seconds"]
    out_dir = Path(params.out_dir)
    # dvc.yaml declares the confusion plot for every model; the linear demo has no classes, so no rows
    write_confusion_csv(out_dir / CONFUSION_FILE, result.pop("true", []), result.pop("predicted", []))
    write_json(out_dir / DETAIL_FILE, {"model": model_name, **result})
    write_json(out_dir / METRICS_FILE, result["metrics"])
    shown = ", ".join(f"{k} {v:.4f}" for k, v in result["metrics"].items() if isinstance(v, float))
    log(f"evaluate: {model_name}: {shown}")
    log(f"evaluate: diagnosis: {result['diagnosis']}")
    if result.get("audit", {}).get("flagged"):
        log(f"evaluate: metric audit: {result['audit']['note']}")


if __name__ == "__main__":
    sys.exit(run_stage("evaluate", main))
