"""The `sweep` flow: catalogue entries and a grid over model settings, one leaderboard.

Each configuration is its own child run (the `train-mnist-child` flow: its own workspace, its own
registered version and report), submitted as a Prefect task to a `DaskTaskRunner`: a
`LocalCluster` of `workers` single-threaded worker processes by default, each child's stages held to
its worker's share of the cores (TensorFlow's thread pools), or the scheduler at `address`. `workers=0`
runs them one after another in this process. A child runs the stages up to its report (not the demo).
A configuration that fails fails alone: the leaderboard lists it as failed with its error line.

The shared preprocessing (fetch, validate, and the demo, which needs no data) runs once per dataset, in
the sweep's own step before the fan-out; every child starts from the dvc.lock it wrote, so in the
children those stages are up to date and their outputs are checked out of the shared DVC cache. Grid points are real
catalogue entries (`mnist_pipeline.sweeps`). Started from the command line with `mnist sweep`.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from prefect import flow, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from flows.train_mnist import ROOT, run_stages, train_child
from mnist_pipeline.config import read_params
from mnist_pipeline.errors import PipelineError
from mnist_pipeline.files import atomic_path, write_json
from mnist_pipeline.prefect_api import slug
from mnist_pipeline.project_files import ProjectFiles
from mnist_pipeline.reporting.leaderboard import render_sweep, sweep_png
from mnist_pipeline.run_params import apply_overrides, committed_params, write_params
from mnist_pipeline.sweeps import LEE_GRID, check_sweep, configurations
from mnist_pipeline.worktrees import workspace

SHARED_STAGES = ("fetch", "validate", "demo")  # the stages that do not depend on a child's model
SHARED_TARGETS = ("validate", "demo")  # with what they depend on: fetch
__all__ = ["LEE_GRID", "sweep"]


@task(cache_policy=NO_CACHE)
def shared_preprocessing(dataset: str, lock_path: str) -> list[str]:
    """Fetch and validate the dataset once, before the children start, and the demo (a child does not run
    it, but its experiment holds every stage's outputs); which stages really ran.

    The outputs go to the project's DVC cache and the resulting dvc.lock to `lock_path`, which every
    child starts from, so in the children these stages are up to date.
    """
    with workspace(ROOT) as folder:
        write_params(folder, apply_overrides(read_params(folder / "params.yaml"), {"dataset": dataset}))
        ran = run_stages(str(folder), *SHARED_TARGETS)
        Path(lock_path).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(folder / "dvc.lock", lock_path)
    return ran


@task(cache_policy=NO_CACHE)
def run_configuration(config: dict[str, Any], common: dict[str, Any]) -> dict[str, Any]:
    """One child run (`train-mnist-child`); a failure is returned as a result, so it fails alone."""
    arguments = {k: v for k, v in config.items() if k not in ("label", "point")}
    started = time.perf_counter()
    try:
        result = train_child(**common, **arguments)
    except Exception as error:  # noqa: BLE001 - any child failure is reported on its own row
        line = next((x for x in str(error).splitlines() if x.strip()), type(error).__name__)
        return {"label": config["label"], "point": config.get("point"), "failed": line,
                "seconds": time.perf_counter() - started}
    return {"label": config["label"], "point": config.get("point"), "seconds": time.perf_counter() - started,
            **result}


@flow(name="sweep-children")
def run_children(configs: list[dict[str, Any]], common: dict[str, Any]) -> list[dict[str, Any]]:
    """Submit every configuration to this flow's task runner; results in the configurations' order."""
    futures = [run_configuration.submit(config, common) for config in configs]
    return [future.result() for future in futures]


def warm_up() -> None:
    """Nothing: sent to each new worker, whose unpickling of it imports this module and with it the child flow
    (Prefect, the pipeline's code), the seconds every worker's first child would otherwise start with."""


@contextmanager
def scheduler(workers: int, address: str | None) -> Iterator[str | None]:
    """Where the children go: the Dask scheduler at `address`; or a `LocalCluster` of `workers` single-threaded
    worker processes, started now and warming up (`warm_up`) while the sweep runs its shared preprocessing,
    and stopped at the end; or None (workers 0): one after another in this process."""
    if address or workers == 0:
        yield address
        return
    from distributed import Client, LocalCluster

    logging.getLogger("distributed").setLevel(logging.WARNING)  # the scheduler's chatter, not our progress
    with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None,
                      silence_logs=logging.WARNING) as cluster, Client(cluster) as client:
        workers_at = list(client.scheduler_info()["workers"])
        started = [client.submit(warm_up, workers=[at], pure=False) for at in workers_at]
        yield cluster.scheduler_address
        del started  # held so far: Dask cancels a task whose future is dropped


def child_threads(workers: int, address: str | None, threads: int | None = None) -> int | None:
    """Threads for each child's stages: `threads` if given; else on a LocalCluster the worker's share of this
    machine's cores, so that the children do not fight over them; else None (TensorFlow's default: every
    core of the machine the child runs on)."""
    if threads is not None:
        if threads < 1:
            raise PipelineError(f"threads must be at least 1, not {threads}")
        return threads
    if workers == 0 or address:
        return None
    return max(1, len(os.sched_getaffinity(0)) // workers)


def describe(workers: int, address: str | None, threads: int | None) -> str:
    """How the children ran, for the leaderboard."""
    per_child = f", {threads} thread{'s' if threads > 1 else ''} per child" if threads else ""
    if address:
        return f"on the Dask scheduler at {address}{per_child}"
    return f"on a Dask LocalCluster of {workers} workers{per_child}" if workers else f"one after another{per_child}"


def run_all(configs: list[dict[str, Any]], common: dict[str, Any], address: str | None) -> list[dict[str, Any]]:
    """Every configuration's result: one after another (no address) or on the Dask scheduler at `address`."""
    if address is None:
        return [run_configuration(config, common) for config in configs]
    from prefect_dask import DaskTaskRunner

    return run_children.with_options(task_runner=DaskTaskRunner(address=address))(configs, common)


def write_leaderboard(target: Path, summary: dict[str, Any]) -> str:
    """sweep.json, leaderboard.png and leaderboard.md in `target`; the markdown."""
    write_json(target / "sweep.json", summary)
    sweep_png(target / "leaderboard.png", summary["results"])
    text = render_sweep(summary["name"], summary["dataset"], summary["results"], summary["how"], SHARED_STAGES,
                        summary["shared_ran"], summary["seconds"])
    with atomic_path(target / "leaderboard.md") as tmp:
        tmp.write_text(text)
    return text


@flow(name="sweep", log_prints=True)
def sweep(dataset: str = "mnist", models: list[str] | None = None, grid: dict[str, list[Any]] | None = None,
          base: str = "lee_mse_sigmoid", name: str = "grid", epochs: int | None = None,
          max_train_images: int | None = None, seed: int | None = None, workers: int = 2,
          address: str | None = None, threads: int | None = None) -> dict[str, Any]:
    """Run catalogue entries and/or a grid over model settings as child runs; write one leaderboard.

    `threads`: for each child's stages (`child_threads`). Dense models give the same metrics with any
    count; convolutions may differ in the last digits, so compare runs made with the same count."""
    params = committed_params(ROOT)
    check_sweep(grid or {}, name)
    configs = configurations(params["models"], list(models or []), dict(grid or {}), base, name)
    common = {k: v for k, v in {"dataset": dataset, "epochs": epochs, "max_train_images": max_train_images,
                                "seed": seed, "threads": child_threads(workers, address, threads)}.items()
              if v is not None}
    started = time.perf_counter()
    lock_path = ROOT / ".dvc" / "tmp" / "sweeps" / f"{name}-{uuid.uuid4().hex[:8]}.dvc.lock"
    how = describe(workers, address, common.get("threads"))
    try:
        with scheduler(workers, address) as children_at:
            shared_ran = shared_preprocessing(dataset, str(lock_path))
            print(f"sweep {name}: shared preprocessing of {dataset}: ran {shared_ran or 'nothing (cached)'}; "
                  f"{len(configs)} configurations: {', '.join(c['label'] for c in configs)}")
            results = run_all(configs, {**common, "start_lock": str(lock_path)}, children_at)
    finally:
        lock_path.unlink(missing_ok=True)  # also when a child or the preprocessing failed
    seconds = time.perf_counter() - started
    target = ProjectFiles.from_params(params, ROOT).sweep_dir(dataset, name)
    text = write_leaderboard(target, {"name": name, "dataset": dataset, "how": how, "seconds": round(seconds, 2),
                                      "common": common, "shared_ran": shared_ran, "results": results})
    create_markdown_artifact(key=slug(f"{dataset}-sweep-{name}"), markdown=text, description=f"sweep {name}")
    for r in results:
        shown = r.get("failed") or f"accuracy {r['metrics'].get('accuracy', float('nan')):.4f}, {r['version']}"
        print(f"  {r['label']}: {shown}")
    print(f"sweep {name}: {target / 'leaderboard.md'} ({seconds:.0f} s, {how})")
    if all("failed" in r for r in results):
        raise PipelineError(f"every configuration of sweep {name} failed; see {target / 'leaderboard.md'}")
    return {"leaderboard": str(target / "leaderboard.md"), "seconds": seconds, "how": how, "results": results}
