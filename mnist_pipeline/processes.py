"""Processes on this host: its name and whether a process id is alive (for cleaning up after dead runs)."""

from __future__ import annotations

import os
import re
import socket


def host_name() -> str:
    """This machine's name as folder names carry it (only '-', '.', letters and digits kept)."""
    return re.sub(r"[^A-Za-z0-9.-]", "_", socket.gethostname()) or "unknown-host"


def alive(pid: int) -> bool:
    """Whether a process with this id exists on this host (a zombie counts: it is not ours to judge)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
