"""The `mnist` command (a console script declared in pyproject.toml): registry, predict, compare, sweep."""
