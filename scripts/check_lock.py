"""Check that the installed environment is exactly requirements.lock, and that the lock is closed.

Run with the project's venv Python (scripts/setup.sh does, after installing the lock with --no-deps):

    .venv/bin/python scripts/check_lock.py

It fails (exit 1, one line per problem) when
  - a requirement of pyproject.toml (extra `dev` included) or of any distribution it pulls in, with the
    extras asked for (prefect's `httpx[http2]` needs h2), is missing from the lock or pinned outside its range;
  - a locked distribution is installed at another version, or not installed;
  - a distribution is installed that the lock does not name (apart from this project itself);
  - the lock names a distribution nothing requires (a stale pin).

`pip check` covers only the first half of the first point, and not extras of dependencies: this is the check
that would have caught the 2026-12-04 failure before a new pip met it.
"""

from __future__ import annotations

import re
import sys
import tomllib
from importlib import metadata
from pathlib import Path

from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s\\;]+)")
# pip-compile's "unsafe" packages: pinned with --allow-unsafe, installed in every venv
BOOTSTRAP = {"pip", "setuptools", "wheel"}


def locked_pins(lock: Path) -> dict[str, str]:
    """Every `name==version` line of a pip-compile lock, by canonical name."""
    pins = {}
    for line in lock.read_text().splitlines():
        match = PIN.match(line)
        if match:
            pins[canonicalize_name(match.group(1))] = match.group(2)
    return pins


def project_requirements(pyproject: Path, extras: tuple[str, ...] = ("dev",)) -> tuple[str, list[Requirement]]:
    project = tomllib.loads(pyproject.read_text())["project"]
    reqs = [Requirement(r) for r in project["dependencies"]]
    for extra in extras:
        reqs += [Requirement(r) for r in project.get("optional-dependencies", {}).get(extra, [])]
    return canonicalize_name(project["name"]), reqs


def applies(req: Requirement, extras: frozenset[str]) -> bool:
    """Whether a requirement's marker holds here for a distribution installed with these extras."""
    if req.marker is None:
        return True
    env = default_environment()
    return any(req.marker.evaluate({**env, "extra": extra}) for extra in (extras | {""}))


def problems(lock: Path = ROOT / "requirements.lock", pyproject: Path = ROOT / "pyproject.toml") -> list[str]:
    pins = locked_pins(lock)
    own_name, roots = project_requirements(pyproject)
    installed = {canonicalize_name(d.metadata["Name"]): d for d in metadata.distributions()}
    found: list[str] = []

    for name, version in sorted(pins.items()):
        dist = installed.get(name)
        if dist is None:
            found.append(f"{name}=={version} is locked but not installed")
        elif dist.version != version:
            found.append(f"{name} is installed at {dist.version}, the lock says {version}")
    for name in sorted(set(installed) - set(pins) - {own_name}):
        found.append(f"{name} {installed[name].version} is installed but not in the lock")

    # walk the requirement graph from the project's own, extras included
    seen: set[tuple[str, frozenset[str]]] = set()
    queue = [(req, own_name) for req in roots if applies(req, frozenset())]
    reached = set()
    while queue:
        req, by = queue.pop()
        name = canonicalize_name(req.name)
        reached.add(name)
        if name not in pins:
            found.append(f"{by} needs {req}, which the lock does not name")
            continue
        if not req.specifier.contains(pins[name], prereleases=True):
            found.append(f"{by} needs {req}, the lock pins {name}=={pins[name]}")
        key = (name, frozenset(req.extras))
        if key in seen or name not in installed:
            continue
        seen.add(key)
        for sub in installed[name].requires or []:
            sub_req = Requirement(sub)
            if applies(sub_req, frozenset(req.extras)):
                queue.append((sub_req, f"{name}[{','.join(sorted(req.extras))}]" if req.extras else name))
    for name in sorted(set(pins) - reached - BOOTSTRAP):
        found.append(f"{name}=={pins[name]} is locked but nothing requires it (re-lock)")
    return found


def main() -> int:
    found = problems()
    for line in found:
        print(f"[check_lock] {line}", file=sys.stderr)
    if found:
        print(f"[check_lock] {len(found)} problem(s): the venv is not exactly requirements.lock", file=sys.stderr)
        return 1
    print(f"[check_lock] the venv is exactly requirements.lock ({len(locked_pins(ROOT / 'requirements.lock'))} "
          "distributions; every requirement, extras included, met)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
