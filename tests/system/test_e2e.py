"""`dvc repro` end to end, offline, in a temporary git repository holding this project."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import yaml
from selenium.common.exceptions import TimeoutException

from mnist_pipeline.files import load_npz
from tests.harness import chromium, dvc, make_repo, stage_env

STAGES = ("guard", "fetch", "validate", "prepare", "resize", "features", "train", "evaluate", "report", "demo")


def set_param(repo: Path, section: str, key: str, value: object) -> None:
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params[section][key] = value
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def drawn_plots(page: Path, profile: Path, wait: float = 20) -> tuple[int, int]:
    """(plots drawn, vega plots on the page) of a `dvc plots show` page opened offline in headless Chromium."""
    from selenium.webdriver.support.ui import WebDriverWait

    with chromium(profile, window="1200,2000", offline=True) as driver:
        driver.get(page.as_uri())
        count = "return document.querySelectorAll('body > div[id]').length;"
        drawn = ("return [...document.querySelectorAll('body > div[id]')].filter(d => [...d.querySelectorAll("
                 "'canvas, svg')].some(e => e.getBoundingClientRect().width > 100)).length;")
        try:
            WebDriverWait(driver, wait).until(lambda d: d.execute_script(drawn) == d.execute_script(count))
        except TimeoutException:
            pass  # counted below
        return driver.execute_script(drawn), driver.execute_script(count)


@pytest.mark.e2e
def test_defaults_on_the_mnist_sample_then_nothing_reruns(tmp_path: Path):
    repo = make_repo(tmp_path)
    set_param(repo, "train", "epochs", 2)  # the default model (CNN), shortened
    first = dvc(repo, "repro")
    assert first.returncode == 0, first.stdout[-3000:]
    for stage in STAGES:
        assert f"Running stage '{stage}'" in first.stdout
    assert "fetch: mnist from source 'offline' (auto)" in first.stdout
    assert "5,000 images (4,000 train / 1,000 test)" in first.stdout
    lock = yaml.safe_load((repo / "dvc.lock").read_text())
    assert set(lock["stages"]) == set(STAGES)
    metrics = json.loads((repo / "evaluation/metrics.json").read_text())
    assert metrics["accuracy"] > 0.8  # two CNN epochs on 3,600 real digits
    assert (repo / "report/report.md").is_file() and not (repo / "reports/mnist/cnn").exists()  # ad hoc run
    demo = json.loads((repo / "demo/demo.json").read_text())  # the single neuron: its own stage and report
    assert abs(demo["prediction"] - 19) < 0.1
    assert "predict(10)" in (repo / "demo/report.md").read_text()

    second = dvc(repo, "repro")
    assert second.returncode == 0, second.stdout
    for stage in STAGES:
        assert f"Stage '{stage}' didn't change, skipping" in second.stdout
    assert "Running stage" not in second.stdout
    shown = dvc(repo, "metrics", "show")
    assert "evaluation/metrics.json" in shown.stdout and "accuracy" in shown.stdout
    assert "failed to load" not in shown.stdout, shown.stdout

    # `dvc exp show` in a 200-column terminal: DVC's pager shows the table at full width, a terminal its first
    # 200 columns; those hold the experiment, its test accuracy and the params that name the run
    table = subprocess.run(["dvc", "exp", "show", "--no-pager"], cwd=repo, env={**stage_env(), "COLUMNS": "3000"},
                           capture_output=True, text=True, timeout=300)
    header = next(line for line in table.stdout.splitlines() if "Experiment" in line)
    for name in ("Experiment", " accuracy ", "data.dataset", "train.model", "train.epochs", "train.seed"):
        assert name in header[:200], (name, header[:400])
    assert "train.accuracy" not in header and "accuracy_rotation" not in header  # dvclive's and the distortions'

    # `dvc plots show` offline, as a person sees it in headless Chromium that reaches nothing but loopback: the
    # project's template (.dvc/config) draws every plot; DVC's own page, which loads vega from a CDN, draws none
    from dvc_render.html import PAGE_HTML
    (repo / "cdn-page.html").write_text(PAGE_HTML)
    for folder, extra in (("plots_ours", []), ("plots_cdn", ["--html-template", str(repo / "cdn-page.html")])):
        made = dvc(repo, "plots", "show", "-o", folder, *extra)
        assert made.returncode == 0, made.stdout
    drawn, plots = drawn_plots(repo / "plots_cdn" / "index.html", tmp_path / "cdn", wait=5)
    assert drawn == 0 and plots == 5  # the check can fail: four learning curves and the confusion matrix, blank
    assert drawn_plots(repo / "plots_ours" / "index.html", tmp_path / "ours") == (5, 5)

    # identical work writes identical files: training again from scratch leaves dvc.lock as it was (the model is
    # byte-identical, no record or report holds a time or the git revision), so a re-run leaves git clean
    lock = (repo / "dvc.lock").read_text()
    again = dvc(repo, "repro", "--force", "--downstream", "train")
    assert again.returncode == 0 and "Running stage 'train'" in again.stdout, again.stdout[-3000:]
    assert (repo / "dvc.lock").read_text() == lock
    assert json.loads((repo / "timings/train.json").read_text())["fit_seconds"] > 0  # times live outside DVC


@pytest.mark.e2e
def test_full_fashion_mnist_with_resize_then_a_28x28_model(tmp_path: Path):
    repo = make_repo(tmp_path)
    set_param(repo, "data", "dataset", "fashion_mnist")
    set_param(repo, "train", "model", "vgg16_transfer")
    run = dvc(repo, "repro", "resize")  # the data half only: VGG16 over 70,000 images is a benchmark
    assert run.returncode == 0, run.stdout
    assert "70,000 images (60,000 train / 10,000 test)" in run.stdout
    fetched = json.loads((repo / "data/raw/fetch.json").read_text())
    assert fetched["source"] == "offline" and fetched["origin"] == "/usr/share/datasets/fashion-mnist"
    resized = load_npz(repo / "data/resized/resized.npz", ("x_test",))
    assert resized["x_test"].shape == (10000, 48, 48, 3) and resized["x_test"].dtype.name == "uint8"

    set_param(repo, "train", "model", "fashion_mlp_128")  # a 28x28 model: resize must not do the work
    run = dvc(repo, "repro")
    assert run.returncode == 0, run.stdout[-3000:]
    assert "Stage 'fetch' didn't change, skipping" in run.stdout
    assert "resize: skipped, fashion_mlp_128 takes 28x28 grayscale input" in run.stdout
    assert not (repo / "data/resized/resized.npz").exists()
    prepared = load_npz(repo / "data/prepared/prepared.npz", ("x_train", "x_val"))
    assert prepared["x_train"].shape == (54000, 784) and prepared["x_val"].shape == (6000, 784)  # kind dense: flat
    metrics = json.loads((repo / "evaluation/metrics.json").read_text())
    assert metrics["accuracy"] > 0.8  # the tutorial's net on all of Fashion-MNIST
    report = (repo / "report/report.md").read_text()
    assert "70,000" in report and "Ankle boot" in report
