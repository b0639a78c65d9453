"""Serve the train-mnist deployments from this process (start the Prefect server first).

    PREFECT_API_URL=http://127.0.0.1:4200/api python -m flows.serve

Deployments (stable names): train-mnist/mnist and train-mnist/fashion-mnist. Each allows one run
at a time (`concurrency_limit=1`): a second run started meanwhile waits its turn, so runs never
compete for the two cores or the shared DVC cache. sweep/lee-grid runs the Lee tuning grid (or,
with -p grid=... -p models=..., any sweep) as child runs on a Dask LocalCluster; see flows/sweep.py.

The same deployments are declared for a work pool in prefect.yaml (tests keep the two in step);
see docs/scaling.md.
"""

from __future__ import annotations

from typing import Any

from prefect import serve

from flows.sweep import LEE_GRID, sweep
from flows.train_mnist import train_mnist

DEPLOYMENTS = {"mnist": "mnist", "fashion-mnist": "fashion_mnist"}


def specs() -> list[dict[str, Any]]:
    """Every deployment: its flow, name, parameters, concurrency limit and description."""
    return [*({"flow": train_mnist, "name": name, "parameters": {"dataset": dataset}, "concurrency_limit": 1,
               "description": f"the MNIST pipeline on {dataset}; -p model=... -p epochs=..."}
              for name, dataset in DEPLOYMENTS.items()),
            {"flow": sweep, "name": "lee-grid", "parameters": {"grid": LEE_GRID}, "concurrency_limit": 1,
             "description": "the Lee tuning grid as child train-mnist runs on a Dask LocalCluster; "
                            "-p dataset=... -p epochs=... -p max_train_images=... -p workers=..."}]


def main() -> None:
    serve(*[spec["flow"].to_deployment(**{k: v for k, v in spec.items() if k != "flow"}) for spec in specs()])


if __name__ == "__main__":
    main()
