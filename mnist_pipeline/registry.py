"""A small local model registry: immutable numbered versions, aliases, and a promotion gate.

Layout (under `registry.dir`, default `registry/`):

    registry/<model>/v1/model.keras     the trained model, as trained
    registry/<model>/v1/record.json     lineage: metrics, params, data sha256, git revision,
                                        dvc.lock stage hashes, report, time per stage, flow run id,
                                        and the gate's verdict (blessed or not, and why)
    registry/<model>/aliases.json       {"champion": "v3", "history": [...every alias move...]}

A version is assembled in a temporary folder and renamed into place under a file lock,
so numbering stays correct with runs registering at once, a killed registration leaves no
`vN`, and an existing version is never overwritten. Why not MLflow's registry or GTO: see
the README ("Versioned models").
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from filelock import FileLock

from mnist_pipeline.errors import PipelineError
from mnist_pipeline.files import sha256_file, write_json

NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
REF = re.compile(r"^(?P<name>[^@]+)@(?P<tag>v[1-9][0-9]*|[a-z][a-z0-9_-]{0,31})$")
CHAMPION = "champion"
MODEL_FILE = "model.keras"  # the registry's own layout (see above), not the pipeline's
STAGING = ".staging-"  # + <pid>-<random>: a version being copied in; never read as a version


@dataclass(frozen=True)
class Gate:
    """The promotion gate (like TFX's Evaluator): an absolute floor and a tolerance against the champion."""

    min_accuracy: float
    tolerance: float


def check_name(name: str) -> str:
    """Model names are plain slugs: nothing can escape the registry folder."""
    if not NAME.match(name):
        raise PipelineError(f"invalid model name {name!r}: use lowercase letters, digits, '_' or '-'")
    return name


def versions(root: Path, name: str) -> list[int]:
    """Existing version numbers of `name`, ascending."""
    folder = root / check_name(name)
    if not folder.is_dir():
        return []
    return sorted(int(p.name[1:]) for p in folder.iterdir() if re.fullmatch(r"v[1-9][0-9]*", p.name))


def model_path(root: Path, name: str, version: int) -> Path:
    """The model file of version `version` of `name`."""
    return root / check_name(name) / f"v{version}" / MODEL_FILE


def read_record(root: Path, name: str, version: int) -> dict[str, Any]:
    path = root / check_name(name) / f"v{version}" / "record.json"
    if not path.is_file():
        raise PipelineError(f"no version {name}@v{version} in {root}")
    return json.loads(path.read_text())


def aliases(root: Path, name: str) -> dict[str, Any]:
    path = root / check_name(name) / "aliases.json"
    return json.loads(path.read_text()) if path.is_file() else {"history": []}


def resolve(root: Path, ref: str) -> tuple[str, int]:
    """`name@vN` or `name@alias` -> (name, N)."""
    match = REF.match(ref)
    if not match:
        raise PipelineError(f"invalid model reference {ref!r}: use NAME@vN or NAME@champion")
    name, tag = check_name(match["name"]), match["tag"]
    if tag.startswith("v") and tag[1:].isdigit():
        number = int(tag[1:])
        if number not in versions(root, name):
            have = ", ".join(f"v{n}" for n in versions(root, name)) or "none"
            raise PipelineError(f"no version {ref} (have: {have})")
        return name, number
    target = aliases(root, name).get(tag)
    if target is None:
        raise PipelineError(f"alias {ref} is not set")
    return name, int(target[1:])


def judge(accuracy: float, champion: dict[str, Any] | None, gate: Gate) -> tuple[bool, str]:
    """Blessed or not, and why."""
    if accuracy < gate.min_accuracy:
        return False, f"accuracy {accuracy:.4f} is below the floor {gate.min_accuracy:.4f}"
    if champion is None:
        return True, f"accuracy {accuracy:.4f} meets the floor {gate.min_accuracy:.4f}; no champion yet"
    best = champion["metrics"]["accuracy"]
    if accuracy < best - gate.tolerance:
        return False, (f"accuracy {accuracy:.4f} is worse than champion {champion['version']} ({best:.4f}) "
                       f"by more than the tolerance {gate.tolerance:.4f}")
    return True, (f"accuracy {accuracy:.4f} is within {gate.tolerance:.4f} of or above champion "
                  f"{champion['version']} ({best:.4f})")


def _move_alias(root: Path, name: str, alias: str, version: str, reason: str) -> None:
    """Point `alias` at `version`, keeping the history of moves (caller holds the lock)."""
    current = aliases(root, name)
    current["history"].append({"alias": alias, "from": current.get(alias), "to": version, "reason": reason,
                               "at": datetime.now(timezone.utc).isoformat(timespec="seconds")})
    current[alias] = version
    write_json(root / name / "aliases.json", current)


def remove_abandoned_staging(folder: Path) -> None:
    """Delete the `.staging-<pid>-*` folders whose registering process is gone (killed mid-copy);
    those of live processes (registering right now) stay."""
    for path in folder.glob(f"{STAGING}*"):
        pid = path.name[len(STAGING):].split("-", 1)[0]
        if not (pid.isdigit() and _alive(int(pid))):
            shutil.rmtree(path, ignore_errors=True)


def _alive(pid: int) -> bool:
    """Whether a process with this id exists (a zombie counts: it is not ours to judge)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def register(root: Path, name: str, model_file: Path, record: dict[str, Any], gate: Gate,
             attachments: dict[str, Path] | None = None) -> dict[str, Any]:
    """Add `model_file` (and `attachments`: folder name -> folder to copy) as the next version of
    `name`, judge it, move `champion` if blessed. All files are in place before the version appears."""
    check_name(name)
    folder = root / name
    folder.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f"{STAGING}{os.getpid()}-", dir=folder))
    try:
        shutil.copy2(model_file, staging / MODEL_FILE)
        record = {**record, "model_sha256": sha256_file(staging / MODEL_FILE)}
        for target, source in (attachments or {}).items():
            shutil.copytree(source, staging / check_name(target))
        with FileLock(str(folder / ".lock"), timeout=600):
            remove_abandoned_staging(folder)
            number = (versions(root, name) or [0])[-1] + 1
            version = f"v{number}"
            champion_ref = aliases(root, name).get(CHAMPION)
            champion = read_record(root, name, int(champion_ref[1:])) if champion_ref else None
            blessed, reason = judge(record["metrics"]["accuracy"], champion, gate)
            final = {**record, "name": name, "version": version, "blessed": blessed, "gate_reason": reason,
                     "gate": {"min_accuracy": gate.min_accuracy, "tolerance": gate.tolerance},
                     "registered_at": datetime.now(timezone.utc).isoformat(timespec="milliseconds")}
            write_json(staging / "record.json", final)
            os.rename(staging, folder / version)  # atomic; fails rather than overwrite
            if blessed:
                _move_alias(root, name, CHAMPION, version, f"gate: {reason}")
        return final
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)


def set_alias(root: Path, ref: str, alias: str = CHAMPION, reason: str = "manual") -> str:
    """Point `alias` of the model at the version `ref` names (promote or roll back by hand)."""
    name, number = resolve(root, ref)
    with FileLock(str(root / name / ".lock"), timeout=600):
        _move_alias(root, name, alias, f"v{number}", reason)
    return f"{name}@v{number}"


def rollback(root: Path, name: str, alias: str = CHAMPION) -> str:
    """Move `alias` back to where it pointed before its last move."""
    check_name(name)
    with FileLock(str(root / name / ".lock"), timeout=600):
        moves = [m for m in aliases(root, name)["history"] if m["alias"] == alias]
        if not moves or moves[-1]["from"] is None:
            raise PipelineError(f"{name}@{alias} has no earlier version to roll back to")
        previous = moves[-1]["from"]
        _move_alias(root, name, alias, previous, f"rollback from {moves[-1]['to']}")
    return f"{name}@{previous}"


def verify(root: Path) -> list[str]:
    """Problems in the registry, if any: every version complete and intact, every alias on a version.

    Leftover `.staging-*` folders (a registration killed before its version appeared) are not
    problems: they are never read as versions, and the next `register` of that model deletes them."""
    problems = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir()) if root.is_dir() else []:
        numbers = versions(root, folder.name)
        if numbers != list(range(1, len(numbers) + 1)):
            problems.append(f"{folder.name}: version numbers {numbers} are not 1..{len(numbers)}")
        for number in numbers:
            where = folder / f"v{number}"
            try:
                record = json.loads((where / "record.json").read_text())
            except (OSError, ValueError) as exc:
                problems.append(f"{folder.name}@v{number}: record.json unreadable ({exc})")
                continue
            if record.get("version") != f"v{number}":
                problems.append(f"{folder.name}@v{number}: record says {record.get('version')}")
            model = where / MODEL_FILE
            if not model.is_file() or sha256_file(model) != record.get("model_sha256"):
                problems.append(f"{folder.name}@v{number}: model.keras missing or not the registered file")
        try:
            moved = aliases(root, folder.name)
        except ValueError as exc:
            problems.append(f"{folder.name}: aliases.json unreadable ({exc})")
            continue
        for alias, target in moved.items():
            if alias != "history" and int(str(target)[1:]) not in numbers:
                problems.append(f"{folder.name}@{alias} points at {target}, which does not exist")
    return problems
