"""The train-mnist deployments against a real Prefect server, through Prefect's own CLI."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest
import yaml

from mnist_pipeline.orchestration import stage_names
from tests.harness import ROOT, prefect, stage_env, versions

TINY = ["-p", "model=mlp_500", "-p", "epochs=1", "-p", "max_train_images=500"]


def test_server_answers_deployment_ls(prefect_env):
    """The CI smoke check: a fastapi/pydantic pin slip shows only when the server handles a request."""
    listed = prefect(prefect_env, "deployment", "ls")
    assert listed.returncode == 0, listed.stdout + listed.stderr


def test_deployment_run_registers_a_version_with_lineage(prefect_env, served: Path):
    run = prefect(prefect_env, "deployment", "run", "train-mnist/mnist", *TINY, "--watch", cwd=served)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert versions(served, "mlp_500") == ["v1"]
    record = json.loads((served / "registry/mlp_500/v1/record.json").read_text())
    assert record["blessed"] and "no champion yet" in record["gate_reason"]
    assert record["git_revision"] == subprocess.run(["git", "rev-parse", "HEAD"], cwd=served, capture_output=True,
                                                    text=True).stdout.strip()
    assert record["params"]["train"]["epochs"] == 1 and record["params"]["data"]["dataset"] == "mnist"
    assert all(len(f["sha256"]) == 64 for f in record["data_files"])
    assert set(record["dvc_lock"]) == set(stage_names(served))
    assert set(record["seconds_per_stage"]) == set(stage_names(served))
    assert re.fullmatch(r"[0-9a-f-]{36}", record["flow_run_id"])
    assert (served / "registry/mlp_500/v1/model.keras").is_file()
    assert (served / "reports/mnist/mlp_500/report.md").is_file()
    artifact = prefect(prefect_env, "artifact", "inspect", "mnist-mlp-500-report")
    assert artifact.returncode == 0 and "on mnist" in artifact.stdout and "Test accuracy" in artifact.stdout
    table = prefect(prefect_env, "artifact", "inspect", "mnist-mlp-500-metrics")
    assert table.returncode == 0 and "accuracy" in table.stdout
    assert not subprocess.run(["git", "worktree", "list"], cwd=served, capture_output=True,
                              text=True).stdout.count("\n") > 1  # the run's workspace is gone


def registered(repo: Path) -> dict[str, list[str]]:
    folder = repo / "registry"
    return {m.name: versions(repo, m.name) for m in folder.iterdir() if m.is_dir()} if folder.is_dir() else {}


@pytest.mark.parametrize("model", ["resnet", "linear_regression"])
def test_failed_run_registers_nothing(prefect_env, served: Path, model: str):
    """A model that is not a catalogue classifier (the single-neuron demo is its own stage now, not an entry)
    is refused before any stage runs, with the stages' one-line reason in the flow run's log; nothing is
    registered. (Runs alone too: it does not need an earlier test's registry folder.)"""
    before = registered(served)
    run = prefect(prefect_env, "deployment", "run", "train-mnist/mnist", "-p", f"model={model}", "--watch",
                  cwd=served)
    assert run.returncode != 0
    flow_run_id = re.search(r"UUID: ([0-9a-f-]{36})", run.stdout).group(1)
    logs = prefect(prefect_env, "flow-run", "logs", flow_run_id)
    assert f"unknown model '{model}'" in logs.stdout, logs.stdout[-3000:]
    assert "Running stage" not in logs.stdout and "dvc repro" not in logs.stdout
    assert registered(served) == before


def test_flow_stages_are_dvc_stages_in_dependency_order():
    """The flow takes its stages from dvc.yaml; check that order against DVC's own graph."""
    names = stage_names(ROOT)
    dag = subprocess.run(["dvc", "dag", "--dot"], cwd=ROOT, capture_output=True, text=True, env=stage_env())
    assert dag.returncode == 0, dag.stderr
    edges = re.findall(r'"?([\w]+)"?\s*->\s*"?([\w]+)"?', dag.stdout)
    assert edges, dag.stdout
    for before, after in edges:
        assert names.index(before) < names.index(after), f"{before} must run before {after}"
    assert set(names) == set(yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"])
    for name in names:  # one stage, one module, one name
        assert (ROOT / "tasks" / f"{name}.py").is_file()
