"""Reading real handwriting: the catalogue's tutorial CNN (`cnn`) and its modern entry (`modern_cnn`),
trained as params.yaml declares them (seed 42) on the offline MNIST sample through the pipeline's own stages, then
judged on the held-out test images under each distortion of the `distortions` section; what `mnist compare` records
of the two runs and the catalogue's section on them. About 4-5 minutes on 2 cores (modern_cnn's 30 epochs most)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from mnist_pipeline.comparison import collect
from mnist_pipeline.config import read_params
from mnist_pipeline.distortions import NAMES, split_name
from mnist_pipeline.files import load_npz
from mnist_pipeline.lessons import Family
from mnist_pipeline.metrics import class_ids
from mnist_pipeline.paired import paired_difference
from mnist_pipeline.project_files import ProjectFiles
from mnist_pipeline.reporting.check import distortion_problems
from mnist_pipeline.reporting.comparison_page import distortion_rows, distortion_section
from tests.harness import stage_env, workspace, write_params

MODELS = ("cnn", "modern_cnn")  # the tutorial CNN and the modern entry, both kind cnn: one prepared data set


@pytest.fixture(scope="module")
def image_data(tmp_path_factory) -> Path:
    """fetch → validate → prepare once on the MNIST sample, laid out 28x28x1 as both entries take it (resize and
    features only write that they skipped: compare reads their records)."""
    folder = tmp_path_factory.mktemp("image-data")
    write_params(folder, {"train": {"model": "cnn"}})
    for stage in ("fetch", "validate", "prepare", "resize", "features"):
        done = subprocess.run([sys.executable, "-m", f"tasks.{stage}"], cwd=folder, env=stage_env(),
                              capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr[-2000:]
    return folder


def correct_per_image(folder: Path) -> dict[str, np.ndarray]:
    """Per-test-image correctness, clean and under each distortion, recomputed from train's predictions."""
    truth = class_ids(load_npz(folder / "data/prepared/prepared.npz", ("y_test",))["y_test"])
    predictions = load_npz(folder / "model/predictions.npz")
    return {name: predictions[split].argmax(axis=1) == truth
            for name, split in [("none", "test"), *[(n, split_name(n)) for n in NAMES]]}


@pytest.fixture(scope="module")
def trained(image_data: Path, tmp_path_factory) -> dict[str, Path]:
    """cnn and modern_cnn trained, evaluated and reported, each in its own workspace; the seconds each took."""
    folders = {}
    for model in MODELS:
        folder = workspace(image_data, tmp_path_factory.mktemp(model), {"train": {"model": model, "seed": 42}})
        started = time.perf_counter()
        for stage in ("train", "evaluate", "report"):
            done = subprocess.run([sys.executable, "-m", f"tasks.{stage}"], cwd=folder, env=stage_env(),
                                  capture_output=True, text=True, timeout=1800)
            assert done.returncode == 0, f"{model} {stage}: {done.stderr[-2000:]}"
        (folder / "seconds.txt").write_text(f"{time.perf_counter() - started:.0f}")
        folders[model] = folder
    return folders


# The first modern_cnn (batch norm; augmentation by shifts, rotations and zoom) was below cnn on four of the seven
# distortions (seed 42, 2026-11-26): thick -7.5, thin -2.8, low resolution -24.8 and uneven lighting -83.4 points
# (it called every unevenly lit digit an 8). Without batch norm and with a brightness augmentation it is not.
def test_the_modern_entry_is_not_worse_than_the_tutorial_cnn_on_any_distortion(trained: dict[str, Path]):
    correct, evaluations, seconds = {}, {}, {}
    for model, folder in trained.items():
        seconds[model] = float((folder / "seconds.txt").read_text())
        evaluations[model] = json.loads((folder / "evaluation/evaluation.json").read_text())
        correct[model] = correct_per_image(folder)
        # evaluate's numbers are the predictions' numbers
        for name in NAMES:
            found = evaluations[model]["distortions"][name]
            assert found["correct"] == int(correct[model][name].sum()) and found["total"] == len(correct[model][name])

    def accuracy(model: str, name: str) -> str:
        if name == "none":
            low, high = evaluations[model]["intervals"]["test"]["ci95"]
        else:
            low, high = evaluations[model]["distortions"][name]["ci95"]
        return f"{correct[model][name].mean():.2%} ({low:.1%}-{high:.1%})"

    rows = []
    for name in ("none", *NAMES):
        paired = paired_difference([correct["cnn"][name]], [correct["modern_cnn"][name]])
        rows.append(f"| {name} | {accuracy('cnn', name)} | {accuracy('modern_cnn', name)} | "
                    f"{paired['difference'] * 100:+.1f} points ({paired['ci95'][0] * 100:+.1f} to "
                    f"{paired['ci95'][1] * 100:+.1f}): {'a finding' if paired['finding'] else 'inside the noise'} |")
    table = "\n".join(["| distortion | cnn (95% interval) | modern_cnn (95% interval) | modern_cnn - cnn, paired "
                       "bootstrap over the images (seed 42 only) |", "|---|---|---|---|", *rows,
                       f"(train + evaluate + report: cnn {seconds['cnn']:.0f} s, "
                       f"modern_cnn {seconds['modern_cnn']:.0f} s)"])
    print(table)
    worse = [name for name in NAMES if correct["modern_cnn"][name].mean() < correct["cnn"][name].mean()]
    assert not worse, f"modern_cnn is below cnn on {worse}:\n{table}"


def test_the_run_report_and_the_catalogue_show_the_distorted_accuracies(trained: dict[str, Path]):
    """The run report's table, `mnist compare`'s record of the run (per-image correctness from the predictions)
    and the catalogue's section, whose numbers check-reports finds equal to the records."""
    runs = {}
    for model, folder in trained.items():
        evaluation = json.loads((folder / "evaluation/evaluation.json").read_text())
        report = (folder / "report/report.md").read_text()
        for name in NAMES:
            found = evaluation["distortions"][name]
            assert f"| {name.replace('_', chr(92) + '_')} | " in report and f"| {found['accuracy']:.2%} |" in report
        runs[model] = [{**collect(ProjectFiles.from_params(read_params(folder / "params.yaml"), folder)),
                        "label": model, "seed": 42}]
        recorded = runs[model][0]["distortions"]
        assert list(recorded) == list(evaluation["distortions"])
        assert all(recorded[n]["accuracy"] == evaluation["distortions"][n]["accuracy"] for n in NAMES)
    page = section(runs)
    print(page)
    assert sum(line.startswith("| ") for line in page.splitlines()) == 1 + 1 + len(NAMES)  # header, clean, each
    data = {"seeds": [42], "results": [run for group in runs.values() for run in group]}
    assert distortion_problems(Path("catalogue"), data, page) == []
    wrong = page.replace(f"{runs['cnn'][0]['distortions']['blur']['accuracy']:.2%}", "12.34%")
    assert distortion_problems(Path("catalogue"), data, wrong)

    older = {model: [{k: v for k, v in run.items() if k != "distortions"} for run in group]
             for model, group in runs.items()}  # recorded before the distortions existed
    assert "Not measured yet" in section(older)
    assert "Not compared" in section({"cnn": runs["cnn"]})


def section(runs: dict[str, list[dict]]) -> str:
    """The catalogue's distortion section over these runs, its tests controlled as a page's are."""
    family = Family(runs)
    distortion_rows(family, 42)
    family.control()
    return "\n".join(distortion_section(family, 42))
