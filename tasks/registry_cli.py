"""Command line for the model registry: list, show, promote, rollback, predict.

    python -m tasks.registry_cli list                      # every model and version, as a table
    python -m tasks.registry_cli show mlp_500@champion     # one version's full record
    python -m tasks.registry_cli promote mlp_500@v2        # point champion at v2 by hand
    python -m tasks.registry_cli rollback mlp_500          # champion back to where it was before
    python -m tasks.registry_cli verify                    # every version intact, every alias valid
    python -m tasks.registry_cli predict cnn@champion digits.npz photos/ seven.jpg
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer

from tasks import registry
from tasks.errors import PipelineError

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


@app.command()
def verify(root: Path = ROOT_OPTION) -> None:
    """Check every version is complete and intact (model sha256 as registered) and every alias points at one."""
    problems = registry.verify(root)
    for problem in problems:
        typer.echo(f"error: {problem}", err=True)
    if problems:
        raise typer.Exit(1)
    count = sum(len(registry.versions(root, p.name)) for p in root.iterdir() if p.is_dir()) if root.is_dir() else 0
    typer.echo(f"ok: {count} versions, all complete and intact")


@app.command()
def predict(ref: str = typer.Argument(..., help="NAME@vN or NAME@champion"),
            inputs: list[Path] = typer.Argument(..., help="PNG/JPEG files, folders of them, or .npz files with "
                                                          "an (N, 28, 28) array under 'x', 'images' or 'x_test'"),
            root: Path = ROOT_OPTION, as_json: bool = typer.Option(False, "--json", help="JSON instead of a table")) -> None:
    """Predict the class of each image with a registered model: label, probability, top-3.

    Photos are prepared as MNIST was: grayscale, inverted when the paper is light, cropped to the ink, fitted into 20x20, centred by centre of mass in 28x28.

    A file that cannot be read (not an image, truncated, too large) is reported on its own row and the rest go on; the exit code is then 1.
    """
    from tasks import predict as predicting

    try:
        name, number = registry.resolve(root, ref)
        record = registry.read_record(root, name, number)
        items = predicting.collect(inputs)
        if not items:
            raise PipelineError(f"nothing to predict in {', '.join(map(str, inputs))}")
        model = predicting.load_model(root / name / f"v{number}" / "model.keras")
        rows = predicting.predict(model, record.get("params", {}), items)
    except PipelineError as exc:
        fail(exc)
    failed = [row for row in rows if "error" in row]
    if as_json:
        typer.echo(json.dumps({"model": f"{name}@v{number}", "predictions": rows}, indent=2))
    else:
        typer.echo(f"{name}@v{number}: {len(rows) - len(failed)} predicted, {len(failed)} refused")
        width = max(len("file"), *(len(row["file"]) for row in rows))
        typer.echo(f"{'file'.ljust(width)}  label  probability  top-3")
        for row in rows:
            if "error" in row:
                typer.echo(f"{row['file'].ljust(width)}  -      -            refused: see below")
            else:
                top3 = ", ".join(f"{t['label']} ({t['probability']:.2f})" for t in row["top3"])
                typer.echo(f"{row['file'].ljust(width)}  {row['label']:<5}  {row['probability']:<11.4f}  {top3}")
    for row in failed:
        typer.echo(f"error: {row['error']}", err=True)
    if failed:
        raise typer.Exit(1)


if __name__ == "__main__":
    sys.exit(app())
