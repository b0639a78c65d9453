"""validate: pandera schemas over the raw images and labels; stop the pipeline on bad data.

Arrays become small tables first (one row per split, one row per image, one row for the
dataset), computed with vectorised numpy, and pandera checks those tables, so 70,000 images
validate in well under a second. A failure is one line naming each failed check, its split
and a few offending indices; nothing downstream runs. The raw file's headers must match what
fetch recorded (shapes and dtypes), checked before its data is read.
"""

from __future__ import annotations

import time
from typing import Any

from mnist_pipeline.config import ValidateParams, parse_section
from mnist_pipeline.data.validation import check_recorded_headers, validate_arrays
from mnist_pipeline.files import RAW_KEYS, load_npz, read_json, write_json
from mnist_pipeline.project_files import ProjectFiles
from tasks import log, run


def main(params: dict[str, Any], files: ProjectFiles) -> None:
    """Read `validate` and the raw data; write the validation record on success."""
    checks = parse_section(params, "validate", ValidateParams)
    fetched = read_json(files.fetch_record)
    recorded = fetched.get("arrays", {})  # shapes and dtypes fetch wrote: checked on the headers, before any data
    arrays = load_npz(files.raw_data, RAW_KEYS,
                      check=lambda headers: check_recorded_headers(headers, recorded, str(files.raw_data)))
    started = time.perf_counter()
    summary = validate_arrays(arrays, checks)
    seconds = time.perf_counter() - started
    summary.update({"dataset": fetched["dataset"], "source": fetched["source"],
                    "raw_sha256": fetched["raw_file"]["sha256"]})  # no timings: keep the output deterministic
    write_json(files.validation_record, summary)
    dup = summary["duplicates"]
    log(f"validate: {fetched['dataset']}: {len(summary['checks'])} checks passed on "
        f"{sum(r['n_images'] for r in summary['splits'].values()):,} images in {seconds:.2f} s; "
        f"{dup['shared_train_test']} test images duplicated in train")


if __name__ == "__main__":
    run("validate", main, __doc__)
