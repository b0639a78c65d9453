"""PNG plots for reports (matplotlib, headless). Each writes one file atomically."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mnist_pipeline.files import atomic_path
from mnist_pipeline.models import TOP1


def figure(width: float, height: float):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt, plt.figure(figsize=(width, height), dpi=100)


def save(plt, fig, path: Path) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", bbox_inches="tight", metadata={"Software": None})
    plt.close(fig)


def top1_key(metric: str) -> str:
    """The history key holding top-1 accuracy: Keras' `accuracy` (top-1 for 10 softmax outputs) when that was
    the run's metric, else TOP1 (`binary_accuracy`, 10 yes/no outputs, sits near 0.90 for a useless model)."""
    return "accuracy" if metric == "accuracy" else TOP1


def curve_panels(history: dict[str, list[float]], metric: str) -> dict[str, tuple[list[float], list[float]]]:
    """What the learning-curve plot draws: {title: (training, validation) per epoch}, loss then top-1 accuracy,
    whatever metric the run reported (`metric`). A series the history lacks is empty and its title says so."""
    panels = {}
    for key, title in (("loss", "loss"), (top1_key(metric), "accuracy (top-1)")):
        if key not in history:
            title += f": no '{key}' in this run's history"
        panels[title] = (history.get(key, []), history.get(f"val_{key}", []))
    return panels


def curves_png(path: Path, history: dict[str, list[float]], metric: str, restored: int | None = None) -> None:
    """The `curve_panels` side by side; integer epochs, plain axes, and the epoch whose weights were evaluated
    marked when early stopping restored an earlier one."""
    from matplotlib.ticker import MaxNLocator

    plt, fig = figure(10, 3.5)
    for position, (title, (train, val)) in enumerate(curve_panels(history, metric).items(), start=1):
        axis = fig.add_subplot(1, 2, position)
        axis.plot(np.arange(1, len(train) + 1), train, marker="o", label="train")
        axis.plot(np.arange(1, len(val) + 1), val, marker="o", label="validation")
        if restored is not None and restored != len(train):
            axis.axvline(restored, color="grey", linestyle="--", label=f"weights evaluated (epoch {restored})")
        axis.set_xlabel("epoch")
        axis.xaxis.set_major_locator(MaxNLocator(integer=True))
        axis.ticklabel_format(axis="y", useOffset=False)
        axis.set_title(title, fontsize=10)
        axis.legend(fontsize=8)
        axis.grid(alpha=0.3)
    save(plt, fig, path)


def confusion_png(path: Path, matrix: np.ndarray, names: list[str]) -> None:
    """The confusion matrix, rows true classes, columns predicted, counts written in."""
    plt, fig = figure(7, 6)
    axis = fig.add_subplot(1, 1, 1)
    axis.imshow(matrix, cmap="Blues")
    axis.set_xticks(range(10), names, rotation=45, ha="right")
    axis.set_yticks(range(10), names)
    axis.set_xlabel("predicted")
    axis.set_ylabel("true")
    threshold = matrix.max() / 2 if matrix.size else 0
    for (row, col), count in np.ndenumerate(matrix):
        axis.text(col, row, str(count), ha="center", va="center", fontsize=7,
                  color="white" if count > threshold else "black")
    save(plt, fig, path)


def image_grid_png(path: Path, images: np.ndarray, titles: list[str], columns: int = 8) -> None:
    """uint8 (N, 28, 28) images in a grid, each with a caption above it.

    The images are tiled into one array and drawn as one picture (pixel 0 white, 255 black, as
    the datasets mean them): one axes instead of one per image draws in a fifth of the time.
    """
    rows = max(1, -(-len(images) // columns))
    side, gap, caption = 28, 12, 12  # pixels: image, space between columns, caption band above each image
    cell_width, cell_height = side + gap, side + caption
    canvas = np.zeros((rows * cell_height, columns * cell_width), dtype=np.uint8)
    inches = 0.04  # per image pixel: a cell is 1.6 inches wide, room for a 7-point "Ankle boot→T-shirt/top 0.99"
    plt, fig = figure(canvas.shape[1] * inches, canvas.shape[0] * inches)
    axis = fig.add_axes((0, 0, 1, 1))
    for position, (image, title) in enumerate(zip(images, titles)):
        row, column = divmod(position, columns)
        top, left = row * cell_height + caption, column * cell_width + gap // 2
        canvas[top:top + side, left:left + side] = image
        axis.text(left + side / 2, top - 1.5, title, ha="center", va="bottom", fontsize=7)
    axis.imshow(canvas, cmap="gray_r", vmin=0, vmax=255, interpolation="nearest")
    axis.axis("off")
    save(plt, fig, path)
