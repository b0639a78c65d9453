"""`python -m mnist_cli` is the `mnist` command."""

from mnist_cli.main import app

app(prog_name="mnist")
