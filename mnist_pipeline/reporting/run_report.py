"""One run's markdown report: what was trained on what data, how well, compared with what, and why.

`render` takes the records the stages wrote (fetch, validation, prepare, train, evaluation) plus
lineage and timings, and returns markdown; each section is its own function. Images are
referenced by relative paths, so the report renders on GitHub.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from mnist_pipeline.config import DATASET_NAMES
from mnist_pipeline.distortions import in_order, metric_name
from mnist_pipeline.reporting.markdown import md_escape, table
from mnist_pipeline.reporting.plots import confusion_png, curves_png, image_grid_png

FASHION_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                   "Ankle boot"]
PLOTS = {"samples": "samples.png", "curves": "curves.png", "confusion": "confusion.png", "mistakes": "mistakes.png"}


def class_names(dataset: str) -> list[str]:
    return FASHION_CLASSES if dataset == "fashion_mnist" else [str(c) for c in range(10)]


def interval(ctx: dict[str, Any], split: str = "test") -> str:
    """`95% interval a-b%, n = N` for a split's top-1 accuracy."""
    found = ctx["evaluation"]["intervals"][split]
    low, high = found["ci95"]
    return f"95% interval {low:.1%}-{high:.1%}, n = {found['total']:,}"


def headline(ctx: dict[str, Any]) -> list[str]:
    model, dataset = md_escape(ctx["train"]["model"]), md_escape(ctx["fetch"]["dataset"])
    accuracy, verdict = ctx["evaluation"]["metrics"]["accuracy"], ctx["verdict"]
    claim = (f"The tutorial claimed {md_escape(ctx['train']['spec']['claimed'])}: **{verdict.verdict}** "
             f"({md_escape(verdict.reason)})." if verdict.verdict != "nothing to compare" else
             "The tutorial stated no number for this entry: nothing to compare.")
    return [f"# {model} on {dataset}", "",
            f"Test accuracy **{accuracy:.2%}** (top-1, computed from predictions; {interval(ctx)} test images). "
            + claim, ""]


def data_section(ctx: dict[str, Any]) -> list[str]:
    fetched, validation, prepared = ctx["fetch"], ctx["validation"], ctx["prepare"]
    rows = [
        ["source", f"{fetched['source']} ({fetched['description']})"], ["origin", fetched["origin"]],
        ["images", f"{fetched['total_images']:,}"],
        ["train / validation / test", " / ".join(f"{prepared['counts'][s]:,}" for s in ("train", "val", "test"))],
        ["validation split", f"stratified, seed {prepared['seed']}, {prepared['val_fraction']} of train"],
        ["input scaling (prepare.normalize)", {True: "x / 255, in [0, 1]", False: "none: raw 0..255",
                                               "centered": "(x - 127) / 127, about [-1, 1]"}[prepared["normalized"]]],
        ["raw data sha256", fetched["raw_file"]["sha256"]],
        ["checks passed", f"{len(validation['checks'])}: " + ", ".join(validation["checks"])],
        ["test images also in train", f"{validation['duplicates']['shared_train_test']}"],
    ]
    return ["## Data", "", table(["what", "value"], rows), "",
            f"Sample inputs ({ctx['samples_per_class']} per class):", "", f"![sample inputs]({PLOTS['samples']})", ""]


def model_section(ctx: dict[str, Any]) -> list[str]:
    trained = ctx["train"]
    return ["## Model", "", f"{trained['parameters']:,} parameters. Catalogue entry from: "
            f"{md_escape(trained['spec']['source'])}.", "",
            table(["layer", "type", "output shape", "parameters"], trained["layers"]), ""]


def training_section(ctx: dict[str, Any]) -> list[str]:
    trained = ctx["train"]
    spec = trained["spec"]
    momentum = f", momentum {spec['momentum']}, nesterov {spec['nesterov']}" if spec["momentum"] else ""
    rows = [
        ["optimizer", f"{spec['optimizer']} (learning rate {spec['learning_rate']}{momentum})"],
        ["loss", spec["loss"]], ["metric Keras reported", spec["metric"]],
        ["batch size", spec["batch_size"]], ["epochs", f"{trained['epochs_run']} of {spec['epochs']} max"],
        ["stopped by", trained["stopped_by"]], ["evaluated weights", evaluated_weights(trained)],
        ["seed", trained["train_params"]["seed"]], *engine_rows(trained),
    ]
    curves = [f"![learning curves]({PLOTS['curves']})", ""] if has_curves(trained) else []
    return ["## Training", "", table(["setting", "value"], rows), "", *curves]


def engine_rows(trained: dict[str, Any]) -> list[list[str]]:
    """The backend and device that trained the model (records made before train recorded them have none)."""
    engine = trained.get("backend")
    if not engine:
        return []
    return [["backend", f"{engine['name']} {engine['version']} (Keras {engine['keras']}), {engine['precision']}"],
            ["device", engine["device"]]]


def evaluated_weights(trained: dict[str, Any]) -> str:
    """Which epoch's weights every number below comes from."""
    restored, run = trained.get("restored_epoch"), trained["epochs_run"]
    if restored is None or restored == run:
        return f"the last epoch's ({run})"
    return f"epoch {restored} of {run}: early stopping restores the weights with the lowest validation loss"


def metrics_section(ctx: dict[str, Any]) -> list[str]:
    evaluation = ctx["evaluation"]
    names = class_names(ctx["fetch"]["dataset"])
    distorted = {metric_name(name) for name in evaluation.get("distortions", {})}  # their own section
    values = [[k, f"{v:.4f}" if isinstance(v, float) else v] for k, v in evaluation["metrics"].items()
              if k not in distorted]
    classes = [[names[r["class"]], f"{r['precision']:.3f}", f"{r['recall']:.3f}", f"{r['f1']:.3f}", r["support"]]
               for r in evaluation["per_class"]]
    return ["## Test metrics", "", table(["metric", "value"], values), "",
            table(["class", "precision", "recall", "F1", "support"], classes), "",
            f"![confusion matrix]({PLOTS['confusion']})", "",
            "Most confident mistakes (true → predicted, probability):", "", f"![mistakes]({PLOTS['mistakes']})", ""]


def distortions_section(ctx: dict[str, Any]) -> list[str]:
    """Top-1 accuracy on the test images distorted each way (the `distortions` params), beside the clean ones."""
    evaluation = ctx["evaluation"]
    found, skipped = evaluation.get("distortions") or {}, evaluation.get("distortions_not_measured")
    title = ["## Distorted test images", ""]
    if not found:
        return [*title, f"Not measured: {md_escape(skipped or 'distortions.apply is empty')}.", ""]
    clean = evaluation["intervals"]["test"]
    rows = [["none (the test set)", "", f"{evaluation['metrics']['accuracy']:.2%}",
             f"{clean['ci95'][0]:.1%}-{clean['ci95'][1]:.1%}", ""]]
    rows += [[name, md_escape(d["how"]), f"{d['accuracy']:.2%}", f"{d['ci95'][0]:.1%}-{d['ci95'][1]:.1%}",
              f"{(d['accuracy'] - evaluation['metrics']['accuracy']) * 100:+.1f} points"]
             for name, d in ((name, found[name]) for name in in_order(found))]
    return [*title, f"The same {clean['total']:,} test images, distorted one way at a time (params `distortions`); "
            "top-1 accuracy from the predictions, with its 95% Wilson interval.", "",
            table(["distortion", "how", "accuracy", "95% interval", "vs clean"], rows), ""]


def claims_section(ctx: dict[str, Any]) -> list[str]:
    spec, verdict = ctx["train"]["spec"], ctx["verdict"]
    claimed = spec.get("claimed_accuracy")  # in verdict.metric
    ours = f"{verdict.ours:.2%}" if verdict.ours is not None else "n/a"
    low, high = verdict.ci95 or (0.0, 1.0)
    judged = verdict.verdict in ("reproduced", "refuted")
    difference = f"{(verdict.ours - claimed) * 100:+.2f} points" if judged else f"n/a ({verdict.verdict})"
    rows = [["the tutorial claimed", spec["claimed"]],
            ["in the metric", verdict.metric + (" (scores each of the 10 outputs as a yes/no)"
                                                if verdict.metric == "binary_accuracy" else " (top-1)")],
            ["on", DATASET_NAMES[spec.get("claim_dataset", "mnist")]],
            ["ours, same metric", f"{ours} (95% interval {low:.2%}-{high:.2%})"],
            ["difference", difference], ["verdict", f"{verdict.verdict}: {verdict.reason}"]]
    note = ([f"The binary-accuracy interval counts the {ctx['evaluation']['intervals']['test']['total'] * 10:,} "
             "yes/no outputs as independent, so it is narrower than it should be."]
            if verdict.metric == "binary_accuracy" else [])
    return ["## Claimed by the tutorial vs reproduced here", "", table(["", "value"], rows), "", *note,
            *([""] if note else [])]


def warnings_section(ctx: dict[str, Any]) -> list[str]:
    evaluation, fetched = ctx["evaluation"], ctx["fetch"]
    audit = evaluation["audit"]
    lines = [f"- Diagnosis: {md_escape(evaluation['diagnosis'])}",
             f"- {'**Metric audit: flagged.** ' if audit['flagged'] else 'Metric audit: '}{md_escape(audit['note'])}"]
    if fetched["dataset"] == "mnist" and fetched["source"] == "offline":
        lines.append("- Trained on the 5,000-image MNIST sample, not the full 70,000: numbers are lower "
                     "and noisier than the tutorial's.")
    return ["## Warnings", "", *lines, ""]


def lineage_section(ctx: dict[str, Any]) -> list[str]:
    fetched, trained = ctx["fetch"], ctx["train"]
    rows = [["code", ctx["code"]], ["dataset", fetched["dataset"]],
            *[[f"source file {f['name']}", f["sha256"]] for f in fetched["source_files"]],
            ["train params", ", ".join(f"{k}={v}" for k, v in trained["train_params"].items())],
            ["model spec", ", ".join(f"{k}={v}" for k, v in trained["spec"].items())]]
    hashes = [[name, ", ".join(f"{path}: {(md5 or '?')[:12]}" for path, md5 in stage["outs"].items())]
              for name, stage in ctx["stages"].items()]
    return ["## Lineage", "", table(["what", "value"], rows), "", "Stage outputs (from dvc.lock):", "",
            table(["stage", "outputs (md5)"], hashes), "",
            "Times are not in this report, so that identical work writes an identical report: each stage's last "
            "run is in the timings folder (`paths.timings`), and a deployment run's record and its Prefect report "
            "give them.", ""]


def render(ctx: dict[str, Any]) -> str:
    """The report's markdown from the collected records (`ctx`: fetch, validation, prepare, train, evaluation,
    code, stages, samples_per_class, curves)."""
    sections = (headline, data_section, model_section, training_section, metrics_section, distortions_section,
                claims_section, warnings_section, lineage_section)
    return "\n".join(line for section in sections for line in section(ctx))


def has_curves(trained: dict[str, Any]) -> bool:
    """Whether the run has learning curves to draw (a validation loss per epoch): `write_plots` draws them and
    `render` shows them by this same test, in whichever order they are called."""
    return bool(trained["history"].get("val_loss"))


def write_plots(out_dir: Path, ctx: dict[str, Any], raw: dict[str, np.ndarray]) -> None:
    """The report's pictures: learning curves, confusion matrix, confident mistakes, sample inputs."""
    names = class_names(ctx["fetch"]["dataset"])
    if has_curves(ctx["train"]):
        curves_png(out_dir / PLOTS["curves"], ctx["train"]["history"], ctx["train"]["spec"]["metric"],
                   ctx["train"].get("restored_epoch"))
    evaluation = ctx["evaluation"]
    confusion_png(out_dir / PLOTS["confusion"], np.array(evaluation["confusion"]), names)
    mistakes = evaluation["mistakes"]
    image_grid_png(out_dir / PLOTS["mistakes"], raw["x_test"][[m["index"] for m in mistakes]],
                   [f"{names[m['true']]}→{names[m['predicted']]} {m['probability']:.2f}" for m in mistakes])
    labels = raw["y_train"]
    picks = [int(i) for c in range(10) for i in np.flatnonzero(labels == c)[:ctx["samples_per_class"]]]
    image_grid_png(out_dir / PLOTS["samples"], raw["x_train"][picks], [names[labels[i]] for i in picks])
