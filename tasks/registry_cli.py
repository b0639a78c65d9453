"""Command line for the model registry: list, show, promote, rollback, predict.

    python -m tasks.registry_cli list                      # every model and version, as a table
    python -m tasks.registry_cli show mlp_500@champion     # one version's full record
    python -m tasks.registry_cli promote mlp_500@v2        # point champion at v2 by hand
    python -m tasks.registry_cli rollback mlp_500          # champion back to where it was before
    python -m tasks.registry_cli predict cnn@champion digits.npz
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import typer

from tasks import registry
from tasks.errors import PipelineError
from tasks.files import load_npz

app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__)
ROOT_OPTION = typer.Option(Path("registry"), "--root", help="the registry folder (params.yaml registry.dir)")


def fail(exc: PipelineError) -> None:
    typer.echo(f"error: {exc}", err=True)
    raise typer.Exit(1)


@app.command("list")
def list_versions(root: Path = ROOT_OPTION) -> None:
    """Every registered version: accuracy, blessed or not, aliases, dataset, when."""
    rows = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir()) if root.is_dir() else []:
        tags = {v: k for k, v in registry.aliases(root, folder.name).items() if k != "history"}
        for number in registry.versions(root, folder.name):
            record = registry.read_record(root, folder.name, number)
            rows.append([f"{folder.name}@v{number}", f"{record['metrics'].get('accuracy', float('nan')):.4f}",
                         "yes" if record["blessed"] else "no", tags.get(f"v{number}", ""),
                         record.get("dataset", "?"), record["registered_at"]])
    if not rows:
        typer.echo(f"no models registered in {root}")
        return
    header = ["version", "accuracy", "blessed", "alias", "dataset", "registered"]
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        typer.echo("  ".join(str(cell).ljust(width) for cell, width in zip(row, widths)))


@app.command()
def show(ref: str = typer.Argument(..., help="NAME@vN or NAME@champion"), root: Path = ROOT_OPTION) -> None:
    """One version's record (lineage, metrics, gate verdict) as JSON."""
    try:
        name, number = registry.resolve(root, ref)
        typer.echo(json.dumps(registry.read_record(root, name, number), indent=2))
    except PipelineError as exc:
        fail(exc)


@app.command()
def promote(ref: str = typer.Argument(..., help="NAME@vN to become champion"), root: Path = ROOT_OPTION) -> None:
    """Point the champion alias at a version by hand (bypasses the gate; recorded in the alias history)."""
    try:
        typer.echo(f"champion -> {registry.set_alias(root, ref, reason='promoted by hand')}")
    except PipelineError as exc:
        fail(exc)


@app.command()
def rollback(name: str = typer.Argument(..., help="model name"), root: Path = ROOT_OPTION) -> None:
    """Move the champion alias back to the version it pointed at before its last move."""
    try:
        typer.echo(f"champion -> {registry.rollback(root, name)}")
    except PipelineError as exc:
        fail(exc)


def to_model_input(images: np.ndarray, input_shape: tuple) -> np.ndarray:
    """(N, 28, 28) uint8 or float images -> what the model takes, scaled like training."""
    if images.ndim != 3 or images.shape[1:] != (28, 28):
        raise PipelineError(f"images must be (N, 28, 28), got {images.shape}")
    x = images.astype(np.float32)
    if images.dtype == np.uint8 or x.max() > 1.0:
        x = x / 255
    if len(input_shape) == 2 and input_shape[1] == 784:
        return x.reshape(len(x), 784)
    if len(input_shape) == 4:
        return x[..., np.newaxis]
    raise PipelineError(f"this model takes {input_shape}: predict supports 28x28 models (not the VGG16 head)")


@app.command()
def predict(ref: str = typer.Argument(..., help="NAME@vN or NAME@champion"),
            images: Path = typer.Argument(..., help=".npz with an (N, 28, 28) array under 'x', 'images' or 'x_test'"),
            root: Path = ROOT_OPTION, as_json: bool = typer.Option(False, "--json", help="JSON instead of a table")) -> None:
    """Predict the class of each image with a registered model."""
    import keras

    try:
        name, number = registry.resolve(root, ref)
        arrays = load_npz(images)
        key = next((k for k in ("x", "images", "x_test") if k in arrays), None)
        if key is None:
            raise PipelineError(f"{images}: no 'x', 'images' or 'x_test' array (found {list(arrays)})")
        model = keras.saving.load_model(root / name / f"v{number}" / "model.keras", safe_mode=True)
        probabilities = np.asarray(model.predict(to_model_input(arrays[key], model.input_shape), verbose=0))
    except PipelineError as exc:
        fail(exc)
    rows = [{"index": i, "label": int(p.argmax()), "probability": round(float(p.max()), 4),
             "top3": [int(c) for c in np.argsort(-p)[:3]]} for i, p in enumerate(probabilities)]
    if as_json:
        typer.echo(json.dumps({"model": f"{name}@v{number}", "predictions": rows}, indent=2))
        return
    typer.echo(f"{name}@v{number}")
    typer.echo("index  label  probability  top-3")
    for row in rows:
        typer.echo(f"{row['index']:<7}{row['label']:<7}{row['probability']:<13.4f}{row['top3']}")


if __name__ == "__main__":
    sys.exit(app())
