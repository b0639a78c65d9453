"""benchmarks/bench_gpu.py: its recipe is params.yaml's, and its small CPU mode runs with no TensorFlow, pydantic or
PyYAML importable (as on a GPU machine that has only PyTorch or JAX, NumPy and Keras)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from benchmarks.bench_gpu import ARRAYS, SPEC
from benchmarks.bench_gpu import model_spec as bench_spec
from mnist_pipeline.catalogue import model_spec
from tests.harness import ROOT, stage_env

BACKENDS_PYTHON = ROOT / ".venv-backends" / "bin" / "python"
# run the benchmark with these modules made unimportable (a None in sys.modules makes `import` raise ImportError)
WITHOUT = ("import runpy, sys\nfor name in {blocked!r}:\n    sys.modules[name] = None\n"
           "sys.argv = ['bench_gpu', *sys.argv[1:]]\nrunpy.run_module('benchmarks.bench_gpu', run_name='__main__')\n")


def test_the_benchmark_recipe_is_the_catalogue_entry_without_augmentation():
    models = yaml.safe_load((ROOT / "params.yaml").read_text())["models"]
    entry = model_spec(models, "modern_cnn").on("fashion_mnist").model_copy(update={"augment": None})
    assert SPEC == entry.model_dump()
    built = bench_spec(SPEC["epochs"])
    assert (built.pool_dropout, built.sparse_labels) == (entry.pool_dropout, entry.sparse_labels)


@pytest.fixture(scope="module")
def fashion_npz(tmp_path_factory, fashion) -> Path:
    """What --write-data writes (written through it: the real Debian files), checked against the fixture."""
    path = tmp_path_factory.mktemp("gpu") / "fashion_mnist.npz"
    made = subprocess.run([sys.executable, "-m", "benchmarks.bench_gpu", "--write-data", str(path)], cwd=ROOT,
                          env=stage_env(), capture_output=True, text=True, timeout=300)
    assert made.returncode == 0, made.stderr[-2000:]
    with np.load(path) as data:
        assert sorted(data.files) == sorted(ARRAYS) and data["x_train"].shape == (60000, 28, 28)
        assert np.array_equal(data["y_test"], fashion["y_test"])
    return path


@pytest.mark.parametrize("backend", ["tensorflow", "torch", "jax"])
def test_small_mode_trains_without_what_a_gpu_machine_may_lack(backend: str, fashion_npz: Path, tmp_path: Path):
    python, blocked = Path(sys.executable), ["pydantic", "yaml"]  # the project's own dependencies, not Keras'
    if backend != "tensorflow":
        if not BACKENDS_PYTHON.is_file():
            pytest.skip("no .venv-backends: bash scripts/setup-backends.sh makes it (scripts/test.sh does)")
        python, blocked = BACKENDS_PYTHON, [*blocked, "tensorflow"]
    out = tmp_path / "result.json"
    ran = subprocess.run([str(python), "-c", WITHOUT.format(blocked=blocked), "--data", str(fashion_npz), "--small",
                          "--json", str(out)], cwd=ROOT, env={**stage_env(), "KERAS_BACKEND": backend},
                         capture_output=True, text=True, timeout=300)
    assert ran.returncode == 0, ran.stdout[-2000:] + ran.stderr[-3000:]
    result = json.loads(out.read_text())
    assert result["backend"] == backend and result["device"] == "CPU" and result["epochs"] == 2
    assert (result["train_images"], result["test_images"]) == (1000, 500)
    assert result["s_per_epoch"] > 0 and result["test_accuracy"] > 0.5  # 2 epochs on 1,000 real images learn
    assert f"small  {backend}" in ran.stdout


def test_a_data_file_that_is_not_the_benchmarks_is_one_line(tmp_path: Path):
    junk, partial = tmp_path / "junk.npz", tmp_path / "partial.npz"
    junk.write_text("not an npz")
    np.savez(partial, x=np.zeros(3))
    for path, words in ((junk, "not a readable .npz"), (partial, "lacks x_train, y_train, x_test, y_test")):
        ran = subprocess.run([sys.executable, "-m", "benchmarks.bench_gpu", "--data", str(path)], cwd=ROOT,
                             env=stage_env(), capture_output=True, text=True, timeout=120)
        assert ran.returncode == 1 and "Traceback" not in ran.stderr, ran.stderr[-2000:]
        lines = ran.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"error: {path}") and words in lines[0], lines
