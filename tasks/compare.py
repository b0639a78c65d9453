"""Run the whole catalogue on one dataset as DVC experiments and write one comparison report.

    python -m tasks.compare --dataset fashion_mnist
    python -m tasks.compare --dataset mnist --models mlp_500,cnn --set train.epochs=3
    python -m tasks.compare --dataset fashion_mnist --retry-failed   # re-run only what failed or never ran

Each configuration is a real `dvc exp run` (so `dvc exp show` lists them all afterwards)
and writes its own report; this command then writes `reports/<dataset>/catalogue.md`
and `leaderboard.png`: claimed vs reproduced, accuracy, loss, parameters, training time,
and the tutorials' lessons stated from the measured numbers. A configuration that fails
is shown as failed with its error line; the others still run.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import typer
import yaml

from tasks.files import atomic_path, write_json
from tasks.report import md_escape, table

UNNORMALIZED = "mlp_500 (no x/255)"
app = typer.Typer(add_completion=False, help=__doc__)


def configurations(models: list[str]) -> list[tuple[str, dict[str, str]]]:
    """(label, params overrides) per run; the unscaled MLP first, so mlp_500's own report is the scaled one."""
    runs = [(UNNORMALIZED, {"train.model": "mlp_500", "prepare.normalize": "false"})] if "mlp_500" in models else []
    return runs + [(model, {"train.model": model}) for model in models]


def run_one(label: str, overrides: dict[str, str], log_path: Path) -> dict[str, Any]:
    """One `dvc exp run`; the measured records, or the error line when it failed."""
    args = ["dvc", "exp", "run"]
    for key, value in overrides.items():
        args += ["-S", f"{key}={value}"]
    started = time.perf_counter()
    with open(log_path, "w") as log:
        done = subprocess.run(args, stdout=log, stderr=subprocess.STDOUT, text=True)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        lines = log_path.read_text().splitlines()
        errors = [line for line in lines if line.startswith("error:")] or lines[-1:] or ["unknown error"]
        return {"label": label, "failed": errors[-1], "seconds": seconds}
    evaluation = json.loads(Path("evaluation/evaluation.json").read_text())
    trained = json.loads(Path("model/train.json").read_text())
    return {"label": label, "model": trained["model"], "metrics": evaluation["metrics"],
            "diagnosis": evaluation["diagnosis"], "audit": evaluation.get("audit"),
            "spec": trained["spec"], "stopped_by": trained["stopped_by"], "epochs_run": trained["epochs_run"],
            "seconds": seconds}


def accuracy(results: dict[str, dict[str, Any]], label: str) -> float | None:
    result = results.get(label, {})
    return result.get("metrics", {}).get("accuracy")


def lessons(results: dict[str, dict[str, Any]]) -> list[str]:
    """The tutorials' lessons, each stated only when both of its runs succeeded."""
    out = []

    def pair(a: str, b: str, template: str) -> None:
        first, second = accuracy(results, a), accuracy(results, b)
        if first is not None and second is not None:
            out.append(template.format(a=first, b=second, diff=second - first))

    pair("lee_mse_sigmoid", "lee_ce_sigmoid", "**Loss**: with the same sigmoid 500-500 net and SGD, mean squared error "
         "reaches {a:.1%} and cross-entropy {b:.1%} ({diff:+.1%}). Cross-entropy is the loss for classification.")
    pair("lee_ce_sigmoid", "lee_ce_relu", "**Activation**: swapping sigmoid for relu in the cross-entropy net moves "
         "test accuracy from {a:.1%} to {b:.1%} ({diff:+.1%}).")
    pair("deep_sigmoid", "deep_relu", "**Activation, deeper net**: 200-100-60-30 with sigmoid {a:.1%}, "
         "with relu {b:.1%} ({diff:+.1%}).")
    pair("lee_mse_sigmoid", "lee_deep10_mse_sigmoid", "**Depth**: 2 sigmoid layers with MSE {a:.1%}, 10 layers "
         "{b:.1%} ({diff:+.1%}): more depth does not rescue a bad loss and activation.")
    pair(UNNORMALIZED, "mlp_500", "**Normalisation**: the 500-500 relu MLP on raw 0..255 pixels {a:.1%}, "
         "on x/255 {b:.1%} ({diff:+.1%}).")
    for a, b in (("deep_relu", "deep_relu_dropout"), ("mlp_500", "mlp_relu_adam")):
        first, second = results.get(a, {}).get("metrics"), results.get(b, {}).get("metrics")
        if first and second:
            gap_a = first["train_accuracy"] - first["val_accuracy"]
            gap_b = second["train_accuracy"] - second["val_accuracy"]
            out.append(f"**Dropout**: {a} (no dropout) trains {gap_a:+.1%} above its validation accuracy and scores "
                       f"{first['accuracy']:.1%}; {b} (dropout) {gap_b:+.1%} and {second['accuracy']:.1%}.")
    flagged = [r for r in results.values() if (r.get("audit") or {}).get("flagged")]
    for result in flagged:
        out.append(f"**Metric audit** ({result['label']}): {result['audit']['note']}.")
    under = [r["label"] for r in results.values() if r.get("diagnosis", "").startswith("underfitting")]
    if under:
        out.append(f"**Look at training accuracy first**: underfitting (training accuracy too low to blame "
                   f"overfitting) in {', '.join(under)}.")
    return out


def leaderboard_rows(results: list[dict[str, Any]]) -> list[list[object]]:
    rows = []
    ranked = sorted(results, key=lambda r: -(r.get("metrics", {}).get("accuracy") or -1))
    for rank, r in enumerate(ranked, start=1):
        if "failed" in r:
            rows.append([rank, r["label"], "failed", "", "", "", "", r["failed"][:160]])
            continue
        m, spec = r["metrics"], r["spec"]
        claimed = spec.get("claimed", "")
        top1 = f"{m['accuracy']:.2%}" if "accuracy" in m else f"predict(10) = {m['prediction_at_10']:.3f}"
        loss = f"{m['loss']:.4f}" if "loss" in m else ""
        train_val = f"{m['train_accuracy']:.1%} / {m['val_accuracy']:.1%}" if "train_accuracy" in m else ""
        rows.append([rank, r["label"], top1, claimed, loss, train_val, f"{m['parameters']:,}",
                     f"{m['train_seconds']:.0f} s, {r['epochs_run']} epochs"])
    return rows


def leaderboard_png(path: Path, results: list[dict[str, Any]]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    measured = [r for r in results if "accuracy" in r.get("metrics", {})]
    measured.sort(key=lambda r: r["metrics"]["accuracy"])
    fig = plt.figure(figsize=(8, 0.4 * len(measured) + 1.2), dpi=100)
    axis = fig.add_subplot(1, 1, 1)
    labels = [r["label"] for r in measured]
    axis.barh(labels, [r["metrics"]["accuracy"] for r in measured], color="#4c72b0", label="reproduced")
    claimed = [(i, r["spec"]["claimed_accuracy"]) for i, r in enumerate(measured) if r["spec"].get("claimed_accuracy")]
    if claimed:
        axis.scatter([c for _, c in claimed], [i for i, _ in claimed], color="#dd8452", zorder=3, label="claimed")
    axis.set_xlim(0, 1)
    axis.set_xlabel("test accuracy (top-1)")
    axis.legend(loc="lower right")
    axis.grid(axis="x", alpha=0.3)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", bbox_inches="tight")
    plt.close(fig)


def render(dataset: str, results: list[dict[str, Any]], fetched: dict[str, Any], extra: dict[str, str]) -> str:
    by_label = {r["label"]: r for r in results}
    parts = [f"# The catalogue on {md_escape(dataset)}", "",
             f"Data: {md_escape(fetched.get('description', '?'))}, {fetched.get('total_images', 0):,} images. "
             f"Each row is one `dvc exp run` of this pipeline; its own report is in `{dataset}/<model>/report.md`."
             + (f" Overrides for every run: {md_escape(', '.join(f'{k}={v}' for k, v in extra.items()))}." if extra else ""),
             "", "![leaderboard](leaderboard.png)", "",
             table(["rank", "configuration", "test accuracy (top-1)", "claimed", "test loss", "train / val accuracy",
                    "parameters", "training"], leaderboard_rows(results)), "", "## Lessons, from these numbers", ""]
    parts += [f"- {line}" for line in lessons(by_label)] or ["- (not enough successful runs to compare)"]
    parts += ["", "## Diagnoses", "", table(["configuration", "diagnosis"],
                                            [[r["label"], r.get("diagnosis", r.get("failed", ""))] for r in results]), ""]
    return "\n".join(parts)


def previous_run(path: Path, dataset: str, extra: dict[str, str]) -> dict[str, Any]:
    """The last comparison's catalogue.json, checked to have run the same dataset and overrides."""
    if not path.is_file():
        return {}
    last = json.loads(path.read_text())
    if last.get("dataset") != dataset or last.get("overrides") != extra:
        typer.echo(f"error: {path} was made with dataset {last.get('dataset')} and --set {last.get('overrides')}; "
                   f"--retry-failed needs the same", err=True)
        raise typer.Exit(1)
    return last


def base_params(params_path: Path, catalogue_json: Path) -> str:
    """The params every run starts from: params.yaml, unless the last comparison was killed mid-run.

    `dvc exp run -S` edits params.yaml in place, and stages it and dvc.lock in the git index while it
    runs; the comparison puts params.yaml back after each run. A comparison killed with SIGKILL cannot,
    and the next `dvc exp run` would then stop at "Stash apply resulted in merge conflicts". So the
    comparison records the params it started from, and the next one restores them and unstages the two
    files (their contents in the working tree are kept) instead of taking the killed run's overrides as
    everybody's defaults. The killed run also leaves HEAD detached; when it still points at the branch
    the comparison started on, HEAD is put back on that branch (nothing in the working tree changes).
    """
    current = params_path.read_text()
    if not catalogue_json.is_file():
        return current
    last = json.loads(catalogue_json.read_text())
    if last.get("complete", True) or not last.get("base_params"):
        return current
    typer.echo("compare: the last comparison was interrupted; restoring the params.yaml it started from "
               "and unstaging what its killed `dvc exp run` left in the git index", err=True)
    subprocess.run(["git", "reset", "-q", "--", "params.yaml", "dvc.lock"], check=False)
    branch = last.get("base_branch")
    if branch and not git("symbolic-ref", "-q", "HEAD") and git("rev-parse", "HEAD") == git("rev-parse", branch):
        subprocess.run(["git", "symbolic-ref", "HEAD", f"refs/heads/{branch}"], check=True)
    return last["base_params"]


def git(*args: str) -> str:
    """A git command's output, empty when it fails (no repository, detached HEAD, unknown ref)."""
    done = subprocess.run(["git", *args], capture_output=True, text=True)
    return done.stdout.strip() if done.returncode == 0 else ""


@app.command()
def main(
    dataset: str = typer.Option("mnist", help="mnist or fashion_mnist"),
    models: str = typer.Option("", help="comma-separated catalogue names; empty: the whole catalogue"),
    set_: list[str] = typer.Option([], "--set", help="extra params for every run, KEY=VALUE (repeatable)"),
    out_dir: Path = typer.Option(Path("reports"), help="the comparison goes to OUT_DIR/<dataset>/catalogue.md"),
    retry_failed: bool = typer.Option(False, help="keep the successful runs of the last catalogue.json (same dataset "
                                                  "and --set) and run only the failed or missing ones"),
) -> None:
    """Run each catalogue model with `dvc exp run` and write the comparison report."""
    params_path = Path("params.yaml")
    target = out_dir / dataset
    original = base_params(params_path, target / "catalogue.json")
    catalogue = list(yaml.safe_load(original)["models"])
    chosen = [m.strip() for m in models.split(",") if m.strip()] or catalogue
    unknown = [m for m in chosen if m not in catalogue]
    if unknown:
        typer.echo(f"error: unknown models {unknown}; the catalogue has: {', '.join(catalogue)}", err=True)
        raise typer.Exit(1)
    malformed = [item for item in set_ if "=" not in item]
    if malformed:
        typer.echo(f"error: --set needs KEY=VALUE, got {malformed[0]!r}", err=True)
        raise typer.Exit(1)
    extra = dict(item.split("=", 1) for item in set_)
    logs = target / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    runs = configurations(chosen)
    last = previous_run(target / "catalogue.json", dataset, extra) if retry_failed else {}
    kept = {r["label"]: r for r in last.get("results", []) if "failed" not in r}
    branch = git("symbolic-ref", "-q", "--short", "HEAD")
    saved = {"dataset": dataset, "overrides": extra, "base_params": original, "base_branch": branch}
    results = []
    try:
        for number, (label, overrides) in enumerate(runs, start=1):
            if label in kept:
                results.append(kept[label])
                typer.echo(f"[{number}/{len(runs)}] {label}: kept from the last run", err=True)
                continue
            params_path.write_text(original)  # each run starts from the same params
            log = logs / f"{label.split()[0]}{'-raw' if '(' in label else ''}.log"
            typer.echo(f"[{number}/{len(runs)}] {label}: running `dvc exp run` (log: {log})", err=True)
            result = run_one(label, {"data.dataset": dataset, **extra, **overrides}, log)
            results.append(result)
            # saved after every configuration: a killed comparison loses at most the run in progress,
            # and --retry-failed picks up from here
            write_json(target / "catalogue.json", {**saved, "results": results, "complete": False})
            shown = result.get("failed") or ", ".join(
                f"{k} {v:.4f}" for k, v in result["metrics"].items() if k in ("accuracy", "prediction_at_10"))
            typer.echo(f"[{number}/{len(runs)}] {label}: {shown} ({result['seconds']:.0f} s)", err=True)
    finally:
        params_path.write_text(original)
    fetched = json.loads(Path("data/raw/fetch.json").read_text()) if Path("data/raw/fetch.json").exists() else {}
    write_json(target / "catalogue.json", {**saved, "results": results, "complete": True})
    leaderboard_png(target / "leaderboard.png", results)
    with atomic_path(target / "catalogue.md") as tmp:
        tmp.write_text(render(dataset, results, fetched, extra))
    typer.echo(f"comparison: {target / 'catalogue.md'}", err=True)
    if all("failed" in r for r in results):
        raise typer.Exit(1)


if __name__ == "__main__":
    sys.exit(app())
