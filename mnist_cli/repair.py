"""`mnist repair`: put right what a kill left here (a torn dvc.lock or DVC rwlock, HEAD left detached).

\b
    mnist repair        # prints each repair, or that nothing needed one

Run it when a `dvc` command stops at "'./dvc.lock' is invalid" (or "validation failed", or "Unable to
read RWLock-file"), or when git says HEAD is detached after a killed `dvc exp run`. `mnist compare` runs
the same repairs before it starts. Nothing in the working tree is lost: a torn dvc.lock is kept in
.dvc/tmp/dvc.lock.torn.
"""

from __future__ import annotations

from pathlib import Path

import typer

from mnist_pipeline.workspace import repair as repair_workspace


def repair() -> None:
    """Repair this workspace; print each repair."""
    lines = repair_workspace(Path.cwd())
    for line in lines:
        typer.echo(line, err=True)
    if not lines:
        typer.echo("repair: nothing to repair (dvc.lock reads whole; HEAD is where you left it)", err=True)
