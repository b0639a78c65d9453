"""Result tables inside hand-written pages (README.md, docs/), rendered from the catalogues' records.

A page marks a table with `<!-- catalogue: KIND DATASET -->` ... `<!-- /catalogue -->`; `mnist compare` (and
`--render`) writes what the records give between the markers, and `mnist check-reports` fails when a marked
table differs from them, so a number quoted outside reports/ is recomputed like every number inside it. The
tests are the catalogue page's own (the same family, so the same q-values and findings). KIND:

  distortions  the tutorial CNN (our recipe) against the modern entry on each distorted test set
  ablation     each single change of the modern entry, on the clean and each distorted test set
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mnist_pipeline.claims import Claims
from mnist_pipeline.distortions import NAMES
from mnist_pipeline.lessons import Family
from mnist_pipeline.reporting.comparison_page import (
    DISTORTION_PAIR,
    ablation_labels,
    distorted,
    distortion_pairs,
    where_judged,
)
from mnist_pipeline.reporting.markdown import md_escape, raw_table

BLOCK = re.compile(r"(<!-- catalogue: (\w+) (\w+) -->\n)(.*?)(<!-- /catalogue -->)", re.S)


def short(result: dict[str, Any]) -> str:
    """A controlled paired result in a table cell: difference (interval): a finding | inside the noise."""
    return (f"{result['difference'] * 100:+.2f} ({result['ci95'][0] * 100:+.2f} to {result['ci95'][1] * 100:+.2f}): "
            + ("**a finding**" if result["finding"] else "inside the noise"))


def named(name: str) -> str:
    return "as they are" if name == "none" else md_escape(name.replace("_", " "))


def distortions_table(data: dict[str, Any], family: Family) -> str:
    a, b = DISTORTION_PAIR
    pairs, names = distortion_pairs(family.runs.get(a, []), family.runs.get(b, []))
    rows = []
    for name in names:
        found = [(distorted(ra, name), distorted(rb, name)) for ra, rb in pairs]
        result = family.distorted(a, b, name, found)
        rows.append([named(name), f"{sum(x['accuracy'] for x, _ in found) / len(found):.2%}",
                     f"{sum(y['accuracy'] for _, y in found) / len(found):.2%}", short(result)])
    return (f"On {where_judged(data)}, mean over {len(pairs)} seeds; {b} - {a} with its 95% interval in points "
            "and the catalogue page's verdict:\n\n"
            + raw_table(["test images", f"`{a}` (our recipe)", f"`{b}`", f"{b} - {a}"], rows) + "\n")


def ablation_table(data: dict[str, Any], family: Family, claims: Claims) -> str:
    base = DISTORTION_PAIR[1]
    labels = [label for label in ablation_labels(claims) if family.runs.get(label)]
    rows = []
    for name in ["none", *NAMES]:
        cells = []
        for label in labels:
            by_seed = {r["seed"]: r for r in family.runs[label]}
            pairs = [(distorted(r, name), distorted(by_seed[r["seed"]], name)) for r in family.runs.get(base, [])
                     if r["seed"] in by_seed]
            cells.append(short(family.distorted(base, label, name, pairs))
                         if pairs and all(x and y for x, y in pairs) else "")
        if any(cells):
            rows.append([named(name), *cells])
    return (f"On {where_judged(data)}: each change minus `{base}`, in points, mean over the seeds both ran:\n\n"
            + raw_table(["test images", *(f"`{label}`" for label in labels)], rows) + "\n")  # code: no escapes


KINDS: dict[str, Callable[..., str]] = {
    "distortions": lambda data, family, claims: distortions_table(data, family),
    "ablation": ablation_table,
}


def fill(text: str, families: dict[str, tuple[dict[str, Any], Family]], claims: Claims) -> str:
    """`text` with every marked table rendered from `families` (dataset -> its record and the page's tests)."""

    def one(match: re.Match[str]) -> str:
        start, kind, dataset, _, end = match.groups()
        if kind not in KINDS or dataset not in families:
            return match.group(0)
        data, family = families[dataset]
        return start + KINDS[kind](data, family, claims) + end

    return BLOCK.sub(one, text)


def block_problems(page: Path, families: dict[str, tuple[dict[str, Any], Family]], claims: Claims) -> list[str]:
    """A marked table of `page` that is not what the records give, or names an unknown kind or dataset."""
    text = page.read_text()
    problems = [f"{page}: the marked table '{kind} {dataset}' names no known table or catalogue"
                for _, kind, dataset, _, _ in BLOCK.findall(text) if kind not in KINDS or dataset not in families]
    ours = fill(text, families, claims)
    for (_, kind, dataset, theirs, _), (_, _, _, mine, _) in zip(BLOCK.findall(text), BLOCK.findall(ours)):
        if theirs != mine:
            problems.append(f"{page}: the table '{kind} {dataset}' is not what {dataset}/catalogue.json gives "
                            "(`mnist compare --dataset " f"{dataset} --render` writes it)")
    return problems
