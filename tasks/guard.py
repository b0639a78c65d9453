"""guard: refuse an output folder that would delete what the project keeps, before DVC deletes anything.

DVC deletes a stage's output folder before it runs the stage, so `dvc exp run -S paths.demo=registry`
deleted every registered version before the demo stage could say a word. This stage runs first (every
other stage depends on its output): it checks every `paths` value (`ProjectFiles.check_kept`: not the project
root; not, not inside and not containing the registry, the download cache, git's, DVC's or the virtual
environment's folder, another output's folder or a git-tracked folder other than the output's own) and
fails in one line, so DVC stops before any stage that would delete. Its output never changes, so a
`paths` change re-runs nothing else by itself.

It also checks every section of params.yaml and every catalogue entry, and depends on the file itself:
DVC compares a param's old and new values with Python's `==`, so `-S train.epochs=true` (True == 1) re-ran
no stage and recorded an experiment with a value no stage accepts; any edit of the file re-runs the guard.
And it refuses a `train.backend` this interpreter lacks (JAX or PyTorch outside .venv-backends), so the
stages before train do not run first.
"""

from __future__ import annotations

from typing import Any

from mnist_pipeline import backends
from mnist_pipeline.catalogue import model_spec
from mnist_pipeline.config import (
    DataParams,
    DemoParams,
    DistortionsParams,
    EvaluateParams,
    FeaturesParams,
    FetchParams,
    PrepareParams,
    RegistryParams,
    ReportParams,
    ResizeParams,
    TrainParams,
    ValidateParams,
    parse_section,
)
from mnist_pipeline.files import write_json
from mnist_pipeline.project_files import GUARD_DIR, ProjectFiles
from tasks import log, run

SECTIONS = {"data": DataParams, "fetch": FetchParams, "validate": ValidateParams, "prepare": PrepareParams,
            "resize": ResizeParams, "features": FeaturesParams, "train": TrainParams, "distortions": DistortionsParams,
            "evaluate": EvaluateParams, "report": ReportParams, "demo": DemoParams, "registry": RegistryParams}


def main(params: dict[str, Any], files: ProjectFiles) -> None:
    """`run` has checked the folders (check_inside, check_kept); check every section and catalogue entry, and
    record that, always with the same bytes."""
    for name, section in SECTIONS.items():
        parse_section(params, name, section)
    backends.check_installed(parse_section(params, "train", TrainParams).backend)  # before any stage runs
    for entry in params.get("models") or {}:
        model_spec(params["models"], entry)
    write_json(files.root / GUARD_DIR / "paths.json", {"checked": "paths: every output folder is its own"})
    log(f"guard: {len(files.paths.model_dump())} output folders, {len(SECTIONS)} params sections and "
        f"{len(params.get('models') or {})} catalogue entries checked")


if __name__ == "__main__":
    run("guard", main, __doc__)
