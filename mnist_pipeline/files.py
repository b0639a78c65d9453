"""The edge: reading and writing stage files safely.

Writes are atomic (a temporary file in the same folder, then `os.replace`), so a
failed or killed stage never leaves a half-written artifact. `.npz` files are
written byte-for-byte deterministically (fixed zip timestamps), so the same arrays
always give the same file hash and DVC skips what did not change. Loading never
unpickles (`allow_pickle=False`), and reads every member's `.npy` header before any
data: only plain numeric dtypes, and a declared size that matches the member's, so a
small hostile file cannot make a load allocate, inflate or loop past what it declares.
"""

from __future__ import annotations

import hashlib
import json
import lzma
import math
import os
import tempfile
import zipfile
import zlib
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mnist_pipeline.errors import PipelineError, first_line

RAW_KEYS = ("x_train", "y_train", "x_test", "y_test")
_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)
# What any stage's arrays hold (images, labels, indices, features, probabilities): bool, signed and
# unsigned integers, floats. Never objects (pickles), void/structured (a zero-size item turns a huge
# shape into zero bytes), strings, complex or dates.
ALLOWED_KINDS = {"b": "bool", "i": "signed integers", "u": "unsigned integers", "f": "floats"}
_NPY_HEADER_READERS = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}
# what a hostile archive can raise while it is read: a broken zip or deflate/bzip2/lzma stream...
_CORRUPT_ERRORS = (zipfile.BadZipFile, zlib.error, lzma.LZMAError, OSError, EOFError, KeyError)
# ... a bad .npy header or short data (ValueError), an unsupported compression or an encrypted member
_UNREADABLE_ERRORS = (ValueError, NotImplementedError, RuntimeError)


@dataclass(frozen=True)
class ArrayHeader:
    """What an array's header declares, before its data is read."""

    shape: tuple[int, ...]
    dtype: np.dtype

    @property
    def nbytes(self) -> int:
        return math.prod(self.shape) * self.dtype.itemsize  # Python ints: no overflow whatever the header says


HeaderCheck = Callable[[dict[str, ArrayHeader]], None]  # raises PipelineError to refuse, before any data is read


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temporary path beside `path`; move it into place only on success. An OSError about the temporary
    file, or a file named after it (`tmp.with_suffix(...)`), names `path`: the user's file, not ours."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:  # a read-only or full folder
        raise OSError(exc.errno, exc.strerror or str(exc), str(path)) from exc
    os.close(fd)
    tmp = Path(tmp_name)
    tmp.chmod(0o644)  # mkstemp makes 0600; artifacts are meant to be shared
    try:
        yield tmp
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        if exc.filename is None or str(exc.filename).startswith(str(tmp.with_suffix(""))):  # ours: name the artifact
            raise OSError(exc.errno, exc.strerror or str(exc), str(path)) from exc
        raise
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_json(path: Path, payload: Mapping[str, Any]) -> None:
    """Write pretty, key-sorted JSON atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(payload, indent=2, sort_keys=True) + "\n")


def read_json(path: Path) -> dict[str, Any]:
    """Read a JSON file written by an earlier stage."""
    if not path.is_file():
        raise PipelineError(f"missing input {path}: run the stage that writes it first")
    try:
        record = json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise PipelineError(f"{path}: corrupt record ({error}); if it is a DVC output, `dvc repro --force` the "
                            f"stage that writes it (and see docs/guarantees.md on checking DVC's cache)") from None
    if not isinstance(record, dict):
        raise PipelineError(f"{path}: corrupt record (a JSON {type(record).__name__}, not an object)")
    return record


def save_npz(path: Path, arrays: Mapping[str, np.ndarray]) -> None:
    """Write an uncompressed `.npz` atomically and deterministically."""
    with atomic_path(path) as tmp:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as archive:
            for name, array in arrays.items():
                info = zipfile.ZipInfo(f"{name}.npy", date_time=_ZIP_EPOCH)
                with archive.open(info, "w", force_zip64=True) as member:
                    np.lib.format.write_array(member, np.asarray(array), allow_pickle=False)


def check_dtype(dtype: np.dtype, where: str) -> None:
    """Refuse any dtype but plain bool, integers and floats (see ALLOWED_KINDS)."""
    if dtype.hasobject:
        raise PipelineError(f"{where}: holds pickled Python objects; refused (loaded with allow_pickle=False)")
    if dtype.kind not in ALLOWED_KINDS or dtype.fields is not None or dtype.subdtype is not None or not dtype.itemsize:
        raise PipelineError(f"{where}: dtype {dtype.str} refused (allowed: {', '.join(ALLOWED_KINDS.values())})")


def npy_member_header(archive: zipfile.ZipFile, info: zipfile.ZipInfo, where: str) -> ArrayHeader:
    """Read one member's `.npy` header only; refuse a bad dtype or a size that differs from the member's."""
    with archive.open(info) as member:
        version = np.lib.format.read_magic(member)
        if version not in _NPY_HEADER_READERS:
            raise PipelineError(f"{where}: .npy format version {version} not supported")
        shape, _, dtype = _NPY_HEADER_READERS[version](member)
        offset = member.tell()
    check_dtype(dtype, where)
    header = ArrayHeader(tuple(shape), dtype)
    if any(d < 0 for d in header.shape):
        raise PipelineError(f"{where}: header declares a negative dimension {header.shape}")
    held = info.file_size - offset
    if held != header.nbytes:
        raise PipelineError(f"{where}: holds {held:,} bytes of data but its header declares {header.shape} "
                            f"{dtype.str} = {header.nbytes:,} bytes")
    return header


def load_npz(path: Path, keys: tuple[str, ...] | None = None,
             check: HeaderCheck | None = None) -> dict[str, np.ndarray]:
    """Load every array (or `keys`) of an `.npz` without unpickling anything, headers first.

    Every wanted member's header is read and checked (dtype allowed, declared size equal to the
    member's size) and then handed to `check` (a caller's limits) before any data is read; zip
    inflates a member to at most its recorded size. Raises PipelineError naming the file for: a
    missing file, a corrupt or truncated archive, a refused dtype (pickled objects included), a
    size mismatch, missing keys, and whatever `check` refuses.
    """
    if not path.is_file():
        raise PipelineError(f"{path}: not a regular file" if path.exists() else f"file not found: {path}")
    with open(path, "rb") as handle:
        if handle.read(4) != b"PK\x03\x04":
            raise PipelineError(f"{path}: not an .npz archive (no zip header)")
    try:
        with zipfile.ZipFile(path) as archive:
            members = {info.filename.removesuffix(".npy"): info for info in archive.infolist()}  # np.load's names
            wanted = keys if keys is not None else tuple(members)
            missing = [key for key in wanted if key not in members]
            if missing:
                raise PipelineError(
                    f"{path}: missing keys {missing}; expected {list(wanted)}, found {list(members)}"
                )
            headers = {key: npy_member_header(archive, members[key], f"{path}: {key}") for key in wanted}
            if check is not None:
                check(headers)
            arrays = {}
            for key in wanted:
                with archive.open(members[key]) as member:
                    arrays[key] = np.lib.format.read_array(member, allow_pickle=False)
            return arrays
    except PipelineError:
        raise
    except _CORRUPT_ERRORS as exc:
        raise PipelineError(f"{path}: corrupt or truncated .npz archive ({first_line(exc)})") from None
    except _UNREADABLE_ERRORS as exc:
        raise PipelineError(f"{path}: not a readable .npz archive ({first_line(exc)})") from None
