"""`mnist predict`: classify images with a registered model, or with the model a run just trained.

\b
    mnist predict cnn@champion digits.npz photos/ seven.jpg
    mnist predict model/model.keras seven.jpg      # the workspace's model, after `dvc repro`
"""

from __future__ import annotations

import json
from pathlib import Path

import typer

from mnist_cli.common import ROOT_OPTION, fail, one_line
from mnist_pipeline import registry
from mnist_pipeline.errors import PipelineError


def predict(ref: str = typer.Argument(..., metavar="MODEL",
                                      help="a registered version, NAME@vN or NAME@champion, or a .keras file the "
                                           "train stage wrote (model/model.keras, with its train.json beside it)"),
            inputs: list[Path] = typer.Argument(..., metavar="INPUT...",
                                                help="PNG/JPEG files, folders of them, or .npz files with "
                                                     "an (N, 28, 28) array under 'x', 'images' or 'x_test'"),
            root: Path = ROOT_OPTION,
            as_json: bool = typer.Option(False, "--json", help="JSON instead of a table")) -> None:
    """Predict the class of each image with a registered model: label, probability, top-3.

    Photos are prepared as MNIST was: grayscale, inverted when the paper is light, cropped to the ink,
    fitted into 20x20, centred by centre of mass in 28x28.

    A file that cannot be read (not an image, truncated, too large) is reported on its own row and the
    rest go on; the exit code is then 1. A model file whose sha256 is not the one its registry record (or its
    train record, for a .keras file) names is refused; models load in Keras' safe mode.
    """
    from mnist_pipeline import predict as predicting

    try:
        if ref.endswith(".keras"):
            record, path, shown = predicting.local_record(Path(ref)), Path(ref), ref
        else:
            name, number = registry.resolve(root, ref)
            record, shown = registry.read_record(root, name, number), f"{name}@v{number}"
            if problem := registry.record_problem(record, judged=False):
                raise PipelineError(f"{shown}: {problem} (`mnist registry verify` lists what is wrong)")
            path = registry.checked_model_path(root, name, number, record)
        items = predicting.collect(inputs)
        if not items:
            raise PipelineError(f"nothing to predict in {', '.join(map(str, inputs))}")
        model = predicting.load_model(path)
        rows = predicting.predict(model, record, items)
    except PipelineError as exc:
        fail(exc)
    failed = [row for row in rows if "error" in row]
    if as_json:
        typer.echo(json.dumps({"model": shown, "predictions": rows}, indent=2))
    else:
        typer.echo(f"{shown}: {len(rows) - len(failed)} predicted, {len(failed)} refused")
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
