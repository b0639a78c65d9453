"""A catalogue page: every configuration over its seeds, the tutorials' claims with verdicts, the lessons
with their paired tests, the ladders, and the side-by-side lessons of several datasets.

Everything comes from the catalogue's records (`mnist compare` writes them to catalogue.json): a run's numbers
are its evaluation's; every verdict and paired test is recomputed from the runs' per-image results each time the
page is rendered (so `mnist check-reports` can render it again and compare).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import yaml

from mnist_pipeline import config
from mnist_pipeline.claims import Claims, Run, Verdict, judge
from mnist_pipeline.distortions import NAMES
from mnist_pipeline.lessons import (
    Family,
    judge_claim,
    ladder_rows,
    p_value,
    per_seed,
    spread,
    tested,
    unpack,
)
from mnist_pipeline.paired import why_not
from mnist_pipeline.project_files import REPORT_FILE as REPORT
from mnist_pipeline.reporting.markdown import md_escape, raw_table
from mnist_pipeline.reporting.plots import figure, save

DATASET_NAMES = {**config.DATASET_NAMES, "none": "no dataset"}  # a claim of "none": the tutorial named none
DISTORTION_PAIR = ("cnn", "modern_cnn")  # our recipe of the CSDN tutorial's CNN and the modern entry, on distortions
PAIRED = ("paired", "paired_gap")  # the claims that compare two configurations over the same seeds and images
ZOOM_WITHIN = 0.1  # the leaderboard's second panel: configurations within this of the best mean accuracy


def top1_history(history: dict[str, list[float]]) -> list[float]:
    """Validation top-1 accuracy per epoch (`val_top1` when Keras' metric was binary accuracy)."""
    return history.get("val_top1") or history.get("val_accuracy") or []


def by_label(results: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """label -> its successful runs, in seed order."""
    out: dict[str, list[dict[str, Any]]] = {}
    for r in results:
        if "failed" not in r:
            out.setdefault(r["label"], []).append(r)
    return {label: sorted(runs, key=lambda r: r["seed"]) for label, runs in out.items()}


def points(value: float) -> str:
    return f"{value * 100:+.2f} points"


def pct(value: float) -> str:
    return f"{value:.2%}"


def interval(ci: list[float] | tuple[float, float]) -> str:
    return f"{ci[0]:.2%}-{ci[1]:.2%}"


def mean_sd(s: dict[str, float]) -> str:
    return f"{s['mean']:.2%} ± {s['sd']:.2%} (n={s['n']})"


def top1_bound(binary: float) -> float:
    """The least top-1 accuracy a binary accuracy b allows: an image wrong in top-1 has at least one of its ten
    yes/no outputs wrong, so the top-1 error is at most the ten outputs' error: top-1 >= 1 - 10 (1 - b)."""
    return max(0.0, 1 - 10 * (1 - binary))


def train_images(run: dict[str, Any], data: dict[str, Any]) -> int:
    """The images a run trained on: its record's, or (records before it was kept) the catalogue's training images
    less prepare's validation split (ceil(val_fraction x n), preparation.stratified_val_split)."""
    if "train_images" in run:
        return int(run["train_images"])
    pool = data.get("fetch", {}).get("total_images", 0) - run["test_total"]
    return pool - math.ceil(run["prepare"]["val_fraction"] * pool)


def rejudged(run: dict[str, Any], data: dict[str, Any], recipe: list[str], weights: str | None) -> Verdict:
    """The tutorial number's verdict on a run, recomputed from its record (per-image correctness, metrics) with
    today's rules, so that a page never shows a stale reason."""
    correct = int(unpack(run["correct"], run["test_total"]).sum())
    return judge(run["spec"], Run(dataset=data["dataset"], source="offline" if is_sample(data) else "full",
                                  train_images=train_images(run, data), weights=weights, metrics=run["metrics"],
                                  test_correct=correct, test_total=run["test_total"]), recipe)


def claim_rows(data: dict[str, Any], runs: dict[str, list[dict[str, Any]]], claims: Claims,
               weights: str | None) -> tuple[list[list[object]], list[str]]:
    """The tutorials' numbers: one row per catalogue entry that states one, judged on the reference seed; and the
    reason shared by several rows' verdicts, said once above the table."""
    reference, found = data["seeds"][0], []
    for label, group in runs.items():
        run = next((r for r in group if r["seed"] == reference), None)
        if run is None or run["label"] != run["model"] or run["spec"].get("claimed_accuracy") is None:
            continue
        found.append((label, run, rejudged(run, data, claims.recipes.get(label, []), weights)))
    reasons = [v.reason for _, _, v in found if v.verdict == "not comparable"]
    shared = max(set(reasons), key=reasons.count) if reasons else ""
    once = shared if reasons.count(shared) > 1 else ""
    rows = []
    for label, run, v in found:
        spec = run["spec"]
        ours = f"{pct(v.ours or 0.0)} ({interval(v.ci95 or (0.0, 1.0))})"
        implied = ""
        if v.metric == "binary_accuracy":
            implied = (f"top-1 at least {pct(top1_bound(spec['claimed_accuracy']))}; ours "
                       f"{pct(run['metrics']['accuracy'])} ({interval(run['ci95'])})")
        difference = points((v.ours or 0.0) - spec["claimed_accuracy"]) if v.verdict in ("reproduced", "refuted") \
            else ""
        reason = "for the reason above" if once and v.reason == once else md_escape(v.reason)
        rows.append([f"[{md_escape(label)}]({run['report']}/{REPORT})", md_escape(spec.get("source", "")),
                     md_escape(spec["claimed"]), v.metric, DATASET_NAMES[spec.get("claim_dataset", "mnist")],
                     ours, difference, implied, f"**{v.verdict}**: {reason}"])
    said = ([f"{reasons.count(once)} of these {len(found)} numbers are **not comparable** for one reason: "
             f"{md_escape(once)}.", ""] if once else [])
    return rows, said


def configuration_rows(runs: dict[str, list[dict[str, Any]]], failed: list[dict[str, Any]],
                       reference_seed: int) -> list[list[object]]:
    """Every configuration: the reference seed's run (linked to its report) and the spread over seeds."""
    rows = []
    ranked = sorted(runs.items(), key=lambda item: -spread([r["metrics"]["accuracy"] for r in item[1]])["mean"])
    for rank, (label, group) in enumerate(ranked, start=1):
        run = next((r for r in group if r["seed"] == reference_seed), group[0])
        m = run["metrics"]
        link = f"[{md_escape(label)}]({run['report']}/{REPORT})" if run.get("report") else md_escape(label)
        seconds = sum(run["stage_seconds"].values())
        rows.append([rank, link, mean_sd(spread([r["metrics"]["accuracy"] for r in group])),
                     f"{pct(m['accuracy'])} ({interval(run['ci95'])})", f"{m['loss']:.4f}",
                     f"{m['train_accuracy']:.1%} / {m['val_accuracy']:.1%}",
                     f"{run['parameters']['trainable']:,} / {run['parameters']['total']:,}",
                     f"{seconds:.0f} s ({run['stage_seconds'].get('train', 0):.0f} s training)",
                     f"{run['stage_seconds'].get('train', 0) / max(1, run['epochs_run']):.1f} s",
                     f"{run['epochs_run']} ({md_escape(run['stopped_by'])}; weights of epoch "
                     f"{run.get('restored_epoch') or run['epochs_run']})", md_escape(run["diagnosis"])])
    for r in failed:
        rows.append(["", md_escape(f"{r['label']} (seed {r['seed']})"), "failed", "", "", "", "", "", "", "",
                     md_escape(r["failed"][:200])])
    return rows


def lesson_rows(verdicts: list[dict[str, Any]], claims: Claims, dataset: str) -> list[list[object]]:
    rows = []
    for claim, v in zip(claims.claims, verdicts):
        where = DATASET_NAMES[claim.dataset] + ("" if claim.dataset in (dataset, "none") else
                                                f" (judged here on {DATASET_NAMES[dataset]})")
        if claim.kind in PAIRED and "ci95" in v:
            changed = "; ".join(f"{k}: {a} → {b}" for k, (a, b) in v["changed"].items())
            compared = (f"{md_escape(claim.a or '')} {mean_sd(v['a'])} → "
                        f"{md_escape(claim.b or '')} {mean_sd(v['b'])}; "
                        f"changed: {md_escape(changed)}; test loss {v['loss_a']['mean']:.3f} → "
                        f"{v['loss_b']['mean']:.3f}; train-val gap {v['gap_a']['mean']:+.1%} → "
                        f"{v['gap_b']['mean']:+.1%}")
            test = tested(v)
        else:
            compared, test = md_escape(claim.a or ""), ""
        claimed = md_escape(claim.claim) + (f" (the tutorial stated a size: {md_escape(claim.stated or '')}; applied "
                                            f"as at least {claim.at_least * 100:g} points on its own data)"
                                            if claim.at_least else "")
        rows.append([claimed, md_escape(claim.tutorial), where, compared, test,
                     f"**{v['verdict']}**: {md_escape(v['reason'])}"])
    return rows


def lesson_notes(verdicts: list[dict[str, Any]], claims: Claims, place: str) -> list[str]:
    """What each lesson shows, in a plain sentence or two under the table: what was compared, what the seeds gave,
    whether that is a finding, and how the runs differ from the tutorial's own recipe."""
    lines = []
    for claim, v in zip(claims.claims, verdicts):
        if claim.kind in PAIRED and "ci95" in v:
            said = (f"On {place}, {md_escape(claim.b or '')} scored {v['b']['mean']:.1%} and "
                    f"{md_escape(claim.a or '')} {v['a']['mean']:.1%} in test accuracy on average over {v['seeds']} "
                    f"seeds; the difference per seed was {per_seed(v)} points. ")
            said += ("After the page's control that difference is a finding." if v["finding"] else
                     f"That is inside the noise ({why_not(v)}): these seeds do not show a difference.")
        else:
            said = f"{md_escape(v['reason'])[:1].upper()}{md_escape(v['reason'])[1:]}."
        if claim.kind == "paired_gap":
            said += (f" The claim is about overfitting, so it is judged on the gap between training and validation "
                     f"accuracy, not on test accuracy: {md_escape(v['reason'])}.")
        if claim.kind in PAIRED and claim.stalled and "still improving" in v.get("reason", ""):
            said += (f" But {md_escape(claim.stalled or '')} was still improving at its last epoch: a run still "
                     "improving has not shown that it is stuck or cannot fit.")
        if claim.recipe:
            said += " Not the tutorial's recipe: " + "; ".join(md_escape(r) for r in claim.recipe) + "."
        lines.append(f"- **{md_escape(claim.id)}** ({v['verdict']}): {said}")
    return lines


def step_test(step: dict[str, Any]) -> str:
    """A ladder step's controlled paired test, short."""
    return (f"{points(step['difference'])} ({step['ci95'][0] * 100:+.2f} to {step['ci95'][1] * 100:+.2f}, "
            f"{p_value(step['p'])}, q = {step['q']:.3f}; per seed {per_seed(step)}): "
            + ("**a finding**" if step["finding"] else f"inside the noise ({why_not(step)})"))


def ladder_section(number: int, ladder: Any, family: Family, reference_seed: int,
                   notes: dict[str, str]) -> tuple[list[str], list[dict[str, Any]]]:
    """A ladder's table; `notes`: label -> what a reader must know about that configuration's runs here (the
    random VGG16 weights offline)."""
    rows = ladder_rows(ladder, family)
    table_rows = []
    for position, row in enumerate(rows, start=1):
        step = row.get("step") or {}
        changed = "; ".join(f"{k}: {a} → {b}" for k, (a, b) in step.get("changed", {}).items())
        run = next((r for r in family.runs.get(row["label"], []) if r["seed"] == reference_seed), None)
        table_rows.append([
            position, md_escape(row["label"]) + (f" ({md_escape(notes[row['label']])})" if row["label"] in notes
                                                 else ""),
            md_escape(row["from"] or "(start)"),
            md_escape(changed) + (" (**not one setting**: the step is not a controlled comparison)"
                                  if len(step.get("changed", {})) > 1 else ""),
            mean_sd(row["accuracy"]) if "accuracy" in row else "not run",
            f"{pct(run['metrics']['accuracy'])} ({interval(run['ci95'])})" if run else "",
            step_test(step) if step else ""])
    lines = [f"### {md_escape(ladder.name)}", "", f"![validation curves of the steps](ladder-{number}.png)", "",
             raw_table(["step", "configuration", "from", "what changed", "accuracy over seeds",
                    f"seed {reference_seed} (95% interval)", "difference from its start (paired)"], table_rows), ""]
    return lines, rows


def distorted(run: dict[str, Any], name: str) -> dict[str, Any] | None:
    """A run's record on the test images distorted `name` ("none": the clean test set): how, accuracy, ci95,
    total and per-image correctness; None when the run has no per-image result for it."""
    if name == "none":
        return {"how": "", "accuracy": run["metrics"]["accuracy"], "ci95": run["ci95"], "correct": run["correct"],
                "total": run["test_total"]}
    found = (run.get("distortions") or {}).get(name)
    return found if found and "correct" in found else None


def distortion_pairs(runs_a: list[dict[str, Any]], runs_b: list[dict[str, Any]]) -> tuple[list[Any], list[str]]:
    """The seeds' (a, b) record pairs two configurations share, and the distortions both measured on every one of
    them (the clean test set first, when there are any)."""
    by_seed_b = {r["seed"]: r for r in runs_b}
    pairs = [(r, by_seed_b[r["seed"]]) for r in runs_a if r["seed"] in by_seed_b]
    names = [n for n in NAMES if pairs and all(distorted(run, n) for pair in pairs for run in pair)]
    return pairs, (["none", *names] if names else [])


def distortion_rows(family: Family, reference_seed: int) -> list[list[object]]:
    """One row per distortion that both configurations of DISTORTION_PAIR measured on every seed they share (the
    clean test set first): each one's accuracy over those seeds and on the reference seed, and the paired test of
    b - a."""
    a_label, b_label = DISTORTION_PAIR
    pairs, names = distortion_pairs(family.runs.get(a_label, []), family.runs.get(b_label, []))
    rows = []
    for name in names:
        a, b = [distorted(ra, name) for ra, _ in pairs], [distorted(rb, name) for _, rb in pairs]
        paired = family.distorted(a_label, b_label, name, list(zip(a, b)))
        shown = []
        for group in (a, b):
            at_reference = next((d for (ra, _), d in zip(pairs, group) if ra["seed"] == reference_seed), None)
            shown += [mean_sd(spread([d["accuracy"] for d in group])),
                      f"{pct(at_reference['accuracy'])} ({interval(at_reference['ci95'])})" if at_reference else ""]
        better = b_label if paired["difference"] > 0 else a_label
        rows.append([md_escape(name if name != "none" else "none (the test set)"), md_escape(a[0]["how"]), *shown,
                     tested(paired).replace(": **a finding**", f": **a finding**, {better} better")])
    return rows


def ablation_labels(claims: Claims) -> list[str]:
    """The ladder steps that change the modern entry one thing at a time (`from: modern_cnn`), in ladder order."""
    base = DISTORTION_PAIR[1]
    return list(dict.fromkeys(s.label for ladder in claims.ladders for s in ladder.steps if s.from_ == base))


def ablation_distortion_rows(family: Family, labels: list[str]) -> list[list[object]]:
    """One row per distortion (the clean test set first): the modern entry's mean accuracy over seeds, then each
    change's mean over the same seeds and the paired test of change - modern entry. Only the changes whose runs
    and the entry's share seeds and measured every distortion the row needs are shown (others: '')."""
    base_label = DISTORTION_PAIR[1]
    base = family.runs.get(base_label, [])
    by_seed = {label: {r["seed"]: r for r in family.runs.get(label, [])} for label in labels}
    rows = []
    for name in ["none", *NAMES]:
        cells, any_shown = [], False
        for label in labels:
            pairs = [(distorted(r, name), distorted(by_seed[label][r["seed"]], name)) for r in base
                     if r["seed"] in by_seed[label]]
            if not pairs or not all(a and b for a, b in pairs):
                cells.append("")
                continue
            paired = family.distorted(base_label, label, name, pairs)
            mean = sum(b["accuracy"] for _, b in pairs) / len(pairs)
            cells.append(f"{pct(mean)}: {paired['difference'] * 100:+.2f} ({paired['ci95'][0] * 100:+.2f} to "
                         f"{paired['ci95'][1] * 100:+.2f}; q = {paired['q']:.3f}; per seed {per_seed(paired)})"
                         + (" **a finding**" if paired["finding"] else ""))
            any_shown = True
        if any_shown:
            accuracies = [d["accuracy"] for d in (distorted(r, name) for r in base) if d]
            rows.append([md_escape(name if name != "none" else "none (the test set)"),
                         mean_sd(spread(accuracies)) if accuracies else "", *cells])
    return rows


def ablation_distortion_section(family: Family, claims: Claims) -> list[str]:
    """What each single change of the modern entry does on the distorted test images, or nothing when this
    catalogue has no such runs with per-image results."""
    labels = [label for label in ablation_labels(claims) if family.runs.get(label)]
    rows = ablation_distortion_rows(family, labels) if labels else []
    if not rows:
        return []
    base = DISTORTION_PAIR[1]
    return [f"### {base}, one change at a time, on the distorted test images", "",
            f"Each change of the ladder *The modern CNN, one change at a time* against `{base}` itself: the change's "
            "mean test accuracy over the seeds both have, then the paired bootstrap of change - "
            f"`{base}` over those seeds and images, in points with its 95% interval, its q-value under the page's "
            "control and each seed's own difference; **a finding** only as the page's control says (above), "
            "otherwise the difference is inside the noise.", "",
            raw_table(["distortion", f"{base} over seeds", *labels], rows), ""]


PHOTOS = {"mnist": "Photos of real handwriting are rarely as easy as MNIST",
          "fashion_mnist": "Photos of real clothes are rarely as tidy as Fashion-MNIST's (the distortions were chosen "
                           "for handwriting: on garments, thick and thin strokes are thicker and thinner outlines)"}


def distortion_section(family: Family, reference_seed: int, dataset: str = "mnist") -> list[str]:
    """The tutorial CNN and the modern entry on the held-out test images distorted each way, or why
    this catalogue cannot say."""
    a, b, runs = *DISTORTION_PAIR, family.runs
    lines = ["## Distorted test images", "",
             f"{PHOTOS.get(dataset, PHOTOS['mnist'])}: the same test images, distorted one way at a "
             "time (params `distortions`: rotated, thick and thin strokes, blurred, low resolution, unevenly lit, "
             f"off centre), predicted by each run's model after its fit. `{a}` (the tutorial CNN) against `{b}` "
             "(the modern entry); a difference is a finding only as the page's control says (above).",
             ""]
    if not runs.get(a) or not runs.get(b):
        return [*lines, f"Not compared: {a} and {b} do not both have successful runs in this catalogue.", ""]
    rows = distortion_rows(family, reference_seed)
    if rows:
        return [*lines, raw_table(["distortion", "how", f"{a} over seeds", f"{a} seed {reference_seed} (95% interval)",
                                   f"{b} over seeds", f"{b} seed {reference_seed} (95% interval)",
                                   f"paired test ({b} - {a}, test accuracy)"], rows), ""]
    skipped = next((r["distortions"]["not_measured"] for r in runs[a] + runs[b]
                    if "not_measured" in (r.get("distortions") or {})), None)
    if skipped:
        return [*lines, f"Not measured: {md_escape(skipped)}.", ""]
    return [*lines, "Not measured yet: these runs were recorded before the distortions were (they have no per-image "
            "results on distorted test images); `mnist compare` again fills this section.", ""]


def is_sample(data: dict[str, Any]) -> bool:
    """Whether a catalogue's MNIST is the offline 5,000-image sample rather than the tutorials' full MNIST."""
    return data["dataset"] == "mnist" and data.get("fetch", {}).get("total_images", 0) < 70_000


def where_judged(data: dict[str, Any]) -> str:
    return "the MNIST sample" if is_sample(data) else DATASET_NAMES.get(data["dataset"], data["dataset"])


def page_tests(claims: Claims, runs: dict[str, list[dict[str, Any]]]) -> Family:
    """Every paired test a catalogue page shows (the lessons, the ladders' steps, the distorted test images, the
    modern entry's changes on them), computed once each and controlled together."""
    family = Family(runs, claims.false_discovery_rate, claims.min_effect)
    for claim in claims.claims:
        if claim.kind in PAIRED and runs.get(claim.a or "") and runs.get(claim.b or ""):
            family.pair(claim.a or "", claim.b or "")
    for ladder in claims.ladders:
        ladder_rows(ladder, family)
    distortion_rows(family, 0)
    labels = [label for label in ablation_labels(claims) if runs.get(label)]
    if labels:
        ablation_distortion_rows(family, labels)
    family.control()
    return family


def vgg16_weights(data: dict[str, Any]) -> str | None:
    """The VGG16 base's weights of a catalogue's runs: its --set, else the params it ran with."""
    weights = data.get("overrides", {}).get("features.weights")
    if weights is None:
        weights = (yaml.safe_load(data.get("base_params") or "{}") or {}).get("features", {}).get("weights")
    return weights


def run_notes(data: dict[str, Any], runs: dict[str, list[dict[str, Any]]]) -> dict[str, str]:
    """What a reader must know about some configurations' runs on this page: a VGG16 base without ImageNet's
    weights."""
    weights = vgg16_weights(data)
    return {label: "random VGG16 weights: features.weights=none" for label, group in runs.items()
            if group[0]["spec"].get("kind") == "vgg16" and weights == "none"}


def control_note(family: Family, place: str) -> str:
    tests = sum(1 for r in family.tests.values() if r)
    found = sum(1 for r in family.tests.values() if r and r["finding"])
    return (f"Every paired test on this page (lessons, ladders, distorted test images: {tests} in all, the same "
            "comparison counted once) is a bootstrap over the seeds and the test images, so that both the trained "
            "model and the test set vary; its 95% interval and p-value are the bootstrap's own. The tests are "
            f"controlled together by Benjamini-Hochberg's false discovery rate at {family.rate:g} (q is the "
            f"adjusted p-value), and a difference is **a finding** only when q <= {family.rate:g}, it is at least "
            f"{family.min_effect * 100:g} point, and every seed's own difference has its sign ({found} of the "
            f"{tests} are): a bootstrap over a few seeds cannot see a seed it did not draw, so a question on which "
            f"the seeds disagree is not settled here (the cheap configurations of the lessons ran more seeds: "
            f"each test says how many). Verdicts on {place} say so in their words.")


def render_catalogue(data: dict[str, Any], claims: Claims, underfit_below: float) -> tuple[str, list[dict[str, Any]]]:
    """catalogue.md's text and the claims' verdicts (also saved in catalogue.json)."""
    dataset, results = data["dataset"], data["results"]
    runs, failed = by_label(results), [r for r in results if "failed" in r]
    reference = data["seeds"][0]
    family = page_tests(claims, runs)
    where, place = (dataset, is_sample(data)), where_judged(data)
    verdicts = [judge_claim(c, family, underfit_below, data.get("demo"), where) for c in claims.claims]
    fetched, machine = data.get("fetch", {}), data.get("machine", {})
    notes = run_notes(data, runs)
    tutorial_rows, said_once = claim_rows(data, runs, claims, vgg16_weights(data))
    parts = [
        f"# The catalogue on {DATASET_NAMES.get(dataset, md_escape(dataset))}", "",
        f"Data: {md_escape(fetched.get('description', '?'))}, {fetched.get('total_images', 0):,} images. "
        f"Machine: {md_escape(machine.get('cpu', '?'))}, {machine.get('cores', '?')} cores. "
        f"Each configuration ran once per seed ({', '.join(map(str, data['seeds']))}; `train.seed`, the validation "
        f"split stays fixed) as a `dvc exp run`; the seed-{reference} run's report is linked. Accuracies are top-1 on "
        f"the {data.get('test_images', 0):,} test images with their 95% Wilson interval. Every entry keeps our "
        "recipe's early stopping (patience 3, the lowest validation loss's weights) unless its row says otherwise; "
        "the modern entries (`early_stopping: false`) train every epoch, their learning-rate schedule ending the "
        "run; the Fashion-MNIST tutorial's own recipe runs as `fashion_mlp_128-tutorial`. The catalogue entries are "
        "our recipes of the tutorials' nets, not the tutorials' recipes: each lesson says how its runs differ."
        + (f" Overrides for every run: {md_escape(', '.join(f'{k}={v}' for k, v in data['overrides'].items()))}."
           if data.get("overrides") else ""), "",
        control_note(family, place), "",
        "![leaderboard](leaderboard.png)", "",
        "## The tutorials' numbers", "",
        *said_once,
        raw_table(["configuration", "tutorial", "claimed", "in metric", "on", f"ours, seed {reference} (95% interval)",
               "difference", "binary claim as top-1", "verdict"], tutorial_rows), "",
        "A binary-accuracy claim is judged in binary accuracy; its interval counts the ten yes/no outputs of each "
        "image as independent, so it is narrower than it should be. Each image wrong in top-1 has at least one "
        "wrong yes/no output, so a binary accuracy b bounds top-1 accuracy from below by 1 - 10 (1 - b).", "",
        *recipe_section(runs, claims),
        "## Lessons", "",
        raw_table(["claim", "tutorial", "claimed on", "configurations (a → b), mean ± sd over seeds",
               "paired test (b - a, test accuracy)", "verdict"], lesson_rows(verdicts, claims, dataset)), "",
        "### What the lessons show", "",
        *lesson_notes(verdicts, claims, place), "",
        "## Ladders", ""]
    for number, ladder in enumerate(claims.ladders, start=1):
        parts += ladder_section(number, ladder, family, reference, notes)[0]
    parts += distortion_section(family, reference, dataset)
    parts += ablation_distortion_section(family, claims)
    parts += ["## Every configuration", "",
              raw_table(["rank (mean over seeds)", "configuration", "over seeds",
                         f"test accuracy, seed {reference} (95% interval)", "test loss", "train / val accuracy",
                         "parameters trainable / total", "wall time, all stages", "per epoch", "epochs", "diagnosis"],
                        configuration_rows(runs, failed, reference)), "",
              "Wall time adds every stage's last run for this configuration (fetch to report, the VGG16 features "
              "stage included even when DVC restored it from its cache); the training stage's time includes its "
              "start-up, so it is longer than the fit alone.", "",
              "## What cannot be checked here", "",
              "- Full MNIST (the tutorials' 60,000 training images): `mnist compare --dataset mnist --set "
              "fetch.source=download` on a machine with internet; offline, the MNIST numbers are from the "
              "5,000-image sample and are judged *not comparable* with the tutorials'.",
              "- VGG16 with ImageNet weights: `mnist compare --dataset mnist --models vgg16_transfer --set "
              "features.weights=imagenet`; offline the base has random weights.", ""]
    demo = data.get("demo")
    if demo:
        parts += ["## The single-neuron demo", "", f"Dense(1) fitted on six points of y = 2x - 1 predicts "
                  f"y({demo['at']:g}) = {demo['prediction']:.4f} (truth {demo['truth']:g}; the tutorial's model "
                  f"{demo['claimed']:g}); it uses no image data. [Its report](../single_neuron/{REPORT}).", ""]
    return "\n".join(parts), verdicts


def render_side_by_side(catalogues: dict[str, dict[str, Any]], claims: Claims) -> str:
    """The lessons' verdicts on each dataset, side by side (reports/lessons.md), each column named for the data it
    was judged on (the offline MNIST sample is not the tutorials' MNIST)."""
    datasets = list(catalogues)
    rows = []
    for position, claim in enumerate(claims.claims):
        cells = []
        for dataset in datasets:
            verdicts = catalogues[dataset].get("claims") or []
            v = verdicts[position] if position < len(verdicts) else {"verdict": "not run", "reason": ""}
            shown = f"**{v['verdict']}**"
            if claim.kind == "paired_gap" and "gap_change_per_seed" in v:  # judged on overfitting, not accuracy
                changes = v["gap_change_per_seed"]
                shown += (f": train-validation gap {sum(changes) / len(changes) * 100:+.2f} points (per seed "
                          + ", ".join(f"{c * 100:+.1f}" for c in changes) + f"); test accuracy "
                          f"{points(v['difference'])}")
            elif "ci95" in v and "q" in v:
                shown += (f": {points(v['difference'])} ({v['ci95'][0] * 100:+.2f} to {v['ci95'][1] * 100:+.2f}; "
                          f"q = {v['q']:.3f}; per seed {per_seed(v)})")
            cells.append(shown)
        claimed = md_escape(claim.claim) + (f" (the tutorial stated a size: {md_escape(claim.stated or '')}; applied "
                                            f"as at least {claim.at_least * 100:g} points on its own data)"
                                            if claim.at_least else "")
        rows.append([claimed, md_escape(claim.tutorial), DATASET_NAMES[claim.dataset], *cells])
    links = ", ".join(f"[{where_judged(catalogues[d])}]({d}/catalogue.md)" for d in datasets)
    return "\n".join([
        "# The tutorials' lessons on each dataset", "",
        f"Each verdict comes from that dataset's catalogue ({links}), where each lesson also says in words what it "
        "shows and how its runs differ from the tutorial's recipe. Paired claims: b - a in test accuracy averaged "
        "over the seeds, with the 95% interval of a bootstrap over seeds and test images in points, its q-value "
        "under the page's false-discovery-rate control and each seed's own difference. A verdict reached on "
        "another dataset than the claim's, or on the 5,000-image MNIST sample, says so (holds / does not hold / "
        "not settled on ...).", "",
        raw_table(["claim", "tutorial", "claimed on", *[where_judged(catalogues[d]) for d in datasets]], rows), ""])


def training_accuracy_claims(claims: Claims) -> set[str]:
    """The catalogue entries whose claimed number is a training accuracy (claims.yaml `recipes` says so)."""
    return {entry for entry, items in claims.recipes.items()
            if any("training-set accuracy" in item.lower() for item in items)}


def recipe_section(runs: dict[str, list[dict[str, Any]]], claims: Claims) -> list[str]:
    """How each catalogue entry with a run here differs from its tutorial's own recipe (claims.yaml `recipes`)."""
    lines = [f"- **{md_escape(entry)}**: " + "; ".join(md_escape(i) for i in items) + "."
             for entry, items in claims.recipes.items() if runs.get(entry)]
    if not lines:
        return []
    return ["### How our recipes differ from the tutorials'", "",
            "Read from the tutorials' own text (file and line cited). Every one of these makes the entry's number "
            "*not comparable* with the tutorial's even on full MNIST; the lessons below list their own.", "",
            *lines, ""]


def leaderboard_png(path: Path, runs: dict[str, list[dict[str, Any]]], dataset: str, weights: str | None,
                    sample: bool, skip: set[str] = frozenset()) -> None:
    """Test accuracy per configuration (seed mean, every seed a dot) on the whole 0-1 axis, and beside it the
    configurations within ZOOM_WITHIN of the best on an axis that shows their differences. A tutorial's top-1
    test-accuracy claim is drawn only on its own dataset (a VGG16 claim only on a base with ImageNet's weights; a
    training accuracy never: `skip`), and on the MNIST sample its legend says it was made on full MNIST."""
    legend = "claimed on full MNIST (top-1; not comparable here)" if sample else "claimed (top-1)"
    ordered = sorted(runs.items(), key=lambda item: spread([r["metrics"]["accuracy"] for r in item[1]])["mean"])
    means = [spread([r["metrics"]["accuracy"] for r in group])["mean"] for _, group in ordered]
    top = [i for i, mean in enumerate(means) if mean >= max(means, default=0) - ZOOM_WITHIN]
    plt, fig = figure(12, 0.35 * len(ordered) + 1.4)
    panels = [(fig.add_subplot(1, 2, 1), list(range(len(ordered))), (0.0, 1.0), "all configurations")]
    if top:
        low = min(min(r["metrics"]["accuracy"] for r in ordered[i][1]) for i in top)
        panels.append((fig.add_subplot(1, 2, 2), top, (max(0.0, low - 0.005), 1.0),
                       f"within {ZOOM_WITHIN * 100:g} points of the best mean, axis zoomed"))
    for axis, shown, limits, title in panels:
        labels = [ordered[i][0] for i in shown]
        axis.barh(labels, [means[i] for i in shown], color="#4c72b0", alpha=0.7, label="mean over seeds")
        for position, i in enumerate(shown):
            group = ordered[i][1]
            axis.scatter([r["metrics"]["accuracy"] for r in group], [position] * len(group), color="#222222", s=8,
                         zorder=3, label="each seed" if position == 0 else None)
            spec = group[0]["spec"]
            drawn = (group[0]["label"] == group[0]["model"] and spec.get("claimed_accuracy")
                     and spec["metric"] == "accuracy" and spec.get("claim_dataset", "mnist") == dataset
                     and (spec.get("kind") != "vgg16" or weights == "imagenet")
                     and "training accuracy" not in spec.get("claimed", "") and group[0]["label"] not in skip)
            if drawn and limits[0] <= spec["claimed_accuracy"] <= limits[1]:
                axis.scatter([spec["claimed_accuracy"]], [position], marker="D", color="#dd8452", zorder=4,
                             label=legend if legend not in axis.get_legend_handles_labels()[1] else None)
        axis.set_xlim(*limits)
        axis.set_xlabel("test accuracy (top-1)")
        axis.set_title(title, fontsize=9)
        axis.legend(loc="lower right", fontsize=8)
        axis.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    save(plt, fig, path)


def ladder_png(path: Path, ladder: Any, runs: dict[str, list[dict[str, Any]]], reference_seed: int) -> None:
    """The ladder's steps' validation top-1 curves (reference seed) overlaid, integer epochs."""
    from matplotlib.ticker import MaxNLocator

    plt, fig = figure(8, 4)
    axis = fig.add_subplot(1, 1, 1)
    for step in ladder.steps:
        run = next((r for r in runs.get(step.label, []) if r["seed"] == reference_seed), None)
        curve = top1_history(run["history"]) if run else []
        if curve:
            axis.plot(range(1, len(curve) + 1), curve, marker="o", markersize=3, label=step.label)
    axis.set_xlabel("epoch")
    axis.set_ylabel("validation accuracy (top-1)")
    axis.xaxis.set_major_locator(MaxNLocator(integer=True))
    axis.ticklabel_format(axis="y", useOffset=False)
    axis.set_title(f"{ladder.name}: validation top-1 per epoch (seed {reference_seed})", fontsize=10)
    if axis.lines:
        axis.legend(fontsize=8)
    axis.grid(alpha=0.3)
    save(plt, fig, path)
