"""PNG plots for reports (matplotlib, headless). Each writes one file atomically."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mnist_pipeline.files import atomic_path


def _figure(width: float, height: float):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt, plt.figure(figsize=(width, height), dpi=100)


def _save(plt, fig, path: Path) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", bbox_inches="tight", metadata={"Software": None})
    plt.close(fig)


TITLES = {"loss": "loss", "accuracy": "accuracy (top-1)",
          "binary_accuracy": "binary accuracy (Keras' metric: 10 yes/no outputs, not top-1)"}


def curves_png(path: Path, history: dict[str, list[float]], metric: str, restored: int | None = None) -> None:
    """Loss and the tutorial's metric per epoch, training vs validation; integer epochs, plain axes, and the
    epoch whose weights were evaluated marked when early stopping restored an earlier one."""
    from matplotlib.ticker import MaxNLocator

    plt, fig = _figure(10, 3.5)
    for position, key in enumerate(("loss", metric), start=1):
        axis = fig.add_subplot(1, 2, position)
        epochs = np.arange(1, len(history.get(key, [])) + 1)
        axis.plot(epochs, history.get(key, []), marker="o", label="train")
        axis.plot(epochs, history.get(f"val_{key}", []), marker="o", label="validation")
        if restored is not None and restored != len(epochs):
            axis.axvline(restored, color="grey", linestyle="--", label=f"weights evaluated (epoch {restored})")
        axis.set_xlabel("epoch")
        axis.xaxis.set_major_locator(MaxNLocator(integer=True))
        axis.ticklabel_format(axis="y", useOffset=False)
        axis.set_title(TITLES.get(key, key), fontsize=10)
        axis.legend(fontsize=8)
        axis.grid(alpha=0.3)
    _save(plt, fig, path)


def confusion_png(path: Path, matrix: np.ndarray, names: list[str]) -> None:
    """The confusion matrix, rows true classes, columns predicted, counts written in."""
    plt, fig = _figure(7, 6)
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
    _save(plt, fig, path)


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
    plt, fig = _figure(canvas.shape[1] * inches, canvas.shape[0] * inches)
    axis = fig.add_axes((0, 0, 1, 1))
    for position, (image, title) in enumerate(zip(images, titles)):
        row, column = divmod(position, columns)
        top, left = row * cell_height + caption, column * cell_width + gap // 2
        canvas[top:top + side, left:left + side] = image
        axis.text(left + side / 2, top - 1.5, title, ha="center", va="bottom", fontsize=7)
    axis.imshow(canvas, cmap="gray_r", vmin=0, vmax=255, interpolation="nearest")
    axis.axis("off")
    _save(plt, fig, path)
