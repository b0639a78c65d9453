"""DVC remote round trip: reproduce and push in one clone, pull in a fresh clone, nothing reruns."""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.harness import dvc, make_repo, stage_env

QUICK = {"data": {"dataset": "mnist"},
         "train": {"model": "softmax_regression", "epochs": 1, "max_train_images": 500}}


def git(repo: Path, *args: str) -> str:
    """Run git in `repo` as the test user; its output."""
    return subprocess.run(["git", *args], cwd=repo, env=stage_env(), capture_output=True, text=True,
                          check=True).stdout


def set_params(repo: Path, overrides: dict[str, dict]) -> None:
    """Merge `overrides` into the repository's params.yaml, per section."""
    params = yaml.safe_load((repo / "params.yaml").read_text())
    for section, values in overrides.items():
        params[section].update(values)
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def dvc_only_outs(repo: Path) -> dict[str, str]:
    """Path -> md5 of each output in dvc.lock that git does not hold (so only the DVC remote can)."""
    lock = yaml.safe_load((repo / "dvc.lock").read_text())
    in_git = git(repo, "ls-files").splitlines()
    return {out["path"]: out["md5"] for stage in lock["stages"].values() for out in stage.get("outs", [])
            if not any(name == out["path"] or name.startswith(out["path"] + "/") for name in in_git)}


def tree_digest(root: Path, paths: list[str], algorithm: str = "sha256") -> dict[str, str]:
    """Digest of every file under `paths`, keyed by its path relative to `root`."""
    files = [p for name in paths for p in ([root / name] if (root / name).is_file()
                                           else sorted((root / name).rglob("*"))) if p.is_file()]
    return {str(p.relative_to(root)): hashlib.new(algorithm, p.read_bytes()).hexdigest() for p in files}


@pytest.mark.e2e
def test_push_then_pull_in_a_fresh_clone_reruns_nothing(tmp_path: Path):
    remote = tmp_path / "remote"
    a = make_repo(tmp_path / "a")
    committed_config = (a / ".dvc/config").read_text()
    set_params(a, QUICK)
    git(a, "commit", "-qam", "quick run")
    run = dvc(a, "repro")
    assert run.returncode == 0, run.stdout[-3000:]
    for args in (("remote", "add", "--local", "-d", "test", str(remote)), ("push",)):
        result = dvc(a, *args)
        assert result.returncode == 0, result.stdout[-3000:]
    assert (a / ".dvc/config").read_text() == committed_config  # the committed default remote stays
    git(a, "add", "-A")  # dvc.lock and the uncached outputs (metrics, plots) travel in git
    git(a, "commit", "-qm", "reproduced")

    outs = dvc_only_outs(a)
    assert set(outs) == {"data/raw", "data/validated", "data/prepared", "data/resized", "data/features", "model",
                         "report", "demo"}  # the run's report is a cached output: pushed and pulled with the model
    assert "guard/paths.json" in git(a, "ls-files")  # the guard's uncached output travels in git, so the clone has it
    pushed = [p for p in remote.rglob("*") if p.is_file()]
    contents = set(tree_digest(a, list(outs), "md5").values())
    assert len(pushed) == len(contents) + len(outs)  # one object per distinct file, one listing per folder
    for md5 in outs.values():  # each output's object (a .dir listing for folders) is on the remote
        assert (remote / "files/md5" / md5[:2] / md5[2:]).is_file(), md5

    b = tmp_path / "b"
    subprocess.run(["git", "clone", "-q", str(a), str(b)], env=stage_env(), check=True, capture_output=True)
    assert not (b / ".dvc/cache").exists() or not any((b / ".dvc/cache").rglob("*"))
    assert not (b / "model").exists() and not (b / "data/prepared").exists()
    for args in (("remote", "add", "--local", "-d", "test", str(remote)), ("pull",)):
        result = dvc(b, *args)
        assert result.returncode == 0, result.stdout[-3000:]

    assert (b / "model/model.keras").is_file() and (b / "data/prepared/prepared.npz").is_file()
    assert tree_digest(b, list(outs)) == tree_digest(a, list(outs))  # byte-identical, every cached output
    status = dvc(b, "status")
    assert status.returncode == 0 and "Data and pipelines are up to date." in status.stdout, status.stdout
    again = dvc(b, "repro")
    assert again.returncode == 0, again.stdout[-3000:]
    assert "Running stage" not in again.stdout
    for stage in yaml.safe_load((b / "dvc.lock").read_text())["stages"]:
        assert f"Stage '{stage}' didn't change, skipping" in again.stdout
    assert git(b, "status", "--porcelain") == ""  # repro in the clone changed nothing
