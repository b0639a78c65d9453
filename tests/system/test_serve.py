"""`mnist serve` as a person and a program use it: a real server on loopback, real HTTP, a real headless Chromium
drawing on the page with pointer events."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from mnist_pipeline import registry
from tests.harness import chromium, free_port, stage_env
from tests.unit.test_predict import bad_files, photo, save

GATE = registry.Gate(min_accuracy=0.0, tolerance=1.0)


def train_and_register(root: Path, folder: Path, mnist_sample, epochs: int, seed: int) -> None:
    """A small dense net trained on the MNIST sample, registered as the next version of `mlp`."""
    import keras
    import yaml

    from mnist_pipeline.catalogue import model_spec
    from mnist_pipeline.models import build_model
    from tests.harness import ROOT

    keras.utils.set_random_seed(seed)
    spec = model_spec(yaml.safe_load((ROOT / "params.yaml").read_text())["models"], "mlp_500")
    model = build_model(spec, (784,))
    x = mnist_sample["x_train"].reshape(-1, 784) / 255
    model.fit(x, keras.utils.to_categorical(mnist_sample["y_train"], 10), epochs=epochs, batch_size=128, verbose=0)
    path = folder / f"model-{seed}.keras"
    model.save(path)
    record = {"metrics": {"accuracy": 0.5}, "model_spec": spec.model_dump(),
              "params": {"prepare": {"normalize": True}, "train": {"model": "mlp"}}}
    registry.register(root, "mlp", path, record, GATE)


@pytest.fixture(scope="module")
def server(mnist_sample, tmp_path_factory) -> Iterator[tuple[str, Path]]:
    """`mnist serve mlp@champion` on a free loopback port; its URL and registry."""
    folder = tmp_path_factory.mktemp("serve")
    root = folder / "registry"
    train_and_register(root, folder, mnist_sample, epochs=2, seed=0)
    port = free_port()
    log = open(folder / "serve.log", "w")
    process = subprocess.Popen(["mnist", "serve", "mlp@champion", "--root", str(root), "--port", str(port)],
                               env=stage_env(), stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while True:
        try:
            urllib.request.urlopen(f"{url}/health", timeout=2)
            break
        except OSError:
            assert process.poll() is None, (folder / "serve.log").read_text()
            assert time.monotonic() < deadline, "mnist serve did not answer within 120 s"
            time.sleep(0.5)
    yield url, root
    os.killpg(process.pid, signal.SIGTERM)
    process.wait(timeout=30)
    log.close()
    started = (folder / "serve.log").read_text()
    assert f"serve: mlp@v1 (mlp@champion, resolved again on every request) on {url}/ (loopback only)" in started


def post(url: str, body: bytes, content_type: str = "image/png") -> tuple[int, dict]:
    request = urllib.request.Request(f"{url}/predict", data=body, headers={"Content-Type": content_type})
    try:
        with urllib.request.urlopen(request, timeout=60) as reply:
            return reply.status, json.loads(reply.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def multipart(field: str, data: bytes) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"{field}\"; filename=\"digit.png\"\r\n"
            f"Content-Type: image/png\r\n\r\n").encode() + data + f"\r\n--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


def predict_cli(root: Path, *paths: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mnist_cli", "predict", "mlp@champion", *map(str, paths), "--root",
                           str(root), "--json"], capture_output=True, text=True, env=stage_env(), timeout=300)


def test_answers_equal_mnist_predicts_on_the_same_files(server, mnist_sample, tmp_path: Path):
    url, root = server
    rng = np.random.default_rng(7)
    files = [save(photo(mnist_sample["x_test"][i], rng), tmp_path / f"d{i}.{'jpg' if i % 2 else 'png'}", rng)
             for i in range(6)]
    expected = json.loads(predict_cli(root, *files).stdout)["predictions"]
    for path, row in zip(files, expected, strict=True):
        status, raw = post(url, path.read_bytes())
        status_multi, multi = post(url, *multipart("file", path.read_bytes()))
        assert status == status_multi == 200, (raw, multi)
        for got in (raw, multi):
            assert (got["label"], got["probability"], got["top3"]) == (row["label"], row["probability"], row["top3"])
            assert got["model"] == "mlp@v1" and got["prepared_png"]
    health = json.loads(urllib.request.urlopen(f"{url}/health").read())
    assert health == {"status": "ok", "model": "mlp@v1"}
    described = json.loads(urllib.request.urlopen(f"{url}/model").read())
    assert described["model"] == "mlp@v1" and described["model_spec"]["kind"] == "dense"


@pytest.mark.bad_input
def test_bad_uploads_get_a_4xx_with_predicts_reason_and_the_server_goes_on(server, tmp_path: Path):
    url, root = server
    expected = bad_files(tmp_path / "bad")
    reasons = {Path(row["file"]).name: row["error"] for row in
               json.loads(predict_cli(root, *sorted((tmp_path / "bad").iterdir())).stdout)["predictions"]}
    for name, words in expected.items():
        status, reply = post(url, (tmp_path / "bad" / name).read_bytes())
        assert status == (413 if name == "huge.jpg" else 400), (name, status, reply)
        assert words in reply["error"] and "\n" not in reply["error"], (name, reply)
        if name != "huge.jpg":  # the same reason as `mnist predict`, the upload named where predict names the file
            assert reply["error"].removeprefix("upload: ") == reasons[name].split(": ", 1)[1], (name, reply)
    status, reply = post(url, *multipart("photo", b"x"))
    assert status == 400 and reply["error"] == "multipart upload without a field named 'file'"
    assert json.loads(urllib.request.urlopen(f"{url}/health").read())["status"] == "ok"  # still serving


def test_a_moved_champion_answers_the_next_request_without_a_restart(server, mnist_sample, tmp_path: Path):
    url, root = server
    digit = save(photo(mnist_sample["x_test"][3], np.random.default_rng(1)), tmp_path / "d.png",
                 np.random.default_rng(1))
    assert post(url, digit.read_bytes())[1]["model"] == "mlp@v1"
    train_and_register(root, tmp_path, mnist_sample, epochs=1, seed=5)  # v2, blessed: the champion moves
    registry.set_alias(root, "mlp@v2")
    status, reply = post(url, digit.read_bytes())
    assert status == 200 and reply["model"] == "mlp@v2"
    assert json.loads(urllib.request.urlopen(f"{url}/model").read())["model"] == "mlp@v2"
    registry.set_alias(root, "mlp@v1")  # back, for the other tests
    assert post(url, digit.read_bytes())[1]["model"] == "mlp@v1"

    # the champion moves to a version whose model file is gone: the server's fault (503, the file named), not the
    # upload's; the next request after the file is back is answered, no restart
    model = registry.model_path(root, "mlp", 2)
    model.rename(model.with_suffix(".away"))
    try:
        registry.set_alias(root, "mlp@v2")
        status, reply = post(url, digit.read_bytes())
        assert status == 503 and "model.keras" in reply["error"] and "\n" not in reply["error"], (status, reply)
        with pytest.raises(urllib.error.HTTPError) as health:
            urllib.request.urlopen(f"{url}/health")
        assert health.value.code == 503
    finally:
        model.with_suffix(".away").rename(model)
    status, reply = post(url, digit.read_bytes())
    assert status == 200 and reply["model"] == "mlp@v2"
    registry.set_alias(root, "mlp@v1")


def test_a_digit_drawn_on_the_page_is_read(server, tmp_path: Path):
    """Headless Chromium draws a 7 on the canvas with pointer events, presses Predict and sees a label, its top 3
    and the 28x28 image the model saw; the screenshot is kept in the test's folder."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    url, _ = server
    with chromium(tmp_path / "profile", window="1000,800") as driver:
        driver.get(f"{url}/")
        pad = driver.find_element(By.ID, "pad")
        stroke = ActionChains(driver).move_to_element_with_offset(pad, -80, -90).click_and_hold()
        for dx, dy in [(40, 0), (40, 0), (40, 0), (-15, 45), (-15, 45), (-15, 45), (-10, 40)]:  # a 7
            stroke = stroke.move_by_offset(dx, dy)
        stroke.release().perform()
        driver.find_element(By.ID, "predict").click()
        WebDriverWait(driver, 60).until(lambda d: d.find_element(By.ID, "label").text != "?")
        WebDriverWait(driver, 30).until(lambda d: d.execute_script(
            "const i = document.getElementById('seen'); return i.complete && i.naturalWidth === 28;"))
        label = driver.find_element(By.ID, "label").text
        bars = driver.find_elements(By.CSS_SELECTOR, "#top3 .bar")
        model = driver.find_element(By.ID, "model").text
        error = driver.find_element(By.ID, "error").text
        driver.save_screenshot(str(tmp_path / "drawn.png"))
    assert label == "7" and len(bars) == 3 and model == "mlp@v1" and error == "", (label, model, error)
    assert (tmp_path / "drawn.png").stat().st_size > 5_000
