"""The edge: reading and writing stage files safely.

Writes are atomic (a temporary file in the same folder, then `os.replace`), so a
failed or killed stage never leaves a half-written artifact. `.npz` files are
written byte-for-byte deterministically (fixed zip timestamps), so the same arrays
always give the same file hash and DVC skips what did not change. Loading never
unpickles (`allow_pickle=False`).
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import zipfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from mnist_pipeline.errors import PipelineError

RAW_KEYS = ("x_train", "y_train", "x_test", "y_test")
_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temporary path beside `path`; move it into place only on success."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
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
        if exc.filename is None or exc.filename == str(tmp):  # name the artifact, not our temporary file
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
    return json.loads(path.read_text())


def save_npz(path: Path, arrays: Mapping[str, np.ndarray]) -> None:
    """Write an uncompressed `.npz` atomically and deterministically."""
    with atomic_path(path) as tmp:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as archive:
            for name, array in arrays.items():
                info = zipfile.ZipInfo(f"{name}.npy", date_time=_ZIP_EPOCH)
                with archive.open(info, "w", force_zip64=True) as member:
                    np.lib.format.write_array(member, np.asarray(array), allow_pickle=False)


def load_npz(path: Path, keys: tuple[str, ...] | None = None) -> dict[str, np.ndarray]:
    """Load every array (or `keys`) of an `.npz` without unpickling anything.

    Raises PipelineError naming the file for: a missing file, a corrupt or
    truncated archive, pickled object arrays, and missing keys.
    """
    if not path.is_file():
        raise PipelineError(f"file not found: {path}")
    with open(path, "rb") as handle:
        if handle.read(4) != b"PK\x03\x04":
            raise PipelineError(f"{path}: not an .npz archive (no zip header)")
    try:
        with np.load(path, allow_pickle=False) as archive:
            found = tuple(archive.files)
            wanted = keys if keys is not None else found
            missing = [key for key in wanted if key not in found]
            if missing:
                raise PipelineError(
                    f"{path}: missing keys {missing}; expected {list(wanted)}, found {list(found)}"
                )
            return {key: archive[key] for key in wanted}
    except PipelineError:
        raise
    except ValueError as exc:
        if "Object arrays" in str(exc):
            raise PipelineError(
                f"{path}: holds pickled Python objects; refused (loaded with allow_pickle=False)"
            ) from None
        raise PipelineError(f"{path}: not a readable .npz archive ({exc})") from None
    except (zipfile.BadZipFile, OSError, EOFError, KeyError) as exc:
        raise PipelineError(f"{path}: corrupt or truncated .npz archive ({exc})") from None
