"""What the `mnist` subcommands share: the registry option, and how an error is said (one line, exit 1)."""

from __future__ import annotations

from pathlib import Path

import typer

from mnist_pipeline.errors import PipelineError

ROOT_OPTION = typer.Option(Path("registry"), "--root", help="the registry folder (params.yaml registry.dir)")


def one_line(text: str) -> str:
    """`text` with control characters (a newline in a file name, say) escaped, so it prints as one line."""
    return "".join(char if char.isprintable() else repr(char)[1:-1] for char in text)


def fail(exc: PipelineError | OSError) -> None:
    """One `error:` line and exit 1; an OSError (a read-only or full registry) names its file and reason."""
    if isinstance(exc, OSError):
        exc = PipelineError(f"cannot write {exc.filename or 'the registry'}: {exc.strerror or exc}")
    typer.echo(f"error: {one_line(str(exc))}", err=True)
    raise typer.Exit(1)
