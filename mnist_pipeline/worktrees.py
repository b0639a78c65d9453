"""A run's own git worktree: each Prefect run works in a fresh worktree of the last commit that shares the
project's DVC cache and checkpoints, and a worktree whose process died on this host is removed by the next run
(or by the serving process at start).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from mnist_pipeline.config import read_params
from mnist_pipeline.processes import alive, host_name
from mnist_pipeline.project_files import ProjectFiles
from mnist_pipeline.workspace import git

WORKSPACE_PREFIX = "train-mnist-"
OWNER = "owner.json"  # beside a workspace: which host and process made it


def prune_dead_workspaces(root: Path) -> list[str]:
    """Remove the worktrees whose run's process died on this host (a SIGKILLed serving host leaves them
    registered and on disk); git forgets those whose folder is gone. The removed folders."""
    removed = []
    listing = git(root, "worktree", "list", "--porcelain", check=True)
    for line in listing.splitlines():
        folder = Path(line.removeprefix("worktree ")) if line.startswith("worktree ") else None
        if folder is None or not folder.parent.name.startswith(WORKSPACE_PREFIX):
            continue
        owner = folder.parent / OWNER
        try:
            made_by = json.loads(owner.read_text())
        except (OSError, ValueError):
            continue  # not ours, or still being made
        if made_by.get("host") == host_name() and not alive(int(made_by.get("pid", 0))):
            subprocess.run(["git", "worktree", "remove", "--force", str(folder)], cwd=root, capture_output=True)
            shutil.rmtree(folder.parent, ignore_errors=True)
            removed.append(str(folder))
    git(root, "worktree", "prune", check=True)
    return removed


@contextmanager


def workspace(root: Path, start_lock: Path | None = None) -> Iterator[Path]:
    """A fresh git worktree of HEAD that shares the project's DVC cache; removed afterwards.

    `start_lock` replaces the committed dvc.lock: a sweep hands its children the lock file of
    its shared preprocessing, so they check those outputs out of the cache instead of
    recomputing them. Workspaces that a dead process left behind are pruned first.
    """
    prune_dead_workspaces(root)
    folder = Path(tempfile.mkdtemp(prefix=WORKSPACE_PREFIX)) / "ws"
    (folder.parent / OWNER).write_text(json.dumps({"host": host_name(), "pid": os.getpid()}))
    git(root, "worktree", "add", "--detach", str(folder), "HEAD", check=True)
    try:
        if start_lock:
            shutil.copyfile(start_lock, folder / "dvc.lock")
        # what `dvc config --local cache.dir ...` writes, without starting a DVC process (half a second a run)
        (folder / ".dvc" / "config.local").write_text(f"[cache]\n    dir = {(root / '.dvc' / 'cache').resolve()}\n")
        subprocess.run(["dvc", "checkout", "--allow-missing"], cwd=folder, capture_output=True)  # best effort
        shared, local = ProjectFiles.from_params(read_params(root / "params.yaml"), root), ProjectFiles.from_params(
            read_params(folder / "params.yaml"), folder)
        shared.folder("checkpoints").mkdir(parents=True, exist_ok=True)  # a killed run resumes in the next run
        local.folder("checkpoints").symlink_to(shared.folder("checkpoints").resolve(), target_is_directory=True)
        yield folder
    finally:
        git(root, "worktree", "remove", "--force", str(folder), check=True)
        shutil.rmtree(folder.parent, ignore_errors=True)
