"""The reference reports' checker: clean on the committed reports, and each defect it exists for caught."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from mnist_pipeline.claims import load_claims
from mnist_pipeline.config import read_params
from mnist_pipeline.distortions import NAMES
from mnist_pipeline.reporting.check import ablation_problems, check_reports
from mnist_pipeline.reporting.comparison_page import ablation_distortion_section, ablation_labels, by_label, page_tests
from tests.harness import ROOT

UNDERFIT = 0.8  # params.yaml evaluate.underfit_train_below, which the verdicts use


@pytest.fixture(scope="module")
def claims():
    return load_claims(ROOT / "claims.yaml", list(read_params(ROOT / "params.yaml")["models"]))


def check(root: Path, claims) -> list[str]:
    return check_reports(root, claims, UNDERFIT)


def test_the_committed_reports_pass(claims):
    assert read_params(ROOT / "params.yaml")["evaluate"]["underfit_train_below"] == UNDERFIT
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    assert check_reports(ROOT / "reports", claims, UNDERFIT, pages) == []


def test_a_result_table_in_the_docs_is_recomputed(tmp_path: Path, claims):
    """The marked tables of docs/distortions.md (blocks.py) are the records' own: a number changed, a verdict
    turned, a table of an unknown kind are each caught."""
    text = (ROOT / "docs" / "distortions.md").read_text()
    assert text.count("<!-- catalogue: ") >= 4
    row = next(line for line in text.splitlines() if line.startswith("| off centre |"))
    readme = tmp_path / "distortions.md"
    for planted in (text.replace(row, row.replace("%", "1%", 1)),
                    text.replace("inside the noise |", "**a finding** |", 1),
                    text.replace("<!-- catalogue: ablation mnist -->", "<!-- catalogue: ablations mnist -->")):
        assert planted != text
        readme.write_text(planted)
        found = check_reports(ROOT / "reports", claims, UNDERFIT, [readme])
        assert len(found) == 1 and str(readme) in found[0] and ("is not what" in found[0] or "names no" in found[0])


def copy_of_a_catalogue(tmp_path: Path) -> Path:
    """A copy of the committed catalogues (their pages, records and runs' reports) and lessons.md to break."""
    root = tmp_path / "reports"
    shutil.copytree(ROOT / "reports" / "mnist", root / "mnist", ignore=shutil.ignore_patterns("logs"))
    shutil.copytree(ROOT / "reports" / "single_neuron", root / "single_neuron")
    shutil.copytree(ROOT / "reports" / "fashion_mnist", root / "fashion_mnist", ignore=shutil.ignore_patterns("logs"))
    shutil.copyfile(ROOT / "reports" / "lessons.md", root / "lessons.md")
    return root


def test_planted_verdicts_and_numbers_are_caught(tmp_path: Path, claims):
    """The issue's plants, each alone in a fresh copy: a lesson flipped to "reproduced" with a new interval (in the
    record and on the page), "inside the noise" turned into "a finding, p = 0.003", a mean ± sd changed, a per-seed
    difference changed, lessons.md flipped to match, and an accuracy changed in the record with the page to match."""
    page = ROOT / "reports" / "mnist" / "catalogue.md"
    text = page.read_text()
    row = next(line for line in text.splitlines() if line.startswith("| inputs scaled to (x-127)/127"))
    assert "**not settled on the MNIST sample**" in row and "inside the noise" in row

    def planted(edit_page=None, edit_record=None, edit_lessons=None) -> str:
        root = tmp_path / f"copy{len(list(tmp_path.iterdir()))}"
        root = copy_of_a_catalogue(root)
        if edit_page:
            (root / "mnist/catalogue.md").write_text(edit_page((root / "mnist/catalogue.md").read_text()))
        if edit_record:
            record = root / "mnist/catalogue.json"
            data = json.loads(record.read_text())
            edit_record(data)
            record.write_text(json.dumps(data))
        if edit_lessons:
            (root / "lessons.md").write_text(edit_lessons((root / "lessons.md").read_text()))
        return "\n".join(check(root, claims))

    flipped = re.sub(r"95% interval (\S+) to \S+;", r"95% interval \1 to -1.00;", row.replace(
        "**not settled on the MNIST sample**", "**holds on the MNIST sample**"))
    assert flipped.count("-1.00;") >= 1 and flipped != row
    centered = next(i for i, c in enumerate(claims.claims) if c.id == "centered-scaling")

    def flip_record(data):
        data["claims"][centered].update(verdict="holds on the MNIST sample", outcome="reproduced",
                                        ci95=[-0.0293, -0.01], finding=True)
    found = planted(lambda t: t.replace(row, flipped), flip_record)
    assert "catalogue.md: line" in found and "the recorded verdict of 'centered-scaling' differs" in found, found

    noise_to_finding = row.replace("inside the noise (", "**a finding**, p = 0.003 (")
    assert noise_to_finding != row
    found = planted(lambda t: t.replace(row, noise_to_finding))
    assert "catalogue.md: line" in found and "a finding" in found, found

    mean_sd = "lee\\_ce\\_sigmoid 84.60% ± 0.62% (n=3)"
    assert mean_sd in text
    assert "is not what the records give" in planted(lambda t: t.replace(mean_sd, mean_sd.replace("0.62", "0.26")))
    per_seed = "per seed +1.0, -2.3, -1.9"
    assert per_seed in text
    assert "is not what the records give" in planted(lambda t: t.replace(per_seed, "per seed +1.0, -2.3, -1.8"))

    lessons = (ROOT / "reports/lessons.md").read_text()
    lesson_row = next(line for line in lessons.splitlines() if line.startswith("| inputs scaled to (x-127)/127"))
    found = planted(lambda t: t.replace(row, flipped), flip_record,
                    lambda t: t.replace(lesson_row, lesson_row.replace("**not settled on the MNIST sample**",
                                                                       "**holds on the MNIST sample**", 1)))
    assert "lessons.md: line" in found and "'centered-scaling' differs" in found, found

    def accuracy_changed(data):
        run = next(r for r in data["results"] if r["label"] == "mlp_500" and r["seed"] == 43)
        run["metrics"]["accuracy"] += 0.01
    found = planted(edit_record=accuracy_changed)
    assert "mlp_500 seed 43 records accuracy" in found and "its per-image results give" in found, found


def test_each_defect_is_caught(tmp_path: Path, claims):
    root = copy_of_a_catalogue(tmp_path)
    assert check(root, claims) == []
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
    problems = "\n".join(check(root, claims))
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
               for p in check(root, claims))


def test_the_modern_entrys_changes_on_distorted_images(claims):
    """From the committed MNIST record: one row per distortion (the clean test set first), one column per change
    of the modern ladder; each cell the change's mean accuracy and its difference from modern_cnn, which the
    checker recomputes from the record; a wrong number is caught."""
    data = json.loads((ROOT / "reports/mnist/catalogue.json").read_text())
    section = "\n".join(ablation_distortion_section(page_tests(claims, by_label(data["results"])), claims))
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
    assert check(root, claims) == ["%s: a page for a catalogue still in progress" % (root / "mnist" / "catalogue.md")]
    (root / "mnist/catalogue.md").unlink()
    (root / "lessons.md").unlink()  # it links the page; it too is written when the comparison completes
    assert check(root, claims) == []
