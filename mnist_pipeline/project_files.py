"""Every file a stage reads or writes, named once.

Folders come from the `paths` section of params.yaml (which `dvc.yaml` also reads through
`${paths.*}`); the names of the files inside them are defined here and nowhere else. Stages,
flows, the command line and tests all ask a `ProjectFiles` for a path.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from mnist_pipeline.config import Section, parse_section
from mnist_pipeline.errors import PipelineError

PARAMS_FILE = Path("params.yaml")  # the one file of knobs, at the project root
TRAIN_RECORD = "train.json"  # the train stage's record, beside the model file it describes
REPORT_FILE = "report.md"  # a run's report in its folder: report/, a catalogue's runs/<label>/, a registry version's
CLAIMS_FILE = Path("claims.yaml")  # the tutorials' qualitative claims and the variants that judge them


class Paths(Section):
    """`paths`: the folder of each stage's outputs, relative to the project (no defaults: params.yaml says)."""

    raw: str  # fetch
    validated: str  # validate
    prepared: str  # prepare
    resized: str  # resize
    features: str  # features
    model: str  # train: the model, its record and its predictions
    live: str  # train: dvclive's per-epoch metrics
    checkpoints: str  # train: per-run backups for resuming a killed run (not versioned)
    evaluation: str  # evaluate
    report: str  # report: this workspace's run report and its pictures (a DVC output)
    reports: str  # `mnist compare`: the reference catalogues, <reports>/<dataset>/catalogue.md and runs/<label>/
    demo: str  # demo: the single-neuron model, its record and its report
    timings: str  # seconds of each stage's last successful run (not versioned)


@dataclass(frozen=True)
class ProjectFiles:
    """The project's files under `root` (a project or a workspace), from its `paths` section."""

    paths: Paths
    root: Path = Path(".")

    @classmethod
    def from_params(cls, params: dict[str, Any], root: Path = Path(".")) -> ProjectFiles:
        return cls(parse_section(params, "paths", Paths), root)

    def folder(self, name: str) -> Path:
        return self.root / getattr(self.paths, name)

    def check_inside(self) -> None:
        """Refuse any `paths` folder that is not inside the root as written (`..` and absolute paths count;
        a symlink the project itself made, such as a workspace's shared `checkpoints`, is its choice)."""
        root = Path(os.path.abspath(self.root))
        outside = [f"paths.{name}={value!r}" for name, value in self.paths.model_dump().items()
                   if not Path(os.path.normpath(root / value)).is_relative_to(root)]
        if outside:
            raise PipelineError(f"{', '.join(outside)}: outside the project {root}; stages write only inside it")

    def check_kept(self, params: dict[str, Any]) -> None:
        """Refuse, before DVC or a stage deletes anything, a `paths` folder that is the project root or is,
        contains or lies inside a folder kept for something else (`kept_problems`)."""
        own = committed_paths(self.root)
        problems = kept_problems(self.paths.model_dump(), kept_folders(params, self.root), tracked_folders(self.root),
                                 own)
        if problems:
            more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
            raise PipelineError(f"{problems[0]}{more}: an output folder must be one of its own, since DVC deletes "
                                "it before its stage runs; nothing was deleted")

    # fetch
    @property
    def raw_data(self) -> Path:
        return self.folder("raw") / "raw.npz"  # x_train, y_train, x_test, y_test as found

    @property
    def fetch_record(self) -> Path:
        return self.folder("raw") / "fetch.json"

    # validate
    @property
    def validation_record(self) -> Path:
        return self.folder("validated") / "validation.json"

    # prepare
    @property
    def prepared_data(self) -> Path:
        return self.folder("prepared") / "prepared.npz"

    @property
    def prepare_record(self) -> Path:
        return self.folder("prepared") / "prepare.json"

    # resize
    @property
    def resized_data(self) -> Path:
        return self.folder("resized") / "resized.npz"

    @property
    def resize_record(self) -> Path:
        return self.folder("resized") / "resize.json"

    # features
    @property
    def features_data(self) -> Path:
        return self.folder("features") / "features.npz"

    @property
    def features_record(self) -> Path:
        return self.folder("features") / "features.json"

    # train
    @property
    def model_file(self) -> Path:
        return self.folder("model") / "model.keras"

    @property
    def train_record(self) -> Path:
        return self.folder("model") / TRAIN_RECORD

    @property
    def predictions(self) -> Path:
        return self.folder("model") / "predictions.npz"

    @property
    def live_dir(self) -> Path:
        return self.folder("live")

    @property
    def live_metrics(self) -> Path:
        return self.folder("live") / "metrics.json"  # dvclive's name

    def checkpoint(self, model: str, key: str) -> Path:
        return self.folder("checkpoints") / f"{model}-{key}"

    # evaluate
    @property
    def metrics(self) -> Path:
        return self.folder("evaluation") / "metrics.json"

    @property
    def evaluation_record(self) -> Path:
        return self.folder("evaluation") / "evaluation.json"

    @property
    def confusion_csv(self) -> Path:
        return self.folder("evaluation") / "confusion.csv"

    @property
    def registration(self) -> Path:
        return self.folder("evaluation") / "registration.json"  # a deployment run's registry version (a metric)

    # report: this workspace's run (a DVC output, never committed to git); the reference catalogues under
    # `reports` are written only by `mnist compare`, each run's report copied into its own folder there
    @property
    def report_dir(self) -> Path:
        return self.folder("report")

    @property
    def report(self) -> Path:
        return self.report_dir / REPORT_FILE

    def catalogue_dir(self, dataset: str) -> Path:
        return self.folder("reports") / dataset

    def catalogue_run_dir(self, dataset: str, label: str) -> Path:
        """A catalogue configuration's own report folder: reports/<dataset>/runs/<label>/."""
        return self.catalogue_dir(dataset) / "runs" / label

    def sweep_dir(self, dataset: str, name: str) -> Path:
        return self.folder("reports") / dataset / "sweeps" / name

    # demo
    @property
    def demo_model(self) -> Path:
        return self.folder("demo") / "model.keras"

    @property
    def demo_record(self) -> Path:
        return self.folder("demo") / "demo.json"

    @property
    def demo_report(self) -> Path:
        return self.folder("demo") / "report.md"

    @property
    def reference_demo_report(self) -> Path:
        """Where `mnist compare` puts the demo's report among the reference reports."""
        return self.folder("reports") / "single_neuron" / "report.md"

    # every stage
    def timing(self, stage: str) -> Path:
        return self.folder("timings") / f"{stage}.json"

    @property
    def dvc_lock(self) -> Path:
        return self.root / "dvc.lock"

    @property
    def params_file(self) -> Path:
        return self.root / PARAMS_FILE


GUARD_DIR = "guard"  # the guard stage's output: not a `paths` value, so no run can point it anywhere else

# Folders a `paths` value may never be, contain or lie inside (besides git-tracked ones and other outputs').
KEPT = {".git": "git's folder", ".dvc": "DVC's folder", ".venv": "the virtual environment",
        ".prefect": "the Prefect server's folder", GUARD_DIR: "the guard stage's folder"}


def kept_folders(params: dict[str, Any], root: Path) -> dict[str, str]:
    """Folder (relative, normalised) -> what the project keeps in it: KEPT, the registry, the download cache."""
    registry_dir = (params.get("registry") or {}).get("dir", "registry")
    cache_dir = (params.get("fetch") or {}).get("cache_dir", "data/cache")
    return {**KEPT, os.path.normpath(str(registry_dir)): "the model registry (registry.dir)",
            os.path.normpath(str(cache_dir)): "the download cache (fetch.cache_dir)"}


def tracked_folders(root: Path) -> set[str]:
    """Every folder holding a git-tracked file, with its parents (empty outside a git repository)."""
    done = subprocess.run(["git", "ls-files", "-z"], cwd=root, capture_output=True)
    if done.returncode:
        return set()
    folders = set()
    for name in done.stdout.decode(errors="replace").split("\0"):
        parent = os.path.dirname(name)
        while parent:
            folders.add(parent)
            parent = os.path.dirname(parent)
    return folders


def committed_paths(root: Path) -> dict[str, str]:
    """The `paths` of the committed params.yaml (git HEAD): each output's own folder ({} without git)."""
    done = subprocess.run(["git", "show", f"HEAD:{PARAMS_FILE}"], cwd=root, capture_output=True, text=True)
    try:
        return {k: os.path.normpath(str(v)) for k, v in (yaml.safe_load(done.stdout) or {}).get("paths", {}).items()}
    except (yaml.YAMLError, AttributeError):
        return {}


def overlap(a: str, b: str) -> str | None:
    """How folder `a` overlaps folder `b` ("is", "contains", "lies inside"), or None; both relative, normalised."""
    if a == b:
        return "is"
    if a == "." or b.startswith(a + "/"):
        return "contains"
    if b == "." or a.startswith(b + "/"):
        return "lies inside"
    return None


def kept_problems(paths: dict[str, str], kept: dict[str, str], tracked: set[str], own: dict[str, str]) -> list[str]:
    """Why each `paths` value may not be an output folder: it is the project root, or it is, contains or lies
    inside a folder `kept` for something else, another output's folder, or a git-tracked folder (`tracked`), unless
    it is the folder the committed params give that output (`own`). Pure: relative paths in, one line each out."""
    values = {key: os.path.normpath(str(value)) for key, value in paths.items()}
    problems = []
    # the outputs moved from their own folders first: theirs is the problem the user made
    for key, folder in sorted(values.items(), key=lambda item: item[1] == own.get(item[0])):
        where = f"paths.{key}={paths[key]!r}"
        if folder == ".":
            problems.append(f"{where} is the project root")
            continue
        found = [f"{how} {what} ({name})" for name, what in kept.items() if (how := overlap(folder, name))]
        found += [f"{how} paths.{other}'s folder ({values[other]})" for other in values
                  if other != key and (how := overlap(folder, values[other]))]
        if folder != own.get(key):
            found += [f"{how} the git-tracked folder {name}" for name in sorted(tracked)
                      if (how := overlap(folder, name))]
        if found:
            problems.append(f"{where} {found[0]}")
    return problems
