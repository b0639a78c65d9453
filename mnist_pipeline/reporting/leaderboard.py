"""Comparisons of several runs: the leaderboard table and picture, the tutorials' lessons, sweep reports."""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

from mnist_pipeline.files import atomic_path
from mnist_pipeline.reporting.markdown import md_escape, table

UNNORMALIZED = "mlp_500 (no x/255)"


def accuracy(results: dict[str, dict[str, Any]], label: str) -> float | None:
    result = results.get(label, {})
    return result.get("metrics", {}).get("accuracy")


def lessons(results: dict[str, dict[str, Any]]) -> list[str]:
    """The tutorials' lessons, each stated only when both of its runs succeeded."""
    out = []

    def pair(a: str, b: str, template: str) -> None:
        first, second = accuracy(results, a), accuracy(results, b)
        if first is not None and second is not None:
            out.append(template.format(a=first, b=second, diff=(second - first) * 100))

    pair("lee_mse_sigmoid", "lee_ce_sigmoid", "**Loss**: with the same sigmoid 500-500 net and SGD, mean squared "
         "error reaches {a:.1%} and cross-entropy {b:.1%} ({diff:+.1f} points). Cross-entropy is the loss for "
         "classification.")
    pair("lee_ce_sigmoid", "lee_ce_relu", "**Activation**: swapping sigmoid for relu in the cross-entropy net moves "
         "test accuracy from {a:.1%} to {b:.1%} ({diff:+.1f} points).")
    pair("deep_sigmoid", "deep_relu", "**Activation, deeper net**: 200-100-60-30 with sigmoid {a:.1%}, "
         "with relu {b:.1%} ({diff:+.1f} points).")
    pair("lee_mse_sigmoid", "lee_deep10_mse_sigmoid", "**Depth**: 2 sigmoid layers with MSE {a:.1%}, 10 layers "
         "{b:.1%} ({diff:+.1f} points): more depth does not rescue a bad loss and activation.")
    pair(UNNORMALIZED, "mlp_500", "**Normalisation**: the 500-500 relu MLP on raw 0..255 pixels {a:.1%}, "
         "on x/255 {b:.1%} ({diff:+.1f} points).")
    for a, b in (("deep_relu", "deep_relu_dropout"), ("mlp_500", "mlp_relu_adam")):
        first, second = results.get(a, {}).get("metrics"), results.get(b, {}).get("metrics")
        if first and second:
            gap_a = first["train_accuracy"] - first["val_accuracy"]
            gap_b = second["train_accuracy"] - second["val_accuracy"]
            out.append(f"**Dropout**: {a} (no dropout) trains {gap_a:+.1%} above its validation accuracy and scores "
                       f"{first['accuracy']:.1%}; {b} (dropout) {gap_b:+.1%} and {second['accuracy']:.1%}.")
    flagged = [r for r in results.values() if (r.get("audit") or {}).get("flagged")]
    for result in flagged:
        out.append(f"**Metric audit** ({result['label']}): {result['audit']['note']}.")
    under = [r["label"] for r in results.values() if r.get("diagnosis", "").startswith("underfitting")]
    if under:
        out.append(f"**Look at training accuracy first**: underfitting (training accuracy too low to blame "
                   f"overfitting) in {', '.join(under)}.")
    return out


def leaderboard_rows(results: list[dict[str, Any]]) -> list[list[object]]:
    rows = []
    ranked = sorted(results, key=lambda r: -(r.get("metrics", {}).get("accuracy") or -1))
    for rank, r in enumerate(ranked, start=1):
        if "failed" in r:
            rows.append([rank, r["label"], "failed", "", "", "", "", r["failed"][:160]])
            continue
        m, spec = r["metrics"], r["spec"]
        claimed = spec.get("claimed", "")
        rows.append([rank, r["label"], f"{m['accuracy']:.2%}", claimed, f"{m['loss']:.4f}",
                     f"{m['train_accuracy']:.1%} / {m['val_accuracy']:.1%}", f"{m['parameters']:,}",
                     f"{m['train_seconds']:.0f} s, {r['epochs_run']} epochs"])
    return rows


def leaderboard_png(path: Path, results: list[dict[str, Any]]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    measured = [r for r in results if "accuracy" in r.get("metrics", {})]
    measured.sort(key=lambda r: r["metrics"]["accuracy"])
    fig = plt.figure(figsize=(8, 0.4 * len(measured) + 1.2), dpi=100)
    axis = fig.add_subplot(1, 1, 1)
    labels = [r["label"] for r in measured]
    axis.barh(labels, [r["metrics"]["accuracy"] for r in measured], color="#4c72b0", label="reproduced")
    claimed = [(i, r["spec"]["claimed_accuracy"]) for i, r in enumerate(measured) if r["spec"].get("claimed_accuracy")]
    if claimed:
        axis.scatter([c for _, c in claimed], [i for i, _ in claimed], color="#dd8452", zorder=3, label="claimed")
    axis.set_xlim(0, 1)
    axis.set_xlabel("test accuracy (top-1)")
    axis.legend(loc="lower right")
    axis.grid(axis="x", alpha=0.3)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", bbox_inches="tight")
    plt.close(fig)


def render_catalogue(dataset: str, results: list[dict[str, Any]], fetched: dict[str, Any], extra: dict[str, str],
                     demo: dict[str, Any] | None = None, demo_link: str = "") -> str:
    """A catalogue comparison page: the leaderboard, the lessons from its numbers, each run's diagnosis, and
    the single-neuron demo's prediction (`demo`: its record, `demo_link`: its report, relative)."""
    by_label = {r["label"]: r for r in results}
    parts = [f"# The catalogue on {md_escape(dataset)}", "",
             f"Data: {md_escape(fetched.get('description', '?'))}, {fetched.get('total_images', 0):,} images. "
             f"Each row is one `dvc exp run` of this pipeline; its own report is in `{dataset}/<model>/report.md`."
             + (f" Overrides for every run: {md_escape(', '.join(f'{k}={v}' for k, v in extra.items()))}."
                if extra else ""),
             "", "![leaderboard](leaderboard.png)", "",
             table(["rank", "configuration", "test accuracy (top-1)", "claimed", "test loss", "train / val accuracy",
                    "parameters", "training"], leaderboard_rows(results)), "", "## Lessons, from these numbers", ""]
    parts += [f"- {line}" for line in lessons(by_label)] or ["- (not enough successful runs to compare)"]
    diagnoses = [[r["label"], r.get("diagnosis", r.get("failed", ""))] for r in results]
    parts += ["", "## Diagnoses", "", table(["configuration", "diagnosis"], diagnoses), ""]
    if demo:
        parts += ["## The single-neuron demo", "", f"Dense(1) fitted on six points of y = 2x - 1 predicts "
                  f"y({demo['at']:g}) = {demo['prediction']:.4f} (truth {demo['truth']:g}; the tutorial's model "
                  f"{demo['claimed']:g}); it uses no image data. [Its report]({demo_link}).", ""]
    return "\n".join(parts)


def main_effects(results: list[dict[str, Any]]) -> list[str]:
    """For each grid setting, mean test accuracy at each of its values over the other settings."""
    points = [r for r in results if r.get("point") and "accuracy" in r.get("metrics", {})]
    lines = []
    for key in dict.fromkeys(k for r in points for k in r["point"]):
        levels: dict[Any, list[float]] = {}
        for r in points:
            levels.setdefault(r["point"][key], []).append(r["metrics"]["accuracy"])
        if len(levels) > 1:
            means = ", ".join(f"{md_escape(str(v))} {statistics.mean(a):.1%} (n={len(a)})" for v, a in levels.items())
            best = max(levels, key=lambda v: statistics.mean(levels[v]))
            lines.append(f"**{md_escape(key)}**: mean test accuracy over the other settings: {means}; "
                         f"best: {md_escape(str(best))}.")
    return lines


def render_sweep(name: str, dataset: str, results: list[dict[str, Any]], how: str, shared_stages: tuple[str, ...],
                 shared_ran: list[str], seconds: float) -> str:
    """A sweep's leaderboard page: every configuration, how it ran, and the main effects of its grid."""
    by_label = {r["label"]: r for r in results}
    ran = {stage: sum(stage in r.get("stages_run", []) for r in results) for stage in shared_stages}
    parts = [f"# Sweep {md_escape(name)} on {md_escape(dataset)}", "",
             f"{len(results)} configurations, {how}, {seconds:.0f} s wall time; "
             f"{sum('failed' in r for r in results)} failed. Each is a child `train-mnist-child` run with its own "
             f"registered version and report.", "",
             f"Shared preprocessing: {', '.join(shared_stages)} ran {len(shared_ran)} time(s) in the sweep's own "
             f"step and " + ", ".join(f"{stage} {n} time(s)" for stage, n in ran.items())
             + " in the children (which otherwise checked the shared outputs out of the DVC cache).", "",
             "![leaderboard](leaderboard.png)", "",
             table(["rank", "configuration", "test accuracy (top-1)", "claimed", "test loss", "train / val accuracy",
                    "parameters", "training"], leaderboard_rows(results)), "",
             table(["configuration", "version", "settings", "diagnosis or error"],
                   [[r["label"], r.get("version", ""), ", ".join(f"{k}={v}" for k, v in (r.get("point") or {}).items()),
                     r.get("diagnosis", r.get("failed", ""))] for r in results]), "",
             "## Lessons, from these numbers", ""]
    found = main_effects(results) + lessons(by_label)
    parts += [f"- {line}" for line in found] or ["- (not enough successful runs to compare)"]
    return "\n".join(parts) + "\n"
