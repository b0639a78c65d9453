"""What made an artifact: the code revision and the stage hashes DVC recorded, read from a project folder."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import yaml

RUN_FILES = ("params.yaml", "dvc.lock")  # what `dvc exp run -S` and the run itself change: shown elsewhere


def git_revision(root: Path = Path(".")) -> str:
    """The commit the code came from, marked when tracked files other than params.yaml and dvc.lock differ from
    it (the run's params are in the report's own tables; `dvc exp run -S` edits params.yaml, the run dvc.lock)."""
    try:
        rev = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True,
                             check=True).stdout.strip()
        changed = subprocess.run(["git", "diff", "HEAD", "--name-only"], cwd=root, capture_output=True, text=True,
                                 check=True).stdout.split()
    except (OSError, subprocess.CalledProcessError):
        return "unknown (not a git checkout)"
    others = [name for name in changed if name not in RUN_FILES]
    if others:
        shown = ", ".join(others[:5]) + (f" and {len(others) - 5} more" if len(others) > 5 else "")
        return f"{rev} (with uncommitted changes to {shown})"
    return rev


def lock_stages(lock_path: Path) -> dict[str, dict[str, Any]]:
    """Per stage of a dvc.lock: the md5 of each dependency and output ({} when there is no lock)."""
    if not lock_path.is_file():
        return {}
    lock = yaml.safe_load(lock_path.read_text()) or {}
    return {name: {"outs": {o["path"]: o.get("md5") for o in stage.get("outs", [])},
                   "deps": {d["path"]: d.get("md5") for d in stage.get("deps", [])}}
            for name, stage in lock.get("stages", {}).items()}
