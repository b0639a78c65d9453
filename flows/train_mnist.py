"""The `train-mnist` Prefect flow: the DVC pipeline's stages as tasks, one versioned model per run.

One definition of the stage graph: the flow reads the stage list from `dvc.yaml` and each
task runs `dvc repro --single-item <stage>`, the same command and code as `dvc repro`.
Each run works in its own git worktree of the last commit (so its lineage names an exact
code revision and runs never share a workspace), with the project's DVC cache: the
worktree starts from the committed `dvc.lock`, so stages whose inputs did not change are
checked out from the cache, not recomputed. Tasks pass that workspace path, never arrays.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tempfile
from datetime import datetime, timezone
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml
from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.runtime import flow_run

from tasks import registry
from tasks.config import RegistryParams, parse_section

ROOT = Path(__file__).resolve().parents[1]
OVERRIDES = {"dataset": ("data", "dataset"), "model": ("train", "model"), "epochs": ("train", "epochs"),
             "batch_size": ("train", "batch_size"), "learning_rate": ("train", "learning_rate"),
             "seed": ("train", "seed"), "max_train_images": ("train", "max_train_images")}


def stage_names(root: Path = ROOT) -> list[str]:
    """The pipeline's stages, in the order dvc.yaml lists them (a topological order)."""
    return list(yaml.safe_load((root / "dvc.yaml").read_text())["stages"])


def slug(text: str) -> str:
    """Prefect artifact keys: lowercase letters, digits and dashes only."""
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def git(root: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=root, check=True, capture_output=True, text=True).stdout.strip()


@contextmanager
def workspace(root: Path, start_lock: Path | None = None) -> Iterator[Path]:
    """A fresh git worktree of HEAD that shares the project's DVC cache; removed afterwards.

    `start_lock` replaces the committed dvc.lock: a sweep hands its children the lock file of
    its shared preprocessing, so they check those outputs out of the cache instead of
    recomputing them (the stages' outputs are `persist`, which DVC's run-cache skips).
    """
    folder = Path(tempfile.mkdtemp(prefix="train-mnist-")) / "ws"
    git(root, "worktree", "add", "--detach", str(folder), "HEAD")
    try:
        if start_lock:
            shutil.copyfile(start_lock, folder / "dvc.lock")
        subprocess.run(["dvc", "config", "--local", "cache.dir", str(root / ".dvc" / "cache")], cwd=folder,
                       check=True, capture_output=True)
        subprocess.run(["dvc", "checkout", "--allow-missing"], cwd=folder, capture_output=True)  # best effort
        (root / "checkpoints").mkdir(exist_ok=True)  # shared: a run killed mid-training resumes in the next run
        (folder / "checkpoints").symlink_to(root / "checkpoints", target_is_directory=True)
        yield folder
    finally:
        git(root, "worktree", "remove", "--force", str(folder))
        shutil.rmtree(folder.parent, ignore_errors=True)


def apply_overrides(folder: Path, overrides: dict[str, Any], model_settings: dict[str, Any] | None = None,
                    variant_of: str | None = None, start_lock: str | None = None) -> dict[str, Any]:
    """Write this run's parameter overrides into the workspace's params.yaml; return the params.

    `model_settings` changes fields of the model's catalogue entry (`models.<model>`) for this run;
    with `variant_of`, the entry is a new one: that catalogue entry with those fields changed (how
    a sweep's grid point becomes a named model with its own registry versions and report).
    """
    path = folder / "params.yaml"
    params = yaml.safe_load(path.read_text())
    for key, value in overrides.items():
        if value is not None:
            section, name = OVERRIDES[key]
            params[section][name] = value
    if model_settings or variant_of:
        model, base = params["train"]["model"], variant_of or params["train"]["model"]
        if base not in params["models"]:
            raise ValueError(f"unknown catalogue model {base!r} for a variant; the catalogue has: "
                             f"{', '.join(params['models'])}")
        params["models"][model] = {**params["models"][base], **(model_settings or {})}
    path.write_text(yaml.safe_dump(params, sort_keys=False))
    return params


@task(cache_policy=NO_CACHE)  # DVC decides what is up to date; see the module docstring
def run_stage(folder: str, stage: str) -> bool:
    """Run one pipeline stage exactly as `dvc repro` does; its output goes to the task log.

    True when the stage's command ran; False when DVC found it up to date or restored its
    outputs from the run-cache (a configuration seen before, in this run or any other).
    """
    logger = get_run_logger()
    done = subprocess.run(["dvc", "repro", "--single-item", stage], cwd=folder, capture_output=True, text=True)
    output = done.stdout + done.stderr
    for line in output.splitlines():
        if line.strip():
            logger.info(line)
    if done.returncode != 0:
        errors = [line for line in output.splitlines() if line.startswith(("error:", "ERROR:"))]
        raise RuntimeError(errors[0] if errors else f"stage {stage} failed (exit {done.returncode})")
    return f"Running stage '{stage}'" in output


def lineage(folder: Path, root: Path) -> dict[str, Any]:
    """What made this model: data checksums, params, code revision, stage hashes, timings."""
    fetched = json.loads((folder / "data/raw/fetch.json").read_text())
    lock = yaml.safe_load((folder / "dvc.lock").read_text())
    stages = {name: {"outs": {o["path"]: o.get("md5") for o in stage.get("outs", [])},
                     "deps": {d["path"]: d.get("md5") for d in stage.get("deps", [])}}
              for name, stage in lock["stages"].items()}
    timings = {p.stem: json.loads(p.read_text())["seconds"] for p in (folder / "timings").glob("*.json")}
    return {"dataset": fetched["dataset"], "data_source": fetched["source"],
            "data_files": fetched["source_files"] + [fetched["raw_file"]],
            "git_revision": git(root, "rev-parse", "HEAD"), "dvc_lock": stages, "seconds_per_stage": timings}


@task(cache_policy=NO_CACHE)
def register_model(folder: str, root: str, started_at: str) -> dict[str, Any]:
    """Copy the report to reports/, register the model as the next version, run the gate."""
    work, project = Path(folder), Path(root)
    params = yaml.safe_load((work / "params.yaml").read_text())
    settings = parse_section(params, "registry", RegistryParams)
    metrics = json.loads((work / "evaluation/metrics.json").read_text())
    trained = json.loads((work / "model/train.json").read_text())
    model, dataset = trained["model"], params["data"]["dataset"]
    record = {"metrics": metrics, "params": {k: params[k] for k in ("data", "prepare", "resize", "features", "train")},
              "model_spec": trained["spec"],
              "resumed_from_checkpoint": trained.get("resumed_from_checkpoint", False), "flow_run_id": str(flow_run.get_id()),
              "run_started_at": started_at,
              **lineage(work, project)}
    report_src = work / "reports" / dataset / model
    version = registry.register(project / settings.dir, model, work / "model/model.keras", record,
                                registry.Gate(settings.min_accuracy, settings.tolerance),
                                attachments={"report": report_src})  # the immutable copy, inside the version
    latest = project / "reports" / dataset / model
    shutil.copytree(report_src, latest, dirs_exist_ok=True)  # the latest run of this model
    evaluation = json.loads((work / "evaluation/evaluation.json").read_text())
    return {**version, "report": str(latest / "report.md"), "spec": trained["spec"],
            "epochs_run": trained["epochs_run"], "stopped_by": trained["stopped_by"],
            "diagnosis": evaluation["diagnosis"], "audit": evaluation.get("audit")}


@flow(name="train-mnist", log_prints=True)
def train_mnist(dataset: str | None = None, model: str | None = None, epochs: int | None = None,
                batch_size: int | None = None, learning_rate: float | None = None, seed: int | None = None,
                max_train_images: int | None = None, model_settings: dict[str, Any] | None = None,
                variant_of: str | None = None, start_lock: str | None = None) -> dict[str, Any]:
    """Run the pipeline with these overrides of params.yaml (for this run only) and register the model.

    `model_settings` (e.g. {"activation": "relu"}) changes the model's catalogue entry for this
    run; with `variant_of`, `model` is a new name for that catalogue entry so changed.
    `start_lock`: a dvc.lock to start from instead of the committed one (see `workspace`).
    """
    overrides = {k: v for k, v in locals().items() if v is not None and k in OVERRIDES}
    started_at = datetime.now(timezone.utc).isoformat(timespec="milliseconds")
    with workspace(ROOT, Path(start_lock) if start_lock else None) as folder:
        params = apply_overrides(folder, overrides, model_settings, variant_of)
        print(f"workspace {folder}: {params['train']['model']} on {params['data']['dataset']}, overrides {overrides}"
              + (f", model settings {model_settings}" if model_settings else ""))
        ran = []
        for stage in stage_names(folder):
            retrying = {"retries": 3, "retry_delay_seconds": [2, 5, 15]} if stage == "fetch" else {}
            if run_stage.with_options(name=stage, **retrying)(str(folder), stage):
                ran.append(stage)
        version = register_model(str(folder), str(ROOT), started_at)
        report_text = (Path(folder) / "reports" / params["data"]["dataset"] / params["train"]["model"]
                       / "report.md").read_text()
    name = f"{version['name']}@{version['version']}"
    create_markdown_artifact(key=slug(f"{params['data']['dataset']}-{params['train']['model']}-report"),
                             markdown=report_text, description=f"report of {name}")
    create_table_artifact(key=slug(f"{params['data']['dataset']}-{params['train']['model']}-metrics"),
                          table=[{"metric": k, "value": v} for k, v in version["metrics"].items()],
                          description=f"test metrics of {name}")
    verdict = "blessed, now champion" if version["blessed"] else "not blessed"
    print(f"registered {name}: {verdict} ({version['gate_reason']}); report {version['report']}")
    return {"version": name, "blessed": version["blessed"], "metrics": version["metrics"],
            "report": version["report"], "stages_run": ran,
            **{k: version[k] for k in ("spec", "epochs_run", "stopped_by", "diagnosis", "audit")}}


if __name__ == "__main__":
    print(json.dumps(train_mnist(), indent=2))
