"""Prefect flows over the same stages as dvc.yaml: `train_mnist` (the flow) and `serve` (its deployments)."""
