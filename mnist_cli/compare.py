"""`mnist compare`: run the catalogue on one dataset over several seeds, as DVC experiments, and judge the claims.

\b
    mnist compare --dataset fashion_mnist
    mnist compare --dataset mnist --models mlp_500,mlp_500-raw --seeds 1 --set train.epochs=3
    mnist compare --dataset fashion_mnist --retry-failed   # re-run only what failed or never ran
    mnist compare --dataset mnist --retry-failed --rerun modern_cnn   # ... and modern_cnn, whose recipe changed
    mnist compare --dataset mnist --render   # run nothing: the pages again from catalogue.json (claims.yaml changed)

The configurations are every catalogue entry of params.yaml plus the variants of claims.yaml (an entry
with overrides, such as `mlp_500-raw`: prepare.normalize=false); each runs once per seed of claims.yaml
as a real `dvc exp run` (so `dvc exp show` lists them all afterwards). This command is the only writer of
the reference reports: `reports/<dataset>/catalogue.md` (the tutorials' numbers with verdicts, the lessons
with their paired tests over the seeds, the ladders, every configuration with its cost),
`catalogue.json` (every run's record), `runs/<label>/` (the first seed's own report), and
`reports/lessons.md` (the lessons side by side on every dataset compared so far). A configuration
that fails is shown as failed with its error line; the others still run.
"""

from __future__ import annotations

import typer

from mnist_pipeline import comparison
from mnist_pipeline.config import read_params
from mnist_pipeline.errors import PipelineError
from mnist_pipeline.project_files import PARAMS_FILE, ProjectFiles


def names(text: str) -> list[str]:
    return [name.strip() for name in text.split(",") if name.strip()]


def compare(
    dataset: str = typer.Option("mnist", help="mnist or fashion_mnist"),
    models: str = typer.Option("", help="comma-separated configurations (catalogue entries or claims.yaml "
                                        "variants); empty: all of them"),
    seeds: int = typer.Option(0, help="run only the first N seeds of claims.yaml, none of its extra_seeds (0: all "
                                      "of them); a lesson needs 3"),
    set_: list[str] = typer.Option([], "--set", help="extra params for every run, KEY=VALUE (repeatable)"),
    retry_failed: bool = typer.Option(False, help="keep the successful runs of the last catalogue.json (same dataset "
                                                  "and --set) and run only the failed or missing ones"),
    rerun: str = typer.Option("", help="with --retry-failed: comma-separated configurations to run again even "
                                       "though the last catalogue.json has them (their recipe or the stages changed)"),
    render: bool = typer.Option(False, help="run nothing: render the complete catalogue again from its "
                                            "catalogue.json (after claims.yaml or the report's rules changed)"),
) -> None:
    """Run every configuration once per seed with `dvc exp run`, then write the catalogue and its verdicts."""
    def say(line: str) -> None:
        typer.echo(line, err=True)

    try:  # params.yaml refused in one line before any `dvc` reads it: too large, YAML aliases, not a mapping
        files = ProjectFiles.from_params(read_params(PARAMS_FILE))
        if render:
            comparison.render_again(files, files.catalogue_dir(dataset), say)
            return
        request = comparison.Request(dataset=dataset, models=names(models), seeds=seeds, settings=list(set_),
                                     retry_failed=retry_failed, rerun=names(rerun))
        results = comparison.compare(request, files, say)
    except PipelineError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(1) from None
    if all("failed" in r for r in results):
        raise typer.Exit(1)
