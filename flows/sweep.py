"""The `sweep` flow: catalogue entries and a grid over model settings, one leaderboard.

    python -m flows.sweep --grid loss=mse,categorical_crossentropy --grid activation=sigmoid,relu \
        --grid depth=2,10 --base lee_mse_sigmoid --epochs 3 --max-train-images 2000
    python -m flows.sweep --models softmax_regression,mlp_500,cnn --workers 2
    python -m flows.sweep --models mlp_500,cnn --address tcp://scheduler:8786   # an existing Dask cluster

Each configuration is its own child run of the `train-mnist` flow (its own workspace, its
own registered version and report), submitted as a Prefect task to a `DaskTaskRunner`: a
`LocalCluster` of `workers` single-threaded worker processes by default, or the scheduler at
`address`. `workers=0` runs them one after another in this process. A configuration that
fails fails alone: the leaderboard lists it as failed with its error line.

The shared preprocessing (fetch, validate) runs once per dataset, in the sweep's own step
before the fan-out; every child starts from the dvc.lock it wrote, so in the children those
stages are up to date and their outputs are checked out of the shared DVC cache. Each child
records which stages it really ran, and the leaderboard says so. (prepare still runs in each
child, a second or two: its output depends on `train.model`, which differs per child.)

A grid point is a new catalogue entry: the `base` entry with the grid's settings changed
(`depth` N means N hidden layers of the base's first layer width), named from its settings,
e.g. `lee_mse_sigmoid--grid-ce-relu-d10`, so its versions and reports never mix with the
base's; the part before `--` tells the data stages which input layout it takes.
"""

from __future__ import annotations

import itertools
import shutil
import uuid
import logging
import re
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import typer
import yaml
from prefect import flow, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from flows.train_mnist import ROOT, run_stage, slug, train_mnist, workspace, apply_overrides
from tasks.compare import leaderboard_png, leaderboard_rows, lessons
from tasks.catalogue import VARIANT
from tasks.config import MODEL_NAME
from tasks.files import atomic_path, write_json
from tasks.report import md_escape, table

SHARED_STAGES = ("fetch", "validate")
GRID_KEYS = {"loss": str, "activation": str, "depth": int, "optimizer": str, "learning_rate": float,
             "dropout": float, "batch_size": int, "epochs": int}
SHORT = {"mse": "mse", "categorical_crossentropy": "ce", "sparse_categorical_crossentropy": "sce",
         "binary_crossentropy": "bce"}
PREFIX = {"depth": "d", "learning_rate": "lr", "dropout": "do", "batch_size": "bs", "epochs": "e"}
LEE_GRID = {"loss": ["mse", "categorical_crossentropy"], "activation": ["sigmoid", "relu"], "depth": [2, 10]}


def parse_grid(items: list[str]) -> dict[str, list[Any]]:
    """`key=v1,v2` strings into {key: [typed values]}; an unknown key or a bad value is one error line."""
    grid: dict[str, list[Any]] = {}
    for item in items:
        key, _, values = item.partition("=")
        if key not in GRID_KEYS or not values:
            raise ValueError(f"bad --grid {item!r}: use KEY=V1,V2 with KEY one of {', '.join(GRID_KEYS)}")
        try:
            grid[key] = [GRID_KEYS[key](v) for v in values.split(",")]
        except ValueError:
            raise ValueError(f"bad --grid {item!r}: {key} takes {GRID_KEYS[key].__name__} values") from None
    return grid


def variant_name(base: str, prefix: str, point: dict[str, Any]) -> str:
    """A readable slug for a grid point, e.g. lee_mse_sigmoid--grid-ce-relu-d10; refused if it is not a slug.

    `<entry>--` tells the data stages which catalogue entry's input the variant takes.
    """
    parts = [PREFIX.get(k, "") + str(SHORT.get(v, v)).replace(".", "p") for k, v in point.items()]
    name = base + VARIANT + "-".join([prefix, *parts]).lower()
    if not re.match(MODEL_NAME, name):
        raise ValueError(f"grid point {point} gives the model name {name!r}, which is not a slug (a-z, 0-9, _ and -, "
                         f"at most 64 characters); use a shorter --name")
    return name


def model_settings(base: dict[str, Any], point: dict[str, Any]) -> dict[str, Any]:
    """The catalogue fields a grid point changes; `depth` repeats the base's first hidden width."""
    settings = {k: v for k, v in point.items() if k != "depth"}
    if "depth" in point:
        settings["hidden"] = [base.get("hidden", [500])[0]] * point["depth"]
    settings.update({"claimed": "not stated", "claimed_accuracy": None})
    return settings


def configurations(catalogue: dict[str, Any], models: list[str], grid: dict[str, list[Any]], base: str,
                   prefix: str) -> list[dict[str, Any]]:
    """One dict of `train-mnist` arguments per configuration: the named catalogue entries, then the grid."""
    unknown = [m for m in [*models, *([base] if grid else [])] if m not in catalogue]
    if unknown:
        raise ValueError(f"unknown catalogue models {unknown}; the catalogue has: {', '.join(catalogue)}")
    configs = [{"label": m, "model": m} for m in models]
    for values in itertools.product(*grid.values()) if grid else []:
        point = dict(zip(grid, values))
        name = variant_name(base, prefix, point)
        configs.append({"label": name, "model": name, "variant_of": base,
                        "model_settings": model_settings(catalogue[base], point), "point": point})
    labels = [c["label"] for c in configs]
    if len(set(labels)) != len(labels):
        raise ValueError(f"the sweep names a configuration twice: {sorted({x for x in labels if labels.count(x) > 1})}")
    if not configs:
        raise ValueError("nothing to sweep: give --models and/or --grid")
    return configs


@task(cache_policy=NO_CACHE)
def shared_preprocessing(dataset: str, lock_path: str) -> list[str]:
    """Fetch and validate the dataset once, before the children start; which stages really ran.

    The outputs go to the project's DVC cache and the resulting dvc.lock to `lock_path`, which
    every child starts from, so in the children these stages are up to date.
    """
    with workspace(ROOT) as folder:
        apply_overrides(folder, {"dataset": dataset})
        ran = [stage for stage in SHARED_STAGES if run_stage.fn(str(folder), stage)]
        Path(lock_path).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(folder / "dvc.lock", lock_path)
    return ran


@task(cache_policy=NO_CACHE)
def run_configuration(config: dict[str, Any], common: dict[str, Any]) -> dict[str, Any]:
    """One child `train-mnist` run; a failure is returned as a result, so it fails alone."""
    arguments = {k: v for k, v in config.items() if k not in ("label", "point")}
    started = time.perf_counter()
    try:
        result = train_mnist.with_options(flow_run_name=f"sweep-{config['label']}")(**common, **arguments)
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


def task_runner(workers: int, address: str | None) -> Any:
    from prefect_dask import DaskTaskRunner

    logging.getLogger("distributed").setLevel(logging.WARNING)  # the scheduler's chatter, not our progress
    if address:
        return DaskTaskRunner(address=address)
    return DaskTaskRunner(cluster_kwargs={"n_workers": workers, "threads_per_worker": 1, "processes": True,
                                          "dashboard_address": None, "silence_logs": logging.WARNING})


def main_effects(results: list[dict[str, Any]]) -> list[str]:
    """For each grid setting, mean test accuracy at each of its values over the other settings."""
    points = [r for r in results if r.get("point") and "accuracy" in r.get("metrics", {})]
    lines = []
    for key in dict.fromkeys(k for r in points for k in r["point"]):
        levels: dict[Any, list[float]] = {}
        for r in points:
            levels.setdefault(r["point"][key], []).append(r["metrics"]["accuracy"])
        if len(levels) > 1:
            means = ", ".join(f"{md_escape(str(v))} {statistics.mean(a):.1%} (n={len(a)})" for v, a in levels.items())
            best = max(levels, key=lambda v: statistics.mean(levels[v]))
            lines.append(f"**{md_escape(key)}**: mean test accuracy over the other settings: {means}; "
                         f"best: {md_escape(str(best))}.")
    return lines


def render(name: str, dataset: str, results: list[dict[str, Any]], how: str, shared_ran: list[str],
           seconds: float) -> str:
    by_label = {r["label"]: r for r in results}
    ran = {stage: sum(stage in r.get("stages_run", []) for r in results) for stage in SHARED_STAGES}
    parts = [f"# Sweep {md_escape(name)} on {md_escape(dataset)}", "",
             f"{len(results)} configurations, {how}, {seconds:.0f} s wall time; "
             f"{sum('failed' in r for r in results)} failed. Each is a child `train-mnist` run with its own "
             f"registered version and report.", "",
             f"Shared preprocessing: {', '.join(SHARED_STAGES)} ran {len(shared_ran)} time(s) in the sweep's own "
             f"step and " + ", ".join(f"{stage} {n} time(s)" for stage, n in ran.items())
             + " in the children (which otherwise checked the shared outputs out of the DVC cache).", "",
             "![leaderboard](leaderboard.png)", "",
             table(["rank", "configuration", "test accuracy (top-1)", "claimed", "test loss", "train / val accuracy",
                    "parameters", "training"], leaderboard_rows(results)), "",
             table(["configuration", "version", "settings", "diagnosis or error"],
                   [[r["label"], r.get("version", ""), ", ".join(f"{k}={v}" for k, v in (r.get("point") or {}).items()),
                     r.get("diagnosis", r.get("failed", ""))] for r in results]), "",
             "## Lessons, from these numbers", ""]
    found = main_effects(results) + lessons(by_label)
    parts += [f"- {line}" for line in found] or ["- (not enough successful runs to compare)"]
    return "\n".join(parts) + "\n"


@flow(name="sweep", log_prints=True)
def sweep(dataset: str = "mnist", models: list[str] | None = None, grid: dict[str, list[Any]] | None = None,
          base: str = "lee_mse_sigmoid", name: str = "grid", epochs: int | None = None,
          max_train_images: int | None = None, seed: int | None = None, workers: int = 2,
          address: str | None = None) -> dict[str, Any]:
    """Run catalogue entries and/or a grid over model settings as child runs; write one leaderboard."""
    catalogue = yaml.safe_load((ROOT / "params.yaml").read_text())["models"]
    for key in grid or {}:
        if key not in GRID_KEYS:
            raise ValueError(f"unknown grid key {key!r}; use one of {', '.join(GRID_KEYS)}")
    if not re.match(MODEL_NAME, name):
        raise ValueError(f"sweep name {name!r} is not a slug (a-z, 0-9, _ and -)")
    configs = configurations(catalogue, list(models or []), dict(grid or {}), base, name)
    common = {k: v for k, v in {"dataset": dataset, "epochs": epochs, "max_train_images": max_train_images,
                                "seed": seed}.items() if v is not None}
    started = time.perf_counter()
    lock_path = ROOT / ".dvc" / "tmp" / "sweeps" / f"{name}-{uuid.uuid4().hex[:8]}.dvc.lock"
    shared_ran = shared_preprocessing(dataset, str(lock_path))
    common["start_lock"] = str(lock_path)
    print(f"sweep {name}: shared preprocessing of {dataset}: ran {shared_ran or 'nothing (cached)'}; "
          f"{len(configs)} configurations: {', '.join(c['label'] for c in configs)}")
    if workers == 0 and not address:
        how = "one after another"
        results = [run_configuration(config, common) for config in configs]
    else:
        how = f"on the Dask scheduler at {address}" if address else f"on a Dask LocalCluster of {workers} workers"
        results = run_children.with_options(task_runner=task_runner(workers, address))(configs, common)
    seconds = time.perf_counter() - started
    lock_path.unlink(missing_ok=True)
    target = ROOT / "reports" / dataset / "sweeps" / name
    target.mkdir(parents=True, exist_ok=True)
    write_json(target / "sweep.json", {"name": name, "dataset": dataset, "how": how, "seconds": round(seconds, 2),
                                       "common": {k: v for k, v in common.items() if k != "start_lock"}, "shared_ran": shared_ran, "results": results})
    leaderboard_png(target / "leaderboard.png", results)
    text = render(name, dataset, results, how, shared_ran, seconds)
    with atomic_path(target / "leaderboard.md") as tmp:
        tmp.write_text(text)
    create_markdown_artifact(key=slug(f"{dataset}-sweep-{name}"), markdown=text, description=f"sweep {name}")
    for r in results:
        shown = r.get("failed") or f"accuracy {r['metrics'].get('accuracy', float('nan')):.4f}, {r['version']}"
        print(f"  {r['label']}: {shown}")
    print(f"sweep {name}: {target / 'leaderboard.md'} ({seconds:.0f} s, {how})")
    if all("failed" in r for r in results):
        raise RuntimeError(f"every configuration of sweep {name} failed; see {target / 'leaderboard.md'}")
    return {"leaderboard": str(target / "leaderboard.md"), "seconds": seconds, "how": how, "results": results}


cli = typer.Typer(add_completion=False, help=__doc__, rich_markup_mode=None)


def api_error() -> str | None:
    """Why the Prefect API cannot be used, or None: a sweep's workers need a real server, not an ephemeral one."""
    import urllib.request

    from prefect.settings import PREFECT_API_URL

    url = PREFECT_API_URL.value()
    if not url:
        return "PREFECT_API_URL is not set; start a server (bash scripts/prefect-server.sh) and export it"
    try:
        with urllib.request.urlopen(f"{url.rstrip('/')}/health", timeout=10) as answer:
            return None if answer.status == 200 else f"the Prefect API at {url} answered {answer.status}"
    except OSError as error:
        return f"cannot reach the Prefect API at {url} ({error}); is the server running?"


@cli.command()
def main(
    dataset: str = typer.Option("mnist", help="mnist or fashion_mnist"),
    models: str = typer.Option("", help="comma-separated catalogue entries to run as they are"),
    grid: list[str] = typer.Option([], help=f"KEY=V1,V2 (repeatable; KEY one of {', '.join(GRID_KEYS)}); the "
                                            "configurations are every combination, applied to --base"),
    lee: bool = typer.Option(False, "--lee", help="the Lee tuning grid: loss {mse, categorical_crossentropy} x "
                                                  "activation {sigmoid, relu} x depth {2, 10} (8 configurations)"),
    base: str = typer.Option("lee_mse_sigmoid", help="the catalogue entry the grid changes"),
    name: str = typer.Option("grid", help="the sweep's name: prefixes grid models and names reports/<dataset>/sweeps/NAME"),
    epochs: int = typer.Option(None, help="epochs for every configuration (default: each entry's own)"),
    max_train_images: int = typer.Option(None, help="train on a stratified subset of this many images"),
    seed: int = typer.Option(None, help="training seed for every configuration"),
    workers: int = typer.Option(2, help="LocalCluster worker processes; 0 runs the configurations one after another"),
    address: str = typer.Option(None, help="an existing Dask scheduler, e.g. tcp://10.0.0.5:8786"),
) -> None:
    """Run the sweep flow (needs PREFECT_API_URL pointing at a Prefect server; see the README)."""
    try:
        parsed = {**(LEE_GRID if lee else {}), **parse_grid(grid)}
        catalogue = yaml.safe_load((ROOT / "params.yaml").read_text())["models"]
        configurations(catalogue, [m.strip() for m in models.split(",") if m.strip()], parsed, base, name)
        problem = api_error()
        if problem:
            raise ValueError(problem)
    except ValueError as error:
        typer.echo(f"error: sweep: {error}", err=True)
        raise typer.Exit(1) from None
    result = sweep(dataset=dataset, models=[m.strip() for m in models.split(",") if m.strip()], grid=parsed,
                   base=base, name=name, epochs=epochs, max_train_images=max_train_images, seed=seed,
                   workers=workers, address=address)
    typer.echo(f"leaderboard: {result['leaderboard']}")
    if any("failed" in r for r in result["results"]):
        raise typer.Exit(1)


if __name__ == "__main__":
    sys.exit(cli())
