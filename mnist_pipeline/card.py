"""A version's model card (`registry/<model>/vN/model-card.md`), written from its registry record alone.

What the model is for and not for, its data, its recipe, its test accuracy with the interval and per class,
the distorted test images, its known limits, the gate's verdict, its lineage and how to make it again. A
field the record lacks (a version registered by hand, say) is said to be not recorded, never guessed.
"""

from __future__ import annotations

from typing import Any

from mnist_pipeline.config import DATASET_NAMES
from mnist_pipeline.reporting import markdown

WHAT = {"mnist": "handwritten digits", "fashion_mnist": "clothing items"}


def table(header: list[str], rows: list[list[Any]]) -> list[str]:
    """The reports' markdown table (record text escaped), as lines."""
    return markdown.table(header, rows).split("\n")


def render_card(record: dict[str, Any]) -> str:
    """The card's markdown."""
    name, version = record.get("name", "?"), record.get("version", "?")
    summary = record.get("evaluation_summary") or {}
    spec, params = record.get("model_spec") or {}, record.get("params") or {}
    dataset = record.get("dataset") or (params.get("data") or {}).get("dataset", "?")
    shown, what = DATASET_NAMES.get(dataset, dataset), WHAT.get(dataset, "images")
    metrics = record.get("metrics") or {}
    accuracy = metrics.get("accuracy")
    low, high = summary.get("ci95") or (None, None)
    interval = f"; 95% interval {low:.1%}-{high:.1%}, n = {summary.get('test_images', '?'):,} test images" \
        if low is not None and isinstance(summary.get("test_images"), int) else ""
    lines = [f"# Model card: {name}@{version}", "",
             f"**For**: classifying 28x28 grayscale {what} like {shown}'s, one of ten classes, as the tutorials' "
             "catalogue trains them: a teaching and comparison model. Photos and drawings go through the same "
             "preparation as `mnist predict` and `mnist serve` (grayscale, inverted on light paper, cropped, "
             "centred in 28x28).", "",
             "**Not for**: images unlike the training data (other alphabets, several digits in one image, colour "
             "photos of garments on people), anything decided about a person, or any use where an error matters "
             "more than in a lesson: beyond the distorted test sets below, how it does elsewhere is unmeasured.", "",
             "## Data", ""]
    files = record.get("data_files") or []
    counts = summary.get("counts") or {}
    lines += table(["what", "value"], [
        ["dataset", shown], ["source", record.get("data_source", "not recorded")],
        ["train / validation / test images", " / ".join(f"{counts[k]:,}" for k in ("train", "val", "test"))
         if all(k in counts for k in ("train", "val", "test")) else "not recorded"],
        *[[f"file {f.get('name', '?')}", f"sha256 {f.get('sha256', '?')}"] for f in files]])
    train = params.get("train") or {}
    lines += ["", "## Recipe", ""]
    lines += table(["setting", "value"], [
        ["catalogue entry", train.get("model", name)],
        ["kind, loss", f"{spec.get('kind', '?')}, {spec.get('loss', '?')}"],
        ["optimizer", f"{spec.get('optimizer', '?')} at {spec.get('learning_rate', '?')}, batch "
                      f"{spec.get('batch_size', '?')}"],
        ["epochs run", f"{summary.get('epochs_run', '?')} of {spec.get('epochs', '?')} "
                       f"({summary.get('stopped_by', '?')})"],
        ["weights evaluated", f"epoch {summary['restored_epoch']}" if summary.get("restored_epoch")
         else "the last epoch's"],
        ["seed", train.get("seed", "not recorded")],
        ["Keras backend, precision", f"{train['backend']}, {train.get('precision', 'float32')}" if "backend" in train
         else "not recorded"]])
    lines += ["", "## Test accuracy", "",
              f"**{accuracy:.2%}** top-1 (computed from the predictions{interval})." if isinstance(accuracy, float)
              else "Not recorded.", ""]
    per_class = summary.get("per_class") or []
    if per_class:
        lines += table(["class", "precision", "recall", "F1", "images"],
                       [[row["class"], f"{row['precision']:.3f}", f"{row['recall']:.3f}", f"{row['f1']:.3f}",
                         row["support"]] for row in per_class]) + [""]
    distortions = summary.get("distortions") or {}
    lines += ["## Distorted test images", ""]
    if distortions:
        lines += table(["distortion", "accuracy", "95% interval"],
                       [[f"{key}: {value.get('how', '')}", f"{value['accuracy']:.1%}",
                         f"{value['ci95'][0]:.1%}-{value['ci95'][1]:.1%}"] for key, value in distortions.items()])
    else:
        lines += [summary.get("distortions_not_measured") or "Not measured."]
    limits = []
    if (params.get("fetch") or {}).get("source", "auto") != "download" and dataset == "mnist" and \
            "5,000-image" in str(record.get("data_source", "")) + str(summary.get("source_description", "")):
        limits.append("trained and tested on the offline 5,000-image MNIST sample, not full MNIST: its numbers "
                      "are not the tutorials'")
    if spec.get("kind") == "vgg16" and (params.get("features") or {}).get("weights") != "imagenet":
        limits.append("its VGG16 base has random weights (features.weights=none), not ImageNet's")
    if summary.get("diagnosis"):
        limits.append(f"diagnosis: {summary['diagnosis']}")
    if summary.get("verdict"):
        limits.append(f"the tutorial's claim: {summary['verdict']}")
    lines += ["", "## Known limits", "", *([f"- {limit}" for limit in limits] or ["- none recorded"]), ""]
    comparison = record.get("gate_comparison") or {}
    lines += ["## Gate", "", f"{'Blessed' if record.get('blessed') else 'Not blessed'}: "
                             f"{record.get('gate_reason', 'not recorded')}."]
    if comparison.get("test"):
        lines += ["", f"Test: {comparison['test']}; p = {comparison.get('p', float('nan')):.3g}."]
    lines += ["", "## Lineage", ""]
    lines += table(["what", "value"], [
        ["git revision", record.get("git_revision", "not recorded")],
        ["work fingerprint (dvc.lock's stage hashes)", record.get("fingerprint", "not recorded")],
        ["model file sha256", record.get("model_sha256", "not recorded")],
        ["DVC experiment", record.get("experiment", "not recorded")],
        ["Prefect flow run", record.get("flow_run_id", "not recorded")],
        ["registered", record.get("registered_at", "not recorded")]])
    overrides = " ".join(f"-S train.{key}={value}" for key, value in train.items()
                         if key in ("model", "seed", "epochs", "max_train_images", "batch_size", "learning_rate")
                         and value is not None or key in ("backend", "precision")
                         and value not in ("tensorflow", "float32"))
    lines += ["", "## Make it again", "", "```bash",
              f"git checkout {record.get('git_revision', '<revision>')}",
              f"dvc exp run -S data.dataset={dataset} {overrides}".rstrip(),
              f"dvc exp apply {record['experiment']}   # or bring back this run's own outputs"
              if record.get("experiment") else "", "```", ""]
    return "\n".join(line for line in lines if line is not None)
