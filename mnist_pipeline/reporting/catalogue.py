"""A catalogue page: every configuration over its seeds, the tutorials' claims with verdicts, the lessons
with their paired tests, the ladders, and the side-by-side lessons of several datasets.

Everything comes from the catalogue's records (`mnist compare` writes them to catalogue.json): a run's
numbers are its evaluation's, its claim's verdict the one its own report shows.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mnist_pipeline.distortions import NAMES
from mnist_pipeline.layout import REPORT_FILE as REPORT
from mnist_pipeline.lessons import Claims, judge_claim, ladder_rows, p_value, paired_difference, spread, unpack
from mnist_pipeline.reporting.markdown import md_escape, raw_table
from mnist_pipeline.reporting.plots import figure, save

DATASET_NAMES = {"mnist": "MNIST", "fashion_mnist": "Fashion-MNIST", "none": "no dataset"}
DISTORTION_PAIR = ("cnn", "modern_cnn")  # the tutorial CNN and the modern entry, judged on distorted test images


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


def implied_top1(binary: float) -> float:
    """The top-1 accuracy a binary accuracy implies when each wrong answer costs two of the ten yes/no
    outputs (its true class said no, the chosen one yes) and each right answer none: 1 - 5 (1 - b)."""
    return max(0.0, 1 - 5 * (1 - binary))


def claim_rows(runs: dict[str, list[dict[str, Any]]], reference_seed: int) -> list[list[object]]:
    """The tutorials' numbers: one row per catalogue entry that states one, judged on the reference seed."""
    rows = []
    for label, group in runs.items():
        run = next((r for r in group if r["seed"] == reference_seed), None)
        if run is None or run["label"] != run["model"] or run["spec"].get("claimed_accuracy") is None:
            continue
        v, spec = run["verdict"], run["spec"]
        ours = f"{pct(v['ours'])} ({interval(v['ci95'])})"
        implied = ""
        if v["metric"] == "binary_accuracy":
            implied = (f"implies ~{pct(implied_top1(spec['claimed_accuracy']))} top-1; ours "
                       f"{pct(run['metrics']['accuracy'])} ({interval(run['ci95'])})")
        difference = points(v["ours"] - spec["claimed_accuracy"]) if v["verdict"] in ("reproduced", "refuted") else ""
        rows.append([f"[{md_escape(label)}]({run['report']}/{REPORT})", md_escape(spec.get("source", "")),
                     md_escape(spec["claimed"]), v["metric"], DATASET_NAMES[spec.get("claim_dataset", "mnist")],
                     ours, difference, implied, f"**{v['verdict']}**: {md_escape(v['reason'])}"])
    return rows


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
        rows.append([rank, link, f"{pct(m['accuracy'])} ({interval(run['ci95'])})",
                     mean_sd(spread([r["metrics"]["accuracy"] for r in group])), f"{m['loss']:.4f}",
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
        if claim.kind == "paired" and "ci95" in v:
            changed = "; ".join(f"{k}: {a} → {b}" for k, (a, b) in v["changed"].items())
            compared = (f"{md_escape(claim.a or '')} {mean_sd(v['a'])} → "
                        f"{md_escape(claim.b or '')} {mean_sd(v['b'])}; "
                        f"changed: {md_escape(changed)}; train-val gap {v['gap_a']['mean']:+.1%} → "
                        f"{v['gap_b']['mean']:+.1%}")
            test = (f"{points(v['difference'])} (95% interval {v['ci95'][0] * 100:+.2f} to "
                    f"{v['ci95'][1] * 100:+.2f}; {p_value(v['p'])}; {v['seeds']} seeds x {v['images']:,} images): "
                    + ("**a finding**" if v["finding"] else "inside the noise"))
        else:
            compared, test = md_escape(claim.a or ""), ""
        claimed = md_escape(claim.claim) + (f" (judged as an effect of at least {claim.at_least * 100:g} points)"
                                            if claim.at_least else "")
        rows.append([claimed, md_escape(claim.tutorial), where, compared, test,
                     f"**{v['verdict']}**: {md_escape(v['reason'])}"])
    return rows


def ladder_section(number: int, ladder: Any, runs: dict[str, list[dict[str, Any]]],
                   reference_seed: int) -> tuple[list[str], list[dict[str, Any]]]:
    rows = ladder_rows(ladder, runs)
    table_rows = []
    for position, row in enumerate(rows, start=1):
        step = row.get("step") or {}
        changed = "; ".join(f"{k}: {a} → {b}" for k, (a, b) in step.get("changed", {}).items())
        run = next((r for r in runs.get(row["label"], []) if r["seed"] == reference_seed), None)
        table_rows.append([
            position, md_escape(row["label"]), md_escape(row["from"] or "(start)"),
            md_escape(changed) + (" (**not one setting**: the step is not a controlled comparison)"
                                  if len(step.get("changed", {})) > 1 else ""),
            mean_sd(row["accuracy"]) if "accuracy" in row else "not run",
            f"{pct(run['metrics']['accuracy'])} ({interval(run['ci95'])})" if run else "",
            (f"{points(step['difference'])} ({step['ci95'][0] * 100:+.2f} to {step['ci95'][1] * 100:+.2f}, "
             f"{p_value(step['p'])}): " + ("**a finding**" if step["finding"] else "inside the noise"))
            if step else ""])
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


def distortion_rows(runs_a: list[dict[str, Any]], runs_b: list[dict[str, Any]],
                    reference_seed: int) -> list[list[object]]:
    """One row per distortion that both configurations measured on every seed they share (the clean test set
    first): each one's accuracy over those seeds and on the reference seed, and the paired test of b - a."""
    by_seed_b = {r["seed"]: r for r in runs_b}
    pairs = [(r, by_seed_b[r["seed"]]) for r in runs_a if r["seed"] in by_seed_b]
    names = [n for n in NAMES if pairs and all(distorted(run, n) for pair in pairs for run in pair)]
    rows = []
    for name in ["none", *names] if names else []:
        a, b = [distorted(ra, name) for ra, _ in pairs], [distorted(rb, name) for _, rb in pairs]
        paired = paired_difference([unpack(d["correct"], d["total"]) for d in a],
                                   [unpack(d["correct"], d["total"]) for d in b])
        shown = []
        for group in (a, b):
            at_reference = next((d for (ra, _), d in zip(pairs, group) if ra["seed"] == reference_seed), None)
            shown += [mean_sd(spread([d["accuracy"] for d in group])),
                      f"{pct(at_reference['accuracy'])} ({interval(at_reference['ci95'])})" if at_reference else ""]
        better = DISTORTION_PAIR[1] if paired["difference"] > 0 else DISTORTION_PAIR[0]
        rows.append([md_escape(name if name != "none" else "none (the test set)"), md_escape(a[0]["how"]), *shown,
                     f"{points(paired['difference'])} (95% interval {paired['ci95'][0] * 100:+.2f} to "
                     f"{paired['ci95'][1] * 100:+.2f}; {p_value(paired['p'])}; {paired['seeds']} seeds x "
                     f"{paired['images']:,} images): "
                     + (f"**a finding**, {better} better" if paired["finding"] else "inside the noise")])
    return rows


def ablation_labels(claims: Claims) -> list[str]:
    """The ladder steps that change the modern entry one thing at a time (`from: modern_cnn`), in ladder order."""
    base = DISTORTION_PAIR[1]
    return list(dict.fromkeys(s.label for ladder in claims.ladders for s in ladder.steps if s.from_ == base))


def ablation_distortion_rows(runs: dict[str, list[dict[str, Any]]], labels: list[str]) -> list[list[object]]:
    """One row per distortion (the clean test set first): the modern entry's mean accuracy over seeds, then each
    change's mean over the same seeds and the paired test of change - modern entry. Only the changes whose runs
    and the entry's share seeds and measured every distortion the row needs are shown (others: '')."""
    base = runs.get(DISTORTION_PAIR[1], [])
    by_seed = {label: {r["seed"]: r for r in runs.get(label, [])} for label in labels}
    rows = []
    for name in ["none", *NAMES]:
        cells, any_shown = [], False
        for label in labels:
            pairs = [(distorted(r, name), distorted(by_seed[label][r["seed"]], name)) for r in base
                     if r["seed"] in by_seed[label]]
            if not pairs or not all(a and b for a, b in pairs):
                cells.append("")
                continue
            paired = paired_difference([unpack(a["correct"], a["total"]) for a, _ in pairs],
                                       [unpack(b["correct"], b["total"]) for _, b in pairs])
            mean = sum(b["accuracy"] for _, b in pairs) / len(pairs)
            cells.append(f"{pct(mean)}: {paired['difference'] * 100:+.2f} ({paired['ci95'][0] * 100:+.2f} to "
                         f"{paired['ci95'][1] * 100:+.2f}; {paired['seeds']} seeds)"
                         + (" **a finding**" if paired["finding"] else ""))
            any_shown = True
        if any_shown:
            accuracies = [d["accuracy"] for d in (distorted(r, name) for r in base) if d]
            rows.append([md_escape(name if name != "none" else "none (the test set)"),
                         mean_sd(spread(accuracies)) if accuracies else "", *cells])
    return rows


def ablation_distortion_section(runs: dict[str, list[dict[str, Any]]], claims: Claims) -> list[str]:
    """What each single change of the modern entry does on the distorted test images, or nothing when this
    catalogue has no such runs with per-image results."""
    labels = [label for label in ablation_labels(claims) if runs.get(label)]
    rows = ablation_distortion_rows(runs, labels) if labels else []
    if not rows:
        return []
    base = DISTORTION_PAIR[1]
    return [f"### {base}, one change at a time, on the distorted test images", "",
            f"Each change of the ladder *The modern CNN, one change at a time* against `{base}` itself: the change's "
            "mean test accuracy over the seeds both have, then the paired bootstrap of change - "
            f"`{base}` over those seeds and images, in points with its 95% interval; **a finding** when the "
            "interval excludes 0, otherwise the difference is inside the noise.", "",
            raw_table(["distortion", f"{base} over seeds", *labels], rows), ""]


PHOTOS = {"mnist": "Photos of real handwriting are rarely as easy as MNIST",
          "fashion_mnist": "Photos of real clothes are rarely as tidy as Fashion-MNIST's (the distortions were chosen "
                           "for handwriting: on garments, thick and thin strokes are thicker and thinner outlines)"}


def distortion_section(runs: dict[str, list[dict[str, Any]]], reference_seed: int,
                       dataset: str = "mnist") -> list[str]:
    """The tutorial CNN and the modern entry on the held-out test images distorted each way (issue 17), or why
    this catalogue cannot say."""
    a, b = DISTORTION_PAIR
    lines = ["## Distorted test images", "",
             f"{PHOTOS.get(dataset, PHOTOS['mnist'])}: the same test images, distorted one way at a "
             "time (params `distortions`: rotated, thick and thin strokes, blurred, low resolution, unevenly lit, "
             f"off centre), predicted by each run's model after its fit. `{a}` (the tutorial CNN) against `{b}` "
             "(the modern entry); a difference is a finding only when the paired bootstrap over the images says so.",
             ""]
    if not runs.get(a) or not runs.get(b):
        return [*lines, f"Not compared: {a} and {b} do not both have successful runs in this catalogue.", ""]
    rows = distortion_rows(runs[a], runs[b], reference_seed)
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


def render_catalogue(data: dict[str, Any], claims: Claims, underfit_below: float) -> tuple[str, list[dict[str, Any]]]:
    """catalogue.md's text and the claims' verdicts (also saved in catalogue.json)."""
    dataset, results = data["dataset"], data["results"]
    runs, failed = by_label(results), [r for r in results if "failed" in r]
    reference = data["seeds"][0]
    verdicts = [judge_claim(c, runs, underfit_below, data.get("demo")) for c in claims.claims]
    fetched, machine = data.get("fetch", {}), data.get("machine", {})
    parts = [
        f"# The catalogue on {DATASET_NAMES.get(dataset, md_escape(dataset))}", "",
        f"Data: {md_escape(fetched.get('description', '?'))}, {fetched.get('total_images', 0):,} images. "
        f"Machine: {md_escape(machine.get('cpu', '?'))}, {machine.get('cores', '?')} cores. "
        f"Each configuration ran once per seed ({', '.join(map(str, data['seeds']))}; `train.seed`, the validation "
        f"split stays fixed) as a `dvc exp run`; the seed-{reference} run's report is linked. Accuracies are top-1 on "
        f"the {data.get('test_images', 0):,} test images with their 95% Wilson interval; a difference is a finding "
        "only when a paired test over the seeds says so. Every entry keeps our recipe's early stopping (patience 3, "
        "the lowest validation loss's weights) unless its row says otherwise; the modern entries (`early_stopping: "
        "false`) train every epoch, their learning-rate schedule ending the run; the Fashion-MNIST tutorial's own "
        "recipe runs as `fashion_mlp_128-tutorial`."
        + (f" Overrides for every run: {md_escape(', '.join(f'{k}={v}' for k, v in data['overrides'].items()))}."
           if data.get("overrides") else ""), "",
        "![leaderboard](leaderboard.png)", "",
        "## The tutorials' numbers", "",
        raw_table(["configuration", "tutorial", "claimed", "in metric", "on", f"ours, seed {reference} (95% interval)",
               "difference", "binary claim as top-1", "verdict"], claim_rows(runs, reference)), "",
        "A binary-accuracy claim is judged in binary accuracy; its interval counts the ten yes/no outputs of each "
        "image as independent, so it is narrower than it should be.", "",
        "## Lessons", "",
        raw_table(["claim", "tutorial", "claimed on", "configurations (a → b), mean ± sd over seeds",
               "paired test (b - a, test accuracy)", "verdict"], lesson_rows(verdicts, claims, dataset)), "",
        "## Ladders", ""]
    for number, ladder in enumerate(claims.ladders, start=1):
        parts += ladder_section(number, ladder, runs, reference)[0]
    parts += distortion_section(runs, reference, dataset)
    parts += ablation_distortion_section(runs, claims)
    parts += ["## Every configuration", "",
              raw_table(["rank", "configuration", f"test accuracy, seed {reference} (95% interval)", "over seeds",
                     "test loss", "train / val accuracy", "parameters trainable / total",
                     "wall time, all stages", "per epoch", "epochs", "diagnosis"],
                    configuration_rows(runs, failed, reference)), "",
              "Wall time adds every stage's last run for this configuration (fetch to report, the VGG16 features "
              "stage included even when DVC restored it from its cache).", "",
              "## What cannot be checked here", "",
              "- Full MNIST (the tutorials' 60,000 training images): `mnist compare --dataset mnist --set "
              "data.source=download` on a machine with internet; offline, the MNIST numbers are from the "
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
    """The lessons' verdicts on each dataset, side by side (reports/lessons.md)."""
    datasets = list(catalogues)
    rows = []
    for position, claim in enumerate(claims.claims):
        cells = []
        for dataset in datasets:
            verdicts = catalogues[dataset].get("claims") or []
            v = verdicts[position] if position < len(verdicts) else {"verdict": "not run", "reason": ""}
            shown = f"**{v['verdict']}**"
            if "ci95" in v:
                shown += f": {points(v['difference'])} ({v['ci95'][0] * 100:+.2f} to {v['ci95'][1] * 100:+.2f})"
            cells.append(shown)
        rows.append([md_escape(claim.claim), md_escape(claim.tutorial), DATASET_NAMES[claim.dataset], *cells])
    links = ", ".join(f"[{DATASET_NAMES[d]}]({d}/catalogue.md)" for d in datasets)
    return "\n".join([
        "# The tutorials' lessons on each dataset", "",
        f"Each verdict comes from that dataset's catalogue ({links}): paired claims as b - a in test accuracy "
        "averaged over the seeds, with the paired bootstrap's 95% interval in points.", "",
        raw_table(["claim", "tutorial", "claimed on", *[DATASET_NAMES[d] for d in datasets]], rows), ""])


def leaderboard_png(path: Path, runs: dict[str, list[dict[str, Any]]], reference_seed: int) -> None:
    """Test accuracy per configuration (seed mean, every seed a dot) and the tutorial's top-1 claims."""
    ordered = sorted(runs.items(), key=lambda item: spread([r["metrics"]["accuracy"] for r in item[1]])["mean"])
    plt, fig = figure(8, 0.35 * len(ordered) + 1.4)
    axis = fig.add_subplot(1, 1, 1)
    labels = [label for label, _ in ordered]
    means = [spread([r["metrics"]["accuracy"] for r in group])["mean"] for _, group in ordered]
    axis.barh(labels, means, color="#4c72b0", alpha=0.7, label="mean over seeds")
    for position, (_, group) in enumerate(ordered):
        axis.scatter([r["metrics"]["accuracy"] for r in group], [position] * len(group), color="#222222", s=8,
                     zorder=3, label="each seed" if position == 0 else None)
        spec = group[0]["spec"]
        if group[0]["label"] == group[0]["model"] and spec.get("claimed_accuracy") and spec["metric"] == "accuracy":
            axis.scatter([spec["claimed_accuracy"]], [position], marker="D", color="#dd8452", zorder=4,
                         label="claimed (top-1)" if "claimed (top-1)" not in axis.get_legend_handles_labels()[1]
                         else None)
    axis.set_xlim(0, 1)
    axis.set_xlabel("test accuracy (top-1)")
    axis.legend(loc="lower right", fontsize=8)
    axis.grid(axis="x", alpha=0.3)
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
