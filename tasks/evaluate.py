"""evaluate: measure the trained model honestly, independent of Keras' metric names.

Top-1 accuracy is argmax(prediction) == label, computed here; Keras' own metric (the one the
tutorial reported) is shown beside it and a gap is flagged. Also per-class precision, recall
and F1, the confusion matrix, the most confident mistakes, train vs validation vs test
accuracy with a one-line diagnosis, and the top-1 accuracy on each distorted copy of the test
set that train predicted (`accuracy_<distortion>` among the record's metrics, with 95% intervals;
metrics.json keeps only the headline, see HEADLINE). The
probabilities come from the predictions the train stage made with the saved model; the true
labels from the prepared data. numpy only: a fraction of a second.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import numpy as np

from mnist_pipeline.config import EvaluateParams, TrainModelParams, parse_section
from mnist_pipeline.distortions import metric_name, split_name
from mnist_pipeline.errors import PipelineError
from mnist_pipeline.files import atomic_path, load_npz, read_json, write_json
from mnist_pipeline.metrics import class_ids, distorted_accuracy, evaluate_classifier
from mnist_pipeline.project_files import ProjectFiles
from tasks import log, run


def load_truth(files: ProjectFiles, predictions: dict[str, np.ndarray], distorted: list[str]) -> dict[str, np.ndarray]:
    """True class ids for each predicted split, from the prepared data (labels only: the images stay on disk);
    a distorted test set's are the test set's."""
    prepared = load_npz(files.prepared_data, ("y_train", "y_val", "y_test"))
    truth = {"train": class_ids(prepared["y_train"])[predictions["train_rows"]],
             "val": class_ids(prepared["y_val"]), "test": class_ids(prepared["y_test"])}
    truth |= {split_name(name): truth["test"] for name in distorted}
    for split, ids in truth.items():
        found = len(predictions[split]) if split in predictions else 0
        if found != len(ids):
            raise PipelineError(f"the predictions in {files.predictions} are for {found:,} {split} images but the "
                                f"prepared data has {len(ids):,}: re-run train (dvc repro does)")
    return truth


def write_confusion_csv(path: Path, true: list[int], predicted: list[int]) -> None:
    """One row per test image, the layout `dvc plots` wants for a confusion matrix."""
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["actual", "predicted"])
        writer.writerows(zip(true, predicted))


# what metrics.json holds: the numbers `dvc exp show` and `dvc metrics diff` put side by side, few enough that
# the table's first 200 columns also reach the params that name the run (data.dataset, train.model, epochs, seed).
# The rest (the distorted test sets, the Keras-reported metric, the parameter count) are in evaluation.json.
HEADLINE = ("accuracy", "macro_f1", "loss", "train_accuracy", "val_accuracy")


def headline(metrics: dict[str, Any]) -> dict[str, Any]:
    """The evaluation's metrics that metrics.json keeps."""
    return {name: metrics[name] for name in HEADLINE if name in metrics}


def main(params: dict[str, Any], files: ProjectFiles) -> None:
    """Read `evaluate`; write the metrics, the evaluation record and the confusion rows."""
    settings = parse_section(params, "evaluate", EvaluateParams)
    model_name = parse_section(params, "train", TrainModelParams).model
    trained = read_json(files.train_record)
    predictions = load_npz(files.predictions)
    distorted = trained.get("distortions", {})  # train records made before the distortions have none
    measured = distorted.get("measured", {})
    truth = load_truth(files, predictions, list(measured))
    result = evaluate_classifier(predictions, truth, trained, settings)
    result["distortions"] = distorted_accuracy(predictions, truth["test"], measured)
    result["distortions_not_measured"] = distorted.get("not_measured")
    result["metrics"] |= {metric_name(name): found["accuracy"] for name, found in result["distortions"].items()}
    result["metrics"]["parameters"] = trained["parameters"]  # not the fit's seconds: a timing is no metric
    write_confusion_csv(files.confusion_csv, result.pop("true"), result.pop("predicted"))
    write_json(files.evaluation_record, {"model": model_name, **result})
    write_json(files.metrics, headline(result["metrics"]))
    shown = ", ".join(f"{k} {v:.4f}" for k, v in result["metrics"].items() if isinstance(v, float))
    log(f"evaluate: {model_name}: {shown}")
    log(f"evaluate: diagnosis: {result['diagnosis']}")
    if result["audit"]["flagged"]:
        log(f"evaluate: metric audit: {result['audit']['note']}")


if __name__ == "__main__":
    run("evaluate", main, __doc__)
