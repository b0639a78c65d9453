"""`mnist registry`: the versioned models the Prefect deployment runs registered.

\b
    mnist registry list                      # every model and version, as a table
    mnist registry show mlp_500@champion     # one version's full record
    mnist registry promote mlp_500@v2        # point champion at v2 by hand
    mnist registry rollback mlp_500          # champion back to where it was before
    mnist registry verify                    # every version intact, every alias valid
"""

from __future__ import annotations

import json
from pathlib import Path

import typer

from mnist_pipeline import registry
from mnist_pipeline.errors import PipelineError

app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__, rich_markup_mode=None)
ROOT_OPTION = typer.Option(Path("registry"), "--root", help="the registry folder (params.yaml registry.dir)")


def fail(exc: PipelineError) -> None:
    typer.echo(f"error: {exc}", err=True)
    raise typer.Exit(1)


@app.command("list")
def list_versions(root: Path = ROOT_OPTION) -> None:
    """Every registered version: accuracy, blessed or not, aliases, dataset, when."""
    rows = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir()) if root.is_dir() else []:
        tags = {v: k for k, v in registry.aliases(root, folder.name).items() if k != "history"}
        for number in registry.versions(root, folder.name):
            record = registry.read_record(root, folder.name, number)
            rows.append([f"{folder.name}@v{number}", f"{record['metrics'].get('accuracy', float('nan')):.4f}",
                         "yes" if record["blessed"] else "no", tags.get(f"v{number}", ""),
                         record.get("dataset", "?"), record["registered_at"]])
    if not rows:
        typer.echo(f"no models registered in {root}")
        return
    header = ["version", "accuracy", "blessed", "alias", "dataset", "registered"]
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        typer.echo("  ".join(str(cell).ljust(width) for cell, width in zip(row, widths)))


@app.command()
def show(ref: str = typer.Argument(..., help="NAME@vN or NAME@champion"), root: Path = ROOT_OPTION) -> None:
    """One version's record (lineage, metrics, gate verdict) as JSON."""
    try:
        name, number = registry.resolve(root, ref)
        typer.echo(json.dumps(registry.read_record(root, name, number), indent=2))
    except PipelineError as exc:
        fail(exc)


@app.command()
def promote(ref: str = typer.Argument(..., help="NAME@vN to become champion"), root: Path = ROOT_OPTION) -> None:
    """Point the champion alias at a version by hand (bypasses the gate; recorded in the alias history)."""
    try:
        typer.echo(f"champion -> {registry.set_alias(root, ref, reason='promoted by hand')}")
    except PipelineError as exc:
        fail(exc)


@app.command()
def rollback(name: str = typer.Argument(..., help="model name"), root: Path = ROOT_OPTION) -> None:
    """Move the champion alias back to the version it pointed at before its last move."""
    try:
        typer.echo(f"champion -> {registry.rollback(root, name)}")
    except PipelineError as exc:
        fail(exc)


@app.command()
def verify(root: Path = ROOT_OPTION) -> None:
    """Check every version is complete and intact (model sha256 as registered) and every alias points at one."""
    problems = registry.verify(root)
    for problem in problems:
        typer.echo(f"error: {problem}", err=True)
    if problems:
        raise typer.Exit(1)
    count = sum(len(registry.versions(root, p.name)) for p in root.iterdir() if p.is_dir()) if root.is_dir() else 0
    typer.echo(f"ok: {count} versions, all complete and intact")

