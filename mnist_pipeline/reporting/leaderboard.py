"""A sweep's comparison of its runs: the leaderboard table and picture, the grid's main effects."""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

from mnist_pipeline.reporting.markdown import md_escape, table
from mnist_pipeline.reporting.plots import save


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
                     f"{seconds(m.get('train_seconds'))}, {r['epochs_run']} epochs"])
    return rows


def seconds(value: float | None) -> str:
    """A fit's seconds, or why there are none (DVC's run-cache restored the model: it was not trained again)."""
    return f"{value:.0f} s" if isinstance(value, (int, float)) else "restored, not trained"


def sweep_png(path: Path, results: list[dict[str, Any]]) -> None:
    """The sweep's accuracy bars, best at the top, with the top-1 claims beside them."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    measured = [r for r in results if "accuracy" in r.get("metrics", {})]
    measured.sort(key=lambda r: r["metrics"]["accuracy"])
    fig = plt.figure(figsize=(8, 0.4 * len(measured) + 1.2), dpi=100)
    axis = fig.add_subplot(1, 1, 1)
    labels = [r["label"] for r in measured]
    axis.barh(labels, [r["metrics"]["accuracy"] for r in measured], color="#4c72b0", label="reproduced")
    claimed = [(i, r["spec"]["claimed_accuracy"]) for i, r in enumerate(measured)
               if r["spec"].get("claimed_accuracy") and r["spec"]["metric"] == "accuracy"]  # top-1 claims only
    if claimed:
        axis.scatter([c for _, c in claimed], [i for i, _ in claimed], color="#dd8452", zorder=3,
                     label="claimed (top-1)")
    axis.set_xlim(0, 1)
    axis.set_xlabel("test accuracy (top-1)")
    axis.legend(loc="lower right")
    axis.grid(axis="x", alpha=0.3)
    save(plt, fig, path)  # as every picture: atomic, and no matplotlib version in the file


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
    found = main_effects(results)
    parts += [f"- {line}" for line in found] or ["- (not enough successful runs to compare)"]
    parts += ["", "Single runs, one seed each: differences here are not tested against the noise (the catalogue's "
              "lessons are: `mnist compare`)."]
    return "\n".join(parts) + "\n"
