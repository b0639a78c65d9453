"""`mnist check-reports`: check the reference reports a reader trusts (CI runs it too).

\b
    mnist check-reports            # reports/ of this project
    mnist check-reports --root other/reports

Fails (exit 1, one line per problem) on: a relative link that does not resolve, an absolute machine path
in a report, a catalogue number that differs from its catalogue.json or from the run's own report, a
claim without a verdict, a lesson without its interval, its paired test or three seeds.
"""

from __future__ import annotations

from pathlib import Path

import typer
import yaml

from mnist_pipeline.errors import PipelineError
from mnist_pipeline.layout import CLAIMS_FILE, PARAMS_FILE, Layout
from mnist_pipeline.lessons import load_claims
from mnist_pipeline.reporting.check import check_reports, in_progress


def check(root: Path = typer.Option(None, help="the reports folder (default: params.yaml paths.reports)")) -> None:
    """Check the reference reports; print every problem."""
    params = yaml.safe_load(PARAMS_FILE.read_text())
    folder = root or Layout.from_params(params).folder("reports")
    try:
        claims = load_claims(CLAIMS_FILE, list(params["models"]))
    except PipelineError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(1) from None
    problems = check_reports(folder, claims)
    for problem in problems:
        typer.echo(f"error: {problem}", err=True)
    for line in in_progress(folder):
        typer.echo(f"check-reports: {line} (not judged until it is complete)", err=True)
    pages = len(list(folder.rglob("*.md")))
    typer.echo(f"check-reports: {pages} pages under {folder}, {len(problems)} problems", err=True)
    if problems:
        raise typer.Exit(1)
