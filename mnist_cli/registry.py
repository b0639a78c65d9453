"""`mnist registry`: the versioned models the Prefect deployment runs registered.

\b
    mnist registry list                      # every model and version, as a table
    mnist registry show mlp_500@champion     # one version's full record
    mnist registry card mlp_500@champion     # its model card
    mnist registry promote mlp_500@v2        # point champion at v2 by hand
    mnist registry rollback mlp_500          # champion one step back in its history
    mnist registry verify                    # every version intact, every alias valid
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer

from mnist_cli.common import ROOT_OPTION, fail, one_line
from mnist_pipeline import registry
from mnist_pipeline.errors import PipelineError

app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__, rich_markup_mode=None)
def gate_cell(record: dict[str, Any]) -> str:
    """The gate's verdict in a few words: against which champion, and the paired difference with its interval."""
    comparison = record.get("gate_comparison")
    if not isinstance(comparison, dict):
        return "floor only" if "gate_reason" in record else "?"  # no champion to compare with, or below the floor
    verdict, against = comparison.get("verdict", "?"), comparison.get("against", "?")
    low, high = (comparison.get("ci95") or [None, None])[:2]
    if isinstance(low, (int, float)) and isinstance(high, (int, float)):
        return f"{verdict} than {against} ({low:+.1%} to {high:+.1%})"
    return f"{verdict} with {against}"


def list_row(record: dict[str, Any]) -> list[str]:
    """One line of `list`: version, accuracy, blessed, the gate, aliases, dataset, when (what a record lacks shows
    as '?')."""
    metrics = record.get("metrics")
    accuracy = metrics.get("accuracy") if isinstance(metrics, dict) else None
    cells = [record["ref"], f"{accuracy:.4f}" if isinstance(accuracy, (int, float)) else "?",
             "yes" if record.get("blessed") is True else "no", gate_cell(record), ",".join(record["aliases"]),
             record.get("dataset", "?"), record.get("registered_at", "?")]
    return [one_line(str(cell)) for cell in cells]


@app.command("list")
def list_versions(root: Path = ROOT_OPTION) -> None:
    """Every registered version: accuracy, blessed or not, the gate's paired verdict against the champion of the
    time (with the 95% interval of the difference), aliases, dataset, when.

    What is not a readable model version (a stray folder, a version without its record) is skipped
    and named on stderr."""
    records, skipped = registry.listing(root)
    for reason in skipped:
        typer.echo(f"skipped: {one_line(reason)}", err=True)
    rows = [list_row(record) for record in records]
    if not rows:
        typer.echo(f"no models registered in {root}")
        return
    header = ["version", "accuracy", "blessed", "gate", "alias", "dataset", "registered"]
    widths = [max(len(line[i]) for line in [header, *rows]) for i in range(len(header))]
    for line in [header, *rows]:
        typer.echo("  ".join(cell.ljust(width) for cell, width in zip(line, widths)))


@app.command()
def show(ref: str = typer.Argument(..., help="NAME@vN or NAME@champion"), root: Path = ROOT_OPTION) -> None:
    """One version's record (lineage, metrics, gate verdict) as JSON."""
    try:
        name, number = registry.resolve(root, ref)
        typer.echo(json.dumps(registry.read_record(root, name, number), indent=2))
    except PipelineError as exc:
        fail(exc)


@app.command()
def card(ref: str = typer.Argument(..., help="NAME@vN or NAME@champion"), root: Path = ROOT_OPTION) -> None:
    """One version's model card (markdown): what it is for, data, recipe, accuracy, limits, gate, lineage."""
    try:
        name, number = registry.resolve(root, ref)
        path = root / name / f"v{number}" / registry.CARD
        if not path.is_file():
            raise PipelineError(f"{name}@v{number} has no {registry.CARD} (registered before model cards?)")
        typer.echo(path.read_text(), nl=False)
    except (PipelineError, OSError) as exc:
        fail(exc)


@app.command()
def promote(ref: str = typer.Argument(..., help="NAME@vN to become champion"), root: Path = ROOT_OPTION) -> None:
    """Point the champion alias at a version by hand (bypasses the gate; recorded in the alias history)."""
    try:
        typer.echo(f"champion -> {registry.set_alias(root, ref, reason='promoted by hand')}")
    except (PipelineError, OSError) as exc:
        fail(exc)


@app.command()
def rollback(name: str = typer.Argument(..., help="model name"), root: Path = ROOT_OPTION) -> None:
    """Move the champion alias one step back in its history (v3 -> v2 -> v1 on successive rollbacks)."""
    try:
        typer.echo(f"champion -> {registry.rollback(root, name)}")
    except (PipelineError, OSError) as exc:
        fail(exc)


@app.command()
def verify(root: Path = ROOT_OPTION) -> None:
    """Check every version is complete and intact (model sha256 as registered) and every alias points at one."""
    problems = registry.verify(root)
    for problem in problems:
        typer.echo(f"error: {one_line(problem)}", err=True)
    if problems:
        raise typer.Exit(1)
    count = sum(len(registry.versions(root, folder.name)) for folder in registry.model_folders(root))
    typer.echo(f"ok: {count} versions, all complete and intact")

