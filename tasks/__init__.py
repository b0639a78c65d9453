"""The pipeline's stages: one module per DVC stage (and Prefect task), each a thin edge.

A stage module defines `main(params, files)`: it parses its own params section, calls the
library (`mnist_pipeline`), and writes its outputs. `run` is what every stage's
`python -m tasks.<stage>` shares: `--help` (which runs nothing), progress lines on stderr,
one-line errors with exit code 1, and the stage's time in the timings folder.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

import yaml

from mnist_pipeline.config import read_params
from mnist_pipeline.errors import PipelineError
from mnist_pipeline.files import write_json
from mnist_pipeline.project_files import PARAMS_FILE, ProjectFiles

Main = Callable[[dict[str, Any], ProjectFiles], dict[str, Any] | None]  # returns extra timings, if any


def log(message: str) -> None:
    """A progress line on stderr (stdout stays free for data)."""
    print(message, file=sys.stderr, flush=True)


def describe_stage(name: str) -> str:
    """What dvc.yaml says stage `name` reads and writes, with `${...}` filled in from params.yaml."""
    try:
        stage = yaml.safe_load(Path("dvc.yaml").read_text())["stages"][name]
        params = read_params(PARAMS_FILE)
    except (OSError, KeyError, TypeError, PipelineError, yaml.YAMLError):
        return "(run from the project folder to see what dvc.yaml says this stage reads and writes)"

    def fill(text: Any) -> str:
        def value(match: re.Match) -> str:
            found: Any = params
            for part in fill(match.group(1)).split("."):
                found = found.get(part, {}) if isinstance(found, dict) else {}
            return str(found) if found != {} else match.group(0)
        text = next(iter(text)) if isinstance(text, dict) else str(text)
        return re.sub(r"\$\{([^{}]+)\}", value, text)

    deps = [fill(d) for d in stage.get("deps", [])]
    code = [d for d in deps if d.endswith(".py")]
    lines = [f"  params: {', '.join(fill(p) for p in stage.get('params', []))}",
             f"  reads:  {', '.join(d for d in deps if d not in code) or '(no data)'}",
             f"  code:   {', '.join(code)}"]
    for kind in ("outs", "metrics", "plots"):
        if stage.get(kind):
            lines.append(f"  {kind}:{' ' * max(1, 6 - len(kind))}{', '.join(fill(o) for o in stage[kind])}")
    return "as dvc.yaml declares it:\n" + "\n".join(lines)


def parse_arguments(name: str, doc: str | None) -> None:
    """`--help` prints the stage's description and what it reads and writes, then exits: it runs nothing."""
    asked = any(arg in ("-h", "--help") for arg in sys.argv[1:])  # only then read dvc.yaml and params.yaml
    epilog = (f"{describe_stage(name)}\n\nThe stage takes no arguments: its knobs are in {PARAMS_FILE}. "
              f"`dvc repro {name}` runs it and what it needs.") if asked else None
    parser = argparse.ArgumentParser(prog=f"python -m tasks.{name}", description=(doc or "").strip(), epilog=epilog,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.parse_args()


def out_of_memory(exc: BaseException) -> bool:
    """Whether `exc` is a backend's out-of-memory error, told by name (this module imports no backend):
    TensorFlow's ResourceExhaustedError, PyTorch's OutOfMemoryError (CUDA) and its CPU allocator's RuntimeError,
    JAX's runtime error saying RESOURCE_EXHAUSTED."""
    names = {cls.__name__ for cls in type(exc).__mro__}
    if names & {"ResourceExhaustedError", "OutOfMemoryError"}:
        return True
    if names & {"XlaRuntimeError", "JaxRuntimeError"}:
        return "RESOURCE_EXHAUSTED" in str(exc)
    return type(exc) is RuntimeError and "DefaultCPUAllocator: can't allocate memory" in str(exc)


def run(name: str, main: Main, doc: str | None, tensorflow: bool = False) -> NoReturn:
    """Run stage `name`: read params.yaml, call `main`, turn expected failures into one line and exit 1.

    `tensorflow`: the stage loaded Keras' engine (TensorFlow; train's may be JAX or PyTorch), so it ends without
    the interpreter's shutdown (tearing TensorFlow down takes about a second, after everything the stage writes is
    written and closed).
    """
    parse_arguments(name, doc)
    started = time.perf_counter()
    code = 0
    try:
        params = read_params(PARAMS_FILE)
        files = ProjectFiles.from_params(params)
        files.check_inside()  # before the stage runs: nothing is written outside the project
        files.check_kept(params)  # ... nor over what the project keeps (the guard stage checks it before DVC)
        extra = main(params, files) or {}  # e.g. train's fit alone: times live here, never in a DVC output
        seconds = time.perf_counter() - started
        write_json(files.timing(name), {"stage": name, "seconds": round(seconds, 2), **extra})
        log(f"{name}: done in {seconds:.1f} s")
    except PipelineError as exc:
        log(f"error: {name}: {exc}")
        code = 1
    except MemoryError as exc:  # an input larger than this machine holds: one line, not a traceback
        log(f"error: {name}: out of memory" + (f" ({exc})" if str(exc) else ""))
        code = 1
    except OSError as exc:  # full disk, permissions, ...: name the file and the reason
        where = f" {exc.filename}" if exc.filename else ""
        log(f"error: {name}: cannot read or write{where}: {exc.strerror or exc}")
        code = 1
    except Exception as exc:
        if not out_of_memory(exc):
            raise
        # the backend's own (TensorFlow's ResourceExhaustedError: 59 lines): its first line names the tensor's shape
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        first = re.sub(r"^\{\{[^}]*\}\}\s*|^\[enforce fail at [^\]]*\]\s*err == 0\.\s*", "", first)  # TF's, torch's
        log(f"error: {name}: out of memory ({first[:300] or type(exc).__name__})")
        code = 1
    if tensorflow:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)
