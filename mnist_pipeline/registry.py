"""A small local model registry: immutable numbered versions, aliases, and a promotion gate.

Files (under `registry.dir`, default `registry/`):

    registry/<model>/v1/model.keras     the trained model, as trained
    registry/<model>/v1/record.json     lineage: metrics, params, data sha256, git revision,
                                        dvc.lock stage hashes, report, time per stage, flow run id,
                                        and the gate's verdict (blessed or not, and why)
    registry/<model>/v1/model-card.md   what it is for and not, data, recipe, accuracy, limits, gate,
                                        lineage, how to make it again (card.py, from the record)
    registry/<model>/aliases.json       {"champion": "v3", "history": [...every alias move...]}

A version is assembled in a temporary folder (`.staging-<host>-<pid>-<random>`) and renamed
into place under a file lock, so numbering stays correct with runs registering at once, a killed
registration leaves no `vN`, and an existing version is never overwritten. Versions are readable
by others (folders 0755, files 0644), like every other artifact. Why not MLflow's registry or
GTO: see docs/prefect.md.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from filelock import FileLock

from mnist_pipeline.card import render_card
from mnist_pipeline.errors import PipelineError, first_line
from mnist_pipeline.files import sha256_file, write_json
from mnist_pipeline.paired import paired_difference, unpack
from mnist_pipeline.processes import alive, host_name

NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
REF = re.compile(r"^(?P<name>[^@]+)@(?P<tag>v[1-9][0-9]*|[a-z][a-z0-9_-]{0,31})$")
VERSION = re.compile(r"v[1-9][0-9]*")
CHAMPION = "champion"
HISTORY = "history"  # the key of aliases.json that keeps the alias moves: no alias may take it
MODEL_FILE = "model.keras"  # the registry's own layout (see above), not the pipeline's
CARD = "model-card.md"
STAGING = ".staging-"  # + <host>-<pid>-<random>: a version being copied in; never read as a version
# mkdtemp's random part has no '-', so the last two '-' split off the pid and the random part
STAGING_NAME = re.compile(rf"{re.escape(STAGING)}(?P<host>.+)-(?P<pid>[0-9]+)-[a-z0-9_]+")


@dataclass(frozen=True)
class Gate:
    """The promotion gate (like TFX's Evaluator): an absolute floor and a tolerance against the champion."""

    min_accuracy: float
    tolerance: float


def check_name(name: str) -> str:
    """Model names are plain slugs: nothing can escape the registry folder."""
    if not NAME.fullmatch(name):
        raise PipelineError(f"invalid model name {name!r}: use lowercase letters, digits, '_' or '-'")
    return name


def versions(root: Path, name: str) -> list[int]:
    """Existing version numbers of `name`, ascending."""
    folder = root / check_name(name)
    if not folder.is_dir():
        return []
    return sorted(int(p.name[1:]) for p in folder.iterdir() if VERSION.fullmatch(p.name))


def model_folders(root: Path) -> list[Path]:
    """Every folder directly under the registry root, model or not (sorted)."""
    return sorted(p for p in root.iterdir() if p.is_dir()) if root.is_dir() else []


def stray(folder: Path) -> str:
    """Why a folder under the root is not read as a model."""
    return f"{folder}: not a model folder (model names are lowercase slugs)"


def model_path(root: Path, name: str, version: int) -> Path:
    """The model file of version `version` of `name`."""
    return root / check_name(name) / f"v{version}" / MODEL_FILE


def model_problem(root: Path, name: str, version: int, record: dict[str, Any]) -> str | None:
    """Why the version's model file is not the one registered (sha256 against the record), or None."""
    path = model_path(root, name, version)
    expected = record.get("model_sha256")
    if not path.is_file():
        return f"{path}: missing"
    if not isinstance(expected, str):
        return f"{path}: its record has no model_sha256 to check it against"
    actual = sha256_file(path)
    if actual != expected:
        return (f"{path}: sha256 {actual[:12]}... is not the registered {expected[:12]}... "
                "(the file was changed or swapped after registration)")
    return None


def checked_model_path(root: Path, name: str, version: int, record: dict[str, Any]) -> Path:
    """The version's model file, once its sha256 matches the record: a swapped file is never loaded."""
    problem = model_problem(root, name, version, record)
    if problem:
        raise PipelineError(f"{problem}; refused to load it")
    return model_path(root, name, version)


def read_record(root: Path, name: str, version: int) -> dict[str, Any]:
    """The record.json of `name@v<version>`; PipelineError if the version or its record is missing or damaged."""
    path = root / check_name(name) / f"v{version}" / "record.json"
    if not path.parent.is_dir():
        raise PipelineError(f"no version {name}@v{version} in {root}")
    try:
        record = json.loads(path.read_text())
    except FileNotFoundError:
        raise PipelineError(f"{name}@v{version}: no record.json in {path.parent} (an incomplete version)") from None
    except (OSError, ValueError) as exc:
        raise PipelineError(f"{name}@v{version}: {path} unreadable ({first_line(exc, 200)})") from None
    if not isinstance(record, dict):
        raise PipelineError(f"{name}@v{version}: {path} is not a JSON object")
    return record


def aliases(root: Path, name: str) -> dict[str, Any]:
    """The model's aliases.json ({alias: "vN", ..., "history": [moves]}); PipelineError if it is damaged."""
    path = root / check_name(name) / "aliases.json"
    if not path.is_file():
        return {"history": []}
    try:
        table = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise PipelineError(f"{path}: unreadable ({first_line(exc, 200)})") from None
    history = table.get("history", []) if isinstance(table, dict) else None
    if not isinstance(history, list) or not all(isinstance(move, dict) for move in history):
        raise PipelineError(f"{path}: not an aliases file (a JSON object with a 'history' list of moves)")
    return {**table, "history": history}


def alias_number(table: dict[str, Any], name: str, alias: str) -> int | None:
    """The version number `alias` points at in `table` (from `aliases`); None when it is not set."""
    if alias not in table:
        return None
    target = table[alias]
    if not (isinstance(target, str) and VERSION.fullmatch(target)):
        raise PipelineError(f"{name}@{alias} points at {target!r}, not a version like 'v3' (aliases.json is damaged)")
    return int(target[1:])


def alias_tags(root: Path, name: str) -> tuple[dict[int, list[str]], list[str]]:
    """Version number -> the aliases on it, and the problems of aliases.json (damaged file, non-version values)."""
    try:
        table = aliases(root, name)
    except PipelineError as exc:
        return {}, [str(exc)]
    tags: dict[int, list[str]] = {}
    problems = []
    for alias in sorted(key for key in table if key != "history"):
        try:
            number = alias_number(table, name, alias)
        except PipelineError as exc:
            problems.append(str(exc))
            continue
        if number is not None:
            tags.setdefault(number, []).append(alias)
    return tags, problems


def resolve(root: Path, ref: str) -> tuple[str, int]:
    """`name@vN` or `name@alias` -> (name, N)."""
    match = REF.fullmatch(ref)
    if not match:
        raise PipelineError(f"invalid model reference {ref!r}: use NAME@vN or NAME@champion")
    name, tag = check_name(match["name"]), match["tag"]
    if tag.startswith("v") and tag[1:].isdigit():
        number = int(tag[1:])
        if number not in versions(root, name):
            have = ", ".join(f"v{n}" for n in versions(root, name)) or "none"
            raise PipelineError(f"no version {ref} (have: {have})")
        return name, number
    number = alias_number(aliases(root, name), name, check_alias(tag))
    if number is None:
        raise PipelineError(f"alias {ref} is not set")
    if number not in versions(root, name):
        raise PipelineError(f"alias {ref} points at v{number}, which does not exist")
    return name, number


def check_alias(alias: str) -> str:
    """An alias name: a slug, and not `history` (aliases.json keeps the alias moves under that key)."""
    if alias == HISTORY or not re.fullmatch(r"[a-z][a-z0-9_-]{0,31}", alias):
        raise PipelineError(f"invalid alias {alias[:40]!r}: use a lowercase slug other than {HISTORY!r}")
    return alias


def record_problem(record: dict[str, Any], judged: bool = True) -> str | None:
    """What keeps a version's record from being used, or None: params must be a mapping of sections (predict
    reads them) and, where it is `judged` (the gate, verify), metrics.accuracy a number from 0 to 1."""
    accuracy = record["metrics"].get("accuracy") if isinstance(record.get("metrics"), dict) else None
    if judged and (isinstance(accuracy, bool) or not isinstance(accuracy, (int, float)) or not 0 <= accuracy <= 1):
        return f"its metrics.accuracy is {str(accuracy)[:40]!r}, not a number from 0 to 1"
    params = record.get("params", {})
    if not isinstance(params, dict) or not all(isinstance(section, dict) for section in params.values()):
        return "its params are not a mapping of sections"
    return None


def named_versions(root: Path, name: str) -> list[int]:
    """Every version number aliases.json names, now or in its history (a deleted version's number is not reused:
    the history would then name a different model)."""
    try:
        table = aliases(root, name)
    except PipelineError:
        return []
    named = [value for key, value in table.items() if key != HISTORY]
    named += [move.get(end) for move in table[HISTORY] for end in ("from", "to")]
    return [int(value[1:]) for value in named if isinstance(value, str) and VERSION.fullmatch(value)]


def gate_champion(root: Path, name: str) -> tuple[dict[str, Any] | None, str]:
    """The champion a new version is judged against, or None with why not: there is none, or its alias names
    a version that is gone or a record that cannot be judged against (registration goes on, and says so)."""
    try:
        number = alias_number(aliases(root, name), name, CHAMPION)
        if number is None:
            return None, ""
        champion = read_record(root, name, number)
    except PipelineError as exc:
        return None, f"; the champion could not be read ({exc}), so none was compared"
    problem = record_problem(champion)
    if problem:
        return None, f"; champion v{number} was not compared: {problem}"
    return {**champion, "version": champion.get("version", f"v{number}")}, ""


def gate_verdict(record: dict[str, Any], champion: dict[str, Any] | None,
                 gate: Gate) -> tuple[bool, str, dict[str, Any] | None]:
    """Blessed or not, why, and the comparison with the champion (None when there was none to make).

    Below `min_accuracy` a version is never blessed. Against a champion tested on the same images (the same data
    sha256 and count, each with its per-image correctness) the paired test decides: the bootstrap over the test
    images of candidate minus champion (one model each); blessed when the interval's lower end is above
    -tolerance ("not worse"), and "better" only when it is above 0. A champion tested on other images, or
    registered without per-image correctness, is not comparable: the floor alone decides, and the reason says so."""
    accuracy = record["metrics"]["accuracy"]
    floor = f"accuracy {accuracy:.4f} {'meets' if accuracy >= gate.min_accuracy else 'is below'} the floor " \
            f"{gate.min_accuracy:.4f}"
    if accuracy < gate.min_accuracy:
        return False, floor, None
    if champion is None:
        return True, f"{floor}; no champion yet", None
    against, mine, theirs = champion["version"], record.get("test_set"), champion.get("test_set")
    if not (record.get("test_correct") and champion.get("test_correct") and mine and theirs):
        why = "one of the two has no per-image test record"
    elif mine != theirs:
        why = (f"other test images: data {str(theirs.get('raw_sha256'))[:12]} ({theirs.get('images')} images) "
               f"against {str(mine.get('raw_sha256'))[:12]} ({mine.get('images')})")
    else:
        why = ""
    if why:
        return True, f"{floor}; not comparable with champion {against} ({why}): judged on the floor alone", {
            "against": against, "verdict": "not comparable", "why": why}
    n = mine["images"]
    result = paired_difference([unpack(champion["test_correct"], n)], [unpack(record["test_correct"], n)])
    low, high = result["ci95"]
    verdict = "better" if low > 0 else "not worse" if low > -gate.tolerance else "worse"
    comparison = {"against": against, "verdict": verdict, "difference": result["difference"], "ci95": [low, high],
                  "p": result["p"], "images": n, "test_set": mine,
                  "test": f"paired bootstrap over the {n:,} test images, candidate minus champion (one model each)"}
    reason = (f"{floor}; against champion {against} on the same {n:,} test images {result['difference']:+.2%} "
              f"(95% interval {low:+.2%} to {high:+.2%}, paired): {verdict}"
              + (f" (its lower end is below -{gate.tolerance:.2%}, the tolerance)" if verdict == "worse" else ""))
    return verdict != "worse", reason, comparison


def _move_alias(root: Path, name: str, alias: str, version: str, reason: str, rollback: bool = False) -> None:
    """Point `alias` at `version`, keeping the history of moves (caller holds the lock)."""
    current = aliases(root, name)
    current["history"].append({"alias": alias, "from": current.get(alias), "to": version, "reason": reason,
                               "rollback": rollback, "at": datetime.now(timezone.utc).isoformat(timespec="seconds")})
    current[alias] = version
    write_json(root / name / "aliases.json", current)


def staging_prefix(pid: int | None = None) -> str:
    """`.staging-<host>-<pid>-`: how the staging folder of a registration on this host starts."""
    return f"{STAGING}{host_name()}-{os.getpid() if pid is None else pid}-"


def remove_abandoned_staging(folder: Path) -> None:
    """Delete this host's `.staging-<host>-<pid>-*` folders whose process is gone (killed mid-copy).

    Those of live processes stay, and so does every other host's (its pid means nothing here: on a
    shared filesystem it may be registering right now) and any folder not named so."""
    for path in folder.glob(f"{STAGING}*"):
        owner = STAGING_NAME.fullmatch(path.name)
        if owner and owner["host"] == host_name() and not alive(int(owner["pid"])):
            shutil.rmtree(path, ignore_errors=True)


def same_work(root: Path, name: str, fingerprint: str | None) -> dict[str, Any] | None:
    """The record of the version made by the same work (data, params and code: the `fingerprint` of dvc.lock's
    stage hashes), if there is one: a second identical run registers nothing and names it."""
    if not fingerprint:
        return None
    for number in versions(root, name):
        try:
            record = read_record(root, name, number)
        except PipelineError:
            continue
        if record.get("fingerprint") == fingerprint:
            return record
    return None


def register(root: Path, name: str, model_file: Path, record: dict[str, Any], gate: Gate,
             attachments: dict[str, Path] | None = None,
             on_number: Callable[[str, bool], dict[str, Any]] | None = None) -> dict[str, Any]:
    """Add `model_file` (and `attachments`: folder name -> folder to copy) as the next version of
    `name`, judge it, move `champion` if blessed. All files are in place before the version appears.

    `on_number(version, blessed)` runs once the number is known, before the version appears, and its
    fields join the record (the flow saves the run as the DVC experiment `<name>-vN` there); when it
    raises, nothing is registered. A record whose `fingerprint` an existing version has (the same work) registers
    nothing: that version's record comes back with `duplicate_of`."""
    check_name(name)
    folder = root / name
    folder.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=staging_prefix(), dir=folder))
    try:
        shutil.copy2(model_file, staging / MODEL_FILE)
        record = {**record, "model_sha256": sha256_file(staging / MODEL_FILE)}
        for target, source in (attachments or {}).items():
            shutil.copytree(source, staging / check_name(target))
        with FileLock(str(folder / ".lock"), timeout=600):
            remove_abandoned_staging(folder)
            if same := same_work(root, name, record.get("fingerprint")):
                return {**same, "duplicate_of": f"{name}@{same['version']}"}
            number = max([0, *versions(root, name), *named_versions(root, name)]) + 1  # never a number reused
            version = f"v{number}"
            champion, note = gate_champion(root, name)
            blessed, reason, comparison = gate_verdict(record, champion, gate)
            if note:  # a champion is set but cannot be compared with: not "no champion yet"
                reason = reason.removesuffix("; no champion yet") + note
            final = {**record, "name": name, "version": version, "blessed": blessed, "gate_reason": reason,
                     "gate_comparison": comparison,
                     "gate": {"min_accuracy": gate.min_accuracy, "tolerance": gate.tolerance},
                     "registered_at": datetime.now(timezone.utc).isoformat(timespec="milliseconds")}
            if on_number is not None:
                final.update(on_number(version, blessed))
            write_json(staging / "record.json", final)
            (staging / CARD).write_text(render_card(final))  # in place before the version appears, like the record
            _share(staging)
            os.rename(staging, folder / version)  # atomic; fails rather than overwrite
            if blessed:
                _move_alias(root, name, CHAMPION, version, f"gate: {reason}")
        return final
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)


def _share(folder: Path) -> None:
    """Folders 0755, files 0644 under `folder` (mkdtemp makes 0700, copies keep their source's mode)."""
    folder.chmod(0o755)
    for path in folder.rglob("*"):
        if not path.is_symlink():
            path.chmod(0o755 if path.is_dir() else 0o644)


def set_alias(root: Path, ref: str, alias: str = CHAMPION, reason: str = "manual") -> str:
    """Point `alias` of the model at the version `ref` names (promote or roll back by hand)."""
    check_alias(alias)
    name, number = resolve(root, ref)
    with FileLock(str(root / name / ".lock"), timeout=600):
        _move_alias(root, name, alias, f"v{number}", reason)
    return f"{name}@v{number}"


def rollback(root: Path, name: str, alias: str = CHAMPION) -> str:
    """Move `alias` one step back in its history: v3 -> v2 -> v1 on successive rollbacks after v1 -> v2 -> v3."""
    check_name(name)
    check_alias(alias)
    with FileLock(str(root / name / ".lock"), timeout=600):
        table = aliases(root, name)
        previous = _rollback_target(table, name, alias)
        if int(previous[1:]) not in versions(root, name):
            raise PipelineError(f"{name}@{alias} would roll back to {previous}, which does not exist")
        _move_alias(root, name, alias, previous, f"rollback from {table[alias]}", rollback=True)
    return f"{name}@{previous}"


def _rollback_target(table: dict[str, Any], name: str, alias: str) -> str:
    """The version before the current one in `alias`'s history; PipelineError when there is none."""
    current, trail = table.get(alias), alias_trail(table["history"], alias)
    if current is None:
        raise PipelineError(f"{name}@{alias} is not set: nothing to roll back")
    if not trail or trail[-1] != current:
        raise PipelineError(f"{name}@{alias} is {current!r} but its history ends at "
                            f"{trail[-1] if trail else None!r}: aliases.json was edited by hand; use promote")
    if len(trail) < 2:
        raise PipelineError(f"{name}@{alias} is {current}, the first version in its history: "
                            "nothing earlier to roll back to")
    if not (isinstance(trail[-2], str) and VERSION.fullmatch(trail[-2])):
        raise PipelineError(f"{name}@{alias} would roll back to {trail[-2]!r}, not a version (aliases.json is damaged)")
    return trail[-2]


def alias_trail(history: list[dict[str, Any]], alias: str) -> list[Any]:
    """The versions `alias` has stood on, oldest first, as rollbacks see them: a move pushes, a rollback pops."""
    trail: list[Any] = []
    for move in history:
        if move.get("alias") != alias:
            continue
        if move.get("rollback") or str(move.get("reason", "")).startswith("rollback from "):  # older records
            trail = trail[:-1]
        else:
            trail.append(move.get("to"))
    return trail


def verify(root: Path) -> list[str]:
    """Problems in the registry, if any: every folder a model, every version complete and intact, every alias
    on a version.

    Leftover `.staging-*` folders (a registration killed before its version appeared) are not
    problems: they are never read as versions, and the next `register` of that model deletes them."""
    problems = []
    for folder in model_folders(root):
        problems += _verify_model(root, folder.name) if NAME.fullmatch(folder.name) else [stray(folder)]
    return problems


def _verify_model(root: Path, name: str) -> list[str]:
    """Problems of one model: numbering, each version, its aliases."""
    numbers = versions(root, name)
    problems = [] if numbers == list(range(1, len(numbers) + 1)) else [
        f"{name}: version numbers {numbers} are not 1..{len(numbers)}"]
    problems += [problem for number in numbers if (problem := version_problem(root, name, number))]
    tags, alias_problems = alias_tags(root, name)
    return problems + alias_problems + [f"{name}@{alias} points at v{number}, which does not exist"
                                        for number, names in tags.items() if number not in numbers for alias in names]


def version_problem(root: Path, name: str, number: int) -> str | None:
    """What is wrong with one version (record missing or not its own, model not the registered file), or None."""
    try:
        record = read_record(root, name, number)
    except PipelineError as exc:
        return str(exc)
    if record.get("version") != f"v{number}":
        return f"{name}@v{number}: record says {record.get('version')}"
    if problem := record_problem(record):
        return f"{name}@v{number}: {problem}"
    card = root / name / f"v{number}" / CARD
    if not card.is_file():
        return f"{name}@v{number}: no {CARD}"
    if not card.read_text(errors="replace").startswith(f"# Model card: {name}@v{number}\n"):
        return f"{name}@v{number}: {CARD} names another version"
    problem = model_problem(root, name, number, record)
    return f"{name}@v{number}: {problem}" if problem else None


def listing(root: Path) -> tuple[list[dict[str, Any]], list[str]]:
    """Every readable version's record (plus "ref" and its "aliases"), and what was skipped and why."""
    records: list[dict[str, Any]] = []
    skipped: list[str] = []
    for folder in model_folders(root):
        if not NAME.fullmatch(folder.name):
            skipped.append(stray(folder))
            continue
        tags, problems = alias_tags(root, folder.name)
        skipped += [f"{problem}; alias not shown" for problem in problems]
        for number in versions(root, folder.name):
            try:
                record = read_record(root, folder.name, number)
            except PipelineError as exc:
                skipped.append(str(exc))
                continue
            records.append({**record, "ref": f"{folder.name}@v{number}", "aliases": tags.get(number, [])})
    return records, skipped
