"""The real download path (pooch) against a real local HTTP server serving the real files."""

from __future__ import annotations

import http.server
import json
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from mnist_pipeline.data import sources
from mnist_pipeline.errors import PipelineError
from mnist_pipeline.files import sha256_file
from tests.harness import write_params

FILES = list(sources.DOWNLOADS["fashion_mnist"])
LABELS = "train-labels-idx1-ubyte.gz"


class Mirror(http.server.BaseHTTPRequestHandler):
    """Serves /usr/share/datasets/fashion-mnist; `mode` decides how it misbehaves for the labels file."""

    mode = "good"  # good | bad-bytes | drop-once | drop-always
    seen: Counter = Counter()

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        name = self.path.strip("/")
        path = sources.FASHION_DEBIAN_DIR / name
        if name not in FILES or not path.is_file():
            self.send_error(404)
            return
        type(self).seen[name] += 1
        data = path.read_bytes()
        if name == LABELS and self.mode == "bad-bytes":
            data = data[:100] + bytes([data[100] ^ 0xFF]) + data[101:]
        drop = name == LABELS and (self.mode == "drop-always"
                                   or (self.mode == "drop-once" and type(self).seen[name] == 1))
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data[: len(data) // 2] if drop else data)
        if drop:
            self.close_connection = True

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def mirror() -> Iterator[tuple[str, type[Mirror]]]:
    handler = type("TestMirror", (Mirror,), {"seen": Counter(), "mode": "good"})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/", handler
    server.shutdown()
    server.server_close()


def cache_listing(cache: Path) -> list[str]:
    folder = cache / "fashion_mnist"
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_good_checksum_downloads_then_serves_from_cache(mirror, tmp_path: Path):
    url, handler = mirror
    paths = sources.download("fashion_mnist", tmp_path, url, retries=0, timeout_s=10)
    assert [p.name for p in paths] == FILES
    assert all(sha256_file(p) == sources.DOWNLOADS["fashion_mnist"][p.name] for p in paths)
    assert sources.cached_files("fashion_mnist", tmp_path) == paths
    handler.mode = "drop-always"  # a second fetch must not need the server at all
    again = sources.download("fashion_mnist", tmp_path, url, retries=0, timeout_s=10)
    assert again == paths and handler.seen[LABELS] == 1


@pytest.mark.fault
def test_bad_checksum_never_reaches_the_cache(mirror, tmp_path: Path):
    url, handler = mirror
    handler.mode = "bad-bytes"
    with pytest.raises(PipelineError, match=f"{LABELS} failed its sha256 check"):
        sources.download("fashion_mnist", tmp_path, url, retries=0, timeout_s=10)
    assert LABELS not in cache_listing(tmp_path)
    assert not [name for name in cache_listing(tmp_path) if name not in FILES]  # no temporary leftovers


@pytest.mark.fault
def test_dropped_connection_is_retried(mirror, tmp_path: Path):
    url, handler = mirror
    handler.mode = "drop-once"
    paths = sources.download("fashion_mnist", tmp_path, url, retries=2, timeout_s=10)
    assert handler.seen[LABELS] >= 2
    assert sha256_file(paths[FILES.index(LABELS)]) == sources.DOWNLOADS["fashion_mnist"][LABELS]


@pytest.mark.fault
def test_connection_that_always_drops_fails_cleanly(mirror, tmp_path: Path):
    url, handler = mirror
    handler.mode = "drop-always"
    with pytest.raises(PipelineError, match=f"download of {url}{LABELS} failed"):
        sources.download("fashion_mnist", tmp_path, url, retries=1, timeout_s=10)
    assert handler.seen[LABELS] == 2  # the first try and one retry
    assert LABELS not in cache_listing(tmp_path)


def test_fetch_stage_downloads_and_records_the_source(mirror, tmp_path: Path, run_stage):
    url, _ = mirror
    write_params(tmp_path, {"data": {"dataset": "fashion_mnist"}, "fetch": {"source": "download", "mirror": url,
                                     "cache_dir": str(tmp_path / "cache"), "retries": 0}})
    result = run_stage("fetch")
    assert result.returncode == 0, result.stderr
    record = json.loads((tmp_path / "data/raw/fetch.json").read_text())
    assert record["source"] == "download" and record["total_images"] == 70000
    assert {Path(f["name"]).name: f["sha256"] for f in record["source_files"]} == sources.DOWNLOADS["fashion_mnist"]


@pytest.mark.fault
def test_fetch_stage_refuses_a_bad_download(mirror, tmp_path: Path, run_stage):
    url, handler = mirror
    handler.mode = "bad-bytes"
    write_params(tmp_path, {"data": {"dataset": "fashion_mnist"}, "fetch": {"source": "download", "mirror": url,
                                     "cache_dir": str(tmp_path / "cache"), "retries": 0}})
    result = run_stage("fetch")
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1].startswith("error: fetch: download of")
    assert "sha256" in result.stderr
    assert not (tmp_path / "data/raw/raw.npz").exists()


@pytest.mark.bad_input
@pytest.mark.parametrize("url", ["http://example.com/", "ftp://127.0.0.1/", "file:///etc/"])
def test_only_https_or_loopback_http(url: str):
    with pytest.raises(PipelineError, match="https only"):
        sources.check_url(url)


@pytest.mark.parametrize("url", ["https://example.com/", "http://127.0.0.1:8000/", "http://localhost/"])
def test_allowed_urls(url: str):
    sources.check_url(url)  # raises on refusal
