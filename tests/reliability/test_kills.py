"""Kills at many moments leave nothing that needs a person: a torn dvc.lock and a detached HEAD are put right by
`mnist repair` (which `mnist compare` runs first), through real `dvc` in a real git repository."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from mnist_pipeline.workspace import TORN_LOCK, lock_problem, repair
from tests.harness import ROOT, dvc, make_repo, stage_env

QUICK = {"train": {"model": "softmax_regression", "epochs": 1, "max_train_images": 500}}


def git(repo: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["git", *args], cwd=repo, env=stage_env(), capture_output=True, text=True)


def mnist(repo: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["mnist", *args], cwd=repo, env=stage_env(), capture_output=True, text=True, timeout=120)


def quick_repo(path: Path) -> Path:
    repo = make_repo(path)
    params = yaml.safe_load((repo / "params.yaml").read_text())
    for section, values in QUICK.items():
        params[section].update(values)
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    git(repo, "commit", "-qam", "quick")
    return repo


@pytest.mark.fault
def test_a_dvc_lock_torn_anywhere_is_restored_from_git_and_dvc_works_again(tmp_path: Path):
    """A kill while DVC rewrote dvc.lock left half a file: every `dvc` command then stopped at "validation
    failed". Cut at each of a dozen points, the lock is either still one DVC reads or `mnist repair` puts the
    committed one back (keeping the torn copy); then real `dvc status` works."""
    repo = make_repo(tmp_path / "repo")
    committed = (ROOT / "dvc.lock").read_text()
    (repo / "dvc.lock").write_text(committed)
    git(repo, "add", "dvc.lock")
    git(repo, "commit", "-qm", "lock")
    restored = 0
    for cut in [1, 10, 100, 300, 1000, 2500, 5000, len(committed) // 2, len(committed) - 300, len(committed) - 20,
                len(committed) - 3]:
        torn = committed[:cut]
        (repo / "dvc.lock").write_text(torn)
        lines = repair(repo)
        if lock_problem(torn) is None:  # cut where DVC still reads a smaller lock: nothing to repair
            assert lines == [], cut
            continue
        restored += 1
        assert len(lines) == 1 and "dvc.lock was torn" in lines[0], (cut, lines)
        assert (repo / "dvc.lock").read_text().strip() == committed.strip(), cut
        assert (repo / TORN_LOCK).read_text() == torn  # nothing lost: the torn copy is kept
    assert restored >= 6  # most cuts tear it (a cut inside a value can leave YAML DVC reads: it re-runs that stage)
    assert not list(repo.glob(".dvc.lock.*"))  # written through a temporary file and a rename: none left behind

    cut = next(n for n in range(len(committed) - 300, 0, -1) if lock_problem(committed[:n]))  # as the probe's
    (repo / "dvc.lock").write_text(committed[:cut])  # `truncate -s -300 dvc.lock` left it
    before = dvc(repo, "status")
    assert before.returncode != 0 and "dvc.lock' is invalid" in before.stdout, before.stdout  # what a user sees
    done = mnist(repo, "repair")
    assert done.returncode == 0 and "restored the committed one" in done.stderr, done.stderr
    after = dvc(repo, "status")
    assert after.returncode == 0, after.stdout
    assert "nothing to repair" in mnist(repo, "repair").stderr

    git(repo, "rm", "-q", "--cached", "dvc.lock")  # no committed copy: moved aside, DVC runs every stage
    git(repo, "commit", "-qm", "no lock")
    (repo / "dvc.lock").write_text(committed[:cut])
    lines = repair(repo)
    assert len(lines) == 1 and "git has no good copy" in lines[0] and not (repo / "dvc.lock").exists()
    assert dvc(repo, "status").returncode == 0


@pytest.mark.e2e
@pytest.mark.fault
def test_dvc_exp_run_killed_at_many_moments_then_repair_and_the_next_run_records_its_own_params(tmp_path: Path):
    """After a killed plain `dvc exp run`, HEAD stayed detached even after the next successful run. Killed (SIGKILL
    to its whole process group) at moments from set-up to the last stage, each time `mnist repair` leaves HEAD on
    main and a dvc.lock DVC reads; the run after the last kill completes and records the seed it was given."""
    repo = quick_repo(tmp_path / "repo")
    first = dvc(repo, "exp", "run")  # a baseline, so later runs also kill stages that restore from the run-cache
    assert first.returncode == 0, first.stdout[-3000:]
    repaired, finished = [], [42]  # the seeds of the runs that finished (the baseline's is the default)
    for delay in (0.5, 1.5, 3.0, 5.0, 8.0, 12.0):
        run = subprocess.Popen(["dvc", "exp", "run", "-S", f"train.seed={int(delay * 10)}"], cwd=repo,
                               env=stage_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               start_new_session=True)
        time.sleep(delay)
        if delay == 5.0 and run.poll() is None:  # two runs in one workspace record each other's params
            busy = mnist(repo, "compare", "--models", "softmax_regression")
            assert busy.returncode == 1 and "a dvc command is running in this workspace" in busy.stderr, busy.stderr
        if run.poll() is None:
            os.killpg(run.pid, signal.SIGKILL)
        elif run.returncode == 0:  # done before its kill (the run-cache had much of it)
            finished.append(int(delay * 10))
        run.wait()
        done = mnist(repo, "repair")
        assert done.returncode == 0, done.stderr
        repaired += [line for line in done.stderr.splitlines() if not line.startswith("repair: nothing")]
        assert git(repo, "symbolic-ref", "-q", "--short", "HEAD").stdout.strip() == "main", (delay, done.stderr)
        assert lock_problem((repo / "dvc.lock").read_text()) is None, delay
        git(repo, "checkout", "-q", "--", "params.yaml")  # the killed run's -S stays in params.yaml: the user's
        git(repo, "reset", "-q")
    assert any("HEAD was left detached" in line for line in repaired), repaired  # the kills did detach it

    last = dvc(repo, "exp", "run", "-S", "train.seed=23")
    assert last.returncode == 0, last.stdout[-3000:]
    assert git(repo, "symbolic-ref", "-q", "--short", "HEAD").stdout.strip() == "main"
    shown = json.loads(dvc(repo, "exp", "show", "--json").stdout)
    experiments = [rev for baseline in shown for group in baseline.get("experiments") or []
                   for rev in group.get("revs", []) if rev.get("data")]
    seeds = [rev["data"]["params"]["params.yaml"]["data"]["train"]["seed"] for rev in experiments]
    assert sorted(seeds) == sorted([*finished, 23]), seeds  # every finished run with its own seed; no killed one


@pytest.mark.e2e
@pytest.mark.fault
def test_a_flipped_byte_in_dvcs_cache_is_found_and_a_stage_reading_it_says_so_in_one_line(tmp_path: Path):
    """DVC never re-hashes its cache: a flipped byte in an object is checked out and `dvc status` says up to
    date; the stage reading the record then crashed with a JSONDecodeError traceback. `mnist check-cache`
    names the object, the stage's error is one line naming the file, and `--remove` lets DVC make it again."""
    import hashlib

    repo = quick_repo(tmp_path / "repo")
    done = dvc(repo, "repro", "validate")
    assert done.returncode == 0, done.stdout[-3000:]
    record = repo / "data" / "validated" / "validation.json"
    md5 = hashlib.md5(record.read_bytes()).hexdigest()
    cached = repo / ".dvc" / "cache" / "files" / "md5" / md5[:2] / md5[2:]
    kept = cached.stat()
    cached.chmod(0o644)
    cached.write_bytes(b"\x01" + cached.read_bytes()[1:])  # the disk flipped its first byte: same size and time
    cached.chmod(kept.st_mode)
    os.utime(cached, ns=(kept.st_atime_ns, kept.st_mtime_ns))
    record.unlink()
    assert dvc(repo, "checkout", "validate").returncode == 0 and record.read_bytes()[:1] == b"\x01"  # restored
    assert "up to date" in dvc(repo, "status", "validate").stdout

    check = mnist(repo, "check-cache")
    assert check.returncode == 1 and f"error: {cached}: corrupt" in check.stderr and " 1 corrupt" in check.stderr
    stage = dvc(repo, "repro", "--single-item", "--force", "prepare")
    assert stage.returncode != 0 and "Traceback" not in stage.stdout, stage.stdout[-3000:]
    assert "error: prepare: data/validated/validation.json: corrupt record" in stage.stdout, stage.stdout[-3000:]

    removed = mnist(repo, "check-cache", "--remove")
    assert removed.returncode == 1 and "removed" in removed.stderr and not cached.exists()
    record.unlink()
    again = dvc(repo, "repro", "validate")
    assert again.returncode == 0 and record.is_file() and hashlib.md5(record.read_bytes()).hexdigest() == md5
    assert mnist(repo, "check-cache").returncode == 0
