"""mnist: the command line of the MNIST pipeline (the stages themselves run with `dvc repro`).

\b
    mnist registry list                        # the versioned models and their aliases
    mnist predict cnn@champion photos/         # classify images with a registered model
    mnist serve cnn@champion                   # the model over HTTP, with a page to draw a digit on
    mnist compare --dataset fashion_mnist      # the whole catalogue as DVC experiments, one comparison
    mnist sweep --lee                          # a grid of configurations as Prefect child runs
    mnist check-reports                        # the reference reports' links, numbers and verdicts
    mnist repair                               # put right a dvc.lock or HEAD a kill left behind
    mnist check-cache                          # re-hash DVC's cache: which objects changed
"""

from __future__ import annotations

import typer

from mnist_cli import cache as caching
from mnist_cli import check as checking
from mnist_cli import compare as comparing
from mnist_cli import repair as repairing
from mnist_cli import serve as serving
from mnist_cli import sweep as sweeping
from mnist_cli.predict import predict
from mnist_cli.registry import app as registry_app

app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__, rich_markup_mode=None)
app.add_typer(registry_app, name="registry")
app.command("predict")(predict)
app.command("serve", help=serving.__doc__)(serving.serve)
app.command("compare", help=comparing.__doc__)(comparing.compare)
app.command("sweep", help=sweeping.__doc__)(sweeping.sweep)
app.command("check-reports", help=checking.__doc__)(checking.check)
app.command("repair", help=repairing.__doc__)(repairing.repair)
app.command("check-cache", help=caching.__doc__)(caching.check_cache)
