"""`mnist check-cache`: re-hash DVC's cache and name every object whose bytes changed.

\b
    mnist check-cache            # exit 1 and one line per corrupt object
    mnist check-cache --remove   # ... and remove them, so DVC makes or fetches them again

DVC trusts its cache: an object with a flipped byte is checked out, and `dvc status` says up to date.
Run this after a disk error, a crash of the machine or a copy of the cache, before `dvc push`, and when
a stage says a record it reads is corrupt. After --remove, `dvc status` shows what is missing from the
cache; `dvc repro` (or `dvc pull`, where a remote has it) makes it again.
"""

from __future__ import annotations

from pathlib import Path

import typer

from mnist_pipeline.workspace import cache_folder, corrupt_objects


def check_cache(remove: bool = typer.Option(False, help="remove every corrupt object from the cache")) -> None:
    """Re-hash every object of DVC's cache."""
    cache = cache_folder(Path.cwd())
    total, corrupt = corrupt_objects(cache) if cache.is_dir() else (0, [])
    for path, actual in corrupt:
        action = "removed" if remove else "corrupt"
        typer.echo(f"error: {path}: {action} (its bytes hash to {actual})", err=True)
        if remove:
            path.unlink()
    typer.echo(f"check-cache: {total} objects in {cache}, {len(corrupt)} corrupt"
               + (" (removed: `dvc repro` or `dvc pull` makes them again)" if corrupt and remove else ""), err=True)
    if corrupt:
        raise typer.Exit(1)
