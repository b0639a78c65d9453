"""The reference reports' checker: clean on the committed reports, and each defect it exists for caught."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from mnist_pipeline.config import read_params
from mnist_pipeline.distortions import NAMES
from mnist_pipeline.lessons import load_claims
from mnist_pipeline.reporting.catalogue import ablation_distortion_section, ablation_labels, by_label
from mnist_pipeline.reporting.check import ablation_problems, check_reports
from tests.harness import ROOT


@pytest.fixture(scope="module")
def claims():
    return load_claims(ROOT / "claims.yaml", list(read_params(ROOT / "params.yaml")["models"]))


def test_the_committed_reports_pass(claims):
    assert check_reports(ROOT / "reports", claims) == []


def copy_of_a_catalogue(tmp_path: Path) -> Path:
    """A copy of the committed MNIST catalogue (its pages, records and runs' reports) to break."""
    root = tmp_path / "reports"
    shutil.copytree(ROOT / "reports" / "mnist", root / "mnist", ignore=shutil.ignore_patterns("logs"))
    shutil.copytree(ROOT / "reports" / "single_neuron", root / "single_neuron")
    return root


def test_each_defect_is_caught(tmp_path: Path, claims):
    root = copy_of_a_catalogue(tmp_path)
    assert check_reports(root, claims) == []
    page, record = root / "mnist/catalogue.md", root / "mnist/catalogue.json"
    data = json.loads(record.read_text())
    run = next(r for r in data["results"] if r.get("report"))
    shown = f"{run['metrics']['accuracy']:.2%}"
    own = root / "mnist" / run["report"] / "report.md"

    own.write_text(own.read_text().replace(f"Test accuracy **{shown}**", "Test accuracy **12.34%**"))
    page.write_text(page.read_text() + "\n[gone](runs/nowhere/report.md)\n\nmade in /tmp/pytest-of-root/x\n")
    plain = next(i for i, c in enumerate(claims.claims) if c.kind != "paired")
    data["claims"][plain] = {**data["claims"][plain], "verdict": None}
    lesson = next(i for i, c in enumerate(claims.claims) if c.kind == "paired")
    data["claims"][lesson] = {**data["claims"][lesson], "verdict": "reproduced", "seeds": 1}
    record.write_text(json.dumps(data))
    problems = "\n".join(check_reports(root, claims))
    assert f"its test accuracy is not the catalogue's {shown}" in problems
    assert "the link runs/nowhere/report.md does not resolve" in problems
    assert "an absolute path (/tmp/" in problems
    assert f"the claim {claims.claims[plain].id!r} has no verdict" in problems
    assert f"the lesson {claims.claims[lesson].id!r} rests on 1 seeds, not 3" in problems

    for result in data["results"]:
        if (result["label"], result["seed"]) == (run["label"], run["seed"]):
            result["metrics"] = {**result["metrics"], "accuracy": 0.1234}
    record.write_text(json.dumps(data))
    assert any(f"the row of {run['label']} does not show its catalogue.json accuracy 12.34%" in p
               for p in check_reports(root, claims))


def test_the_modern_entrys_changes_on_distorted_images(claims):
    """From the committed MNIST record: one row per distortion (the clean test set first), one column per change
    of the modern ladder; each cell the change's mean accuracy and its difference from modern_cnn, which the
    checker recomputes from the record; a wrong number is caught."""
    data = json.loads((ROOT / "reports/mnist/catalogue.json").read_text())
    section = "\n".join(ablation_distortion_section(by_label(data["results"]), claims))
    lines = [line for line in section.splitlines() if line.startswith("| ")]
    header = [cell.strip() for cell in lines[0].strip("|").split("|")]
    assert header == ["distortion", "modern_cnn over seeds", *ablation_labels(claims)]
    assert ablation_labels(claims) == ["modern_cnn-no-aug", "modern_cnn-constant-lr", "modern_cnn-no-decay",
                                       "modern_cnn-bn"]
    assert [line.split("|")[1].strip() for line in lines[1:]] == ["none (the test set)",
                                                                   *(n.replace("_", "\\_") for n in NAMES)]
    assert ablation_problems(Path("mnist"), data, section) == []
    first = lines[1].split("|")[3].strip()  # modern_cnn-no-aug on the clean test set
    assert ablation_problems(Path("mnist"), data, section.replace(first, "12.34%" + first[6:]))
    assert ablation_problems(Path("mnist"), data, section.replace(first, first[:9] + "9" + first[10:]))


def test_a_catalogue_in_progress_is_not_judged_and_has_no_page(tmp_path: Path, claims):
    """A comparison still running (complete: false) is committed so that --retry-failed resumes it; its page
    comes only when it is complete."""
    root = copy_of_a_catalogue(tmp_path)
    record = root / "mnist/catalogue.json"
    data = json.loads(record.read_text())
    record.write_text(json.dumps({**data, "complete": False, "claims": [], "results": data["results"][:5]}))
    assert check_reports(root, claims) == ["%s: a page for a catalogue still in progress"
                                           % (root / "mnist" / "catalogue.md")]
    (root / "mnist/catalogue.md").unlink()
    assert check_reports(root, claims) == []
