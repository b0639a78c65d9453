"""`mnist predict`: classify images with a registered model.

\b
    mnist predict cnn@champion digits.npz photos/ seven.jpg
"""

from __future__ import annotations

import json
from pathlib import Path

import typer

from mnist_cli.registry import ROOT_OPTION, fail, one_line
from mnist_pipeline import registry
from mnist_pipeline.errors import PipelineError


def predict(ref: str = typer.Argument(..., help="NAME@vN or NAME@champion"),
            inputs: list[Path] = typer.Argument(..., help="PNG/JPEG files, folders of them, or .npz files with "
                                                          "an (N, 28, 28) array under 'x', 'images' or 'x_test'"),
            root: Path = ROOT_OPTION,
            as_json: bool = typer.Option(False, "--json", help="JSON instead of a table")) -> None:
    """Predict the class of each image with a registered model: label, probability, top-3.

    Photos are prepared as MNIST was: grayscale, inverted when the paper is light, cropped to the ink,
    fitted into 20x20, centred by centre of mass in 28x28.

    A file that cannot be read (not an image, truncated, too large) is reported on its own row and the
    rest go on; the exit code is then 1. A model file whose sha256 is not the registered one is refused.
    """
    from mnist_pipeline import predict as predicting

    try:
        name, number = registry.resolve(root, ref)
        record = registry.read_record(root, name, number)
        items = predicting.collect(inputs)
        if not items:
            raise PipelineError(f"nothing to predict in {', '.join(map(str, inputs))}")
        model = predicting.load_model(registry.checked_model_path(root, name, number, record))
        rows = predicting.predict(model, record, items)
    except PipelineError as exc:
        fail(exc)
    failed = [row for row in rows if "error" in row]
    if as_json:
        typer.echo(json.dumps({"model": f"{name}@v{number}", "predictions": rows}, indent=2))
    else:
        typer.echo(f"{name}@v{number}: {len(rows) - len(failed)} predicted, {len(failed)} refused")
        width = max(len("file"), *(len(one_line(row["file"])) for row in rows))
        typer.echo(f"{'file'.ljust(width)}  label  probability  top-3")
        for row in rows:
            file = one_line(row["file"]).ljust(width)
            if "error" in row:
                typer.echo(f"{file}  -      -            refused: see below")
            else:
                top3 = ", ".join(f"{t['label']} ({t['probability']:.2f})" for t in row["top3"])
                typer.echo(f"{file}  {row['label']:<5}  {row['probability']:<11.4f}  {top3}")
    for row in failed:
        typer.echo(f"error: {one_line(row['error'])}", err=True)
    if failed:
        raise typer.Exit(1)
