"""The reference comparison behind `mnist compare`: every configuration of the catalogue and claims.yaml, once
per seed, as a real `dvc exp run`, collected into `reports/<dataset>/catalogue.json` and rendered with its
verdicts and lessons (reporting/comparison_page.py). The command line parses its options and calls `compare` or
`render_again`; everything else is here.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mnist_pipeline.claims import Run, judge, load_claims
from mnist_pipeline.config import EvaluateParams, parse_params, parse_section, read_params
from mnist_pipeline.distortions import split_name
from mnist_pipeline.errors import PipelineError
from mnist_pipeline.files import atomic_path, load_npz, read_json, write_json
from mnist_pipeline.lessons import pack, shown
from mnist_pipeline.project_files import CLAIMS_FILE, PARAMS_FILE, ProjectFiles
from mnist_pipeline.reporting.blocks import fill
from mnist_pipeline.reporting.comparison_page import (
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

Say = Callable[[str], None]  # where a comparison's progress lines go (the command line: stderr)


@dataclass(frozen=True)
class Request:
    """What `mnist compare` was asked for (its options, as given)."""

    dataset: str = "mnist"
    models: list[str] = field(default_factory=list)  # empty: every configuration
    seeds: int = 0  # the first N seeds of claims.yaml, no extra seeds; 0: all of them
    settings: list[str] = field(default_factory=list)  # --set KEY=VALUE
    retry_failed: bool = False
    rerun: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Plan:
    """The runs a comparison makes, checked before the first: (label, model, overrides, seed) each."""

    runs: list[tuple[str, str, dict[str, Any], int]]
    claims: Any
    extra: dict[str, str]
    seeds: list[int]
    kept: dict[tuple[str, int], dict[str, Any]]
    saved: dict[str, Any]  # what catalogue.json records beside the results


def plan(request: Request, original: str, target: Path) -> Plan:
    """Check the request against the catalogue and claims.yaml; refuse it in one line, or plan its runs."""
    catalogue = list(parse_params(original, "the params the comparison starts from").get("models") or {})
    claims = load_claims(CLAIMS_FILE, catalogue)
    configurations = claims.labels(catalogue)
    known = [label for label, _, _ in configurations]
    chosen = request.models or known
    if unknown := [m for m in chosen if m not in known]:
        raise PipelineError(f"unknown models {unknown}; the configurations are: {', '.join(known)}")
    if request.rerun and not request.retry_failed:
        raise PipelineError("--rerun needs --retry-failed (without it every configuration runs anyway)")
    if outside := sorted(set(request.rerun) - set(chosen)):
        raise PipelineError(f"--rerun {outside}: not among the configurations this comparison runs "
                            f"({', '.join(chosen)})")
    if malformed := [item for item in request.settings if "=" not in item]:
        raise PipelineError(f"--set needs KEY=VALUE, got {malformed[0]!r}")
    extra = dict(item.split("=", 1) for item in request.settings)
    seeds = claims.seeds[:request.seeds] if request.seeds > 0 else claims.seeds
    runs = [(label, model, overrides, seed) for label, model, overrides in configurations if label in chosen
            for seed in (seeds if request.seeds > 0 else claims.seeds_of(label, request.dataset))]
    last = previous_run(target / "catalogue.json", request.dataset, extra) if request.retry_failed else {}
    kept = {(r["label"], r["seed"]): r for r in last.get("results", [])
            if "failed" not in r and r["label"] not in request.rerun}
    saved = {"dataset": request.dataset, "overrides": extra, "seeds": seeds, "base_params": original,
             "base_branch": git(Path.cwd(), "symbolic-ref", "-q", "--short", "HEAD"),
             "machine": last.get("machine") or machine(), "fetch": last.get("fetch", {})}
    return Plan(runs, claims, extra, seeds, kept, saved)


def compare(request: Request, files: ProjectFiles, say: Say) -> list[dict[str, Any]]:
    """Run every planned configuration and seed with `dvc exp run` (each from the same params), then write the
    catalogue and its verdicts; the results. Saved after every run: a killed comparison loses at most the run in
    progress, and --retry-failed picks up from there."""
    if dvc_running(Path.cwd()):  # two `dvc exp run` in one workspace record each other's params
        raise PipelineError("a dvc command is running in this workspace; one comparison (or `dvc exp run`) at a "
                            "time: `dvc exp run --queue` + `dvc queue start` runs experiments side by side")
    for line in repair_workspace(Path.cwd()):  # a torn dvc.lock or a detached HEAD a kill left
        say(line)
    target = files.catalogue_dir(request.dataset)
    original = base_params(PARAMS_FILE, target / "catalogue.json", say)
    chosen = plan(request, original, target)
    logs = target / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    results: list[dict[str, Any]] = []
    try:
        for number, (label, model, overrides, seed) in enumerate(chosen.runs, start=1):
            step = f"[{number}/{len(chosen.runs)}] {label} seed {seed}"
            if (label, seed) in chosen.kept:
                results.append(chosen.kept[(label, seed)])
                say(f"{step}: kept from the last run")
                continue
            PARAMS_FILE.write_text(original)  # each run starts from the same params
            log = logs / f"{label}-s{seed}.log"
            say(f"{step}: running `dvc exp run` (log: {log})")
            arguments = set_params(request.dataset, chosen.extra, model, seed, overrides)
            failed, seconds = run_one(["dvc", "exp", "run", *arguments], log)
            result: dict[str, Any] = {"label": label, "seed": seed, "overrides": overrides, "seconds": seconds}
            if failed:
                result["failed"] = failed
            else:
                result.update(collect(files))
                if seed == chosen.seeds[0]:  # the reference seed's report joins the catalogue
                    copy_tree(files.report_dir, files.catalogue_run_dir(request.dataset, label))
                    result["report"] = os.path.relpath(files.catalogue_run_dir(request.dataset, label), target)
            results.append(result)
            write_json(target / "catalogue.json", {**chosen.saved, "results": results, "complete": False})
            outcome = result.get("failed") or f"accuracy {result['metrics']['accuracy']:.4f}"
            say(f"{step}: {outcome} ({seconds:.0f} s)")
    finally:
        PARAMS_FILE.write_text(original)
    write_catalogue(files, target, {**chosen.saved, "results": results, "complete": True}, chosen.claims)
    say(f"comparison: {target / 'catalogue.md'}")
    return results


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


def collect(files: ProjectFiles) -> dict[str, Any]:
    """The finished run's record, from what its stages wrote: numbers, per-image correctness, curves, cost."""
    evaluation, trained = read_json(files.evaluation_record), read_json(files.train_record)
    fetched, features, prepared = (read_json(files.fetch_record), read_json(files.features_record),
                                   read_json(files.prepare_record))
    rows = np.loadtxt(files.confusion_csv, delimiter=",", skiprows=1, dtype=np.int64, ndmin=2)
    test = evaluation["intervals"]["test"]
    verdict = judge(trained["spec"], Run.from_records(fetched, trained, features, evaluation))
    base = 0 if features.get("skipped") else features.get("base_parameters", 0)
    return {"model": trained["model"], "metrics": evaluation["metrics"], "ci95": test["ci95"],
            "train_images": trained["shapes"]["x_train"][0],
            "test_total": test["total"], "correct": pack(rows[:, 0] == rows[:, 1]),
            "distortions": distorted_correctness(files, evaluation, rows[:, 0]),
            "diagnosis": evaluation["diagnosis"], "audit": evaluation.get("audit"), "spec": trained["spec"],
            "train_params": trained["train_params"],
            "prepare": {k: prepared[k] for k in ("normalized", "val_fraction")},
            "history": trained["history"], "epochs_run": trained["epochs_run"],
            "restored_epoch": trained.get("restored_epoch"), "stopped_by": trained["stopped_by"],
            "verdict": {"verdict": verdict.verdict, "reason": verdict.reason, "metric": verdict.metric,
                        "ours": verdict.ours, "ci95": verdict.ci95},
            "parameters": {"trainable": trained["parameters"], "total": trained["parameters"] + base},
            "stage_seconds": {path.stem: read_json(path)["seconds"]
                              for path in sorted(files.folder("timings").glob("*.json")) if path.stem != "demo"}}


def distorted_correctness(files: ProjectFiles, evaluation: dict[str, Any], labels: np.ndarray) -> dict[str, Any]:
    """Each distortion's accuracy and interval as evaluate gave them, and its per-test-image correctness (packed
    like `correct`) from train's predictions; {"not_measured": reason} when the run measured none."""
    found = evaluation.get("distortions") or {}
    if not found:
        return {"not_measured": evaluation.get("distortions_not_measured") or "distortions.apply is empty"}
    predictions = load_npz(files.predictions, tuple(split_name(name) for name in found))
    out = {}
    for name, d in found.items():
        correct = predictions[split_name(name)].argmax(axis=1) == labels
        if int(correct.sum()) != d["correct"]:
            raise PipelineError(f"{files.predictions}: {name} has {int(correct.sum())} right, evaluate counted "
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
        raise PipelineError(f"{path} was made with dataset {last.get('dataset')} and --set {last.get('overrides')}; "
                            f"--retry-failed needs the same")
    return last


def base_params(params_path: Path, catalogue_json: Path, say: Say) -> str:
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
    say("compare: the last comparison was interrupted; restoring the params.yaml it started from "
        "and unstaging what its killed `dvc exp run` left in the git index")
    subprocess.run(["git", "reset", "-q", "--", "params.yaml", "dvc.lock"], check=False)
    branch = last.get("base_branch")
    detached = not git(Path.cwd(), "symbolic-ref", "-q", "HEAD")
    if branch and detached and git(Path.cwd(), "rev-parse", "HEAD") == git(Path.cwd(), "rev-parse", branch):
        subprocess.run(["git", "symbolic-ref", "HEAD", f"refs/heads/{branch}"], check=True)
    return last["base_params"]


def render_again(files: ProjectFiles, target: Path, say: Say) -> None:
    """The pages of a complete catalogue rendered again from its records, which stay as they are (runs, params,
    data); only the verdicts it records are recomputed."""
    record = target / "catalogue.json"
    if not record.is_file():
        raise PipelineError(f"{record} does not exist: run `mnist compare --dataset {target.name}` first")
    data = read_json(record)
    if not data.get("complete", True):
        raise PipelineError(f"{record} is still in progress: `mnist compare --retry-failed` completes it")
    claims = load_claims(CLAIMS_FILE, list(read_params(PARAMS_FILE)["models"]))
    write_catalogue(files, target, data, claims, from_workspace=False)
    say(f"comparison rendered again: {target / 'catalogue.md'}")


def copy_tree(source: Path, target: Path) -> None:
    """Replace `target` with a copy of `source` (a run's report folder)."""
    staging = target.with_name(target.name + ".tmp")
    shutil.rmtree(staging, ignore_errors=True)
    shutil.copytree(source, staging)
    shutil.rmtree(target, ignore_errors=True)
    os.replace(staging, target)


def write_catalogue(files: ProjectFiles, target: Path, data: dict[str, Any], claims: Any,
                    from_workspace: bool = True) -> None:
    """catalogue.json and .md, the pictures, the demo's report, and the side-by-side lessons; `from_workspace`:
    take the data's description and the demo from the workspace's last run (not when only rendering again)."""
    params = read_params(PARAMS_FILE)
    fetched = read_json(files.fetch_record) if from_workspace and files.fetch_record.exists() else {}
    if fetched.get("dataset") == data["dataset"]:  # the workspace's data is this catalogue's (not when all were kept)
        data["fetch"] = {k: v for k, v in fetched.items() if k in ("description", "total_images")}
    data["test_images"] = next((r["test_total"] for r in data["results"] if "test_total" in r), 0)
    if from_workspace and files.demo_record.exists():
        data["demo"] = read_json(files.demo_record)
        files.reference_demo_report.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(files.demo_report, files.reference_demo_report)
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
    catalogues = {d: read_json(files.catalogue_dir(d) / "catalogue.json") for d in ("mnist", "fashion_mnist")
                  if (files.catalogue_dir(d) / "catalogue.json").is_file()}
    with atomic_path(files.folder("reports") / "lessons.md") as tmp:
        tmp.write_text(render_side_by_side(catalogues, claims))
    families = {d: (c, page_tests(claims, by_label(c["results"]))) for d, c in catalogues.items()
                if c.get("complete", True)}
    for page in [Path("README.md"), *sorted(Path("docs").glob("*.md"))]:  # their marked result tables
        if page.is_file() and (text := page.read_text()) != (filled := fill(text, families, claims)):
            with atomic_path(page) as tmp:
                tmp.write_text(filled)
