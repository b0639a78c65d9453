"""What made an artifact: the code revision and the stage hashes DVC recorded, read from a project folder."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import yaml


def git_revision(root: Path = Path(".")) -> str:
    """The commit the code came from, marked dirty when the working tree has changes."""
    try:
        rev = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True,
                             check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown (not a git checkout)"
    return rev + (" (with uncommitted changes)" if dirty else "")


def lock_stages(lock_path: Path) -> dict[str, dict[str, Any]]:
    """Per stage of a dvc.lock: the md5 of each dependency and output ({} when there is no lock)."""
    if not lock_path.is_file():
        return {}
    lock = yaml.safe_load(lock_path.read_text()) or {}
    return {name: {"outs": {o["path"]: o.get("md5") for o in stage.get("outs", [])},
                   "deps": {d["path"]: d.get("md5") for d in stage.get("deps", [])}}
            for name, stage in lock.get("stages", {}).items()}
