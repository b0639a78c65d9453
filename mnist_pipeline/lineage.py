"""What made an artifact: the code and the stage hashes DVC recorded, read from a project folder."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import yaml


def code_digest(stages: dict[str, dict[str, Any]]) -> str:
    """One name for the code that made a run: the sha256 of every Python file the `stages` (from `lock_stages`)
    ran, path and md5 as dvc.lock records them. Unlike the git revision it names the code alone: committing the
    run's dvc.lock does not change it, so a re-run of the same code writes the same report."""
    files = sorted({(path, md5) for stage in stages.values() for path, md5 in stage["deps"].items()
                    if path.endswith(".py")})
    if not files:
        return "unknown (no dvc.lock)"
    digest = hashlib.sha256("".join(f"{path} {md5}\n" for path, md5 in files).encode()).hexdigest()
    return f"{digest[:16]} ({len(files)} Python files, md5s in dvc.lock)"


def stage_code_digest(stage: str, root: Path = Path(".")) -> str:
    """`code_digest` of the Python files dvc.yaml lists as `stage`'s deps, hashed from the files themselves (for
    a stage whose own lock entry DVC writes only after it ran)."""
    try:
        deps = yaml.safe_load((root / "dvc.yaml").read_text())["stages"][stage].get("deps", [])
        files = {dep: hashlib.md5((root / dep).read_bytes(), usedforsecurity=False).hexdigest()
                 for dep in deps if isinstance(dep, str) and dep.endswith(".py")}
    except (OSError, KeyError, TypeError, yaml.YAMLError):
        return "unknown (run from the project folder)"
    return code_digest({stage: {"deps": files}})


def lock_stages(lock_path: Path) -> dict[str, dict[str, Any]]:
    """Per stage of a dvc.lock: the md5 of each dependency and output ({} when there is no lock)."""
    if not lock_path.is_file():
        return {}
    lock = yaml.safe_load(lock_path.read_text()) or {}
    return {name: {"outs": {o["path"]: o.get("md5") for o in stage.get("outs", [])},
                   "deps": {d["path"]: d.get("md5") for d in stage.get("deps", [])}}
            for name, stage in lock.get("stages", {}).items()}
