"""What a kill can leave in the project's own workspace, found and put right before anything starts from it.

Three states a SIGKILL leaves that made every later command fail or mislead until a person stepped in:

- a torn `dvc.lock`: DVC rewrites it in place, so a kill mid-write leaves half a file and every `dvc`
  command then stops at "'./dvc.lock' validation failed". It is checked with DVC's own parser and schema;
  a torn one is kept beside DVC's temporary files and replaced by the committed one (or removed when git
  has none), so `dvc repro` re-runs only the stages whose outputs differ from it (the run-cache restores
  what it has seen).
- a torn `.dvc/tmp/rwlock` (DVC's record of which command reads or writes which output, also rewritten in
  place): every `dvc repro` then stops at "Unable to read RWLock-file". It names only live commands, so
  with no DVC command running here a torn one is removed.
- HEAD left detached by a killed `dvc exp run`: DVC detaches HEAD while an experiment runs in the
  workspace and puts it back at the end; a killed run leaves it detached, and so does every run after it.
  When no DVC command is running here, DVC's experiment refs are left over and exactly one branch points
  at HEAD's commit, HEAD goes back on that branch (the working tree and the index are not touched).

`mnist repair` runs `repair` and prints its lines; `mnist compare` runs it first. A plain `dvc` user who
sees one of these symptoms runs `mnist repair` (docs/guarantees.md).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

from mnist_pipeline.errors import first_line
from mnist_pipeline.files import atomic_path

EXEC_REFS = "refs/exps/exec/"  # where DVC keeps the refs of an experiment running in the workspace
TORN_LOCK = Path(".dvc/tmp/dvc.lock.torn")


def git(root: Path, *args: str, check: bool = False) -> str:
    """A git command's output in `root`; when it fails, empty (no repository, no such ref), or with `check` a
    CalledProcessError (a step a run cannot go on without)."""
    done = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, check=check)
    return done.stdout.strip() if done.returncode == 0 else ""


def lock_problem(text: str) -> str | None:
    """Why DVC would refuse `text` as a dvc.lock (its own YAML parser and lock-file schema), or None."""
    from dvc.schema import COMPILED_LOCKFILE_SCHEMA
    from dvc.utils.serialize import parse_yaml

    try:
        COMPILED_LOCKFILE_SCHEMA(parse_yaml(text, "dvc.lock") or {})
    except Exception as error:  # noqa: BLE001 - DVC's YAML and schema errors share no base class but Exception
        return first_line(error)
    return None


def repair_lock(root: Path) -> str | None:
    """Replace a torn dvc.lock with the committed one (or remove it); the line saying so, or None."""
    path = root / "dvc.lock"
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError):
        text = None
    if text is not None and lock_problem(text) is None:
        return None
    kept = root / TORN_LOCK
    kept.parent.mkdir(parents=True, exist_ok=True)
    committed = git(root, "show", "HEAD:dvc.lock") if git(root, "ls-files", "dvc.lock") else ""
    if committed and lock_problem(committed) is None:
        if path.is_file():
            shutil.copyfile(path, kept)  # the torn copy, for a person to look at
        else:
            os.replace(path, kept)  # not a file at all (a folder in its place): moved aside whole
        with atomic_path(path) as tmp:  # a kill now leaves the torn file or the good one, never a third
            tmp.write_text(committed + "\n")
        return (f"repair: dvc.lock was torn (a kill while DVC wrote it); restored the committed one and kept the torn "
                f"copy in {TORN_LOCK}: `dvc repro` re-runs the stages whose outputs differ")
    os.replace(path, kept)
    return (f"repair: dvc.lock was torn (a kill while DVC wrote it) and git has no good copy; moved it to {TORN_LOCK}: "
            f"`dvc repro` runs every stage (the run-cache restores outputs it has seen)")


RWLOCKS = (Path(".dvc/tmp/rwlock"), Path(".dvc/tmp/exps/rwlock"))  # DVC's, and its experiments'


def repair_rwlocks(root: Path) -> list[str]:
    """Remove each torn DVC rwlock file when no DVC command runs here; a line for each."""
    from dvc.rwlock import SCHEMA

    torn = []
    for name in RWLOCKS:
        try:
            SCHEMA(json.loads((root / name).read_text()))
        except FileNotFoundError:
            continue
        except Exception:  # noqa: BLE001 - not JSON, not text, or not DVC's schema: torn either way
            torn.append(name)
    if not torn or dvc_running(root):
        return []
    for name in torn:
        (root / name).unlink()
    return [f"repair: {name} was torn (a kill while DVC wrote it); removed it (it lists only running commands, and "
            f"none runs here)" for name in torn]


def dvc_running(root: Path) -> bool:
    """Whether a `dvc` process is running with `root` as its working folder (Linux's /proc)."""
    me = os.getpid()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == me:
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
            cwd = os.readlink(entry / "cwd")
        except OSError:
            continue
        names = [Path(os.fsdecode(arg)).name for arg in argv[:3]]
        if "dvc" in names and Path(cwd) == root.resolve():
            return True
    return False


def repair_head(root: Path) -> str | None:
    """Put HEAD back on its branch when a killed `dvc exp run` left it detached; the line saying so, or None."""
    if git(root, "symbolic-ref", "-q", "HEAD") or not git(root, "rev-parse", "-q", "--verify", "HEAD"):
        return None  # on a branch, or no commit yet
    leftovers = git(root, "for-each-ref", "--format=%(refname)", EXEC_REFS).splitlines()
    if not leftovers or dvc_running(root):
        return None  # detached by the user, or by an experiment still running
    head = git(root, "rev-parse", "HEAD")
    branches = git(root, "for-each-ref", "--format=%(refname:short)", "--points-at", head, "refs/heads/").splitlines()
    if len(branches) != 1:
        return (f"repair: HEAD is detached at {head[:7]} after a killed `dvc exp run`, and {len(branches) or 'no'} "
                f"branches point there: check out the one you were on (`git checkout BRANCH`)")
    subprocess.run(["git", "symbolic-ref", "-m", "mnist repair: HEAD back on its branch", "HEAD",
                    f"refs/heads/{branches[0]}"], cwd=root, check=True, capture_output=True)
    for ref in leftovers:
        subprocess.run(["git", "update-ref", "-d", "--no-deref", ref], cwd=root, check=False, capture_output=True)
    return f"repair: HEAD was left detached by a killed `dvc exp run`; put it back on branch {branches[0]}"


def repair(root: Path) -> list[str]:
    """Every repair `root` needed, one line each (empty: nothing was wrong)."""
    return [line for line in (repair_lock(root), *repair_rwlocks(root), repair_head(root)) if line]


def cache_folder(root: Path) -> Path:
    """Where DVC keeps this project's objects (`dvc cache dir`, the md5 kind that outputs use)."""
    from dvc.repo import Repo

    with Repo(str(root)) as repo:
        return Path(repo.cache.local.path)


def corrupt_objects(cache: Path) -> tuple[int, list[tuple[Path, str]]]:
    """How many objects `cache` holds, and each whose bytes no longer hash to its name (with the md5 it has).

    DVC never re-hashes its cache: a flipped byte in an object is checked out and reported up to date. An
    object's name is the md5 of its bytes, for a folder's `.dir` listing too."""
    import hashlib

    objects = sorted(p for p in cache.glob("??/*") if p.is_file() and not p.name.endswith(".tmp"))
    corrupt = []
    for path in objects:
        digest = hashlib.md5(usedforsecurity=False)
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        if digest.hexdigest() != path.parent.name + path.name.removesuffix(".dir"):
            corrupt.append((path, digest.hexdigest()))
    return len(objects), corrupt
