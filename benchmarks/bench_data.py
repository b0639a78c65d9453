"""Benchmark the data half: validate on 70,000 images, and resize ours vs the tutorial's way.

Run from the repository root:  python -m benchmarks.bench_data [--repeats 5] [--json out.json]

Each resize method runs in its own fresh process, so its peak memory (ru_maxrss) is
its own; the figure reported is the peak minus the process's peak after loading the data.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import resource
import statistics
import sys
import time
from typing import Any

import numpy as np


def load_fashion() -> dict[str, np.ndarray]:
    from mnist_pipeline.data.sources import read_fashion_debian

    return read_fashion_debian().arrays


def bench_validate(arrays: dict[str, np.ndarray], repeats: int) -> dict[str, float]:
    """Seconds of validate_arrays over all 70,000 images: best and median of `repeats`."""
    from mnist_pipeline.config import ValidateParams
    from mnist_pipeline.data.validation import validate_arrays

    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        validate_arrays(arrays, ValidateParams())
        times.append(time.perf_counter() - started)
    return {"best_s": min(times), "median_s": statistics.median(times)}


def tutorial_resize(images: np.ndarray, size: int) -> np.ndarray:
    """The tutorial's way: a list comprehension of per-image resize + GRAY2BGR, then float64 / 255."""
    import cv2

    resized = [cv2.cvtColor(cv2.resize(image, (size, size)), cv2.COLOR_GRAY2BGR) for image in images]
    return np.concatenate([arr[np.newaxis] for arr in resized]).astype("float64") / 255


def our_resize(images: np.ndarray, size: int) -> np.ndarray:
    from mnist_pipeline.images import resize_gray_to_rgb

    return resize_gray_to_rgb(images, size)


def _peak_kib() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux


def _resize_worker(method: str, size: int, queue: Any) -> None:
    """In a fresh process: load the data, run one method, report time and memory."""
    images = load_fashion()["x_train"]
    baseline = _peak_kib()
    started = time.perf_counter()
    out = (tutorial_resize if method == "tutorial" else our_resize)(images, size)
    seconds = time.perf_counter() - started
    queue.put({"method": method, "seconds": seconds, "peak_increase_mib": (_peak_kib() - baseline) / 1024,
               "peak_total_mib": _peak_kib() / 1024, "output_mib": out.nbytes / 2**20,
               "output_dtype": str(out.dtype), "output_shape": list(out.shape)})


def run_isolated(method: str, size: int) -> dict[str, Any]:
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    process = context.Process(target=_resize_worker, args=(method, size, queue))
    process.start()
    result = queue.get()
    process.join()
    return result


def same_pixels(images: np.ndarray, size: int) -> int:
    """Max absolute difference, ours (uint8) vs the tutorial's (float64 * 255), on 1,000 images."""
    ours = our_resize(images[:1000], size).astype(np.int16)
    theirs = np.rint(tutorial_resize(images[:1000], size) * 255).astype(np.int16)
    return int(np.abs(ours - theirs).max())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5, help="validate repeats (best and median reported)")
    parser.add_argument("--size", type=int, default=48, help="resize target (the VGG16 tutorial's 48)")
    parser.add_argument("--json", help="also write the figures to this JSON file")
    args = parser.parse_args()

    import cv2

    print(f"command: python -m benchmarks.bench_data {' '.join(sys.argv[1:])}".rstrip())
    print(f"machine: {os.cpu_count()} cores, Python {platform.python_version()}, numpy {np.__version__}, "
          f"OpenCV {cv2.__version__}")
    arrays = load_fashion()
    n_images = sum(len(arrays[k]) for k in ("x_train", "x_test"))
    validate = bench_validate(arrays, args.repeats)
    print(f"\nvalidate, {n_images:,} images: best {validate['best_s']:.3f} s, median {validate['median_s']:.3f} s "
          f"(goal < 5 s: {'pass' if validate['best_s'] < 5 else 'FAIL'})")

    results = {method: run_isolated(method, args.size) for method in ("ours", "tutorial")}
    diff = same_pixels(arrays["x_train"], args.size)
    print(f"\nresize, {len(arrays['x_train']):,} training images to {args.size}x{args.size} RGB "
          "(each method in a fresh process):")
    print(f"{'method':<10}{'seconds':>10}{'peak +MiB':>12}{'output MiB':>12}  dtype")
    for method, r in results.items():
        print(f"{method:<10}{r['seconds']:>10.2f}{r['peak_increase_mib']:>12.0f}{r['output_mib']:>12.0f}  "
              f"{r['output_dtype']}")
    time_ratio = results["tutorial"]["seconds"] / results["ours"]["seconds"]
    memory_ratio = results["tutorial"]["peak_increase_mib"] / results["ours"]["peak_increase_mib"]
    print(f"ratio tutorial/ours: time {time_ratio:.1f}x, peak memory {memory_ratio:.1f}x; "
          f"max pixel difference on 1,000 images: {diff}")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump({"validate": validate, "resize": results, "time_ratio": time_ratio,
                       "memory_ratio": memory_ratio, "max_pixel_difference": diff}, handle, indent=2)


if __name__ == "__main__":
    main()
