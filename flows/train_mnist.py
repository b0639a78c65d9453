"""The `train-mnist` Prefect flow: the DVC pipeline's stages as tasks, one versioned model per run.

One definition of the stage graph: the flow reads the stage list from `dvc.yaml` and each task
runs `dvc repro --single-item <stage>`, the same command and code as `dvc repro`. Each run works
in its own git worktree of the last commit (`mnist_pipeline.orchestration.workspace`) with the
project's DVC cache, so stages whose inputs did not change are checked out, not recomputed.
Tasks pass that workspace path, never arrays.
"""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.runtime import flow_run

from mnist_pipeline import registry
from mnist_pipeline.config import RegistryParams, parse_section, read_params
from mnist_pipeline.files import write_json
from mnist_pipeline.layout import Layout
from mnist_pipeline.orchestration import (
    OVERRIDES,
    apply_overrides,
    check_run,
    committed_params,
    run_lineage,
    save_experiment,
    slug,
    stage_names,
    workspace,
    write_params,
)

ROOT = Path(__file__).resolve().parents[1]


@task(cache_policy=NO_CACHE)  # DVC decides what is up to date
def repro_stage(folder: str, stage: str) -> bool:
    """Run one pipeline stage exactly as `dvc repro` does; each line of its output reaches the task log as
    it is printed (epoch lines during training, progress during features), not when the stage ends.

    True when the stage's command ran; False when DVC found it up to date or restored its outputs.
    """
    logger = get_run_logger()
    lines: list[str] = []
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}  # the stage's prints arrive line by line, not at its end
    with subprocess.Popen(["dvc", "repro", "--single-item", stage], cwd=folder, env=env, text=True,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT) as done:
        for line in done.stdout:
            if line.strip():
                logger.info(line.rstrip())
                lines.append(line.rstrip())
    if done.returncode != 0:
        errors = [line for line in lines if line.startswith(("error:", "ERROR:"))]
        raise RuntimeError(errors[0] if errors else f"stage {stage} failed (exit {done.returncode})")
    return f"Running stage '{stage}'" in "\n".join(lines)


@task(cache_policy=NO_CACHE)
def register_model(folder: str, root: str, started_at: str) -> dict[str, Any]:
    """Register the workspace's model as the next version (its report inside it) and run the gate; the
    version's report is <registry>/<model>/<version>/report/report.md, never overwritten."""
    work, project = Path(folder), Path(root)
    params = read_params(work / "params.yaml")
    layout, settings = Layout.from_params(params, work), parse_section(params, "registry", RegistryParams)
    trained = json.loads(layout.train_record.read_text())
    model = trained["model"]
    record = {"metrics": json.loads(layout.metrics.read_text()),
              "params": {k: params[k] for k in ("data", "prepare", "resize", "features", "train")},
              "model_spec": trained["spec"], "resumed_from_checkpoint": trained["resumed_from_checkpoint"],
              "flow_run_id": str(flow_run.get_id()), "run_started_at": started_at, **run_lineage(work, project)}

    def as_experiment(number: str, blessed: bool) -> dict[str, Any]:
        """Save the run as the DVC experiment `<model>-vN`, its registry version among its metrics."""
        write_json(layout.registration, {"registry_version": f"{model}@{number}", "blessed": int(blessed)})
        save_experiment(work, f"{model}-{number}", [layout.registration])
        return {"experiment": f"{model}-{number}"}

    version = registry.register(project / settings.dir, model, layout.model_file, record,
                                registry.Gate(settings.min_accuracy, settings.tolerance),
                                attachments={"report": layout.report_dir}, on_number=as_experiment)
    evaluation = json.loads(layout.evaluation_record.read_text())
    report = project / settings.dir / model / version["version"] / "report" / layout.report.name
    return {**version, "report": str(report), "spec": trained["spec"],
            "epochs_run": trained["epochs_run"], "stopped_by": trained["stopped_by"],
            "diagnosis": evaluation["diagnosis"], "audit": evaluation["audit"]}


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


def publish(version: dict[str, Any], dataset: str, model: str, report: str) -> None:
    """The run's report and metrics as Prefect artifacts."""
    name = f"{version['name']}@{version['version']}"
    create_markdown_artifact(key=slug(f"{dataset}-{model}-report"), markdown=report, description=f"report of {name}")
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
                max_train_images: int | None = None) -> dict[str, Any]:
    """Run the pipeline with these overrides of params.yaml (for this run only) and register the model."""
    overrides = {k: v for k, v in locals().items() if v is not None and k in OVERRIDES}
    return run_pipeline(overrides)


@flow(name="train-mnist-child", flow_run_name=run_name, log_prints=True)
def train_child(model: str, variant_of: str | None = None, model_settings: dict[str, Any] | None = None,
                start_lock: str | None = None, dataset: str | None = None, epochs: int | None = None,
                max_train_images: int | None = None, seed: int | None = None) -> dict[str, Any]:
    """A sweep's child run: catalogue entry `model`, or with `variant_of` the new entry `model` made of that
    one with `model_settings` changed; it starts from the sweep's `start_lock` (its shared preprocessing).
    Internal: the public deployments serve `train_mnist`, which takes user parameters only."""
    overrides = {k: v for k, v in {"dataset": dataset, "model": model, "epochs": epochs,
                                   "max_train_images": max_train_images, "seed": seed}.items() if v is not None}
    return run_pipeline(overrides, model_settings, variant_of, start_lock)


def run_pipeline(overrides: dict[str, Any], model_settings: dict[str, Any] | None = None,
                 variant_of: str | None = None, start_lock: str | None = None) -> dict[str, Any]:
    """Check the run's params, run every stage in a workspace, register the model, publish its report.

    `model_settings` (e.g. {"activation": "relu"}) changes the model's catalogue entry for this run;
    with `variant_of`, the model is a new entry: that one so changed. `start_lock`: a dvc.lock to start
    from instead of the committed one (see `workspace`).
    """
    started_at = datetime.now(timezone.utc).isoformat(timespec="milliseconds")
    params = apply_overrides(committed_params(ROOT), overrides, model_settings, variant_of)
    check_run(params)  # the params the workspace will run with; a bad one is refused before any stage runs
    dataset, model = params["data"]["dataset"], params["train"]["model"]
    with workspace(ROOT, Path(start_lock) if start_lock else None) as folder:
        write_params(folder, params)
        print(f"workspace {folder}: {model} on {dataset}, overrides {overrides}"
              + (f", model settings {model_settings}" if model_settings else ""))
        ran = [stage for stage in stage_names(folder)
               if repro_stage.with_options(name=stage, **retries(stage))(str(folder), stage)]
        version = register_model(str(folder), str(ROOT), started_at)
        publish(version, dataset, model, inline_images(Layout.from_params(params, folder).report))
    verdict = "blessed, now champion" if version["blessed"] else "not blessed"
    print(f"registered {version['name']}@{version['version']}: {verdict} ({version['gate_reason']}); "
          f"report {version['report']}")
    return {"version": f"{version['name']}@{version['version']}", "experiment": version["experiment"],
            "blessed": version["blessed"],
            "metrics": version["metrics"], "report": version["report"], "stages_run": ran,
            **{k: version[k] for k in ("spec", "epochs_run", "stopped_by", "diagnosis", "audit")}}


def retries(stage: str) -> dict[str, Any]:
    """fetch may download: retried; the other stages fail for reasons a retry does not fix."""
    return {"retries": 3, "retry_delay_seconds": [2, 5, 15]} if stage == "fetch" else {}


if __name__ == "__main__":
    print(json.dumps(train_mnist(), indent=2))
