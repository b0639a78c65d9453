"""evaluate: measure the trained model honestly, independent of Keras' metric names.

Top-1 accuracy is argmax(prediction) == label, computed here. Keras' own metric (the
one the tutorial reported) is shown beside it, and a gap is flagged: compiling with
`binary_crossentropy` made old Keras report *binary* accuracy, which counts each of the
ten outputs as a yes/no question and so scores near 90% even for a useless model.
Also: per-class precision, recall and F1, the confusion matrix, the most confident
mistakes, and train vs validation vs test accuracy with a one-line diagnosis (training
accuracy on a seeded sample of `evaluate.train_sample` images: the diagnosis needs a
percentage, not a pass over all 54,000 training images).
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path
from typing import Any

import numpy as np

from tasks import import_tensorflow
from tasks.catalogue import model_input
from tasks.config import EvaluateParams, TrainModelParams, load_params, parse_section
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
    """Per-class precision, recall, F1 and support; the confusion matrix (rows: true)."""
    from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

    predicted = probabilities.argmax(axis=1)
    precision, recall, f1, support = precision_recall_fscore_support(
        labels, predicted, labels=list(range(10)), zero_division=0)
    rows = [{"class": c, "precision": float(precision[c]), "recall": float(recall[c]), "f1": float(f1[c]),
             "support": int(support[c])} for c in range(10)]
    return rows, confusion_matrix(labels, predicted, labels=list(range(10))).tolist()


def load_eval_data(params: EvaluateParams, model: str) -> dict[str, np.ndarray]:
    """Test, validation and training x/y as the model takes them."""
    prepared = load_npz(Path(params.prepared_dir) / "prepared.npz")
    data = {key: prepared[key] for key in ("x_train", "y_train", "x_val", "y_val", "x_test", "y_test")}
    if model_input(model).layout == "rgb":
        features = load_npz(Path(params.features_dir) / "features.npz", ("x_train", "x_test"))
        data["x_train"] = features["x_train"][prepared["train_index"]]
        data["x_val"] = features["x_train"][prepared["val_index"]]
        data["x_test"] = features["x_test"]
    return data


def evaluate_classifier(model: Any, spec: dict[str, Any], data: dict[str, np.ndarray],
                        params: EvaluateParams) -> dict[str, Any]:
    """All measurements of a classifier on train, validation and test."""
    import keras

    from tasks.train import match_labels, subset

    sparse = spec["loss"] == "sparse_categorical_crossentropy"
    train_total = len(data["x_train"])
    x_train, y_train = subset(data["x_train"], data["y_train"], params.train_sample, params.seed)
    data = {**data, "x_train": x_train, "y_train": y_train}  # the caller's arrays stay whole
    probs = {split: np.asarray(model.predict(data[f"x_{split}"], batch_size=params.batch_size, verbose=0))
             for split in ("train", "val", "test")}
    ids = {split: class_ids(data[f"y_{split}"]) for split in probs}
    accuracy = {split: top1(probs[split], ids[split]) for split in probs}
    y_test = match_labels(data["y_test"], sparse)
    loss = float(np.mean(keras.ops.convert_to_numpy(keras.losses.get(spec["loss"])(y_test, probs["test"]))))
    # Keras' own metric, by the model's compiled metric objects on the same predictions (what
    # model.evaluate would report, without a second pass over the test set)
    model.reset_metrics()
    reported = {name: float(value) for name, value in model.compute_metrics(data["x_test"], y_test, probs["test"]).items()}
    keras_value = float(reported.get(spec["metric"], reported.get("compile_metrics", accuracy["test"])))
    classes, confusion = per_class(probs["test"], ids["test"])
    return {
        "metrics": {"accuracy": accuracy["test"], "loss": loss, "train_accuracy": accuracy["train"],
                    "val_accuracy": accuracy["val"], f"keras_{spec['metric']}": keras_value,
                    "macro_f1": float(np.mean([c["f1"] for c in classes]))},
        "audit": audit_metric(spec["metric"], keras_value, accuracy["test"], params),
        "diagnosis": diagnose(accuracy["train"], accuracy["val"], params)
        + (f" (training accuracy on a seeded sample of {len(x_train):,} of {train_total:,} images)"
           if len(x_train) < train_total else ""),
        "train_accuracy_images": [len(x_train), train_total],
        "per_class": classes, "confusion": confusion,
        "mistakes": confident_mistakes(probs["test"], ids["test"], params.mistakes),
        "predicted": probs["test"].argmax(axis=1).tolist(), "true": ids["test"].tolist(),
    }


def evaluate_linear(model: Any) -> dict[str, Any]:
    """The single-neuron demo: what it predicts at x = 10 (the truth is 19)."""
    prediction = float(np.asarray(model.predict(np.array([[10.0]], dtype=np.float32), verbose=0))[0, 0])
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
    import_tensorflow()
    import keras

    params_file = load_params()
    params = parse_section(params_file, "evaluate", EvaluateParams)
    model_name = parse_section(params_file, "train", TrainModelParams).model
    trained = read_json(Path(params.model_dir) / "train.json")
    model = keras.saving.load_model(Path(params.model_dir) / "model.keras", safe_mode=True)
    spec = trained["spec"]
    if spec["kind"] == "linear":
        result = evaluate_linear(model)
    else:
        result = evaluate_classifier(model, spec, load_eval_data(params, model_name), params)
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
