"""report: a markdown report with PNG plots that says what was trained on what, how well, and why.

Everything comes from the records the earlier stages wrote (fetch.json, validation.json,
prepare.json, train.json, evaluation.json, dvc.lock, timings/), so the report's numbers
are the pipeline's numbers. Images use relative paths, so the report renders on GitHub.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from tasks.config import ReportParams, load_params, parse_section
from tasks.files import atomic_path, load_npz, read_json
from tasks.stage import log, run_stage
from tasks.plots import confusion_png, curves_png, image_grid_png

FASHION_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                   "Ankle boot"]


def md_escape(text: object) -> str:
    """Escape user-supplied text for a markdown table cell or line."""
    out = str(text)
    for char in "\\`*_{}[]<>|#":
        out = out.replace(char, "\\" + char)
    return out.replace("\n", " ")


def table(header: list[str], rows: list[list[object]]) -> str:
    """A GitHub markdown table; cells are escaped."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(md_escape(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def git_revision() -> str:
    """The commit the code came from, marked dirty when the working tree has changes."""
    try:
        rev = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True,
                               text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown (not a git checkout)"
    return rev + (" (with uncommitted changes)" if dirty else "")


def stage_hashes(lock_path: Path) -> list[list[str]]:
    """Per stage: its command and the md5 of each output, from dvc.lock."""
    if not lock_path.is_file():
        return []
    lock = yaml.safe_load(lock_path.read_text()) or {}
    rows = []
    for name, stage in lock.get("stages", {}).items():
        outs = ", ".join(f"{o['path']}: {o.get('md5', '?')[:12]}" for o in stage.get("outs", []))
        rows.append([name, outs])
    return rows


def timings(folder: Path) -> list[list[str]]:
    """Seconds per stage from timings/<stage>.json."""
    import json

    rows = []
    for path in sorted(folder.glob("*.json")):
        record = json.loads(path.read_text())
        rows.append([record["stage"], f"{record['seconds']:.1f}"])
    return rows


def class_names(dataset: str) -> list[str]:
    return FASHION_CLASSES if dataset == "fashion_mnist" else [str(c) for c in range(10)]


def render(ctx: dict[str, Any]) -> str:
    """The report's markdown from the collected records."""
    fetched, validation, prepared, trained, evaluation = (ctx[k] for k in ("fetch", "validation", "prepare",
                                                                           "train", "evaluation"))
    spec, metrics = trained["spec"], evaluation["metrics"]
    model, dataset = md_escape(trained["model"]), md_escape(fetched["dataset"])
    accuracy = metrics.get("accuracy")
    headline = (f"Test accuracy **{accuracy:.2%}** (top-1, computed from predictions); the tutorial claimed "
                f"{md_escape(spec['claimed'])}." if accuracy is not None else md_escape(evaluation["diagnosis"]))
    parts = [f"# {model} on {dataset}", "", headline, ""]
    if spec["kind"] == "linear":
        parts += ["The single-neuron demo trains on its own six points (x = -1..4, y = 2x - 1); the dataset "
                  "below went through the data stages but this model does not use it.", ""]
    parts += ["## Data", "", table(["what", "value"], [
        ["source", f"{fetched['source']} ({fetched['description']})"], ["origin", fetched["origin"]],
        ["images", f"{fetched['total_images']:,}"],
        ["train / validation / test", " / ".join(f"{prepared['counts'][s]:,}" for s in ("train", "val", "test"))
         if prepared else "n/a"],
        ["validation split", f"stratified, seed {prepared.get('seed')}, {prepared.get('val_fraction')} of train"
         if prepared else "n/a"],
        ["raw data sha256", fetched["raw_file"]["sha256"]],
        ["checks passed", f"{len(validation['checks'])}: " + ", ".join(validation["checks"])],
        ["test images also in train", f"{validation['duplicates']['shared_train_test']}"],
    ]), ""]
    parts += ["Sample inputs (two per class):", "", "![sample inputs](samples.png)", ""]
    parts += ["## Model", "", f"{ctx['parameters']:,} parameters. Catalogue entry from: "
              f"{md_escape(spec['source'])}.", "", table(["layer", "type", "output shape", "parameters"],
                                                       ctx["layers"]), ""]
    parts += ["## Training", "", table(["setting", "value"], [
        ["optimizer", f"{spec['optimizer']} (learning rate {spec['learning_rate']}"
         + (f", momentum {spec['momentum']}, nesterov {spec['nesterov']}" if spec["momentum"] else "") + ")"],
        ["loss", spec["loss"]], ["metric Keras reported", spec["metric"]],
        ["batch size", spec["batch_size"]], ["epochs", f"{trained['epochs_run']} of {spec['epochs']} max"],
        ["stopped by", trained["stopped_by"]], ["seed", trained["train_params"]["seed"]],
        ["training time", f"{trained['seconds']:.1f} s"],
    ]), ""]
    if ctx.get("curves"):
        parts += ["![learning curves](curves.png)", ""]
    parts += ["## Test metrics", "", table(["metric", "value"], [[k, f"{v:.4f}" if isinstance(v, float) else v]
                                                                for k, v in metrics.items()]), ""]
    if "per_class" in evaluation:
        names = class_names(fetched["dataset"])
        parts += [table(["class", "precision", "recall", "F1", "support"],
                        [[names[r["class"]], f"{r['precision']:.3f}", f"{r['recall']:.3f}", f"{r['f1']:.3f}",
                          r["support"]] for r in evaluation["per_class"]]), ""]
        parts += ["![confusion matrix](confusion.png)", "", "Most confident mistakes (true → predicted, probability):",
                  "", "![mistakes](mistakes.png)", ""]
    parts += ["## Claimed by the tutorial vs reproduced here", "", table(["", "value"], [
        ["claimed", spec["claimed"]],
        ["reproduced", f"{accuracy:.2%} top-1 test accuracy" if accuracy is not None else evaluation["diagnosis"]],
        ["difference", f"{accuracy - spec['claimed_accuracy']:+.2%}"
         if accuracy is not None and spec.get("claimed_accuracy") is not None else "n/a"],
    ]), ""]
    warnings = [f"- Diagnosis: {md_escape(evaluation['diagnosis'])}"]
    if "audit" in evaluation:
        flag = "**Metric audit: flagged.** " if evaluation["audit"]["flagged"] else "Metric audit: "
        warnings.append(f"- {flag}{md_escape(evaluation['audit']['note'])}")
    if fetched["dataset"] == "mnist" and fetched["source"] == "offline" and spec["kind"] != "linear":
        warnings.append("- Trained on the 5,000-image MNIST sample, not the full 70,000: numbers are lower "
                        "and noisier than the tutorial's.")
    parts += ["## Warnings", "", *warnings, ""]
    parts += ["## Lineage", "", table(["what", "value"], [
        ["code revision", ctx["git"]], ["dataset", fetched["dataset"]],
        *[[f"source file {f['name']}", f["sha256"]] for f in fetched["source_files"]],
        ["train params", ", ".join(f"{k}={v}" for k, v in trained["train_params"].items())],
        ["model spec", ", ".join(f"{k}={v}" for k, v in spec.items())],
    ]), "", "Stage outputs (from dvc.lock):", "", table(["stage", "outputs (md5)"], ctx["hashes"]), "",
              "Time per stage (last run of each):", "", table(["stage", "seconds"], ctx["timings"]), ""]
    return "\n".join(parts)


def write_plots(out_dir: Path, ctx: dict[str, Any], raw: dict[str, np.ndarray]) -> None:
    """curves.png, confusion.png, mistakes.png, samples.png."""
    names = class_names(ctx["fetch"]["dataset"])
    history = ctx["train"]["history"]
    if history.get("val_loss"):
        curves_png(out_dir / "curves.png", history, ctx["train"]["spec"]["metric"])
        ctx["curves"] = True
    evaluation = ctx["evaluation"]
    if "confusion" in evaluation:
        confusion_png(out_dir / "confusion.png", np.array(evaluation["confusion"]), names)
        mistakes = evaluation["mistakes"]
        image_grid_png(out_dir / "mistakes.png", raw["x_test"][[m["index"] for m in mistakes]],
                       [f"{names[m['true']]}→{names[m['predicted']]} {m['probability']:.2f}" for m in mistakes])
    labels = raw["y_train"]
    picks = [int(i) for c in range(10) for i in np.flatnonzero(labels == c)[:2]]
    image_grid_png(out_dir / "samples.png", raw["x_train"][picks], [names[labels[i]] for i in picks])


def main() -> None:
    """Read `report` and the stage records; write reports/<dataset>/<model>/report.md and its PNGs."""
    params = parse_section(load_params(), "report", ReportParams)
    trained = read_json(Path(params.model_dir) / "train.json")
    fetched = read_json(Path(params.raw_dir) / "fetch.json")
    ctx: dict[str, Any] = {
        "fetch": fetched, "validation": read_json(Path(params.validated_dir) / "validation.json"),
        "prepare": read_json(Path(params.prepared_dir) / "prepare.json"), "train": trained,
        "evaluation": read_json(Path(params.evaluation_dir) / "evaluation.json"),
        "git": git_revision(), "hashes": stage_hashes(Path("dvc.lock")), "timings": timings(Path(params.timings_dir)),
    }
    ctx["layers"], ctx["parameters"] = trained["layers"], trained["parameters"]  # no TensorFlow import needed
    out_dir = Path(params.out_dir) / fetched["dataset"] / trained["model"]
    out_dir.mkdir(parents=True, exist_ok=True)
    write_plots(out_dir, ctx, load_npz(Path(params.raw_dir) / "raw.npz"))
    with atomic_path(out_dir / "report.md") as tmp:
        tmp.write_text(render(ctx))
    log(f"report: {out_dir / 'report.md'}")


if __name__ == "__main__":
    sys.exit(run_stage("report", main))
