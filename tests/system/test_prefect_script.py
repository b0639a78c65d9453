"""scripts/prefect.sh, the Prefect side's one command: SIGTERM to it (what `kill %1` sends to a background job,
where bash ignores Ctrl-C) stops the server and the served deployments within seconds, leaving no process."""

from __future__ import annotations

import os
import signal
import subprocess
import time

import psutil

from tests.harness import ROOT, free_port, stage_env


def test_sigterm_stops_the_server_and_the_deployments(tmp_path):
    log = tmp_path / "prefect.log"
    env = {**stage_env(), "PREFECT_PORT": str(free_port())}
    env.pop("PREFECT_API_URL", None)  # the script's own server, not the suite's
    with open(log, "w") as out:
        script = subprocess.Popen(["bash", "scripts/prefect.sh"], cwd=ROOT, env=env, stdout=out,
                                  stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 240
        while "serving the deployments" not in log.read_text():
            assert script.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(1)
        time.sleep(10)  # flows.serve registers its deployments
        family = [script.pid] + [p.pid for p in psutil.Process(script.pid).children(recursive=True)]
        assert any("flows.serve" in " ".join(psutil.Process(p).cmdline()) for p in family[1:])
        started = time.monotonic()
        script.send_signal(signal.SIGTERM)
        script.wait(timeout=30)
        gone, alive = psutil.wait_procs([psutil.Process(p) for p in family if psutil.pid_exists(p)], timeout=15)
        assert not alive, [p.cmdline() for p in alive]
        assert time.monotonic() - started < 20
        assert "Traceback" not in log.read_text()
    finally:
        if script.poll() is None:
            os.killpg(script.pid, signal.SIGKILL)
