"""Serve the train-mnist deployments from this process (start the Prefect server first).

    PREFECT_API_URL=http://127.0.0.1:4200/api python -m flows.serve

Deployments (stable names): train-mnist/mnist and train-mnist/fashion-mnist. Each allows one run
at a time (`concurrency_limit=1`): a second run started meanwhile waits its turn, so runs never
compete for the two cores or the shared DVC cache. sweep/lee-grid runs the Lee tuning grid (or,
with -p grid=... -p models=..., any sweep) as child runs on a Dask LocalCluster; see flows/sweep.py.

The same deployments are declared for a work pool in prefect.yaml (tests keep the two in step);
see docs/scaling.md.

A serving host that dies (SIGKILL, a crash, a reboot) must not block its deployment: its runs send a
heartbeat every HEARTBEAT seconds, and an automation on the server marks a run whose heartbeats stop
for CRASH_AFTER seconds as Crashed, which releases its concurrency slot. The next run prunes the
workspace the dead run left (`mnist_pipeline.worktrees.prune_dead_workspaces`).
"""

from __future__ import annotations

import os
from datetime import timedelta
from typing import Any

HEARTBEAT = 30  # seconds between flow-run heartbeats (Prefect's minimum)
CRASH_AFTER = 90  # seconds without a heartbeat before a running flow run is marked Crashed
os.environ.setdefault("PREFECT_FLOWS_HEARTBEAT_FREQUENCY", str(HEARTBEAT))  # before Prefect reads its settings

from prefect import serve  # noqa: E402

from flows.sweep import LEE_GRID, sweep  # noqa: E402
from flows.train_mnist import train_mnist  # noqa: E402

CRASH_DETECTION = "mnist-pipeline: crash runs whose heartbeats stopped"

DEPLOYMENTS = {"mnist": "mnist", "fashion-mnist": "fashion_mnist"}


def specs() -> list[dict[str, Any]]:
    """Every deployment: its flow, name, parameters, concurrency limit and description."""
    return [*({"flow": train_mnist, "name": name, "parameters": {"dataset": dataset}, "concurrency_limit": 1,
               "description": f"the MNIST pipeline on {dataset}; -p model=... -p epochs=..."}
              for name, dataset in DEPLOYMENTS.items()),
            {"flow": sweep, "name": "lee-grid", "parameters": {"grid": LEE_GRID}, "concurrency_limit": 1,
             "description": "the Lee tuning grid as child train-mnist runs on a Dask LocalCluster; "
                            "-p dataset=... -p epochs=... -p max_train_images=... -p workers=..."}]


def ensure_crash_detection(within: timedelta = timedelta(seconds=CRASH_AFTER)) -> None:
    """The server-side automation that marks a flow run Crashed when its heartbeats stop (Prefect's own
    zombie-run recipe, docs "Detect zombie flows"); created once per server, kept when it exists."""
    from prefect.automations import Automation
    from prefect.client.schemas.objects import StateType
    from prefect.events.actions import ChangeFlowRunState
    from prefect.events.schemas.automations import EventTrigger, Posture
    from prefect.events.schemas.events import ResourceSpecification

    try:
        Automation.read(name=CRASH_DETECTION)
        return
    except ValueError:
        pass
    ends = {"prefect.flow-run.Completed", "prefect.flow-run.Failed", "prefect.flow-run.Cancelled",
            "prefect.flow-run.Crashed"}
    Automation(
        name=CRASH_DETECTION,
        trigger=EventTrigger(after={"prefect.flow-run.heartbeat"}, expect={"prefect.flow-run.heartbeat", *ends},
                             match=ResourceSpecification({"prefect.resource.id": ["prefect.flow-run.*"]}),
                             for_each={"prefect.resource.id"}, posture=Posture.Proactive, threshold=1, within=within),
        actions=[ChangeFlowRunState(state=StateType.CRASHED,
                                    message=f"no heartbeat for {within.total_seconds():.0f} s: the process running "
                                            "this flow run died")],
    ).create()


def main() -> None:
    ensure_crash_detection()
    serve(*[spec["flow"].to_deployment(**{k: v for k, v in spec.items() if k != "flow"}) for spec in specs()])


if __name__ == "__main__":
    main()
