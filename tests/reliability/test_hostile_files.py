"""Hostile data files: small files on disk that declare, or inflate to, far more than they hold.

Each file is made here, fed to the real stage (`python -m tasks.fetch` or `tasks.validate`) in a
temporary project, and must be refused with one line `error: <stage>: ...` and exit 1, within
SECONDS (start-up included), with the stage's own peak RSS under MEMORY_MB, and with nothing
written to the project (no output folder, no timing). The measured numbers are printed (`-s`).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import signal
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from mnist_pipeline.config import ValidateParams
from mnist_pipeline.data import sources
from mnist_pipeline.data.validation import validate_arrays
from mnist_pipeline.errors import PipelineError
from mnist_pipeline.files import save_npz
from tests.harness import stage_env, write_params

MEMORY_MB = 200  # peak RSS of a refusing stage (measured: fetch 45 MB, validate 90 MB)
SECONDS = 20  # wall time of a refusal, interpreter start-up included (they take about a second)
SMALL_LIMITS = {"max_images": 10_000, "max_megabytes": 20}  # so that a 20 MB inflate already passes them
MB = 10**6

pytestmark = pytest.mark.bad_input


# --- running a stage and measuring it -----------------------------------------------------


@dataclass(frozen=True)
class Run:
    returncode: int
    stderr: str
    seconds: float
    peak_mb: float  # the stage process's own peak resident memory


# The stage is started by a small launcher, so that the peak RSS measured is the stage's own: Linux
# carries a forked child's RSS before its exec (here pytest's, 150 MB and growing) into ru_maxrss.
LAUNCHER = """
import os, resource, subprocess, sys
address_space, report, *command = sys.argv[1:]
if int(address_space):
    resource.setrlimit(resource.RLIMIT_AS, (int(address_space), int(address_space)))
child = subprocess.Popen(command)
_, status, usage = os.wait4(child.pid, 0)
with open(report, "w") as handle:
    handle.write(str(usage.ru_maxrss))
sys.exit(os.waitstatus_to_exitcode(status) % 256)
"""


def run_measured(stage: str, project: Path, address_space: int = 0) -> Run:
    """Run `python -m tasks.<stage>` in `project` as DVC would, and measure its time and peak RSS.

    A stage still running after 3 x SECONDS is killed (an endless loop fails the test, not the suite).
    `address_space`: an RLIMIT_AS for the stage (0: none), to make a real MemoryError happen.
    """
    env = {**stage_env(), "OPENBLAS_NUM_THREADS": "1"}
    with tempfile.TemporaryDirectory() as scratch:
        report, err = Path(scratch) / "maxrss", Path(scratch) / "stderr"
        command = [sys.executable, "-c", LAUNCHER, str(address_space), str(report), sys.executable, "-m",
                   f"tasks.{stage}"]
        started = time.monotonic()
        with open(err, "wb") as stderr:
            launcher = subprocess.Popen(command, cwd=project, env=env, stdout=subprocess.DEVNULL, stderr=stderr,
                                        start_new_session=True)
            try:
                launcher.wait(timeout=3 * SECONDS)
            except subprocess.TimeoutExpired:
                os.killpg(launcher.pid, signal.SIGKILL)
                launcher.wait()
        seconds = time.monotonic() - started
        peak_kb = int(report.read_text()) if report.is_file() else float("nan")
        return Run(launcher.returncode, err.read_text(errors="replace"), seconds, peak_kb / 1024)


def snapshot(project: Path) -> dict[str, str]:
    """Every file under the project with its sha256."""
    return {str(p.relative_to(project)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(project.rglob("*")) if p.is_file()}


def assert_refused(run: Run, stage: str, expect: str, project: Path, before: dict[str, str]) -> None:
    """One `error: <stage>:` line containing `expect`, exit 1, no traceback, in bounds, nothing written."""
    errors = [line for line in run.stderr.splitlines() if line.startswith("error:")]
    assert run.seconds < SECONDS, f"ran {run.seconds:.1f} s:\n{run.stderr[-3000:]}"
    assert run.peak_mb < MEMORY_MB, f"peak memory {run.peak_mb:.0f} MB:\n{run.stderr[-3000:]}"
    assert run.returncode == 1 and len(errors) == 1 and "Traceback" not in run.stderr, \
        f"exit {run.returncode} after {run.seconds:.1f} s:\n{run.stderr[-3000:]}"
    assert errors[0].startswith(f"error: {stage}: ") and expect in errors[0], errors[0]
    assert snapshot(project) == before, "the refusing stage wrote into the project"
    print(f"\n  {stage} refused in {run.seconds:.2f} s, peak {run.peak_mb:.0f} MB: {errors[0][:160]}")


# --- making hostile files ------------------------------------------------------------------------


def zeros(n: int, chunk: int = 1 << 24) -> Iterator[bytes]:
    """`n` zero bytes in chunks of at most 16 MiB: they deflate about 1000 to 1."""
    block = bytes(chunk)
    for start in range(0, n, chunk):
        yield block[: min(chunk, n - start)]


def npy_header(descr: str, shape: tuple[int, ...]) -> bytes:
    """A version 1.0 .npy header declaring `descr` and `shape`; the data that follows is the caller's."""
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": descr, "fortran_order": False, "shape": shape})
    return header.getvalue()


def npy_bytes(array: np.ndarray) -> bytes:
    member = io.BytesIO()
    np.lib.format.write_array(member, array, allow_pickle=False)
    return member.getvalue()


def write_npz(path: Path, members: dict[str, Iterable[bytes]], deflate: bool = True) -> Path:
    """An .npz whose members are the given byte chunks, deflated (level 9) or stored."""
    compression = zipfile.ZIP_DEFLATED if deflate else zipfile.ZIP_STORED
    with zipfile.ZipFile(path, "w", compression, compresslevel=9 if deflate else None) as archive:
        for key, chunks in members.items():
            with archive.open(f"{key}.npy", "w", force_zip64=True) as member:
                for chunk in chunks:
                    member.write(chunk)
    return path


def good_members(arrays: dict[str, np.ndarray]) -> dict[str, list[bytes]]:
    return {key: [npy_bytes(value)] for key, value in arrays.items()}


def idx_header(code: int, shape: tuple[int, ...]) -> bytes:
    """IDX magic 00 00 <code> <ndim> and big-endian uint32 dimensions."""
    return bytes([0, 0, code, len(shape)]) + b"".join(d.to_bytes(4, "big") for d in shape)


def write_idx_folder(folder: Path, arrays: dict[str, np.ndarray],
                     replace: dict[str, Iterable[bytes]] | None = None) -> Path:
    """The four gzip IDX files of `arrays`, with any file's bytes swapped for `replace[key]`'s chunks."""
    folder.mkdir(parents=True, exist_ok=True)
    for key, stem in sources.IDX_NAMES.items():
        array = arrays[key].astype(np.uint8)
        chunks = (replace or {}).get(key, [idx_header(0x08, array.shape) + array.tobytes()])
        with gzip.open(folder / f"{stem}.gz", "wb", compresslevel=9) as handle:
            for chunk in chunks:
                handle.write(chunk)
    return folder


def folder_size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.iterdir())


# --- a temporary project ----------------------------------------------------------------------------


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """An empty project folder (params.yaml comes from each test); inputs live beside it, in tmp_path."""
    folder = tmp_path / "project"
    folder.mkdir()
    return folder


def refuse_fetch(project: Path, source: Path, expect: str, **data: object) -> Run:
    """Fetch `source` with `data` params; assert the refusal."""
    write_params(project, {"data": {"dataset": "mnist"}, "fetch": {"source": "path", "path": str(source), **data}})
    before = snapshot(project)
    run = run_measured("fetch", project)
    assert_refused(run, "fetch", expect, project, before)
    return run


def fetched(project: Path, arrays: dict[str, np.ndarray]) -> None:
    """A project where fetch succeeded on `arrays`."""
    save_npz(project.parent / "good.npz", arrays)
    write_params(project, {"data": {"dataset": "mnist"},
                           "fetch": {"source": "path", "path": str(project.parent / "good.npz")}})
    run = run_measured("fetch", project)
    assert run.returncode == 0, run.stderr


# --- 1. a zero-size dtype ---------------------------------------------------------------------------


def test_zero_size_dtype_with_a_huge_shape_is_refused(project: Path, small_raw):
    """x_train declares 10^15 items of |V0: zero bytes to load, then writing it out never ended."""
    members = {**good_members(small_raw), "x_train": [npy_header("|V0", (10**15,))]}
    path = write_npz(project.parent / "void.npz", members)
    assert path.stat().st_size < 200_000
    refuse_fetch(project, path, "dtype |V0 refused")


# --- 2. declared shapes are not trusted -------------------------------------------------------------


def test_npz_declaring_a_billion_images_is_refused_from_its_header(project: Path, small_raw):
    """17 KB on disk; its header declares (10^9, 28, 28) uint8 = 784 GB (was a MemoryError traceback)."""
    members = {**good_members(small_raw), "x_train": [npy_header("|u1", (10**9, 28, 28)), bytes(16_384)]}
    path = write_npz(project.parent / "billion.npz", members, deflate=False)
    assert path.stat().st_size < 700_000  # the 16 KB member, plus the real small slice
    refuse_fetch(project, path, "header declares (1000000000, 28, 28)")


def test_idx_dimensions_multiplying_past_2_to_the_63_are_refused(project: Path, small_raw):
    """2^31 x 2^31 x 4 wraps to 0 in int64: the old size check passed an empty body, then reshape failed."""
    header = idx_header(0x08, (2**31, 2**31, 4))
    folder = write_idx_folder(project.parent / "idx", small_raw, {"x_train": [header]})
    refuse_fetch(project, folder, "declares 2,147,483,648 items")


def test_npz_within_the_byte_limit_but_past_the_image_limit_is_refused(project: Path, small_raw):
    members = {**good_members(small_raw), "x_train": [npy_header("|u1", (30_000, 28, 28)), *zeros(30_000 * 784)]}
    path = write_npz(project.parent / "many.npz", members)
    refuse_fetch(project, path, "more than fetch.max_images=10,000", max_images=10_000)


def test_npz_with_too_large_images_is_refused(project: Path, small_raw):
    members = {**good_members(small_raw), "x_train": [npy_header("|u1", (10, 4096, 4096)), *zeros(10 * 4096**2)]}
    path = write_npz(project.parent / "wide.npz", members)
    refuse_fetch(project, path, "more than fetch.max_image_pixels=4,096")


# --- 3. decompression bombs -------------------------------------------------------------------------


def test_deflate_bomb_npz_is_refused_before_it_inflates(project: Path, small_raw):
    """1 MB on disk, 941 MB inflated, declared honestly: past the default limits, so never inflated
    (was accepted, at twice that in memory)."""
    n = 1_200_000
    members = {**good_members(small_raw), "x_train": [npy_header("|u1", (n, 28, 28)), *zeros(n * 784)]}
    path = write_npz(project.parent / "bomb.npz", members)
    assert path.stat().st_size < 2 * MB
    refuse_fetch(project, path, "more than fetch.max_images=1,000,000")


def test_small_limits_refuse_a_small_bomb(project: Path, small_raw):
    """The same with the limits lowered in params: 31 MB inflated already passes them."""
    n = 40_000
    members = {**good_members(small_raw), "x_train": [npy_header("|u1", (n, 28, 28)), *zeros(n * 784)]}
    path = write_npz(project.parent / "bomb.npz", members)
    refuse_fetch(project, path, "more than fetch.max_images=10,000", **SMALL_LIMITS)


def test_npz_member_inflating_past_its_header_is_refused(project: Path, small_raw):
    """x_train's header declares the real 600 images; the member then inflates 200 MB more (was accepted)."""
    members = {**good_members(small_raw), "x_train": [npy_bytes(small_raw["x_train"]), *zeros(200 * MB)]}
    path = write_npz(project.parent / "padded.npz", members)
    assert path.stat().st_size < 2 * MB
    refuse_fetch(project, path, "holds 200,470,400 bytes of data but its header declares (600, 28, 28)")


def test_gzip_idx_bomb_is_read_no_further_than_its_header(project: Path, small_raw):
    """1 MB of gzip, 1 GB inflated, behind a header declaring the real 600 images (took 2 GB of memory)."""
    images = small_raw["x_train"]
    chunks = [idx_header(0x08, images.shape) + images.tobytes(), *zeros(1000 * MB)]
    folder = write_idx_folder(project.parent / "idx", small_raw, {"x_train": chunks})
    assert folder_size(folder) < 2 * MB
    refuse_fetch(project, folder, "IDX body is longer than the 470,400 bytes its header (600, 28, 28) declares")


def test_gzip_idx_declaring_past_the_limits_is_refused_before_inflating(project: Path, small_raw):
    n = 40_000  # 31 MB of images, honestly declared: past both small limits
    folder = write_idx_folder(project.parent / "idx", small_raw,
                              {"x_train": [idx_header(0x08, (n, 28, 28)), *zeros(n * 784)]})
    refuse_fetch(project, folder, "more than fetch.max_images=10,000", **SMALL_LIMITS)


def test_arrays_together_past_the_byte_limit_are_refused(project: Path, small_raw):
    members = {**good_members(small_raw), "x_train": [npy_header("<f8", (5_000, 28, 28)), *zeros(5_000 * 784 * 8)]}
    path = write_npz(project.parent / "floats.npz", members)
    refuse_fetch(project, path, "more than fetch.max_megabytes=20", **SMALL_LIMITS)


# --- 4. counts come from the images ---------------------------------------------------------------


def test_fetch_counts_images_not_labels_and_validate_refuses_the_mismatch(project: Path, small_raw):
    fetched(project, {**small_raw, "y_train": np.tile(small_raw["y_train"], 4)})  # 600 images, 2,400 labels
    record = (project / "data/raw/fetch.json").read_text()
    assert '"train": 600' in record and '"total_images": 800' in record
    before = snapshot(project)
    run = run_measured("validate", project)
    assert_refused(run, "validate", "600 images vs 2400 labels", project, before)


def test_fetch_logs_the_image_count(project: Path, small_raw):
    save_npz(project.parent / "in.npz", {**small_raw, "y_train": small_raw["y_train"][:5]})
    write_params(project, {"data": {"dataset": "mnist"},
                           "fetch": {"source": "path", "path": str(project.parent / "in.npz")}})
    run = run_measured("fetch", project)
    assert run.returncode == 0 and "800 images (600 train / 200 test)" in run.stderr, run.stderr


# --- 5. odd but small inputs ------------------------------------------------------------------------


@pytest.mark.parametrize("key, expect", [("y_train", "labels have 0 dimensions"),
                                         ("x_train", "image shape is scalar")])
def test_zero_dimensional_arrays_are_refused_in_one_line(project: Path, small_raw, key: str, expect: str):
    fetched(project, {**small_raw, key: np.array(3, np.uint8)})
    before = snapshot(project)
    assert_refused(run_measured("validate", project), "validate", expect, project, before)


CLASS_NAMES = np.array(["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"])


def test_string_labels_are_refused_by_fetch(project: Path, small_raw):
    path = project.parent / "names.npz"
    np.savez(path, **{**small_raw, "y_train": CLASS_NAMES[small_raw["y_train"]]})
    refuse_fetch(project, path, "dtype <U5 refused")


def test_string_labels_are_one_validation_error(small_raw):
    """validate_arrays called on its own (no fetch before it): a PipelineError, not int()'s ValueError."""
    with pytest.raises(PipelineError, match="labels are integers"):
        validate_arrays({**small_raw, "y_train": CLASS_NAMES[small_raw["y_train"]]}, ValidateParams())


# --- 6. output folders stay inside the project ------------------------------------------------------


@pytest.mark.parametrize("folder", ["raw", "timings"])
def test_a_folder_outside_the_project_is_refused_before_the_stage_runs(project: Path, small_raw, folder: str):
    save_npz(project.parent / "good.npz", small_raw)
    outside = {"raw": "../outside/raw", "timings": str(project.parent / "outside" / "timings")}[folder]
    write_params(project, {"fetch": {"source": "path", "path": str(project.parent / "good.npz")},
                           "paths": {folder: outside}})
    before = snapshot(project)
    assert_refused(run_measured("fetch", project), "fetch", f"paths.{folder}=", project, before)
    assert not (project.parent / "outside").exists()


def test_validate_refuses_an_outside_folder_too(project: Path, small_raw):
    fetched(project, small_raw)
    write_params(project, {"fetch": {"source": "path", "path": str(project.parent / "good.npz")},
                           "paths": {"validated": "../outside"}})
    before = snapshot(project)
    assert_refused(run_measured("validate", project), "validate", "outside the project", project, before)
    assert not (project.parent / "outside").exists()


# --- 7. every reader failure is one line ------------------------------------------------------------


def corrupt_deflate(folder: Path, arrays: dict[str, np.ndarray]) -> Path:
    """x_train's deflate stream with bytes in its middle flipped; the zip structure intact."""
    path = write_npz(folder / "flipped.npz", good_members(arrays))
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as archive:
        info = archive.getinfo("x_train.npy")
    local = info.header_offset
    start = (local + 30 + int.from_bytes(data[local + 26 : local + 28], "little")  # past the local header,
             + int.from_bytes(data[local + 28 : local + 30], "little"))  # its file name and its extra field
    data[start + 200 : start + 260] = bytes(b ^ 0x5A for b in data[start + 200 : start + 260])
    path.write_bytes(bytes(data))
    return path


def corrupt_gzip(folder: Path, arrays: dict[str, np.ndarray]) -> Path:
    target = write_idx_folder(folder / "idx", arrays)
    gz = target / f"{sources.IDX_NAMES['x_train']}.gz"
    data = bytearray(gz.read_bytes())
    data[100:160] = bytes(b ^ 0x5A for b in data[100:160])
    gz.write_bytes(bytes(data))
    return target


def unknown_compression(folder: Path, arrays: dict[str, np.ndarray]) -> Path:
    """Every member's compression method patched to 99 (AES) in its local and central headers."""
    path = write_npz(folder / "aes.npz", good_members(arrays))
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as archive:
        for info in archive.infolist():
            data[info.header_offset + 8 : info.header_offset + 10] = (99).to_bytes(2, "little")
    start = 0
    while (start := data.find(b"PK\x01\x02", start)) >= 0:
        data[start + 10 : start + 12] = (99).to_bytes(2, "little")
        start += 4
    path.write_bytes(bytes(data))
    return path


@pytest.mark.parametrize("make, expect", [(corrupt_deflate, "corrupt or truncated .npz archive"),
                                          (corrupt_gzip, "corrupt or truncated gzip"),
                                          (unknown_compression, "not a readable .npz archive")],
                         ids=["bad deflate in npz", "bad deflate in gzip IDX", "unknown zip compression"])
def test_a_broken_compressed_stream_is_one_line(project: Path, small_raw, make, expect: str):
    refuse_fetch(project, make(project.parent, small_raw), expect)


def test_memory_error_while_reading_is_one_line(project: Path):
    """A file within the default limits (600 MB declared) read under an address-space limit too small for it."""
    n = 765_000
    members = {"x_train": [npy_header("|u1", (n, 28, 28)), *zeros(n * 784)],
               "y_train": [npy_bytes(np.zeros(n, np.uint8))],
               "x_test": [npy_bytes(np.zeros((10, 28, 28), np.uint8))], "y_test": [npy_bytes(np.zeros(10, np.uint8))]}
    path = write_npz(project.parent / "big.npz", members)
    write_params(project, {"data": {"dataset": "mnist"},
                           "fetch": {"source": "path", "path": str(path)}})
    probe = subprocess.run([sys.executable, "-c", "import tasks.fetch\nprint(next(line.split()[1] for line in "
                            "open('/proc/self/status') if line.startswith('VmPeak')))"],
                           env={**stage_env(), "OPENBLAS_NUM_THREADS": "1"}, capture_output=True, text=True,
                           check=True)
    baseline = int(probe.stdout) * 1024  # the stage's address space after its imports
    before = snapshot(project)
    run = run_measured("fetch", project, address_space=baseline + 256 * 2**20)
    assert_refused(run, "fetch", "out of memory", project, before)


# --- validate reads only what fetch recorded --------------------------------------------------------


def billion_images(raw: Path, arrays: dict[str, np.ndarray]) -> None:
    write_npz(raw, {**good_members(arrays), "x_train": [npy_header("|u1", (10**9, 28, 28)), bytes(16_384)]},
              deflate=False)


def other_arrays(raw: Path, arrays: dict[str, np.ndarray]) -> None:
    save_npz(raw, {**arrays, "x_train": np.concatenate([arrays["x_train"]] * 2),
                   "y_train": np.concatenate([arrays["y_train"]] * 2)})


@pytest.mark.parametrize("swap, expect", [(billion_images, "header declares (1000000000, 28, 28)"),
                                          (other_arrays, "but fetch recorded [600, 28, 28] uint8")],
                         ids=["declares a billion images", "not the arrays fetch recorded"])
def test_validate_refuses_a_raw_file_unlike_its_fetch_record(project: Path, small_raw, swap, expect: str):
    fetched(project, small_raw)
    swap(project / "data/raw/raw.npz", small_raw)
    before = snapshot(project)
    assert_refused(run_measured("validate", project), "validate", expect, project, before)
