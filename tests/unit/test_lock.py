"""The venv is exactly requirements.lock, and the lock is closed over every requirement, extras included.

scripts/setup.sh installs the lock with --no-deps (no resolver), so nothing else checks that the lock is
complete: this is the test that would have caught prefect's `httpx[http2]` meeting an unlocked httpx.
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def check_lock():
    spec = importlib.util.spec_from_file_location("check_lock", ROOT / "scripts" / "check_lock.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def without_pin(lock_text: str, name: str) -> str:
    """The lock with one distribution's entry (its pin, hashes and comments) removed."""
    blocks = re.split(r"\n(?=[A-Za-z0-9])", lock_text)
    kept = [b for b in blocks if not b.lower().startswith(f"{name}==")]
    assert len(kept) == len(blocks) - 1, f"{name} is not in the lock"
    return "\n".join(kept)


def test_the_venv_is_exactly_the_lock(check_lock) -> None:
    assert check_lock.problems() == []


def test_an_extra_s_requirement_missing_from_the_lock_is_caught(check_lock, tmp_path: Path) -> None:
    # h2 is required only through prefect's httpx[http2]: the extra must be followed
    lock = tmp_path / "requirements.lock"
    lock.write_text(without_pin((ROOT / "requirements.lock").read_text(), "h2"))
    found = check_lock.problems(lock=lock)
    assert any("httpx[http2] needs h2" in line and "does not name" in line for line in found), found
    assert any(line.startswith("h2 ") and "installed but not in the lock" in line for line in found), found


def test_a_pin_other_than_the_installed_version_is_caught(check_lock, tmp_path: Path) -> None:
    lock = tmp_path / "requirements.lock"
    lock.write_text((ROOT / "requirements.lock").read_text().replace("\nhttpx==0.28.1 ", "\nhttpx==0.29.0 "))
    found = check_lock.problems(lock=lock)
    assert "httpx is installed at 0.28.1, the lock says 0.29.0" in found


def test_a_pin_nothing_requires_is_caught(check_lock, tmp_path: Path) -> None:
    pyproject = tmp_path / "pyproject.toml"
    text = (ROOT / "pyproject.toml").read_text()
    assert '    "mlxtend",' in text
    pyproject.write_text(text.replace('    "mlxtend",', ""))
    found = check_lock.problems(pyproject=pyproject)
    assert any(line.startswith("mlxtend==") and "nothing requires it" in line for line in found), found


def pins(path: Path) -> dict[str, str]:
    return {m[0].lower(): m[1] for m in re.findall(r"^([A-Za-z0-9._-]+)==(\S+)", path.read_text(), re.M)}


def test_the_backends_lock_agrees_with_the_main_lock_and_is_hashed() -> None:
    """requirements-backends.lock (JAX and PyTorch, scripts/setup-backends.sh) is installed on top of
    requirements.lock: every distribution both name has one version, and every entry carries its hash."""
    main, backends = pins(ROOT / "requirements.lock"), pins(ROOT / "requirements-backends.lock")
    assert {"jax", "jaxlib", "torch"} <= set(backends)
    assert {name: (main[name], version) for name, version in backends.items()
            if name in main and main[name] != version} == {}
    blocks = re.split(r"\n(?=[A-Za-z0-9])", (ROOT / "requirements-backends.lock").read_text())
    assert all("--hash=sha256:" in block for block in blocks if re.match(r"[A-Za-z0-9._-]+==", block))
