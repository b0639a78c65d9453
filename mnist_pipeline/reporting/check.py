"""The reference reports' checker: what a reader must be able to trust in `reports/`.

It fails on a relative link that does not resolve, an absolute machine path, a catalogue number that
differs from its catalogue.json or from the run's own report (the distorted test images' too), a claim
without a verdict, and a lesson without its interval, its paired test or three seeds. It also recomputes
every page from the runs' records: each run's accuracy from its per-image results, then the whole catalogue
page (every verdict, interval, p- and q-value, per-seed difference, mean ± sd) and `lessons.md`, rendered
again and compared line by line with the committed ones, and the verdicts catalogue.json records. `mnist
check-reports` runs it; so does CI.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

from mnist_pipeline.claims import Claims
from mnist_pipeline.lessons import Family, unpack
from mnist_pipeline.project_files import REPORT_FILE
from mnist_pipeline.reporting.blocks import block_problems
from mnist_pipeline.reporting.comparison_page import (
    DISTORTION_PAIR,
    PAIRED,
    by_label,
    distorted,
    page_tests,
    render_catalogue,
    render_side_by_side,
)
from mnist_pipeline.reporting.markdown import md_escape

LINK = re.compile(r"\]\(([^)\s]+)\)|src=\"([^\"]+)\"")
# a path that belongs to one machine (a temporary folder, a home, a checkout); a Debian package's data under
# /usr/share (Fashion-MNIST's IDX files) is where that package puts it on every machine, and is allowed
MACHINE_PATH = re.compile(r"(?<![\w.~-])/(?:tmp|home|root|work|Users|var|private|mnt|opt|srv)/")
OUTCOMES = ("reproduced", "refuted", "inconclusive")
VERDICTS = {*OUTCOMES, "not comparable", "nothing to compare",
            *(f"{word} on {place}" for word in ("holds", "does not hold", "not settled")
              for place in ("MNIST", "Fashion-MNIST", "the MNIST sample"))}
MIN_SEEDS = 3


def broken_links(root: Path) -> list[str]:
    problems = []
    for page in sorted(root.rglob("*.md")):
        for match in LINK.finditer(page.read_text()):
            target = (match.group(1) or match.group(2)).split("#")[0]
            if not target or re.match(r"^[a-z]+:", target):
                continue  # a web address, a data: URI, an anchor
            if not (page.parent / target).exists():
                problems.append(f"{page}: the link {target} does not resolve")
    return problems


def machine_paths(root: Path) -> list[str]:
    return [f"{page}: an absolute path ({match.group(0)}...)" for page in sorted(root.rglob("*.md"))
            for match in [MACHINE_PATH.search(page.read_text())] if match]


def catalogue_problems(folder: Path, claims: Claims,
                       underfit_below: float) -> tuple[list[str], list[dict[str, Any]]]:
    """One dataset's catalogue.md against its catalogue.json and the runs' own reports; and its recomputed
    verdicts."""
    data: dict[str, Any] = json.loads((folder / "catalogue.json").read_text())
    page = (folder / "catalogue.md").read_text()
    lines, problems = page.splitlines(), []
    for run in data["results"]:
        if "failed" in run or "report" not in run:
            continue
        accuracy = f"{run['metrics']['accuracy']:.2%}"
        link = f"]({run['report']}/{REPORT_FILE})"
        rows = [line for line in lines if link in line and line.startswith("|")]
        if not rows or not all(accuracy in row for row in rows):
            problems.append(f"{folder}/catalogue.md: the row of {run['label']} does not show its catalogue.json "
                            f"accuracy {accuracy}")
        report = folder / run["report"] / REPORT_FILE
        if report.is_file() and f"Test accuracy **{accuracy}**" not in report.read_text():
            problems.append(f"{report}: its test accuracy is not the catalogue's {accuracy}")
    problems += distortion_problems(folder, data, page)
    verdicts = data.get("claims") or []
    if len(verdicts) != len(claims.claims):
        problems.append(f"{folder}/catalogue.json: {len(verdicts)} claim verdicts for {len(claims.claims)} claims")
    for claim, verdict in zip(claims.claims, verdicts):
        if verdict.get("verdict") not in VERDICTS or not verdict.get("reason"):
            problems.append(f"{folder}: the claim {claim.id!r} has no verdict ({verdict.get('verdict')})")
        elif f"**{verdict['verdict']}**" not in page:
            problems.append(f"{folder}/catalogue.md: the verdict of {claim.id!r} is not shown")
        if claim.kind in PAIRED and verdict.get("outcome") not in OUTCOMES:
            problems.append(f"{folder}: the lesson {claim.id!r} has no paired test ({verdict.get('verdict')}: "
                            f"{verdict.get('reason')})")
        elif claim.kind in PAIRED:
            if not verdict.get("ci95") or "p" not in verdict:
                problems.append(f"{folder}: the lesson {claim.id!r} has no interval or paired test")
            elif verdict.get("seeds", 0) < MIN_SEEDS:
                problems.append(f"{folder}: the lesson {claim.id!r} rests on {verdict.get('seeds')} seeds, "
                                f"not {MIN_SEEDS}")
    reference = data["seeds"][0]
    for run in data["results"]:
        if ("failed" not in run and run["seed"] == reference and run["label"] == run["model"]
                and run["spec"].get("claimed_accuracy") is not None
                and run.get("verdict", {}).get("verdict") not in VERDICTS):
            problems.append(f"{folder}: the claimed number of {run['label']} has no verdict")
    recomputed, verdicts = recomputed_problems(folder, data, claims, underfit_below)
    return problems + recomputed, verdicts


def first_difference(ours: str, theirs: str) -> tuple[int, str, str] | None:
    """The first line (1-based) where two texts differ, with both versions of it; None when they are equal."""
    a, b = ours.splitlines(), theirs.splitlines()
    for number, (x, y) in enumerate(zip(a, b), start=1):
        if x != y:
            return number, x, y
    if len(a) != len(b):
        n = min(len(a), len(b))
        return n + 1, (a[n] if n < len(a) else "(end)"), (b[n] if n < len(b) else "(end)")
    return None


def differing(first: str, second: str) -> str:
    """Where two lines first differ, shown from a little before it."""
    at = next((i for i, (x, y) in enumerate(zip(first, second)) if x != y), min(len(first), len(second)))
    start = max(0, at - 40)
    return f"{first[start:at + 60]!r} where the records give {second[start:at + 60]!r}"


_RENDERED: dict[tuple[str, int, float], tuple[str, list[dict[str, Any]]]] = {}


def rendered(data: dict[str, Any], claims: Claims, underfit_below: float) -> tuple[str, list[dict[str, Any]]]:
    """The page and verdicts the records give, rendered once per distinct record in a process (the bootstrap makes
    a catalogue's render take seconds; the checker's own tests check many copies of the same record)."""
    records = {k: v for k, v in data.items() if k != "claims"}
    key = (hashlib.sha256(json.dumps(records, sort_keys=True).encode()).hexdigest(), id(claims), underfit_below)
    if key not in _RENDERED:
        _RENDERED[key] = render_catalogue(records, claims, underfit_below)
    return _RENDERED[key]


_FAMILIES: dict[str, Family] = {}


def family_of(data: dict[str, Any], claims: Claims) -> Family:
    """The catalogue page's controlled tests, from its records, once per distinct record in a process."""
    key = hashlib.sha256(json.dumps(data["results"], sort_keys=True).encode()).hexdigest() + str(id(claims))
    if key not in _FAMILIES:
        _FAMILIES[key] = page_tests(claims, by_label(data["results"]))
    return _FAMILIES[key]


def recomputed_problems(folder: Path, data: dict[str, Any], claims: Claims,
                        underfit_below: float) -> tuple[list[str], list[dict[str, Any]]]:
    """Each run's accuracy from its per-image results; then the page and the recorded verdicts, rendered again
    from the runs' records alone and compared with what is committed. Also the recomputed verdicts."""
    problems = []
    for run in data["results"]:
        if "failed" in run or "correct" not in run:
            continue
        recomputed = unpack(run["correct"], run["test_total"]).mean()
        if abs(recomputed - run["metrics"]["accuracy"]) > 1e-9:
            problems.append(f"{folder}/catalogue.json: {run['label']} seed {run['seed']} records accuracy "
                            f"{run['metrics']['accuracy']:.4f}, its per-image results give {recomputed:.4f}")
    text, verdicts = rendered(data, claims, underfit_below)
    found = first_difference(text, (folder / "catalogue.md").read_text())
    if found:
        number, ours, theirs = found
        problems.append(f"{folder}/catalogue.md: line {number} is not what the records give: "
                        f"{differing(theirs, ours)}")
    recorded = json.loads(json.dumps(data.get("claims") or []))
    for claim, mine, theirs in zip(claims.claims, json.loads(json.dumps(verdicts)), recorded):
        if mine != theirs:
            keys = sorted(k for k in {*mine, *theirs} if mine.get(k) != theirs.get(k))
            problems.append(f"{folder}/catalogue.json: the recorded verdict of {claim.id!r} differs from its runs' in "
                            f"{', '.join(keys)} ({theirs.get('verdict')!r}; the runs give {mine.get('verdict')!r})")
    return problems, verdicts


def lessons_problems(root: Path, claims: Claims, verdicts: dict[str, list[dict[str, Any]]]) -> list[str]:
    """lessons.md against the side-by-side page rendered from every complete catalogue's recomputed `verdicts`
    (dataset -> its claims' verdicts)."""
    page = root / "lessons.md"
    catalogues = {}
    for dataset in ("mnist", "fashion_mnist"):
        record = root / dataset / "catalogue.json"
        if record.is_file():
            if dataset not in verdicts:
                return []  # a catalogue in progress: lessons.md keeps its last complete verdicts until it is done
            catalogues[dataset] = {**json.loads(record.read_text()), "claims": verdicts[dataset]}
    if not catalogues or not page.is_file():
        return [f"{page}: missing"] if catalogues else []
    found = first_difference(render_side_by_side(catalogues, claims), page.read_text())
    if not found:
        return []
    number, ours, theirs = found
    return [f"{page}: line {number} is not what the catalogues' records give: {differing(theirs, ours)}"]


def distortion_problems(folder: Path, data: dict[str, Any], page: str) -> list[str]:
    """The section on distorted test images shows the reference seed's accuracy and interval of each distortion
    as catalogue.json records them, for both configurations it compares."""
    section = page.split("## Distorted test images", 1)[-1].split("\n## ", 1)[0] if "## Distorted" in page else ""
    problems = []
    for run in data["results"]:
        if "failed" in run or run["label"] not in DISTORTION_PAIR or run["seed"] != data["seeds"][0]:
            continue
        for name, found in (run.get("distortions") or {}).items():
            if "correct" not in found:
                continue
            shown = f"{found['accuracy']:.2%} ({found['ci95'][0]:.2%}-{found['ci95'][1]:.2%})"
            rows = [line for line in section.splitlines() if line.startswith(f"| {md_escape(name)} |")]
            if not rows or shown not in rows[0]:
                problems.append(f"{folder}/catalogue.md: the distorted test images ({name}) do not show "
                                f"{run['label']}'s catalogue.json accuracy {shown}")
    return problems + ablation_problems(folder, data, section)


def ablation_problems(folder: Path, data: dict[str, Any], section: str) -> list[str]:
    """The modern entry's changes on the distorted test images: each cell starts with the change's mean accuracy
    over the seeds it shares with the entry, as catalogue.json records them."""
    table = section.split("### ", 1)[-1] if "### " in section else ""
    lines = [line for line in table.splitlines() if line.startswith("| ")]
    if not lines:
        return []
    header = [cell.strip() for cell in lines[0].strip("|").split("|")]
    runs: dict[tuple[str, int], dict[str, Any]] = {(r["label"], r["seed"]): r for r in data["results"]
                                                   if "failed" not in r}
    base_seeds = [seed for label, seed in runs if label == DISTORTION_PAIR[1]]
    problems = []
    for line in lines[1:]:
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        name = cells[0].replace("\\", "")
        name = "none" if name.startswith("none") else name
        for label, cell in zip(header[2:], cells[2:]):
            if not cell:
                continue
            seeds = [seed for seed in base_seeds if (label, seed) in runs]
            found = [distorted(runs[(label, seed)], name) for seed in seeds]
            base = [distorted(runs[(DISTORTION_PAIR[1], seed)], name) for seed in seeds]
            if not seeds or not all(found) or not all(base):
                problems.append(f"{folder}/catalogue.md: {label} on {name}: catalogue.json has no per-image results "
                                "for this cell")
                continue
            mean = sum(d["accuracy"] for d in found) / len(found)
            # the paired difference over the same images and seeds is the difference of the mean accuracies
            difference = (mean - sum(d["accuracy"] for d in base) / len(base)) * 100
            if not cell.startswith(f"{mean:.2%}: {difference:+.2f} ("):
                problems.append(f"{folder}/catalogue.md: {label} on {name} does not start with its catalogue.json "
                                f"mean accuracy and difference, {mean:.2%}: {difference:+.2f}")
    return problems


def in_progress(root: Path) -> list[str]:
    """The catalogues still being made (`complete: false`, no page yet): committed so that `mnist compare
    --retry-failed` resumes them, and not yet judged."""
    found = []
    for record in sorted(root.glob("*/catalogue.json")):
        data = json.loads(record.read_text())
        if not data.get("complete", True):
            done = sum("failed" not in r for r in data.get("results", []))
            found.append(f"{record.parent.name}: {done} runs done, in progress")
    return found


def check_reports(root: Path, claims: Claims, underfit_below: float, pages: list[Path] | tuple[Path, ...] = ()
                  ) -> list[str]:
    """Every problem found under the reference reports folder `root`, one line each (`underfit_below`: evaluate's
    params, which the verdicts use), and in the result tables marked in `pages` (README.md, docs/: blocks.py). A
    catalogue in progress (complete: false) is not judged, but it must not have a page: a page is written only
    when it is complete."""
    problems, verdicts = broken_links(root) + machine_paths(root), {}
    for record in sorted(root.glob("*/catalogue.json")):
        if json.loads(record.read_text()).get("complete", True):
            found, verdicts[record.parent.name] = catalogue_problems(record.parent, claims, underfit_below)
            problems += found
        elif (record.parent / "catalogue.md").exists():
            problems.append(f"{record.parent}/catalogue.md: a page for a catalogue still in progress")
    families = {dataset: (data, family_of(data, claims)) for dataset in verdicts
                for data in [json.loads((root / dataset / "catalogue.json").read_text())]}
    for page in pages:
        problems += block_problems(page, families, claims)
    return problems + lessons_problems(root, claims, verdicts)
