"""What a finished run in its worktree leaves behind: the DVC experiment `dvc exp show` lists in the project, and
the lineage its registry record keeps (data checksums, code revision, stage hashes, timings).
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import yaml
from filelock import FileLock

from mnist_pipeline.config import read_params
from mnist_pipeline.errors import PipelineError
from mnist_pipeline.lineage import lock_stages
from mnist_pipeline.project_files import ProjectFiles
from mnist_pipeline.workspace import git


def stage_names(root: Path) -> list[str]:
    """The pipeline's stages, in the order dvc.yaml lists them (a topological order)."""
    return list(yaml.safe_load((root / "dvc.yaml").read_text())["stages"])


def save_experiment(folder: Path, name: str, untracked: list[Path]) -> None:
    """Record the workspace's run (params, dvc.lock, metrics, plots, report) as the DVC experiment `name`.

    The worktree shares the project's git repository, so `dvc exp show` in the project lists it beside its
    own experiments. Saves are one at a time across the project's worktrees (a sweep's children finish
    together, and `dvc exp save` moves refs they all share). A commit needs an author: git's configured
    one, else `mnist-pipeline`.
    """
    env = dict(os.environ)
    if not subprocess.run(["git", "config", "user.name"], cwd=folder, capture_output=True, text=True).stdout.strip():
        env.update({f"GIT_{who}_{what}": value for who in ("AUTHOR", "COMMITTER")
                    for what, value in (("NAME", "mnist-pipeline"), ("EMAIL", "mnist-pipeline@localhost"))})
    args = ["dvc", "exp", "save", "--force", "--name", name]
    for path in untracked:
        args += ["--include-untracked", str(path.relative_to(folder))]
    common = Path(git(folder, "rev-parse", "--path-format=absolute", "--git-common-dir", check=True))
    with FileLock(common / "mnist-pipeline-exp-save.lock", timeout=600):  # exp save writes refs the worktrees share
        done = subprocess.run(args, cwd=folder, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        last = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
        raise PipelineError(f"dvc exp save --name {name} failed: {last[0]}")


def run_lineage(folder: Path, root: Path) -> dict[str, Any]:
    """What made a workspace's model: data checksums, code revision, stage hashes, timings."""
    files = ProjectFiles.from_params(read_params(folder / "params.yaml"), folder)
    fetched = json.loads(files.fetch_record.read_text())
    timings = {stage: json.loads(files.timing(stage).read_text())["seconds"] for stage in stage_names(folder)
               if files.timing(stage).is_file()}
    return {"dataset": fetched["dataset"], "data_source": fetched["source"],
            "data_files": fetched["source_files"] + [fetched["raw_file"]],
            "git_revision": git(root, "rev-parse", "HEAD", check=True), "dvc_lock": lock_stages(files.dvc_lock),
            "seconds_per_stage": timings}
