"""`mnist check-reports`: check the reference reports a reader trusts (CI runs it too).

\b
    mnist check-reports            # reports/ of this project
    mnist check-reports --root other/reports

Fails (exit 1, one line per problem) on: a relative link that does not resolve, an absolute machine path
in a report, a catalogue number that differs from its catalogue.json or from the run's own report, a
claim without a verdict, a lesson without its interval, its paired test or three seeds, and any line of
a catalogue page or lessons.md that differs from the page rendered again from the runs' records (every
verdict, interval, p- and q-value and mean ± sd recomputed), or a recorded verdict its runs do not give,
and a result table marked in README.md or docs/*.md that is not what the records give.
"""

from __future__ import annotations

from pathlib import Path

import typer

from mnist_pipeline.claims import load_claims
from mnist_pipeline.config import EvaluateParams, parse_section, read_params
from mnist_pipeline.errors import PipelineError
from mnist_pipeline.project_files import CLAIMS_FILE, PARAMS_FILE, ProjectFiles
from mnist_pipeline.reporting.check import check_reports, in_progress


def check(root: Path = typer.Option(None, help="the reports folder (default: params.yaml paths.reports)")) -> None:
    """Check the reference reports; print every problem."""
    try:
        params = read_params(PARAMS_FILE)
        claims = load_claims(CLAIMS_FILE, list(params["models"]))
    except PipelineError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(1) from None
    folder = root or ProjectFiles.from_params(params).folder("reports")
    pages = [Path("README.md"), *sorted(Path("docs").glob("*.md"))]  # their marked result tables (blocks.py)
    problems = check_reports(folder, claims, parse_section(params, "evaluate", EvaluateParams).underfit_train_below,
                             [page for page in pages if page.is_file()])
    for problem in problems:
        typer.echo(f"error: {problem}", err=True)
    for line in in_progress(folder):
        typer.echo(f"check-reports: {line} (not judged until it is complete)", err=True)
    pages = len(list(folder.rglob("*.md")))
    typer.echo(f"check-reports: {pages} pages under {folder}, {len(problems)} problems", err=True)
    if problems:
        raise typer.Exit(1)
