"""What tests and benchmarks share: the project root, environments, real repositories, real servers.

Plain functions (fixtures live in tests/conftest.py and use these), imported as `tests.harness`.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
GIT_ENV = {"GIT_AUTHOR_NAME": "test", "GIT_AUTHOR_EMAIL": "test@localhost",
           "GIT_COMMITTER_NAME": "test", "GIT_COMMITTER_EMAIL": "test@localhost"}


def stage_env() -> dict[str, str]:
    """Environment for running stages and DVC as a user would: venv first on PATH."""
    env = dict(os.environ, **GIT_ENV)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    env["PYTHONPATH"] = str(ROOT)
    env["DVC_NO_ANALYTICS"] = "1"
    return env


def write_params(folder: Path, overrides: dict[str, dict]) -> Path:
    """Write params.yaml in `folder`: the repository's defaults with `overrides` merged per section."""
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    for section, values in overrides.items():
        params.setdefault(section, {}).update(values)
    path = folder / "params.yaml"
    path.write_text(yaml.safe_dump(params, sort_keys=False))
    return path


def make_repo(dest: Path) -> Path:
    """A real git repository holding this project's files as they are in the working tree."""
    listed = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
                            cwd=ROOT, capture_output=True, text=True, check=True).stdout.split("\0")
    for name in filter(None, listed):
        source = ROOT / name
        if source.is_file() and not name.startswith(("data/", "reports/")):
            target = dest / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    (dest / "data").mkdir(exist_ok=True)
    (dest / "dvc.lock").unlink(missing_ok=True)  # start with nothing reproduced
    env = stage_env()
    for cmd in (["git", "init", "-q", "-b", "main"], ["git", "add", "-A"], ["git", "commit", "-qm", "test clone"]):
        subprocess.run(cmd, cwd=dest, env=env, check=True, capture_output=True)
    return dest


def dvc(repo: Path, *args: str, timeout: float = 900) -> subprocess.CompletedProcess:
    """Run the real `dvc` CLI in `repo`; output merged so failures are easy to read."""
    return subprocess.run(["dvc", *args], cwd=repo, env=stage_env(), stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, timeout=timeout)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def prefect_server(home: Path) -> Iterator[dict[str, str]]:
    """A real `prefect server start` (SQLite in `home`) on a free port; environment pointing at it."""
    port = free_port()
    env = {**stage_env(), "PREFECT_HOME": str(home), "PREFECT_API_URL": f"http://127.0.0.1:{port}/api",
           "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "PREFECT_LOGGING_LEVEL": "WARNING",
           # as prefect.toml sets them: --watch shows the run's log lines
           "PREFECT_SERVER_LOGS_STREAM_OUT_ENABLED": "true", "PREFECT_SERVER_LOGS_STREAM_PUBLISHING_ENABLED": "true"}
    log = open(home / "server.log", "w")
    server = subprocess.Popen(["prefect", "server", "start", "--host", "127.0.0.1", "--port", str(port)],
                              env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/health", timeout=2) as answer:
                    if answer.status == 200:
                        break
            except OSError:
                pass
            assert server.poll() is None, (home / "server.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "prefect server did not answer within 120 s"
            time.sleep(1)
        yield env
    finally:
        os.killpg(server.pid, 15)
        server.wait(timeout=30)
        log.close()


def prefect(env: dict[str, str], *args: str, cwd: Path | None = None,
            timeout: float = 900) -> subprocess.CompletedProcess:
    """Prefect's own CLI against the server in `env`."""
    return subprocess.run(["prefect", *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout)


def versions(repo: Path, model: str) -> list[str]:
    """The registered versions of `model` in the project `repo`, in order (none when nothing registered)."""
    folder = repo / "registry" / model
    return sorted((p.name for p in folder.glob("v*")), key=lambda v: int(v[1:])) if folder.exists() else []


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def workspace(data_dir: Path, tmp_path: Path, overrides: dict) -> Path:
    """A stage workspace in `tmp_path` whose data/ is `data_dir`'s and whose params.yaml has `overrides`."""
    (tmp_path / "data").symlink_to(data_dir / "data")
    write_params(tmp_path, overrides)
    return tmp_path


@contextlib.contextmanager
def chromium(profile: Path, window: str = "1400,2400", offline: bool = False) -> Iterator:
    """Debian's headless Chromium through chromedriver (selenium); `offline`: every request but loopback fails, as
    on a machine without internet."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             "--disable-dev-shm-usage", f"--window-size={window}", f"--user-data-dir={profile}"]
    if offline:  # a proxy nobody listens on, for everything but loopback
        flags += ["--proxy-server=http://127.0.0.1:9", "--proxy-bypass-list=<-loopback>"]
    for flag in flags:
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service("/usr/bin/chromedriver"))
    try:
        yield driver
    finally:
        driver.quit()
