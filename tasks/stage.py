"""What every stage's command-line entry shares: progress lines and one-line errors."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from collections.abc import Callable
from typing import NoReturn

from tasks.errors import PipelineError
from tasks.files import write_json

TIMINGS_DIR = Path("timings")  # seconds of each stage's last successful run, read by the report


def log(message: str) -> None:
    """A progress line on stderr (stdout stays free for data)."""
    print(message, file=sys.stderr, flush=True)


def run_stage(name: str, main: Callable[[], None]) -> int:
    """Run stage `name`'s `main`; turn expected failures into one line and exit code 1."""
    started = time.perf_counter()
    try:
        main()
    except PipelineError as exc:
        log(f"error: {name}: {exc}")
        return 1
    except OSError as exc:  # full disk, permissions, ...: name the file and the reason
        where = f" {exc.filename}" if exc.filename else ""
        log(f"error: {name}: cannot read or write{where}: {exc.strerror or exc}")
        return 1
    seconds = time.perf_counter() - started
    write_json(TIMINGS_DIR / f"{name}.json", {"stage": name, "seconds": round(seconds, 2)})
    log(f"{name}: done in {seconds:.1f} s")
    return 0


def exit_now(code: int) -> NoReturn:
    """End a stage process that loaded TensorFlow without the interpreter's shutdown.

    Tearing TensorFlow down (its thread pools and C++ objects) takes about a second on these machines,
    after everything the stage writes is already written, fsynced and closed (`atomic_path`), and
    nothing of ours or of dvclive's runs at exit. Only the standard streams still need flushing.
    """
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
