"""prefect.yaml: the same deployments as flows/serve.py, deployed to a process work pool and run by a worker."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import yaml

from flows.serve import specs
from tests.harness import ROOT, make_repo, prefect, prefect_server, versions

POOL = "mnist-pool"


def declared() -> dict[str, dict]:
    return {d["name"]: d for d in yaml.safe_load((ROOT / "prefect.yaml").read_text())["deployments"]}


def test_prefect_yaml_declares_what_serve_serves():
    in_yaml = declared()
    served = {spec["name"]: spec for spec in specs()}
    assert set(in_yaml) == set(served)
    for name, spec in served.items():
        deployment = in_yaml[name]
        path, function = deployment["entrypoint"].split(":")
        assert (Path(path).with_suffix("").as_posix().replace("/", "."), function) == \
            (spec["flow"].fn.__module__, spec["flow"].fn.__name__), name
        assert deployment["parameters"] == spec["parameters"], name
        assert deployment["concurrency_limit"] == spec["concurrency_limit"], name
        assert deployment["description"] == spec["description"], name
        assert deployment["work_pool"]["name"] == POOL, name


def test_deploy_to_a_process_pool_and_run_with_a_worker(tmp_path):
    """`prefect deploy --all` from a clone, then one tiny run picked up by `prefect worker start --run-once`."""
    (tmp_path / "home").mkdir()
    repo = make_repo(tmp_path / "project")
    with prefect_server(tmp_path / "home") as env:
        created = prefect(env, "work-pool", "create", POOL, "--type", "process")
        assert created.returncode == 0, created.stdout + created.stderr
        deployed = prefect(env, "--no-prompt", "deploy", "--all", cwd=repo)
        assert deployed.returncode == 0, deployed.stdout[-3000:] + deployed.stderr[-3000:]
        listed = prefect(env, "deployment", "ls").stdout
        for name in ("train-mnist/mnist", "train-mnist/fashion-mnist", "sweep/lee-grid"):
            assert name in listed, listed
        inspected = prefect(env, "deployment", "inspect", "train-mnist/mnist")
        assert inspected.returncode == 0 and POOL in inspected.stdout and str(repo) in inspected.stdout, \
            inspected.stdout  # the pull step: runs start in the project, wherever the worker starts

        run = prefect(env, "deployment", "run", "train-mnist/mnist", "-p", "model=mlp_500", "-p", "epochs=1",
                      "-p", "max_train_images=500", cwd=repo)
        assert run.returncode == 0, run.stdout + run.stderr
        worker = subprocess.run(["prefect", "worker", "start", "--pool", POOL, "--run-once"], cwd=tmp_path,
                                env=env, capture_output=True, text=True, timeout=900)
        assert worker.returncode == 0, worker.stdout[-3000:] + worker.stderr[-3000:]
        assert versions(repo, "mlp_500") == ["v1"], worker.stdout[-3000:] + worker.stderr[-3000:]
        record = json.loads((repo / "registry/mlp_500/v1/record.json").read_text())
        assert record["params"]["data"]["dataset"] == "mnist" and record["params"]["train"]["epochs"] == 1
        states = subprocess.run([sys.executable, "-c", STATES], env=env, capture_output=True, text=True)
        assert json.loads(states.stdout) == ["COMPLETED"], states.stdout + states.stderr


STATES = """
import asyncio, json
from prefect.client.orchestration import get_client
async def main():
    async with get_client() as client:
        runs = await client.read_flow_runs()
        print(json.dumps([r.state_type.value for r in runs if r.deployment_id]))
asyncio.run(main())
"""
