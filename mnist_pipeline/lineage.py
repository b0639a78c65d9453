"""What made an artifact: the code revision and the stage hashes DVC recorded, read from a project folder."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import yaml

CODE = ("*.py", "dvc.yaml", "pyproject.toml", "requirements.lock")  # what made the run, besides its params and data


def git_revision(root: Path = Path(".")) -> str:
    """The commit the code came from, marked when code differs from it (not params.yaml, which `dvc exp run -S`
    edits and the report shows, nor the outputs the run itself writes)."""
    try:
        rev = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True,
                             check=True).stdout.strip()
        changed = subprocess.run(["git", "diff", "HEAD", "--name-only", "--", *CODE], cwd=root, capture_output=True,
                                 text=True, check=True).stdout.split()
    except (OSError, subprocess.CalledProcessError):
        return "unknown (not a git checkout)"
    if changed:
        shown = ", ".join(changed[:5]) + (f" and {len(changed) - 5} more" if len(changed) > 5 else "")
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
