"""`mnist compare`: run the catalogue on one dataset over several seeds, as DVC experiments, and judge the claims.

\b
    mnist compare --dataset fashion_mnist
    mnist compare --dataset mnist --models mlp_500,mlp_500-raw --seeds 1 --set train.epochs=3
    mnist compare --dataset fashion_mnist --retry-failed   # re-run only what failed or never ran
    mnist compare --dataset mnist --retry-failed --rerun modern_cnn   # ... and modern_cnn, whose recipe changed
    mnist compare --dataset mnist --render   # run nothing: the pages again from catalogue.json (claims.yaml changed)

The configurations are every catalogue entry of params.yaml plus the variants of claims.yaml (an entry
with overrides, such as `mlp_500-raw`: prepare.normalize=false); each runs once per seed of claims.yaml
as a real `dvc exp run` (so `dvc exp show` lists them all afterwards). This command is the only writer of
the reference reports: `reports/<dataset>/catalogue.md` (the tutorials' numbers with verdicts, the lessons
with their paired tests over the seeds, the ladders, every configuration with its cost),
`catalogue.json` (every run's record), `runs/<label>/` (the first seed's own report), and
`reports/lessons.md` (the lessons side by side on every dataset compared so far). A configuration
that fails is shown as failed with its error line; the others still run.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import numpy as np
import typer
import yaml

from mnist_pipeline.claims import Run, judge
from mnist_pipeline.config import EvaluateParams, parse_section, read_params
from mnist_pipeline.distortions import split_name
from mnist_pipeline.errors import PipelineError
from mnist_pipeline.files import atomic_path, load_npz, read_json, write_json
from mnist_pipeline.layout import CLAIMS_FILE, PARAMS_FILE, Layout
from mnist_pipeline.lessons import load_claims, pack, shown
from mnist_pipeline.reporting.blocks import fill
from mnist_pipeline.reporting.catalogue import (
    by_label,
    is_sample,
    ladder_png,
    leaderboard_png,
    page_tests,
    render_catalogue,
    render_side_by_side,
    training_accuracy_claims,
    vgg16_weights,
)
from mnist_pipeline.workspace import dvc_running, git
from mnist_pipeline.workspace import repair as repair_workspace


def set_params(dataset: str, extra: dict[str, str], model: str, seed: int, overrides: dict[str, Any]) -> list[str]:
    """The `-S` arguments of one run. A variant's overrides use `++` (set the key whether or not it is written:
    a catalogue entry leaves its defaults unwritten, and plain `-S` refuses a key that is not there)."""
    settings = {"data.dataset": dataset, **extra, "train.model": model, "train.seed": str(seed),
                **{f"++{k}": shown(v) for k, v in overrides.items()}}
    return [arg for key, value in settings.items() for arg in ("-S", f"{key}={value}")]


def run_one(args: list[str], log_path: Path) -> tuple[str | None, float]:
    """One `dvc exp run`; its error line when it failed, and its wall time."""
    started = time.perf_counter()
    with open(log_path, "w") as log:
        done = subprocess.run(args, stdout=log, stderr=subprocess.STDOUT, text=True)
    seconds = time.perf_counter() - started
    if done.returncode == 0:
        return None, seconds
    return failure_reason(log_path.read_text().splitlines()), seconds


def failure_reason(lines: list[str]) -> str:
    """Why a `dvc exp run` failed, from its log: a stage's own `error:` line (the last), else DVC's first `ERROR:`
    line (its last line is often advice such as "you can manually remove '.dvc/tmp/rwlock'"), else the last."""
    ours = [line for line in lines if line.startswith("error:")]
    theirs = [line for line in lines if line.startswith("ERROR:")]
    return (ours[-1:] or theirs[:1] or [line for line in lines if line.strip()][-1:] or ["unknown error"])[0]


def collect(layout: Layout) -> dict[str, Any]:
    """The finished run's record, from what its stages wrote: numbers, per-image correctness, curves, cost."""
    evaluation, trained = read_json(layout.evaluation_record), read_json(layout.train_record)
    fetched, features, prepared = (read_json(layout.fetch_record), read_json(layout.features_record),
                                   read_json(layout.prepare_record))
    rows = np.loadtxt(layout.confusion_csv, delimiter=",", skiprows=1, dtype=np.int64, ndmin=2)
    test = evaluation["intervals"]["test"]
    verdict = judge(trained["spec"], Run(
        dataset=fetched["dataset"], source=fetched["source"], train_images=trained["shapes"]["x_train"][0],
        weights=None if features.get("skipped") else features["weights"], metrics=evaluation["metrics"],
        test_correct=test["correct"], test_total=test["total"]))
    base = 0 if features.get("skipped") else features.get("base_parameters", 0)
    return {"model": trained["model"], "metrics": evaluation["metrics"], "ci95": test["ci95"],
            "train_images": trained["shapes"]["x_train"][0],
            "test_total": test["total"], "correct": pack(rows[:, 0] == rows[:, 1]),
            "distortions": distorted_correctness(layout, evaluation, rows[:, 0]),
            "diagnosis": evaluation["diagnosis"], "audit": evaluation.get("audit"), "spec": trained["spec"],
            "train_params": trained["train_params"],
            "prepare": {k: prepared[k] for k in ("normalized", "val_fraction")},
            "history": trained["history"], "epochs_run": trained["epochs_run"],
            "restored_epoch": trained.get("restored_epoch"), "stopped_by": trained["stopped_by"],
            "verdict": {"verdict": verdict.verdict, "reason": verdict.reason, "metric": verdict.metric,
                        "ours": verdict.ours, "ci95": verdict.ci95},
            "parameters": {"trainable": trained["parameters"], "total": trained["parameters"] + base},
            "stage_seconds": {path.stem: read_json(path)["seconds"]
                              for path in sorted(layout.folder("timings").glob("*.json")) if path.stem != "demo"}}


def distorted_correctness(layout: Layout, evaluation: dict[str, Any], labels: np.ndarray) -> dict[str, Any]:
    """Each distortion's accuracy and interval as evaluate gave them, and its per-test-image correctness (packed
    like `correct`) from train's predictions; {"not_measured": reason} when the run measured none."""
    found = evaluation.get("distortions") or {}
    if not found:
        return {"not_measured": evaluation.get("distortions_not_measured") or "distortions.apply is empty"}
    predictions = load_npz(layout.predictions, tuple(split_name(name) for name in found))
    out = {}
    for name, d in found.items():
        correct = predictions[split_name(name)].argmax(axis=1) == labels
        if int(correct.sum()) != d["correct"]:
            raise PipelineError(f"{layout.predictions}: {name} has {int(correct.sum())} right, evaluate counted "
                                f"{d['correct']}: re-run the pipeline")
        out[name] = {"how": d["how"], "accuracy": d["accuracy"], "ci95": d["ci95"], "total": d["total"],
                     "correct": pack(correct)}
    return out


def machine() -> dict[str, Any]:
    """The CPU model and core count the costs were measured on."""
    cpu = platform.processor() or "?"
    try:
        names = [line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                 if line.startswith("model name")]
        cpu = names[0] if names else cpu
    except OSError:
        pass
    return {"cpu": cpu, "cores": os.cpu_count()}


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
    detached = not git(Path.cwd(), "symbolic-ref", "-q", "HEAD")
    if branch and detached and git(Path.cwd(), "rev-parse", "HEAD") == git(Path.cwd(), "rev-parse", branch):
        subprocess.run(["git", "symbolic-ref", "HEAD", f"refs/heads/{branch}"], check=True)
    return last["base_params"]


def compare(
    dataset: str = typer.Option("mnist", help="mnist or fashion_mnist"),
    models: str = typer.Option("", help="comma-separated configurations (catalogue entries or claims.yaml "
                                        "variants); empty: all of them"),
    seeds: int = typer.Option(0, help="run only the first N seeds of claims.yaml, none of its extra_seeds (0: all "
                                      "of them); a lesson needs 3"),
    set_: list[str] = typer.Option([], "--set", help="extra params for every run, KEY=VALUE (repeatable)"),
    retry_failed: bool = typer.Option(False, help="keep the successful runs of the last catalogue.json (same dataset "
                                                  "and --set) and run only the failed or missing ones"),
    rerun: str = typer.Option("", help="with --retry-failed: comma-separated configurations to run again even "
                                       "though the last catalogue.json has them (their recipe or the stages changed)"),
    render: bool = typer.Option(False, help="run nothing: render the complete catalogue again from its "
                                            "catalogue.json (after claims.yaml or the report's rules changed)"),
) -> None:
    """Run every configuration once per seed with `dvc exp run`, then write the catalogue and its verdicts."""
    params_path = PARAMS_FILE
    try:  # refused in one line before any `dvc` reads it: too large, YAML aliases, not a mapping
        layout = Layout.from_params(read_params(params_path))
    except PipelineError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(1) from None
    target = layout.catalogue_dir(dataset)
    if render:
        render_again(layout, target)
        return
    if dvc_running(Path.cwd()):  # two `dvc exp run` in one workspace record each other's params
        typer.echo("error: a dvc command is running in this workspace; one comparison (or `dvc exp run`) at a "
                   "time: `dvc exp run --queue` + `dvc queue start` runs experiments side by side", err=True)
        raise typer.Exit(1)
    for line in repair_workspace(Path.cwd()):  # a torn dvc.lock or a detached HEAD a kill left
        typer.echo(line, err=True)
    original = base_params(params_path, target / "catalogue.json")
    catalogue = list(yaml.safe_load(original)["models"])
    try:
        claims = load_claims(CLAIMS_FILE, catalogue)
    except PipelineError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(1) from None
    configurations = claims.labels(catalogue)
    known = [label for label, _, _ in configurations]
    chosen = [m.strip() for m in models.split(",") if m.strip()] or known
    unknown = [m for m in chosen if m not in known]
    if unknown:
        typer.echo(f"error: unknown models {unknown}; the configurations are: {', '.join(known)}", err=True)
        raise typer.Exit(1)
    again = [m.strip() for m in rerun.split(",") if m.strip()]
    if again and not retry_failed:
        typer.echo("error: --rerun needs --retry-failed (without it every configuration runs anyway)", err=True)
        raise typer.Exit(1)
    if sorted(set(again) - set(chosen)):
        typer.echo(f"error: --rerun {sorted(set(again) - set(chosen))}: not among the configurations this "
                   f"comparison runs ({', '.join(chosen)})", err=True)
        raise typer.Exit(1)
    malformed = [item for item in set_ if "=" not in item]
    if malformed:
        typer.echo(f"error: --set needs KEY=VALUE, got {malformed[0]!r}", err=True)
        raise typer.Exit(1)
    extra = dict(item.split("=", 1) for item in set_)
    run_seeds = claims.seeds[:seeds] if seeds > 0 else claims.seeds
    logs = target / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    runs = [(label, model, overrides, seed) for label, model, overrides in configurations if label in chosen
            for seed in (run_seeds if seeds > 0 else claims.seeds_of(label, dataset))]
    last = previous_run(target / "catalogue.json", dataset, extra) if retry_failed else {}
    kept = {(r["label"], r["seed"]): r for r in last.get("results", [])
            if "failed" not in r and r["label"] not in again}
    branch = git(Path.cwd(), "symbolic-ref", "-q", "--short", "HEAD")
    saved = {"dataset": dataset, "overrides": extra, "seeds": run_seeds, "base_params": original,
             "base_branch": branch, "machine": last.get("machine") or machine(), "fetch": last.get("fetch", {})}
    results = []
    try:
        for number, (label, model, overrides, seed) in enumerate(runs, start=1):
            step = f"[{number}/{len(runs)}] {label} seed {seed}"
            if (label, seed) in kept:
                results.append(kept[(label, seed)])
                typer.echo(f"{step}: kept from the last run", err=True)
                continue
            params_path.write_text(original)  # each run starts from the same params
            log = logs / f"{label}-s{seed}.log"
            typer.echo(f"{step}: running `dvc exp run` (log: {log})", err=True)
            failed, seconds = run_one(["dvc", "exp", "run", *set_params(dataset, extra, model, seed, overrides)], log)
            result: dict[str, Any] = {"label": label, "seed": seed, "overrides": overrides, "seconds": seconds}
            if failed:
                result["failed"] = failed
            else:
                result.update(collect(layout))
                if seed == run_seeds[0]:  # the reference seed's report joins the catalogue
                    copy_tree(layout.report_dir, layout.catalogue_run_dir(dataset, label))
                    result["report"] = os.path.relpath(layout.catalogue_run_dir(dataset, label), target)
            results.append(result)
            # saved after every run: a killed comparison loses at most the run in progress, and --retry-failed
            # picks up from here
            write_json(target / "catalogue.json", {**saved, "results": results, "complete": False})
            shown = result.get("failed") or f"accuracy {result['metrics']['accuracy']:.4f}"
            typer.echo(f"{step}: {shown} ({seconds:.0f} s)", err=True)
    finally:
        params_path.write_text(original)
    write_catalogue(layout, target, {**saved, "results": results, "complete": True}, claims)
    typer.echo(f"comparison: {target / 'catalogue.md'}", err=True)
    if all("failed" in r for r in results):
        raise typer.Exit(1)


def render_again(layout: Layout, target: Path) -> None:
    """The pages of a complete catalogue rendered again from its records, which stay as they are (runs, params,
    data); only the verdicts it records are recomputed."""
    record = target / "catalogue.json"
    if not record.is_file():
        typer.echo(f"error: {record} does not exist: run `mnist compare --dataset {target.name}` first", err=True)
        raise typer.Exit(1)
    data = read_json(record)
    if not data.get("complete", True):
        typer.echo(f"error: {record} is still in progress: `mnist compare --retry-failed` completes it", err=True)
        raise typer.Exit(1)
    try:
        claims = load_claims(CLAIMS_FILE, list(read_params(PARAMS_FILE)["models"]))
    except PipelineError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(1) from None
    write_catalogue(layout, target, data, claims, from_workspace=False)
    typer.echo(f"comparison rendered again: {target / 'catalogue.md'}", err=True)


def copy_tree(source: Path, target: Path) -> None:
    """Replace `target` with a copy of `source` (a run's report folder)."""
    staging = target.with_name(target.name + ".tmp")
    shutil.rmtree(staging, ignore_errors=True)
    shutil.copytree(source, staging)
    shutil.rmtree(target, ignore_errors=True)
    os.replace(staging, target)


def write_catalogue(layout: Layout, target: Path, data: dict[str, Any], claims: Any,
                    from_workspace: bool = True) -> None:
    """catalogue.json and .md, the pictures, the demo's report, and the side-by-side lessons; `from_workspace`:
    take the data's description and the demo from the workspace's last run (not when only rendering again)."""
    params = read_params(PARAMS_FILE)
    fetched = read_json(layout.fetch_record) if from_workspace and layout.fetch_record.exists() else {}
    if fetched.get("dataset") == data["dataset"]:  # the workspace's data is this catalogue's (not when all were kept)
        data["fetch"] = {k: v for k, v in fetched.items() if k in ("description", "total_images")}
    data["test_images"] = next((r["test_total"] for r in data["results"] if "test_total" in r), 0)
    if from_workspace and layout.demo_record.exists():
        data["demo"] = read_json(layout.demo_record)
        layout.reference_demo_report.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(layout.demo_report, layout.reference_demo_report)
    underfit = parse_section(params, "evaluate", EvaluateParams).underfit_train_below
    text, verdicts = render_catalogue(data, claims, underfit)
    data["claims"] = verdicts
    write_json(target / "catalogue.json", data)
    runs = by_label(data["results"])
    leaderboard_png(target / "leaderboard.png", runs, data["dataset"], vgg16_weights(data), is_sample(data),
                    training_accuracy_claims(claims))
    for number, ladder in enumerate(claims.ladders, start=1):
        ladder_png(target / f"ladder-{number}.png", ladder, runs, data["seeds"][0])
    with atomic_path(target / "catalogue.md") as tmp:
        tmp.write_text(text)
    catalogues = {d: read_json(layout.catalogue_dir(d) / "catalogue.json") for d in ("mnist", "fashion_mnist")
                  if (layout.catalogue_dir(d) / "catalogue.json").is_file()}
    with atomic_path(layout.folder("reports") / "lessons.md") as tmp:
        tmp.write_text(render_side_by_side(catalogues, claims))
    families = {d: (c, page_tests(claims, by_label(c["results"]))) for d, c in catalogues.items()
                if c.get("complete", True)}
    for page in [Path("README.md"), *sorted(Path("docs").glob("*.md"))]:  # their marked result tables
        if page.is_file() and (text := page.read_text()) != (filled := fill(text, families, claims)):
            with atomic_path(page) as tmp:
                tmp.write_text(filled)
