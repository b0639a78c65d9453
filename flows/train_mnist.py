"""The `train-mnist` Prefect flow: the DVC pipeline's stages as tasks, one versioned model per run.

One definition of the stage graph: the flow reads the stage list from `dvc.yaml` and each task
runs `dvc repro --single-item <stage>`, the same command and code as `dvc repro`. Each run works
in its own git worktree of the last commit (`mnist_pipeline.orchestration.workspace`) with the
project's DVC cache, so stages whose inputs did not change are checked out, not recomputed.
Tasks pass that workspace path, never arrays.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.runtime import flow_run

from mnist_pipeline import registry
from mnist_pipeline.config import RegistryParams, parse_section
from mnist_pipeline.layout import Layout
from mnist_pipeline.orchestration import (
    OVERRIDES,
    apply_overrides,
    check_run,
    read_yaml,
    run_lineage,
    slug,
    stage_names,
    workspace,
    write_params,
)

ROOT = Path(__file__).resolve().parents[1]


@task(cache_policy=NO_CACHE)  # DVC decides what is up to date
def repro_stage(folder: str, stage: str) -> bool:
    """Run one pipeline stage exactly as `dvc repro` does; its output goes to the task log.

    True when the stage's command ran; False when DVC found it up to date or restored its outputs.
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


@task(cache_policy=NO_CACHE)
def register_model(folder: str, root: str, started_at: str) -> dict[str, Any]:
    """Register the workspace's model as the next version (its report inside it), run the gate, and copy
    the report to the project's reports folder as the latest of this model."""
    work, project = Path(folder), Path(root)
    params = read_yaml(work / "params.yaml")
    layout, settings = Layout.from_params(params, work), parse_section(params, "registry", RegistryParams)
    trained = json.loads(layout.train_record.read_text())
    model, dataset = trained["model"], params["data"]["dataset"]
    record = {"metrics": json.loads(layout.metrics.read_text()),
              "params": {k: params[k] for k in ("data", "prepare", "resize", "features", "train")},
              "model_spec": trained["spec"], "resumed_from_checkpoint": trained["resumed_from_checkpoint"],
              "flow_run_id": str(flow_run.get_id()), "run_started_at": started_at, **run_lineage(work, project)}
    version = registry.register(project / settings.dir, model, layout.model_file, record,
                                registry.Gate(settings.min_accuracy, settings.tolerance),
                                attachments={"report": layout.report_dir(dataset, model)})
    latest = Layout.from_params(params, project)
    shutil.copytree(layout.report_dir(dataset, model), latest.report_dir(dataset, model), dirs_exist_ok=True)
    evaluation = json.loads(layout.evaluation_record.read_text())
    return {**version, "report": str(latest.report(dataset, model)), "spec": trained["spec"],
            "epochs_run": trained["epochs_run"], "stopped_by": trained["stopped_by"],
            "diagnosis": evaluation["diagnosis"], "audit": evaluation["audit"]}


def publish(version: dict[str, Any], dataset: str, model: str, report: str) -> None:
    """The run's report and metrics as Prefect artifacts."""
    name = f"{version['name']}@{version['version']}"
    create_markdown_artifact(key=slug(f"{dataset}-{model}-report"), markdown=report, description=f"report of {name}")
    create_table_artifact(key=slug(f"{dataset}-{model}-metrics"),
                          table=[{"metric": k, "value": v} for k, v in version["metrics"].items()],
                          description=f"test metrics of {name}")


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
    params = apply_overrides(read_yaml(ROOT / "params.yaml"), overrides, model_settings, variant_of)
    check_run(params)  # a bad parameter is refused here, before any stage runs
    dataset, model = params["data"]["dataset"], params["train"]["model"]
    with workspace(ROOT, Path(start_lock) if start_lock else None) as folder:
        write_params(folder, apply_overrides(read_yaml(folder / "params.yaml"), overrides, model_settings, variant_of))
        print(f"workspace {folder}: {model} on {dataset}, overrides {overrides}"
              + (f", model settings {model_settings}" if model_settings else ""))
        ran = [stage for stage in stage_names(folder)
               if repro_stage.with_options(name=stage, **retries(stage))(str(folder), stage)]
        version = register_model(str(folder), str(ROOT), started_at)
        report = Layout.from_params(params, folder).report(dataset, model).read_text()
    publish(version, dataset, model, report)
    verdict = "blessed, now champion" if version["blessed"] else "not blessed"
    print(f"registered {version['name']}@{version['version']}: {verdict} ({version['gate_reason']}); "
          f"report {version['report']}")
    return {"version": f"{version['name']}@{version['version']}", "blessed": version["blessed"],
            "metrics": version["metrics"], "report": version["report"], "stages_run": ran,
            **{k: version[k] for k in ("spec", "epochs_run", "stopped_by", "diagnosis", "audit")}}


def retries(stage: str) -> dict[str, Any]:
    """fetch may download: retried; the other stages fail for reasons a retry does not fix."""
    return {"retries": 3, "retry_delay_seconds": [2, 5, 15]} if stage == "fetch" else {}


if __name__ == "__main__":
    print(json.dumps(train_mnist(), indent=2))
