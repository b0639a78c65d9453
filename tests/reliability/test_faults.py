"""The reliability suite: each test injects a real fault and checks nothing is lost or half-written.

Faults here: the training process SIGKILLed mid-epoch inside a deployment run, registrations
SIGKILLed at random moments, a full disk (a real 1 MiB tmpfs) under a stage and under the
registry, and two deployment runs at once. Dropped and corrupted downloads are in
test_download.py; broken inputs in test_bad_inputs.py. The suite prints
`faults survived: N/N, bad inputs refused: M/M, data lost: 0` (tests/conftest.py).
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import psutil
import pytest

from mnist_pipeline import registry
from mnist_pipeline.files import save_npz
from tests.harness import ROOT, prefect, stage_env, versions, write_params

pytestmark = pytest.mark.fault
GATE = registry.Gate(min_accuracy=0.0, tolerance=1.0)
TINY = ["-p", "model=softmax_regression", "-p", "epochs=1", "-p", "max_train_images=500"]  # test_prefect uses mlp_500


def training_processes(served: Path) -> list[psutil.Process]:
    """The `python -m tasks.train` processes that this project's served deployments started (no others)."""
    servers = [p for p in psutil.process_iter(["cmdline", "cwd"])
               if "flows.serve" in (p.info["cmdline"] or []) and p.info["cwd"] == str(served)]
    return [child for server in servers for child in server.children(recursive=True)
            if "tasks.train" in child.cmdline() and "-m" in child.cmdline()]


def test_training_killed_mid_epoch_registers_nothing_and_the_rerun_resumes(prefect_env, served: Path, guard):
    guard(*[p for p in (served / "registry").glob("*/v*")])  # versions from other runs stay intact
    run_args = ["deployment", "run", "train-mnist/mnist", "-p", "model=cnn", "-p", "epochs=8",
                "-p", "max_train_images=2000", "--watch"]
    run = subprocess.Popen(["prefect", *run_args], env=prefect_env, cwd=served, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 600
    while not list((served / "checkpoints").glob("cnn-*/training_metadata.json")):  # an epoch has completed
        assert run.poll() is None, f"run ended before training could be killed: {run.stdout.read()[-3000:]}"
        assert time.monotonic() < deadline, "no checkpoint within 600 s"
        time.sleep(0.1)
    time.sleep(0.3)  # into the next epoch
    victims = training_processes(served)
    assert victims, "no training process to kill"
    for victim in victims:
        victim.send_signal(signal.SIGKILL)
    output = run.communicate(timeout=600)[0]
    assert run.returncode != 0, output[-3000:]
    assert versions(served, "cnn") == []  # the killed run registered nothing
    assert not list((served / "registry" / "cnn").glob(".staging-*")) if (served / "registry/cnn").exists() else True

    rerun = prefect(prefect_env, *run_args, cwd=served)
    assert rerun.returncode == 0, rerun.stdout[-3000:] + rerun.stderr[-3000:]
    assert versions(served, "cnn") == ["v1"]
    record = json.loads((served / "registry/cnn/v1/record.json").read_text())
    assert record["resumed_from_checkpoint"] is True
    assert (served / "registry/cnn/v1/report/report.md").is_file()
    assert not list((served / "checkpoints").glob("cnn-*/training_metadata.json"))  # cleaned after success


def test_two_runs_at_once_both_complete_with_distinct_versions(prefect_env, served: Path, guard):
    guard(*[p for p in (served / "registry").glob("*/v*")])
    before = versions(served, "softmax_regression")
    runs = [subprocess.Popen(["prefect", "deployment", "run", "train-mnist/mnist", *TINY, "-p", f"seed={seed}",
                              "--watch"], env=prefect_env, cwd=served, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True) for seed in (1, 2)]
    outputs = [run.communicate(timeout=900)[0] for run in runs]
    assert all(run.returncode == 0 for run in runs), "\n".join(o[-2000:] for o in outputs)
    after = versions(served, "softmax_regression")
    assert len(after) == len(before) + 2 and len(set(after)) == len(after)
    records = [json.loads((served / f"registry/softmax_regression/{v}/record.json").read_text())
               for v in after[len(before):]]
    assert {r["params"]["train"]["seed"] for r in records} == {1, 2}
    first, second = sorted(records, key=lambda r: r["run_started_at"])
    assert second["run_started_at"] > first["registered_at"]  # the deployment's concurrency limit serialised them
    assert registry.verify(served / "registry") == []


REGISTER_FOREVER = """
import sys
from pathlib import Path
from mnist_pipeline import registry
root, model, report = map(Path, sys.argv[1:4])
for i in range(10_000):
    registry.register(root, "big", model, {"metrics": {"accuracy": 0.5 + (i % 50) / 100}},
                      registry.Gate(0.0, 0.05), attachments={"report": report})
"""


def test_registrations_killed_at_random_moments_leave_a_consistent_registry(tmp_path: Path, guard):
    model = tmp_path / "model.keras"
    model.write_bytes(np.random.default_rng(0).bytes(24 * 2**20))  # 24 MiB: copies take a while
    report = tmp_path / "report"
    report.mkdir()
    (report / "report.md").write_text("# report\n")
    root = tmp_path / "reg"
    registry.register(root, "big", model, {"metrics": {"accuracy": 0.9}}, GATE, attachments={"report": report})
    guard(root / "big" / "v1")
    rng = random.Random(0)
    for _ in range(12):
        process = subprocess.Popen([sys.executable, "-c", REGISTER_FOREVER, str(root), str(model), str(report)],
                                   env=stage_env(), cwd=ROOT)
        time.sleep(rng.uniform(0.3, 2.5))
        process.send_signal(signal.SIGKILL)
        process.wait()
    numbers = registry.versions(root, "big")
    assert len(numbers) > 1 and registry.verify(root) == []
    assert all((root / f"big/v{n}/report/report.md").is_file() for n in numbers)
    listed = subprocess.run([sys.executable, "-m", "mnist_cli", "registry", "list", "--root", str(root)],
                            capture_output=True, text=True, env=stage_env())
    assert listed.returncode == 0 and f"big@v{numbers[-1]}" in listed.stdout
    verified = subprocess.run([sys.executable, "-m", "mnist_cli", "registry", "verify", "--root", str(root)],
                              capture_output=True, text=True, env=stage_env())
    assert verified.returncode == 0 and verified.stdout.startswith(f"ok: {len(numbers)} versions")
    after = registry.register(root, "big", model, {"metrics": {"accuracy": 0.9}}, GATE)  # the lock was released
    assert after["version"] == f"v{numbers[-1] + 1}"
    assert not list((root / "big").glob(".staging-*"))  # the killed registrations' partial copies were removed


@contextlib.contextmanager
def tmpfs(mount: Path, size: str) -> Iterator[Path]:
    """A real tmpfs of `size` at `mount`, unmounted afterwards; needs root, as the set-up does."""
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mount)], capture_output=True,
                          text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=True)


@pytest.fixture
def full_disk(tmp_path: Path) -> Iterator[Path]:
    """A real 1 MiB filesystem (tmpfs)."""
    with tmpfs(tmp_path / "disk", "1m") as mount:
        yield mount


def test_full_disk_under_a_stage_gives_one_line_and_no_half_written_file(tmp_path: Path, mnist_sample, full_disk,
                                                                         run_stage, guard):
    save_npz(tmp_path / "input.npz", mnist_sample)
    assert sum(v.nbytes for v in mnist_sample.values()) > 2**20  # bigger than the disk
    (full_disk / "raw.npz").write_bytes(b"the last good output\n")  # what a failed run must leave alone
    guard(full_disk / "raw.npz")
    write_params(tmp_path, {"data": {"dataset": "mnist"},
                            "fetch": {"source": "path", "path": str(tmp_path / "input.npz")},
                            "paths": {"raw": str(full_disk)}})
    done = run_stage("fetch")
    assert done.returncode == 1
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "No space left on device" in errors[0] and str(full_disk) in errors[0], done.stderr
    assert sorted(p.name for p in full_disk.iterdir()) == ["raw.npz"]  # no temporary or partial file left


def test_full_disk_under_the_registry_leaves_no_version(tmp_path: Path, full_disk, guard):
    model = tmp_path / "model.keras"
    model.write_bytes(np.random.default_rng(1).bytes(300_000))
    registry.register(full_disk, "m", model, {"metrics": {"accuracy": 0.9}}, GATE)
    guard(full_disk / "m" / "v1")
    big = tmp_path / "big.keras"
    big.write_bytes(np.random.default_rng(2).bytes(2 * 2**20))
    with pytest.raises(OSError, match="No space left"):
        registry.register(full_disk, "m", big, {"metrics": {"accuracy": 0.95}}, GATE)
    assert registry.versions(full_disk, "m") == [1] and registry.verify(full_disk) == []
    assert registry.resolve(full_disk, "m@champion") == ("m", 1)
    assert not list((full_disk / "m").glob(".staging-*"))  # the partial copy was removed


FLOW_RUN_STATE = """
import asyncio, sys
from prefect.client.orchestration import get_client
async def main():
    async with get_client() as client:
        run = await client.read_flow_run(sys.argv[1])
        print(run.state_type.value, run.state.message or "")
asyncio.run(main())
"""


def serve(repo: Path, env: dict[str, str]) -> subprocess.Popen:
    """`python -m flows.serve` in `repo`, in its own process group (so the whole host can be killed), once its
    deployments are served."""
    log = open(repo.parent / f"serve-{time.monotonic_ns()}.log", "w")
    process = subprocess.Popen([sys.executable, "-m", "flows.serve"], cwd=repo, env=env, stdout=log,
                               stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 120
    while "train-mnist/mnist" not in prefect(env, "deployment", "ls").stdout:
        assert process.poll() is None and time.monotonic() < deadline, Path(log.name).read_text()[-3000:]
        time.sleep(2)
    return process


def test_a_killed_serving_host_never_blocks_its_deployment(tmp_path_factory):
    """SIGKILL of the serving process group mid-training (the whole host: server of runs, flow run, dvc, the
    stage): the run is marked Crashed by the heartbeat automation without a person, its concurrency slot is
    released, and the next run completes and prunes the worktree the dead run left."""
    from tests.harness import make_repo, prefect_server

    with prefect_server(tmp_path_factory.mktemp("crash-home")) as env:
        repo = make_repo(tmp_path_factory.mktemp("crash-project"))
        host = serve(repo, env)
        started = prefect(env, "deployment", "run", "train-mnist/mnist", "-p", "model=cnn", "-p", "epochs=40",
                          "-p", "max_train_images=2000", cwd=repo)
        flow_run_id = re.search(r"UUID: ([0-9a-f-]{36})", started.stdout).group(1)
        deadline = time.monotonic() + 600
        while not training_processes(repo):
            assert host.poll() is None and time.monotonic() < deadline, "training never started"
            time.sleep(0.5)
        os.killpg(host.pid, signal.SIGKILL)
        host.wait()
        killed_at = time.monotonic()
        stale = [line for line in subprocess.run(["git", "worktree", "list"], cwd=repo, capture_output=True,
                                                 text=True).stdout.splitlines()[1:]]
        assert len(stale) == 1  # the dead run's worktree, left registered and on disk

        state = ""
        while not state.startswith("CRASHED"):
            assert time.monotonic() - killed_at < 300, f"still {state!r} 300 s after the host died"
            time.sleep(5)
            state = subprocess.run([sys.executable, "-c", FLOW_RUN_STATE, flow_run_id], env=env,
                                   capture_output=True, text=True).stdout.strip()
        assert "no heartbeat" in state
        print(f"marked Crashed {time.monotonic() - killed_at:.0f} s after the host died")

        host = serve(repo, env)
        try:
            rerun = prefect(env, "deployment", "run", "train-mnist/mnist", *TINY, "--watch", cwd=repo, timeout=600)
            assert rerun.returncode == 0, rerun.stdout[-3000:] + rerun.stderr[-3000:]  # the slot was released
            listed = subprocess.run(["git", "worktree", "list"], cwd=repo, capture_output=True, text=True).stdout
            assert listed.count("\n") == 1, listed  # the dead run's worktree is gone
            assert not Path(stale[0].split()[0]).exists()
        finally:
            os.killpg(host.pid, signal.SIGTERM)
            host.wait(timeout=60)


@pytest.fixture
def read_only(tmp_path: Path) -> Iterator[Path]:
    """A real read-only filesystem (a tmpfs remounted ro) holding a registry with one version; needs root."""
    with tmpfs(tmp_path / "ro", "4m") as mount:
        model = tmp_path / "model.keras"
        model.write_bytes(b"weights")
        registry.register(mount / "registry", "m", model, {"metrics": {"accuracy": 0.9}}, GATE)
        subprocess.run(["mount", "-o", "remount,ro", str(mount)], check=True)
        yield mount


@pytest.mark.fault
def test_a_read_only_registry_or_output_folder_gives_one_line_naming_the_file(read_only: Path, tmp_path: Path,
                                                                              full_disk: Path):
    """`mnist registry promote` on a read-only registry printed 125 lines ending in `OSError: [Errno 30]`; a stage
    on a read-only project named its temporary file instead of the output; a full disk under the model folder
    left Keras' 2.6 MB temporary `.model.keras.*.keras` behind."""
    import keras

    from mnist_pipeline.training import save_model

    done = subprocess.run([sys.executable, "-m", "mnist_cli", "registry", "promote", "m@v1", "--root",
                           str(read_only / "registry")], capture_output=True, text=True, env=stage_env())
    assert done.returncode == 1 and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert done.stderr.startswith("error: cannot write") and "Read-only file system" in done.stderr

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((784,)), keras.layers.Dense(512), keras.layers.Dense(10)])  # 1.6 MB
    for folder, reason in ((read_only / "registry", "Read-only file system"), (full_disk, "No space left")):
        with pytest.raises(OSError, match=reason) as raised:
            save_model(model, folder / "model.keras")
        assert raised.value.filename == str(folder / "model.keras")  # the output, not a temporary file
    assert list(full_disk.iterdir()) == []  # neither Keras' temporary file nor ours is left
