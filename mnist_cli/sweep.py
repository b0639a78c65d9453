"""`mnist sweep`: catalogue entries and a grid over model settings as child runs of train-mnist.

\b
    mnist sweep --lee --epochs 3 --max-train-images 2000
    mnist sweep --grid loss=mse,categorical_crossentropy --grid activation=sigmoid,relu --base lee_mse_sigmoid
    mnist sweep --models softmax_regression,mlp_500,cnn --workers 2
    mnist sweep --models mlp_500,cnn --address tcp://scheduler:8786   # an existing Dask cluster

Needs a Prefect server (PREFECT_API_URL): the Dask workers report their child runs to it.
"""

from __future__ import annotations

import typer

from mnist_pipeline.config import read_params
from mnist_pipeline.errors import PipelineError
from mnist_pipeline.prefect_api import api_error
from mnist_pipeline.project_files import PARAMS_FILE
from mnist_pipeline.sweeps import GRID_KEYS, LEE_GRID, check_sweep, configurations, parse_grid


def sweep(
    dataset: str = typer.Option("mnist", help="mnist or fashion_mnist"),
    models: str = typer.Option("", help="comma-separated catalogue entries to run as they are"),
    grid: list[str] = typer.Option([], help=f"KEY=V1,V2 (repeatable; KEY one of {', '.join(GRID_KEYS)}); the "
                                            "configurations are every combination, applied to --base"),
    lee: bool = typer.Option(False, "--lee", help="the Lee tuning grid: loss {mse, categorical_crossentropy} x "
                                                  "activation {sigmoid, relu} x depth {2, 10} (8 configurations)"),
    base: str = typer.Option("lee_mse_sigmoid", help="the catalogue entry the grid changes"),
    name: str = typer.Option("grid", help="the sweep's name: prefixes grid models and names its leaderboard's "
                                          "folder, <reports>/<dataset>/sweeps/NAME"),
    epochs: int = typer.Option(None, help="epochs for every configuration (default: each entry's own)"),
    max_train_images: int = typer.Option(None, help="train on a seeded subset of this many images"),
    seed: int = typer.Option(None, help="training seed for every configuration"),
    workers: int = typer.Option(2, help="LocalCluster worker processes; 0 runs the configurations one after another"),
    address: str = typer.Option(None, help="an existing Dask scheduler, e.g. tcp://10.0.0.5:8786"),
    threads: int = typer.Option(None, help="threads for each configuration's TensorFlow (default: on a "
                                           "LocalCluster the cores divided by --workers, else every core); "
                                           "convolutional models may differ in the last digits between counts"),
) -> None:
    """Run the sweep flow and write its leaderboard (<reports>/<dataset>/sweeps/NAME/leaderboard.md)."""
    from prefect.settings import PREFECT_API_URL

    chosen = [m.strip() for m in models.split(",") if m.strip()]
    try:
        parsed = {**(LEE_GRID if lee else {}), **parse_grid(grid)}
        check_sweep(parsed, name)
        if threads is not None and threads < 1:
            raise PipelineError(f"--threads must be at least 1, not {threads}")
        configurations(read_params(PARAMS_FILE)["models"], chosen, parsed, base, name)
        problem = api_error(PREFECT_API_URL.value())
        if problem:
            raise PipelineError(problem)
    except PipelineError as error:
        typer.echo(f"error: sweep: {error}", err=True)
        raise typer.Exit(1) from None
    from flows.sweep import sweep as sweep_flow

    result = sweep_flow(dataset=dataset, models=chosen, grid=parsed, base=base, name=name, epochs=epochs,
                        max_train_images=max_train_images, seed=seed, workers=workers, address=address,
                        threads=threads)
    typer.echo(f"leaderboard: {result['leaderboard']}")
    if any("failed" in r for r in result["results"]):
        raise typer.Exit(1)
