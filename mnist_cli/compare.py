"""`mnist compare`: run the whole catalogue on one dataset as DVC experiments and write one comparison report.

\b
    mnist compare --dataset fashion_mnist
    mnist compare --dataset mnist --models mlp_500,cnn --set train.epochs=3
    mnist compare --dataset fashion_mnist --retry-failed   # re-run only what failed or never ran

Each configuration is a real `dvc exp run` (so `dvc exp show` lists them all afterwards)
and writes its own report; this command then writes `reports/<dataset>/catalogue.md`
and `leaderboard.png`: claimed vs reproduced, accuracy, loss, parameters, training time,
and the tutorials' lessons stated from the measured numbers. A configuration that fails
is shown as failed with its error line; the others still run.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path
from typing import Any

import typer
import yaml

from mnist_pipeline.files import atomic_path, write_json
from mnist_pipeline.layout import PARAMS_FILE, Layout
from mnist_pipeline.reporting.leaderboard import UNNORMALIZED, leaderboard_png, render_catalogue


def configurations(models: list[str]) -> list[tuple[str, dict[str, str]]]:
    """(label, params overrides) per run; the unscaled MLP first, so mlp_500's own report is the scaled one."""
    runs = [(UNNORMALIZED, {"train.model": "mlp_500", "prepare.normalize": "false"})] if "mlp_500" in models else []
    return runs + [(model, {"train.model": model}) for model in models]


def run_one(label: str, overrides: dict[str, str], log_path: Path, layout: Layout) -> dict[str, Any]:
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
    evaluation = json.loads(layout.evaluation_record.read_text())
    trained = json.loads(layout.train_record.read_text())
    return {"label": label, "model": trained["model"], "metrics": evaluation["metrics"],
            "diagnosis": evaluation["diagnosis"], "audit": evaluation.get("audit"),
            "spec": trained["spec"], "stopped_by": trained["stopped_by"], "epochs_run": trained["epochs_run"],
            "seconds": seconds}


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
    detached = not git_output("symbolic-ref", "-q", "HEAD")
    if branch and detached and git_output("rev-parse", "HEAD") == git_output("rev-parse", branch):
        subprocess.run(["git", "symbolic-ref", "HEAD", f"refs/heads/{branch}"], check=True)
    return last["base_params"]


def git_output(*args: str) -> str:
    """A git command's output, empty when it fails (no repository, detached HEAD, unknown ref)."""
    done = subprocess.run(["git", *args], capture_output=True, text=True)
    return done.stdout.strip() if done.returncode == 0 else ""


def compare(
    dataset: str = typer.Option("mnist", help="mnist or fashion_mnist"),
    models: str = typer.Option("", help="comma-separated catalogue names; empty: the whole catalogue"),
    set_: list[str] = typer.Option([], "--set", help="extra params for every run, KEY=VALUE (repeatable)"),
    retry_failed: bool = typer.Option(False, help="keep the successful runs of the last catalogue.json (same dataset "
                                                  "and --set) and run only the failed or missing ones"),
) -> None:
    """Run each catalogue model with `dvc exp run` and write the comparison report."""
    params_path = PARAMS_FILE
    layout = Layout.from_params(yaml.safe_load(params_path.read_text()))
    target = layout.catalogue_dir(dataset)
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
    branch = git_output("symbolic-ref", "-q", "--short", "HEAD")
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
            result = run_one(label, {"data.dataset": dataset, **extra, **overrides}, log, layout)
            results.append(result)
            # saved after every configuration: a killed comparison loses at most the run in progress,
            # and --retry-failed picks up from here
            write_json(target / "catalogue.json", {**saved, "results": results, "complete": False})
            shown = result.get("failed") or ", ".join(
                f"{k} {v:.4f}" for k, v in result["metrics"].items() if k in ("accuracy", "prediction_at_10"))
            typer.echo(f"[{number}/{len(runs)}] {label}: {shown} ({result['seconds']:.0f} s)", err=True)
    finally:
        params_path.write_text(original)
    fetched = json.loads(layout.fetch_record.read_text()) if layout.fetch_record.exists() else {}
    demo = json.loads(layout.demo_record.read_text()) if layout.demo_record.exists() else None
    write_json(target / "catalogue.json", {**saved, "results": results, "complete": True})
    leaderboard_png(target / "leaderboard.png", results)
    with atomic_path(target / "catalogue.md") as tmp:
        tmp.write_text(render_catalogue(dataset, results, fetched, extra, demo,
                                        os.path.relpath(layout.demo_report, target)))
    typer.echo(f"comparison: {target / 'catalogue.md'}", err=True)
    if all("failed" in r for r in results):
        raise typer.Exit(1)

