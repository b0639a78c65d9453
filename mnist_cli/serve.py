"""`mnist serve`: a model over HTTP, and a page to draw a digit on.

\b
    mnist serve cnn@champion                 # http://127.0.0.1:8000: draw a digit, see what the model read
    mnist serve model/model.keras --port 9000
    curl --data-binary @seven.png http://127.0.0.1:8000/predict

It answers GET / (the drawing page), POST /predict (a PNG or JPEG as the body or the multipart field
`file`: label, probability, top 3, the version, the 28x28 image the model saw), GET /health and
GET /model. A reference through an alias follows it: when the champion moves, the next request uses
the new version. Bad input gets a 4xx with `mnist predict`'s one-line reason. It listens on loopback
unless --host says otherwise.
"""

from __future__ import annotations

from pathlib import Path

import typer

from mnist_cli.common import ROOT_OPTION, fail
from mnist_pipeline.errors import PipelineError


def serve(ref: str = typer.Argument(..., metavar="REF_OR_FILE", help="NAME@vN, NAME@alias or a .keras file"),
          host: str = typer.Option("127.0.0.1", help="the address to listen on (0.0.0.0: every interface)"),
          port: int = typer.Option(8000, help="the port to listen on"),
          root: Path = ROOT_OPTION) -> None:
    """Serve a model over HTTP with a page to draw on."""
    import uvicorn

    from mnist_pipeline import import_tensorflow
    from mnist_pipeline.serving import Source, make_app

    import_tensorflow()
    try:
        source = Source(ref, root)
    except PipelineError as error:
        fail(error)
    where = "loopback only" if host in ("127.0.0.1", "localhost", "::1") else "every client that can reach it"
    follows = "" if ref.endswith(".keras") else f" ({ref}, resolved again on every request)"
    typer.echo(f"serve: {source.current().shown}{follows} on http://{host}:{port}/ ({where}); Ctrl-C stops",
               err=True)
    uvicorn.run(make_app(source), host=host, port=port, log_level="warning")
