"""The `train-mnist` Prefect flow: the DVC pipeline's stages as tasks, one versioned model per run.

One definition of the stage graph: the flow runs `dvc repro` itself, the command a user runs, and
each stage DVC starts becomes a task of its own (its output in the task's log as it is printed).
Each run works in its own git worktree of the last commit (`mnist_pipeline.worktrees.workspace`)
with the project's DVC cache, so stages whose inputs did not change are checked out or restored
from the run-cache, not recomputed. Tasks pass the workspace path, never arrays.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
import re
import subprocess
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.runtime import flow_run

from mnist_pipeline import registry
from mnist_pipeline.config import RegistryParams, parse_section, read_params
from mnist_pipeline.errors import PipelineError
from mnist_pipeline.experiments import run_lineage, save_experiment, stage_names
from mnist_pipeline.files import write_json
from mnist_pipeline.paired import pack
from mnist_pipeline.prefect_api import slug
from mnist_pipeline.project_files import ProjectFiles
from mnist_pipeline.reporting.markdown import narrow_tables
from mnist_pipeline.run_params import OVERRIDES, apply_overrides, check_run, committed_params, write_params
from mnist_pipeline.worktrees import workspace

ROOT = Path(__file__).resolve().parents[1]


# what a sweep's child runs: the model, its metrics and its report; the demo runs once, in the sweep's shared step
CHILD_TARGETS = ("report",)


def thread_env(threads: int | None) -> dict[str, str]:
    """Environment that holds a run's stages to `threads` threads: TensorFlow's intra- and inter-op pools
    (oneDNN's kernels run in them), the OpenMP/BLAS pools numpy and PyTorch use, and for one thread JAX's XLA
    CPU pool (XLA has no flag for another count: with more, JAX takes every core). None: nothing set, so
    each engine takes every core. Training is deterministic (op determinism on) and gives the same metrics
    with 1 or 2 threads on this machine's dense and convolutional models (docs/benchmarks.md)."""
    if threads is None:
        return {}
    env = {name: str(threads) for name in ("TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS", "OMP_NUM_THREADS",
                                           "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")}
    if threads == 1:
        env["XLA_FLAGS"] = " ".join(filter(None, (os.environ.get("XLA_FLAGS"), "--xla_cpu_multi_thread_eigen=false",
                                                  "intra_op_parallelism_threads=1")))
    return env


# where `dvc repro` starts a stage: it runs it, finds it up to date, or restores it from the run-cache (DVC's own
# wording, pinned against the locked DVC's message templates by tests/unit/test_dvc_wording.py)
MARKER = re.compile(r"^(?:Running stage '(?P<ran>[\w-]+)'|Stage '(?P<kept>[\w-]+)' (?:didn't change|is cached))")


class Repro:
    """One `dvc repro` in a workspace (the very command a user runs), its output read line by line as it is
    printed and cut where DVC starts each stage, so that each stage is its own Prefect task with its own live
    log. One DVC process instead of one per stage saves DVC's start-up (about 0.6 s) per stage."""

    def __init__(self, folder: str, *targets: str, threads: int | None = None) -> None:
        # the stages' prints arrive line by line, not at their end
        env = {**os.environ, "PYTHONUNBUFFERED": "1", **thread_env(threads)}
        self.process = subprocess.Popen(["dvc", "repro", *targets], cwd=folder, env=env, text=True,
                                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        self.lines = (line.rstrip() for line in self.process.stdout or [] if line.strip())
        self.marker: str | None = None  # the first line of the stage read next
        self.output: list[str] = []

    def next_stage(self) -> str | None:
        """The name of the next stage DVC starts, or None when DVC has finished."""
        if self.marker is None:
            for line in self.lines:
                self.output.append(line)
                if MARKER.match(line):
                    self.marker = line
                    break
        found = MARKER.match(self.marker or "")
        return (found["ran"] or found["kept"]) if found else None

    def stage_lines(self) -> Iterator[str]:
        """The current stage's output, from its first line up to the next stage's."""
        first, self.marker = self.marker, None
        yield first or ""
        for line in self.lines:
            self.output.append(line)
            if MARKER.match(line):
                self.marker = line
                return
            yield line

    def failure(self) -> str | None:
        """Once DVC has finished: None when it succeeded, else its first error line (the stage's own)."""
        if self.marker is not None:
            return None
        code = self.process.wait()
        if code == 0:
            return None
        errors = [line for line in self.output if line.startswith(("error:", "ERROR:"))]
        return errors[0] if errors else f"dvc repro failed (exit {code})"


class OneLineErrors(logging.Filter):
    """A PipelineError is a user's mistake or a stage's own one-line error: its log records (the task's, the flow's
    and the engine's) keep their message and the error's line, not a traceback of Prefect's internals."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if isinstance(error, PipelineError):
            record.msg, record.args = f"{record.getMessage()}: error: {error}", ()
            record.exc_info, record.exc_text = None, None
        return True


def install_one_line_errors() -> None:
    """OneLineErrors on every handler Prefect's logging set up in this process (a served flow run's own)."""
    for name in ("", "prefect", "prefect.flow_runs", "prefect.task_runs"):
        for handler in logging.getLogger(name).handlers:
            if not any(isinstance(f, OneLineErrors) for f in handler.filters):
                handler.addFilter(OneLineErrors())


install_one_line_errors()


@task(cache_policy=NO_CACHE)  # DVC decides what is up to date
def repro_stage(repro: Repro, stage: str) -> bool:
    """One stage of the workspace's `dvc repro`: each line of its output reaches the task log as it is printed
    (epoch lines during training, progress during features). True when the stage's command ran; False when
    DVC found it up to date or restored it from its run-cache."""
    logger = get_run_logger()
    ran = False
    for line in repro.stage_lines():
        logger.info(line)
        ran = ran or line.startswith(f"Running stage '{stage}'")
    error = repro.failure()
    if error:
        raise PipelineError(error)
    return ran


def run_stages(folder: str, *targets: str, threads: int | None = None) -> list[str]:
    """`dvc repro [targets]` in the workspace, each stage as a task in DVC's order; the stages that ran.
    `threads`: see `thread_env`."""
    repro, ran = Repro(folder, *targets, threads=threads), []
    while (stage := repro.next_stage()) is not None:
        if repro_stage.with_options(name=stage)(repro, stage):
            ran.append(stage)
    error = repro.failure()  # DVC stopped before any stage started
    if error:
        raise PipelineError(error)
    return ran


@task(cache_policy=NO_CACHE)
def register_model(folder: str, root: str, started_at: str) -> dict[str, Any]:
    """Register the workspace's model as the next version (its report inside it) and run the gate; the
    version's report is <registry>/<model>/<version>/report/report.md, never overwritten."""
    work, project = Path(folder), Path(root)
    params = read_params(work / "params.yaml")
    files, settings = ProjectFiles.from_params(params, work), parse_section(params, "registry", RegistryParams)
    trained = json.loads(files.train_record.read_text())
    model = trained["model"]
    timing = files.timing("train")  # absent when DVC's run-cache restored the model instead of training it
    fit = json.loads(timing.read_text()).get("fit_seconds") if timing.is_file() else None
    lineage = run_lineage(work, project)
    evaluation = json.loads(files.evaluation_record.read_text())
    rows = np.loadtxt(files.confusion_csv, delimiter=",", skiprows=1, dtype=np.int64, ndmin=2)
    record = {"metrics": {**evaluation["metrics"], "train_seconds": fit},
              # what the gate's paired test needs: each test image right or wrong, and which images they were
              "test_correct": pack(rows[:, 0] == rows[:, 1]),
              "test_set": {"raw_sha256": trained["raw_sha256"], "images": len(rows)},
              # the same data, params and code give the same stage hashes: an identical run registers nothing
              "fingerprint": hashlib.sha256(json.dumps(lineage["dvc_lock"], sort_keys=True).encode()).hexdigest(),
              "evaluation_summary": evaluation_summary(files, trained, evaluation),  # what the model card shows
              "params": {k: params[k] for k in ("data", "fetch", "prepare", "resize", "features", "train")},
              "model_spec": trained["spec"], "resumed_from_checkpoint": trained["resumed_from_checkpoint"],
              "flow_run_id": str(flow_run.get_id()), "run_started_at": started_at, **lineage}

    def as_experiment(number: str, blessed: bool) -> dict[str, Any]:
        """Save the run as the DVC experiment `<model>-vN`, its registry version among its metrics."""
        write_json(files.registration, {"registry_version": f"{model}@{number}", "blessed": int(blessed)})
        save_experiment(work, f"{model}-{number}", [files.registration])
        return {"experiment": f"{model}-{number}"}

    version = registry.register(project / settings.dir, model, files.model_file, record,
                                registry.Gate(settings.min_accuracy, settings.tolerance),
                                attachments={"report": files.report_dir}, on_number=as_experiment)
    report = project / settings.dir / model / version["version"] / "report" / files.report.name
    return {**version, "report": str(report), "spec": trained["spec"],
            "ci95": evaluation["intervals"]["test"]["ci95"],
            "epochs_run": trained["epochs_run"], "stopped_by": trained["stopped_by"],
            "diagnosis": evaluation["diagnosis"], "audit": evaluation["audit"]}


def evaluation_summary(files: ProjectFiles, trained: dict[str, Any], evaluation: dict[str, Any]) -> dict[str, Any]:
    """What a version's model card shows beyond the record's metrics: the interval, per-class figures, the
    distorted test sets, the recipe as it ran, the diagnosis and the tutorial claim's verdict."""
    from mnist_pipeline.claims import Run, judge

    fetched = json.loads(files.fetch_record.read_text())
    features = json.loads(files.features_record.read_text())
    test = evaluation["intervals"]["test"]
    verdict = judge(trained["spec"], Run.from_records(fetched, trained, features, evaluation))
    return {"ci95": test["ci95"], "test_images": test["total"], "per_class": evaluation["per_class"],
            "distortions": evaluation["distortions"],
            "distortions_not_measured": evaluation["distortions_not_measured"],
            "counts": {"train": trained["shapes"]["x_train"][0], "val": trained["shapes"]["x_val"][0],
                       "test": test["total"]},
            "source_description": fetched.get("description", ""), "epochs_run": trained["epochs_run"],
            "restored_epoch": trained.get("restored_epoch"), "stopped_by": trained["stopped_by"],
            "diagnosis": evaluation["diagnosis"], "verdict": f"{verdict.verdict}: {verdict.reason}"}


def inline_images(report: Path) -> str:
    """The report's markdown with its pictures inlined as data URIs: the Prefect UI cannot follow the
    relative PNG links that make the committed report render on GitHub."""
    report_dir, text = report.parent, report.read_text()

    def inline(match: re.Match) -> str:
        picture = report_dir / match.group(2)
        if not picture.is_file():
            return match.group(0)
        return f"![{match.group(1)}](data:image/png;base64,{base64.b64encode(picture.read_bytes()).decode()})"

    return re.sub(r"!\[([^\]]*)\]\(([^)/:]+\.png)\)", inline, text)


def times_section(files: ProjectFiles, folder: Path, ran: list[str]) -> str:
    """Markdown: every stage's seconds in this run, or why it has none (the run report holds no times, so that
    identical work writes an identical report)."""
    rows = []
    for stage in stage_names(folder):
        path = files.timing(stage)
        timing = json.loads(path.read_text()) if stage in ran and path.is_file() else None
        if timing is None:
            rows.append(f"| {stage} | not run: its inputs were unchanged, or DVC's run-cache restored its outputs |")
        else:
            fit = f" (the fit alone: {timing['fit_seconds']:.1f})" if "fit_seconds" in timing else ""
            rows.append(f"| {stage} | {timing['seconds']:.1f}{fit} |")
    return "\n".join(["", "## Time per stage (this run)", "", "| stage | seconds |", "|---|---|", *rows, ""])


def publish(version: dict[str, Any], dataset: str, model: str, report: str) -> None:
    """The run's report and metrics as Prefect artifacts."""
    name = f"{version['name']}@{version['version']}"
    # the UI cuts long table cells off (one line each, scroll bar hidden): such tables go to the UI as lists
    create_markdown_artifact(key=slug(f"{dataset}-{model}-report"), markdown=narrow_tables(report),
                             description=f"report of {name}")
    card = Path(version["report"]).parents[1] / registry.CARD
    if card.is_file():
        create_markdown_artifact(key=slug(f"{dataset}-{model}-card"), markdown=narrow_tables(card.read_text()),
                                 description=f"model card of {name}")
    create_table_artifact(key=slug(f"{dataset}-{model}-metrics"),
                          table=[{"metric": k, "value": v} for k, v in version["metrics"].items()],
                          description=f"test metrics of {name}")


def run_name() -> str:
    """`<dataset>-<model>-<short id>`, the flow run's name in the UI (defaults from params.yaml)."""
    given, defaults = flow_run.parameters, committed_params(ROOT)
    dataset = given.get("dataset") or defaults["data"]["dataset"]
    model = given.get("model") or defaults["train"]["model"]
    return f"{dataset}-{model}-{str(flow_run.id)[:8]}"


@flow(name="train-mnist", flow_run_name=run_name, log_prints=True)
def train_mnist(dataset: str | None = None, model: str | None = None, epochs: int | None = None,
                batch_size: int | None = None, learning_rate: float | None = None, seed: int | None = None,
                max_train_images: int | None = None, backend: str | None = None,
                precision: str | None = None) -> dict[str, Any]:
    """Run the pipeline with these overrides of params.yaml (for this run only) and register the model; a bad
    parameter or a stage's error fails the run with that one line (`OneLineErrors`: no traceback). `backend`
    and `precision` are train.backend and train.precision (docs/gpu.md): the serving venv must have the backend."""
    overrides = {k: v for k, v in locals().items() if v is not None and k in OVERRIDES}
    return run_pipeline(overrides)


@flow(name="train-mnist-child", flow_run_name=run_name, log_prints=True)
def train_child(model: str, variant_of: str | None = None, model_settings: dict[str, Any] | None = None,
                start_lock: str | None = None, dataset: str | None = None, epochs: int | None = None,
                max_train_images: int | None = None, seed: int | None = None,
                threads: int | None = None) -> dict[str, Any]:
    """A sweep's child run: catalogue entry `model`, or with `variant_of` the new entry `model` made of that
    one with `model_settings` changed; it starts from the sweep's `start_lock` (its shared preprocessing),
    runs the stages up to its report (`CHILD_TARGETS`) with `threads` threads (`thread_env`).
    Internal: the public deployments serve `train_mnist`, which takes user parameters only."""
    overrides = {k: v for k, v in {"dataset": dataset, "model": model, "epochs": epochs,
                                   "max_train_images": max_train_images, "seed": seed}.items() if v is not None}
    return run_pipeline(overrides, model_settings, variant_of, start_lock, CHILD_TARGETS, threads)


def run_pipeline(overrides: dict[str, Any], model_settings: dict[str, Any] | None = None,
                 variant_of: str | None = None, start_lock: str | None = None, targets: tuple[str, ...] = (),
                 threads: int | None = None) -> dict[str, Any]:
    """Check the run's params, run the stages in a workspace, register the model, publish its report.

    `model_settings` (e.g. {"activation": "relu"}) changes the model's catalogue entry for this run;
    with `variant_of`, the model is a new entry: that one so changed. `start_lock`: a dvc.lock to start
    from instead of the committed one (see `workspace`). `targets`: the stages to reproduce with what they
    depend on (none: every stage); `threads`: see `thread_env`.
    """
    started_at = datetime.now(timezone.utc).isoformat(timespec="milliseconds")
    params = apply_overrides(committed_params(ROOT), overrides, model_settings, variant_of)
    check_run(params)  # the params the workspace will run with; a bad one is refused before any stage runs
    dataset, model = params["data"]["dataset"], params["train"]["model"]
    with workspace(ROOT, Path(start_lock) if start_lock else None) as folder:
        write_params(folder, params)
        print(f"workspace {folder}: {model} on {dataset}, overrides {overrides}"
              + (f", model settings {model_settings}" if model_settings else ""))
        ran = run_stages(str(folder), *targets, threads=threads)
        version = register_model(str(folder), str(ROOT), started_at)
        files = ProjectFiles.from_params(params, folder)
        publish(version, dataset, model, inline_images(files.report) + times_section(files, folder, ran))
    verdict = "blessed, now champion" if version["blessed"] else "not blessed, the champion stays"
    low, high = version["ci95"]
    # the run's last log line, so `prefect deployment run ... --watch` ends with the result, not only the state
    if version.get("duplicate_of"):
        print(f"registered nothing: this run is the same work (data, params and code: dvc.lock's stage hashes) as "
              f"{version['duplicate_of']}, test accuracy {version['metrics']['accuracy']:.2%} (95% interval "
              f"{low:.1%}-{high:.1%}); the champion is unchanged; report {version['report']}")
    else:
        print(f"registered {version['name']}@{version['version']}: test accuracy "
              f"{version['metrics']['accuracy']:.2%} (95% interval {low:.1%}-{high:.1%}); {verdict} "
              f"({version['gate_reason']}); report {version['report']}")
    return {"version": f"{version['name']}@{version['version']}", "experiment": version["experiment"],
            "duplicate_of": version.get("duplicate_of"),
            "blessed": version["blessed"],
            "metrics": version["metrics"], "report": version["report"], "stages_run": ran,
            **{k: version[k] for k in ("spec", "epochs_run", "stopped_by", "diagnosis", "audit")}}


if __name__ == "__main__":
    print(json.dumps(train_mnist(), indent=2))
