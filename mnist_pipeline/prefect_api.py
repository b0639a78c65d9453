"""What the flows need of the Prefect server: that it answers, and artifact keys it accepts."""

from __future__ import annotations

import re
import urllib.request


def slug(text: str) -> str:
    """Prefect artifact keys: lowercase letters, digits and dashes only."""
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def api_error(url: str | None) -> str | None:
    """Why the Prefect API at `url` cannot be used, or None (a sweep's workers need a real server)."""
    if not url:
        return "PREFECT_API_URL is not set; start a server (bash scripts/prefect.sh, README) and export it"
    try:
        with urllib.request.urlopen(f"{url.rstrip('/')}/health", timeout=10) as answer:
            return None if answer.status == 200 else f"the Prefect API at {url} answered {answer.status}"
    except OSError as error:
        return f"cannot reach the Prefect API at {url} ({error}); is the server running?"
