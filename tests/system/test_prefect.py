"""The train-mnist deployments against a real Prefect server, through Prefect's own CLI."""

from __future__ import annotations

import importlib.util
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from mnist_pipeline.experiments import stage_names
from tests.harness import ROOT, chromium, prefect, stage_env, versions

TINY = ["-p", "model=mlp_500", "-p", "epochs=1", "-p", "max_train_images=500"]


def test_server_answers_deployment_ls(prefect_env):
    """The CI smoke check: a fastapi/pydantic pin slip shows only when the server handles a request."""
    listed = prefect(prefect_env, "deployment", "ls")
    assert listed.returncode == 0, listed.stdout + listed.stderr


def test_deployment_run_registers_a_version_with_lineage(prefect_env, served: Path):
    run = prefect(prefect_env, "deployment", "run", "train-mnist/mnist", *TINY, "--watch", cwd=served)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert versions(served, "mlp_500") == ["v1"]
    # a --watch user sees the result: version, accuracy with its interval, champion or not
    assert re.search(r"registered mlp_500@v1: test accuracy [0-9.]+% \(95% interval [0-9.]+%-[0-9.]+%\); blessed, "
                     r"now champion", " ".join(run.stdout.split())), run.stdout[-3000:]  # unwrapped from 80 columns
    record = json.loads((served / "registry/mlp_500/v1/record.json").read_text())
    assert record["metrics"]["train_seconds"] > 0  # from the timings folder: train ran in this run
    assert record["blessed"] and "no champion yet" in record["gate_reason"]
    assert record["git_revision"] == subprocess.run(["git", "rev-parse", "HEAD"], cwd=served, capture_output=True,
                                                    text=True).stdout.strip()
    assert record["params"]["train"]["epochs"] == 1 and record["params"]["data"]["dataset"] == "mnist"
    assert all(len(f["sha256"]) == 64 for f in record["data_files"])
    assert set(record["dvc_lock"]) == set(stage_names(served))
    # the stages that ran in this run; a stage DVC restored from its run-cache (an earlier run of the same
    # configuration in this project) took no time of its own
    assert {"train", "evaluate", "report"} <= set(record["seconds_per_stage"]) <= set(stage_names(served))
    assert re.fullmatch(r"[0-9a-f-]{36}", record["flow_run_id"])
    assert (served / "registry/mlp_500/v1/model.keras").is_file()
    assert (served / "registry/mlp_500/v1/report/report.md").is_file()  # the version's own, never overwritten
    assert not (served / "reports/mnist/mlp_500").exists()
    card = subprocess.run([sys.executable, "-m", "mnist_cli", "registry", "card", "mlp_500@v1", "--root",
                           str(served / "registry")], capture_output=True, text=True, env=stage_env())
    assert card.returncode == 0 and card.stdout.startswith("# Model card: mlp_500@v1\n"), card.stderr
    for words in ("**For**", "**Not for**", "## Data", "sha256", "## Recipe", "mlp_500", "## Test accuracy",
                  "95% interval", "| class | precision | recall | F1 | images |", "## Distorted test images",
                  "offline 5,000-image MNIST sample", "the tutorial's claim:", "Blessed: accuracy", "no champion yet",
                  record["git_revision"], record["fingerprint"],
                  "dvc exp run -S data.dataset=mnist -S train.model=mlp_500",
                  "| Keras backend, precision | tensorflow, float32 |"):
        assert words in card.stdout, words
    assert prefect(prefect_env, "artifact", "inspect", "mnist-mlp-500-card").returncode == 0
    artifact = prefect(prefect_env, "artifact", "inspect", "mnist-mlp-500-report")
    assert artifact.returncode == 0 and "on mnist" in artifact.stdout and "Test accuracy" in artifact.stdout
    table = prefect(prefect_env, "artifact", "inspect", "mnist-mlp-500-metrics")
    assert table.returncode == 0 and "accuracy" in table.stdout
    assert not subprocess.run(["git", "worktree", "list"], cwd=served, capture_output=True,
                              text=True).stdout.count("\n") > 1  # the run's workspace is gone

    # the run is a DVC experiment of the project, named after its version; its metrics name the version
    assert record["experiment"] == "mlp_500-v1"
    shown = subprocess.run(["dvc", "exp", "show", "--json"], cwd=served, env=stage_env(), capture_output=True,
                           text=True, check=True)
    experiments = {rev["name"]: rev["data"] for row in json.loads(shown.stdout)
                   for group in row.get("experiments") or [] for rev in group["revs"]}
    metrics = experiments["mlp_500-v1"]["metrics"]
    assert metrics["evaluation/registration.json"]["data"]["registry_version"] == "mlp_500@v1"
    assert metrics["evaluation/metrics.json"]["data"]["accuracy"] == record["metrics"]["accuracy"]
    assert experiments["mlp_500-v1"]["params"]["params.yaml"]["data"]["train"]["epochs"] == 1

    run_info = json.loads(subprocess.run([sys.executable, "-c", RUN_AND_LOGS, record["flow_run_id"]], env=prefect_env,
                                         capture_output=True, text=True, check=True).stdout)
    assert re.fullmatch(r"mnist-mlp_500-[0-9a-f]{8}", run_info["name"]), run_info["name"]
    assert sorted(run_info["parameters"]) == ["dataset", "epochs", "max_train_images", "model"]
    # the train stage's lines reached the log while it ran: its first and last lines are logged as far apart
    # as the stage took (they used to arrive together when it had ended)
    logs = run_info["logs"]
    first = next(t for t, line in logs if line.startswith("Running stage 'train'"))
    done = next((t, line) for t, line in logs if line.startswith("train: done in "))
    took = float(done[1].split()[3])
    assert done[0] - first >= 0.5 * took, (done, first, took)
    epoch = next(t for t, line in logs if re.match(r"\d+/\d+ - .* - val_loss: ", line))  # Keras' epoch line
    assert first < epoch < done[0]


RUN_AND_LOGS = """
import asyncio, json, sys
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId
async def main():
    async with get_client() as client:
        run = await client.read_flow_run(sys.argv[1])
        logs = await client.read_logs(log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[run.id])))
        print(json.dumps({"name": run.name, "parameters": {k: v for k, v in run.parameters.items()},
                          "logs": sorted((log.timestamp.timestamp(), log.message) for log in logs)}))
asyncio.run(main())
"""


def test_an_identical_deployment_run_registers_no_duplicate(prefect_env, served: Path):
    """The same data, params and code (every stage from DVC's run-cache, the same stage hashes) registered
    mlp_500@v2 and moved the champion; now the run names the version that holds it."""
    if not versions(served, "mlp_500"):
        first = prefect(prefect_env, "deployment", "run", "train-mnist/mnist", *TINY, "--watch", cwd=served)
        assert first.returncode == 0, first.stdout[-3000:]
    run = prefect(prefect_env, "deployment", "run", "train-mnist/mnist", *TINY, "--watch", cwd=served)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    said = " ".join(run.stdout.split())
    assert "registered nothing: this run is the same work (data, params and code: dvc.lock's stage hashes) as " \
           "mlp_500@v1" in said, run.stdout[-3000:]
    assert versions(served, "mlp_500") == ["v1"]
    assert json.loads((served / "registry/mlp_500/aliases.json").read_text())["champion"] == "v1"


def test_report_artifact_shows_its_pictures_in_the_prefect_ui(prefect_env, served: Path, tmp_path: Path):
    """The report as a person sees it in the Prefect UI, in a real headless Chromium: every picture loaded."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    if not versions(served, "mlp_500"):
        run = prefect(prefect_env, "deployment", "run", "train-mnist/mnist", *TINY, "--watch", cwd=served)
        assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    found = subprocess.run([sys.executable, "-c", ARTIFACT_ID, "mnist-mlp-500-report"], env=prefect_env,
                           capture_output=True, text=True, check=True).stdout.strip()
    ui = prefect_env["PREFECT_API_URL"].removesuffix("/api")
    with chromium(tmp_path / "profile") as driver:
        driver.get(f"{ui}/artifacts/artifact/{found}")
        WebDriverWait(driver, 90).until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "img[alt]")) >= 4)
        images = WebDriverWait(driver, 60).until(lambda d: d.execute_script(
            "const imgs = [...document.querySelectorAll('img[alt]')];"
            "return imgs.every(i => i.complete) ? imgs.map(i => [i.alt, i.naturalWidth]) : null;"))
        driver.save_screenshot(str(tmp_path / "artifact.png"))
        text = driver.find_element(By.TAG_NAME, "body").text
        # the UI draws a table cell on one line and clips it, in a box whose scroll bar it hides: nothing may be cut
        cut = driver.execute_script(
            "return [...document.querySelectorAll('.markdown-renderer__table, .p-table-data, .p-table-header')]"
            ".filter(e => e.scrollWidth > e.clientWidth + 1).map(e => e.textContent.slice(0, 80));")
        tables = driver.execute_script("return document.querySelectorAll('.markdown-renderer__table').length;")
    assert tables >= 5 and cut == [], (tables, cut)  # the report's narrow tables are still tables
    assert "checks passed: 13: images are uint8" in text  # the long ones are lists
    pictures = {alt: width for alt, width in images if alt in ("sample inputs", "learning curves",
                                                                  "confusion matrix", "mistakes")}
    assert set(pictures) == {"sample inputs", "learning curves", "confusion matrix", "mistakes"}, images
    assert all(width > 0 for width in pictures.values()), images  # every picture loaded
    assert (tmp_path / "artifact.png").stat().st_size > 10_000
    # every stage: its seconds, or (the latest run being the identical one) why it has none
    assert "Time per stage (this run)" in text and re.search(
        r"\btrain ([0-9.]+ \(the fit alone: [0-9.]+\)|not run: its inputs were unchanged, or DVC's run-cache)", text)


ARTIFACT_ID = """
import asyncio, sys
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey
async def main():
    async with get_client() as client:
        found = await client.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[sys.argv[1]])))
        print(found[-1].id)
asyncio.run(main())
"""


def registered(repo: Path) -> dict[str, list[str]]:
    folder = repo / "registry"
    return {m.name: versions(repo, m.name) for m in folder.iterdir() if m.is_dir()} if folder.is_dir() else {}


def test_a_second_deployment_run_is_gated_by_the_paired_test(prefect_env, served: Path):
    """Another seed of the same recipe, as a real deployment run: the gate compares it with the champion on the
    same test images (the paired test), records the difference with its interval, blesses it only when the lower
    end is above -tolerance, and says so where a --watch user, `registry list` and the model card see it."""
    if not versions(served, "mlp_500"):
        first = prefect(prefect_env, "deployment", "run", "train-mnist/mnist", *TINY, "--watch", cwd=served)
        assert first.returncode == 0, first.stdout[-3000:]
    champion = json.loads((served / "registry/mlp_500/aliases.json").read_text())["champion"]
    run = prefect(prefect_env, "deployment", "run", "train-mnist/mnist", *TINY, "-p", "seed=7", "--watch",
                  cwd=served)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    number = versions(served, "mlp_500")[-1]
    record = json.loads((served / f"registry/mlp_500/{number}/record.json").read_text())
    comparison = record["gate_comparison"]
    low, high = comparison["ci95"]
    assert comparison["against"] == champion and comparison["images"] == 1000 and low <= high
    assert comparison["verdict"] == ("better" if low > 0 else "not worse" if low > -0.01 else "worse")
    assert record["blessed"] == (comparison["verdict"] != "worse")
    said = " ".join(run.stdout.split())
    assert f"against champion {champion} on the same 1,000 test images" in said, run.stdout[-3000:]
    listed = subprocess.run([sys.executable, "-m", "mnist_cli", "registry", "list", "--root", str(served / "registry")],
                            capture_output=True, text=True, env=stage_env())
    row = next(line for line in listed.stdout.splitlines() if line.startswith(f"mlp_500@{number} "))
    assert f"{comparison['verdict']} than {champion} ({low:+.1%} to {high:+.1%})" in row, listed.stdout
    card = (served / f"registry/mlp_500/{number}/model-card.md").read_text()
    assert f"against champion {champion} on the same 1,000 test images" in " ".join(card.split())


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
    assert "Traceback" not in logs.stdout, logs.stdout[-3000:]  # the one line, not the exception's trace
    assert f"error: unknown model '{model}'" in logs.stdout
    assert "Running stage" not in logs.stdout and "dvc repro" not in logs.stdout
    assert registered(served) == before


@pytest.mark.skipif(importlib.util.find_spec("jax") is not None, reason="this venv has JAX (.venv-backends)")
def test_a_backend_the_serving_venv_lacks_fails_the_run_in_one_line(prefect_env, served: Path):
    """`-p backend=jax` served from the main venv: refused before any stage, with the one line naming the set-up
    that has JAX; nothing is registered."""
    before = registered(served)
    run = prefect(prefect_env, "deployment", "run", "train-mnist/mnist", "-p", "backend=jax", "--watch", cwd=served)
    assert run.returncode != 0
    flow_run_id = re.search(r"UUID: ([0-9a-f-]{36})", run.stdout).group(1)
    logs = prefect(prefect_env, "flow-run", "logs", flow_run_id).stdout
    assert "error: train.backend jax: jax is not installed in " in logs and "setup-backends.sh" in logs, logs[-3000:]
    assert "Traceback" not in logs and "Running stage" not in logs, logs[-3000:]
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
