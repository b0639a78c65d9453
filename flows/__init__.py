"""Prefect flows over the same stage functions as dvc.yaml.

Not built yet: the `train-mnist` flow and its deployments are issue 4's work.
Until then, run the pipeline with `dvc repro` (see the README).
"""
