"""Names that would escape their folders are refused before anything is written."""

from __future__ import annotations

from pathlib import Path

import pytest

from mnist_pipeline import registry
from mnist_pipeline.errors import PipelineError
from tests.harness import write_params

pytestmark = pytest.mark.bad_input
TRAVERSALS = ["../../escape", "/etc/passwd", "a/b", "..", "x\nname", "Model"]


@pytest.mark.parametrize("name", TRAVERSALS)
def test_model_name_that_is_not_a_slug_stops_the_stage(tmp_path: Path, run_stage, name: str):
    write_params(tmp_path, {"train": {"model": name}})
    done = run_stage("resize")
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert done.returncode == 1 and len(errors) == 1 and "train.model" in errors[0], done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["params.yaml"]  # nothing written anywhere


@pytest.mark.parametrize("name", TRAVERSALS)
def test_registry_refuses_names_and_attachments_outside_its_folder(tmp_path: Path, name: str):
    model = tmp_path / "model.keras"
    model.write_bytes(b"not read")
    gate = registry.Gate(0.0, 1.0)
    with pytest.raises(PipelineError, match="invalid model name"):
        registry.register(tmp_path / "reg", name, model, {"metrics": {"accuracy": 1.0}}, gate)
    with pytest.raises(PipelineError, match="invalid model name"):
        registry.register(tmp_path / "reg", "ok", model, {"metrics": {"accuracy": 1.0}}, gate,
                          attachments={name: tmp_path})
    assert registry.versions(tmp_path / "reg", "ok") == [] and not (tmp_path / "escape").exists()
