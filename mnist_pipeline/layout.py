"""Every file a stage reads or writes, named once.

Folders come from the `paths` section of params.yaml (which `dvc.yaml` also reads through
`${paths.*}`); the names of the files inside them are defined here and nowhere else. Stages,
flows, the command line and tests all ask a `Layout` for a path.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mnist_pipeline.config import Section, parse_section
from mnist_pipeline.errors import PipelineError

PARAMS_FILE = Path("params.yaml")  # the one file of knobs, at the project root
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
class Layout:
    """The project's files under `root` (a project or a workspace), from its `paths` section."""

    paths: Paths
    root: Path = Path(".")

    @classmethod
    def from_params(cls, params: dict[str, Any], root: Path = Path(".")) -> Layout:
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
        return self.folder("model") / "train.json"

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
