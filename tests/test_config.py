"""params.yaml parsing: unknown keys and wrong types fail loudly, naming the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from tasks.config import DataParams, PrepareParams, load_params, parse_section
from tasks.errors import PipelineError

ROOT = Path(__file__).resolve().parents[1]


def test_repository_params_parse():
    params = load_params(ROOT / "params.yaml")
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


def test_missing_params_file(tmp_path: Path):
    with pytest.raises(PipelineError, match="params file not found"):
        load_params(tmp_path / "params.yaml")
