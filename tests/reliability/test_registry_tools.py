"""`mnist registry` on a damaged or shared registry: bad aliases, stray folders, rollback, modes, staging.

Each damaged registry is made by the test itself (a few bytes on disk); every refusal is one `error:` line
and a non-zero exit, never a traceback.
"""

from __future__ import annotations

import os
import re
import socket
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from mnist_pipeline import registry
from mnist_pipeline.errors import PipelineError
from tests.harness import stage_env

GATE = registry.Gate(min_accuracy=0.9, tolerance=0.01)


def registered(tmp_path: Path, accuracies: tuple[float, ...] = (0.95,), name: str = "m") -> Path:
    """A registry holding one version of `name` per accuracy (the model file is a few bytes: never loaded)."""
    model = tmp_path / "model.keras"
    model.write_bytes(b"a model file")
    root = tmp_path / "reg"
    for accuracy in accuracies:
        registry.register(root, name, model, {"metrics": {"accuracy": accuracy}, "dataset": "mnist"}, GATE)
    return root


def mnist(root: Path, *args: str) -> subprocess.CompletedProcess:
    """`python -m mnist_cli registry ARGS --root ROOT`."""
    return subprocess.run([sys.executable, "-m", "mnist_cli", "registry", *args, "--root", str(root)],
                          capture_output=True, text=True, env=stage_env(), timeout=300)


def error_lines(done: subprocess.CompletedProcess) -> list[str]:
    """stderr's lines, after checking there is no traceback and every line is an `error:` line."""
    assert "Traceback" not in done.stderr, done.stderr
    lines = done.stderr.strip().splitlines()
    assert all(line.startswith("error: ") for line in lines), done.stderr
    return lines


DAMAGED_ALIASES = ['{"champion": "../v1", "history": []}', '{"champion": 3, "history": []}',
                   '{"champion": null, "history": []}', '{"champion": "v01", "history": []}',
                   '{"champion": ["v1"], "history": []}', '["v1"]', '{"champion": "v1"',
                   '{"champion": "v1", "history": 5}']


@pytest.mark.bad_input
@pytest.mark.parametrize("text", DAMAGED_ALIASES)
def test_alias_that_is_not_a_version_is_one_error_line(tmp_path: Path, text: str):
    root = registered(tmp_path)
    (root / "m" / "aliases.json").write_text(text)
    shown = mnist(root, "show", "m@champion")
    assert shown.returncode == 1 and len(error_lines(shown)) == 1, shown.stderr
    assert "aliases.json" in shown.stderr or "champion" in shown.stderr
    checked = mnist(root, "verify")
    assert checked.returncode == 1 and any("m" in line for line in error_lines(checked)), checked.stderr
    listed = mnist(root, "list")
    assert listed.returncode == 0 and "m@v1" in listed.stdout and "Traceback" not in listed.stderr, listed.stderr
    with pytest.raises(PipelineError):
        registry.resolve(root, "m@champion")


@pytest.mark.bad_input
def test_stray_folders_are_problems_for_verify_and_skipped_by_list(tmp_path: Path):
    root = registered(tmp_path)
    (root / "Bad Name" / "v1").mkdir(parents=True)
    (root / "m" / "v2").mkdir()
    (root / "m" / "v2" / "model.keras").write_bytes(b"no record beside it")
    (root / "notes.txt").write_text("a file, not a folder: ignored\n")
    checked = mnist(root, "verify")
    problems = error_lines(checked)
    assert checked.returncode == 1 and len(problems) == 2, checked.stderr
    assert any("Bad Name" in line for line in problems)
    assert any("m@v2" in line and "record.json" in line for line in problems)
    listed = mnist(root, "list")
    assert listed.returncode == 0 and "Traceback" not in listed.stderr, listed.stderr
    assert "m@v1" in listed.stdout and "m@v2" not in listed.stdout and "Bad Name" not in listed.stdout
    assert "Bad Name" in listed.stderr and "m@v2" in listed.stderr
    shown = mnist(root, "show", "m@v2")
    assert shown.returncode == 1 and len(error_lines(shown)) == 1


def test_rollback_walks_back_the_alias_history(tmp_path: Path):
    root = registered(tmp_path, (0.91, 0.92, 0.93))  # champion v1 -> v2 -> v3
    assert registry.resolve(root, "m@champion") == ("m", 3)
    first, second = mnist(root, "rollback", "m"), mnist(root, "rollback", "m")
    assert first.returncode == 0 and first.stdout.strip() == "champion -> m@v2", first.stderr
    assert second.returncode == 0 and second.stdout.strip() == "champion -> m@v1", second.stderr
    third = mnist(root, "rollback", "m")
    assert third.returncode == 1 and len(error_lines(third)) == 1 and "nothing earlier" in third.stderr
    assert registry.resolve(root, "m@champion") == ("m", 1)
    assert registry.set_alias(root, "m@v3") == "m@v3"  # promoted again by hand: rollback goes to v1 again
    assert registry.rollback(root, "m") == "m@v1"
    assert mnist(root, "verify").returncode == 0


def test_versions_are_readable_by_others(tmp_path: Path):
    model = tmp_path / "model.keras"
    model.write_bytes(b"a model file")
    model.chmod(0o600)
    report = tmp_path / "report"
    (report / "plots").mkdir(parents=True)
    (report / "plots" / "curve.json").write_text("{}")
    (report / "plots").chmod(0o700)
    (report / "plots" / "curve.json").chmod(0o600)
    registry.register(tmp_path / "reg", "m", model, {"metrics": {"accuracy": 0.95}}, GATE,
                      attachments={"report": report})
    version = tmp_path / "reg" / "m" / "v1"
    for path in [version, *version.rglob("*")]:
        expected = 0o755 if path.is_dir() else 0o644
        assert stat.S_IMODE(path.stat().st_mode) == expected, f"{path}: {oct(path.stat().st_mode)}"


@pytest.mark.fault
def test_staging_cleanup_keeps_other_hosts_registrations(tmp_path: Path, monkeypatch):
    """On a shared filesystem another host's pid means nothing here: only this host's dead stagings go."""
    root = registered(tmp_path)
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead, host, folder = int(gone.stdout), socket.gethostname(), root / "m"
    other = folder / f".staging-other-host-{dead}-abc"  # another machine, registering right now
    lookalike = folder / f".staging-{host}-2-{dead}-def"  # a host whose name starts with ours
    mine_dead = folder / f".staging-{host}-{dead}-ghi"  # this host, killed mid-copy
    mine_live = folder / f".staging-{host}-{os.getpid()}-jkl"  # this host, registering right now
    for staging in (other, lookalike, mine_dead, mine_live):
        staging.mkdir()
        (staging / "model.keras").write_bytes(b"partial")
    seen: list[str] = []
    copy = registry.shutil.copy2
    monkeypatch.setattr(registry.shutil, "copy2", lambda src, dst: seen.append(Path(dst).parent.name) or copy(src, dst))
    added = registry.register(root, "m", tmp_path / "model.keras", {"metrics": {"accuracy": 0.95}}, GATE)
    assert added["version"] == "v2"
    assert other.is_dir() and lookalike.is_dir() and mine_live.is_dir() and not mine_dead.exists()
    assert re.fullmatch(rf"\.staging-{re.escape(host)}-{os.getpid()}-[a-z0-9_]+", seen[0]), seen
    assert registry.verify(root) == []
