"""params.yaml parsing: unknown keys and wrong types fail loudly, naming the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from mnist_pipeline.config import DataParams, PrepareParams, parse_section, read_params
from mnist_pipeline.errors import PipelineError
from tests.harness import ROOT  # noqa: E402


def test_repository_params_parse():
    params = read_params(ROOT / "params.yaml")
    assert parse_section(params, "data", DataParams).dataset == "mnist"
    assert parse_section(params, "prepare", PrepareParams).val_fraction == 0.1


def test_unknown_key_is_named():
    with pytest.raises(PipelineError, match=r"data\.datset"):
        parse_section({"data": {"datset": "mnist"}}, "data", DataParams)


def test_wrong_type_is_named():
    with pytest.raises(PipelineError, match=r"prepare\.val_fraction"):
        parse_section({"prepare": {"val_fraction": "a tenth"}}, "prepare", PrepareParams)


def test_unknown_dataset_is_refused():
    with pytest.raises(PipelineError, match=r"data\.dataset"):
        parse_section({"data": {"dataset": "cifar10"}}, "data", DataParams)


def test_missing_section_is_refused():
    """A missing section is an error naming it, not a silent set of defaults."""
    with pytest.raises(PipelineError, match="params section 'prepare' is missing"):
        parse_section({"data": {}}, "prepare", PrepareParams)


def test_paths_have_no_defaults_and_name_every_file():
    """Folders are named once, in params.yaml's `paths`; ProjectFiles names the files in them."""
    from mnist_pipeline.project_files import Paths, ProjectFiles

    params = read_params(ROOT / "params.yaml")
    files = ProjectFiles.from_params(params)
    assert str(files.raw_data) == "data/raw/raw.npz" and str(files.metrics) == "evaluation/metrics.json"
    assert str(files.report) == "report/report.md"
    assert str(files.catalogue_run_dir("mnist", "cnn")) == "reports/mnist/runs/cnn"
    with pytest.raises(PipelineError, match=r"paths\.raw"):
        parse_section({"paths": {k: v for k, v in params["paths"].items() if k != "raw"}}, "paths", Paths)


def test_missing_params_file(tmp_path: Path):
    with pytest.raises(PipelineError, match="params file not found"):
        read_params(tmp_path / "params.yaml")


def test_dvc_exp_run_set_changes_only_its_own_lines(tmp_path):
    """params.yaml is kept in the form DVC writes back (block style, empty for null): `dvc exp run -S` rewrote
    about 150 lines of the old file (re-wrapped entries, lists split, comments moved), now only its own."""
    import difflib

    from dvc.utils.hydra import apply_overrides

    copy = tmp_path / "params.yaml"
    copy.write_text((ROOT / "params.yaml").read_text())
    apply_overrides(str(copy), ["train.model=mlp_500", "train.epochs=2", "models.cnn.dropout=0.5"])
    changed = [line for line in difflib.unified_diff((ROOT / "params.yaml").read_text().splitlines(),
                                                     copy.read_text().splitlines(), lineterm="", n=0)
               if line.startswith(("+", "-")) and not line.startswith(("+++", "---"))]
    assert len(changed) == 6, changed  # three lines out, three in


@pytest.mark.bad_input
def test_a_params_file_of_aliases_or_megabytes_is_refused_in_one_line(tmp_path: Path):
    """A 488-byte YAML alias bomb stalled `dvc status` (MemoryError at 4 GB after 90 s) and a 6.5 MB params.yaml
    made every stage take 41 s. The project's own reader (every stage, mnist compare and sweep) refuses both at
    once; `mnist compare` does so before any `dvc` reads the file."""
    import subprocess
    import sys
    import time

    from mnist_pipeline.config import MAX_PARAMS_BYTES, read_params
    from tests.harness import stage_env

    levels = ["a: &a [x, x, x, x, x, x, x, x, x]"] + [
        f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join([f'*{chr(97 + i)}'] * 9)}]" for i in range(8)]
    bomb = tmp_path / "params.yaml"
    bomb.write_text("\n".join(levels) + "\n")
    assert bomb.stat().st_size < 600
    with pytest.raises(PipelineError, match=f"{bomb} uses a YAML alias \\(line 2\\)"):
        read_params(bomb)
    big = tmp_path / "big.yaml"
    big.write_text("models:\n" + "".join(f"  m{i}: {{kind: dense}}\n" for i in range(MAX_PARAMS_BYTES // 15)))
    with pytest.raises(PipelineError, match="bytes; a params file may hold at most 1,000,000"):
        read_params(big)

    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "mnist_cli", "compare"], cwd=tmp_path, env=stage_env(),
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 1 and done.stderr.strip() == (f"error: {Path('params.yaml')} uses a YAML alias "
                                                            f"(line 2); params files may not: nested aliases "
                                                            f"expand to gigabytes"), done.stderr
    assert time.monotonic() - started < 30
