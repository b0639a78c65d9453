"""The model registry: immutable numbered versions, the promotion gate, aliases, the CLI."""

from __future__ import annotations

import json
import multiprocessing
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from mnist_pipeline import registry
from mnist_pipeline.errors import PipelineError
from tests.harness import stage_env

GATE = registry.Gate(min_accuracy=0.9, tolerance=0.01)


def fake_model(tmp_path: Path) -> Path:
    """A real, tiny Keras model file (28x28 input, 10 classes)."""
    import keras

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((784,)), keras.layers.Dense(10, activation="softmax")])
    path = tmp_path / "model.keras"
    model.save(path)
    return path


def record(accuracy: float) -> dict:
    return {"metrics": {"accuracy": accuracy}, "dataset": "mnist"}


def test_first_run_blessed_without_baseline(tmp_path: Path):
    version = registry.register(tmp_path / "reg", "mlp_500", fake_model(tmp_path), record(0.95), GATE)
    assert version["version"] == "v1" and version["blessed"] and "no champion yet" in version["gate_reason"]
    assert registry.resolve(tmp_path / "reg", "mlp_500@champion") == ("mlp_500", 1)


def test_abandoned_staging_folders_are_removed_live_ones_kept(tmp_path: Path):
    """A registration killed mid-copy leaves `.staging-<host>-<pid>-*`; the next registration deletes it,
    but never the staging folder of a process that is still registering."""
    root = tmp_path / "reg"
    registry.register(root, "m", fake_model(tmp_path), record(0.95), GATE)
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead = root / "m" / f"{registry.staging_prefix(int(gone.stdout))}abc"  # that process has exited and been reaped
    live = root / "m" / f"{registry.staging_prefix(os.getpid())}xyz"
    for folder in (dead, live):
        folder.mkdir()
        (folder / "model.keras").write_bytes(b"partial")
    assert registry.verify(root) == []  # leftovers are not versions
    assert registry.register(root, "m", fake_model(tmp_path), record(0.95), GATE)["version"] == "v2"
    assert not dead.exists() and live.is_dir()
    assert registry.versions(root, "m") == [1, 2] and registry.verify(root) == []


def scored(right: int, data: str = "a" * 64, total: int = 1000) -> dict:
    """A record whose first `right` of `total` test images (of data `data`) were classified right."""
    from mnist_pipeline.paired import pack

    return {**record(right / total), "test_correct": pack(np.arange(total) < right),
            "test_set": {"raw_sha256": data, "images": total}}


def test_the_gate_uses_the_paired_test_on_the_same_images(tmp_path: Path):
    """Blessed when the paired interval of candidate minus champion stays above -tolerance, "better" only when it
    is above 0; another test set is not comparable and the floor alone decides."""
    root, model = tmp_path / "reg", fake_model(tmp_path)
    registry.register(root, "cnn", model, scored(950), GATE)
    low = registry.register(root, "cnn", model, scored(850), GATE)
    assert not low["blessed"] and "below the floor" in low["gate_reason"] and low["gate_comparison"] is None
    worse = registry.register(root, "cnn", model, scored(930), GATE)  # 20 images fewer: -2.00% (-2.9% to -1.2%)
    assert not worse["blessed"] and worse["gate_comparison"]["verdict"] == "worse", worse["gate_reason"]
    assert "against champion v1 on the same 1,000 test images -2.00%" in worse["gate_reason"]
    equal = registry.register(root, "cnn", model, scored(950), GATE)
    assert equal["blessed"] and equal["gate_comparison"]["verdict"] == "not worse"
    assert equal["gate_comparison"]["ci95"] == [0.0, 0.0] and equal["gate_comparison"]["images"] == 1000
    better = registry.register(root, "cnn", model, scored(975), GATE)  # against v4 (the equal one), champion now
    assert better["blessed"] and better["gate_comparison"] | {"ci95": None} == {
        **better["gate_comparison"], "ci95": None, "against": "v4", "verdict": "better"}
    elsewhere = registry.register(root, "cnn", model, scored(920, data="b" * 64), GATE)
    assert elsewhere["blessed"] and elsewhere["gate_comparison"]["verdict"] == "not comparable"
    assert "not comparable with champion v5 (other test images" in elsewhere["gate_reason"]
    assert "judged on the floor alone" in elsewhere["gate_reason"]
    old = registry.register(root, "cnn", model, record(0.91), GATE)  # no per-image record: not comparable either
    assert old["blessed"] and "no per-image test record" in old["gate_reason"]

    listed = subprocess.run([sys.executable, "-m", "mnist_cli", "registry", "list", "--root", str(root)],
                            capture_output=True, text=True, env=stage_env())
    rows = {line.split()[0]: line for line in listed.stdout.splitlines()[1:]}
    assert listed.stdout.split()[:4] == ["version", "accuracy", "blessed", "gate"], listed.stdout
    assert "floor only" in rows["cnn@v1"] and "floor only" in rows["cnn@v2"]  # no champion yet; below the floor
    assert "worse than v1 (-2.9% to -1.2%)" in rows["cnn@v3"] and " no " in rows["cnn@v3"]
    assert "not worse than v1 (+0.0% to +0.0%)" in rows["cnn@v4"] and "better than v4 (+" in rows["cnn@v5"]
    assert "not comparable with v5" in rows["cnn@v6"] and "not comparable with v6" in rows["cnn@v7"]


def test_an_identical_run_registers_no_duplicate(tmp_path: Path):
    """A run whose stage hashes equal an existing version's (the same data, params and code) names that version
    instead of registering a second copy and moving the champion."""
    root, model = tmp_path / "reg", fake_model(tmp_path)
    first = registry.register(root, "cnn", model, {**scored(950), "fingerprint": "f" * 64}, GATE)
    registry.register(root, "cnn", model, {**scored(960), "fingerprint": "e" * 64}, GATE)
    again = registry.register(root, "cnn", model, {**scored(950), "fingerprint": "f" * 64}, GATE)
    assert again["duplicate_of"] == "cnn@v1" and again["version"] == first["version"] == "v1"
    assert registry.versions(root, "cnn") == [1, 2] and registry.resolve(root, "cnn@champion") == ("cnn", 2)


def test_every_version_has_a_model_card_naming_it(tmp_path: Path):
    """The card is written with the record, before the version appears; a record without the flow's fields says
    "not recorded" instead of guessing; verify catches a missing card or one naming another version."""
    root, model = tmp_path / "reg", fake_model(tmp_path)
    registry.register(root, "cnn", model, scored(950), GATE)
    registry.register(root, "cnn", model, scored(960), GATE)
    card = (root / "cnn/v2/model-card.md").read_text()
    assert card.startswith("# Model card: cnn@v2\n") and "**Not for**" in card and "## Gate" in card
    assert "Blessed: accuracy 0.9600 meets the floor 0.9000; against champion v1 on the same 1,000 test images" in card
    assert "| git revision | not recorded |" in card and "| Keras backend, precision | not recorded |" in card
    (root / "cnn/v2/model-card.md").write_text(card.replace("cnn@v2", "cnn@v1"))
    (root / "cnn/v1/model-card.md").unlink()
    assert registry.verify(root) == ["cnn@v1: no model-card.md", "cnn@v2: model-card.md names another version"]


def test_gate_floor_tolerance_and_rollback(tmp_path: Path):
    root, model = tmp_path / "reg", fake_model(tmp_path)
    registry.register(root, "cnn", model, scored(950), GATE)
    low = registry.register(root, "cnn", model, scored(850), GATE)
    assert not low["blessed"] and "below the floor" in low["gate_reason"]
    worse = registry.register(root, "cnn", model, scored(930), GATE)
    assert not worse["blessed"] and "worse" in worse["gate_reason"]
    close = registry.register(root, "cnn", model, scored(948), GATE)
    assert close["blessed"] and registry.resolve(root, "cnn@champion") == ("cnn", 4)
    assert registry.rollback(root, "cnn") == "cnn@v1"
    assert registry.set_alias(root, "cnn@v3") == "cnn@v3"
    assert registry.versions(root, "cnn") == [1, 2, 3, 4]
    assert json.loads((root / "cnn/v2/record.json").read_text())["blessed"] is False  # records never change


def _register_one(args: tuple[str, str, float]) -> str:
    root, model, accuracy = args
    return registry.register(Path(root), "mlp_500", Path(model), record(accuracy), GATE)["version"]


def test_concurrent_registrations_get_distinct_numbers(tmp_path: Path):
    model = fake_model(tmp_path)
    with multiprocessing.get_context("spawn").Pool(4) as pool:
        got = pool.map(_register_one, [(str(tmp_path / "reg"), str(model), 0.9 + i / 100) for i in range(8)])
    assert sorted(got, key=lambda v: int(v[1:])) == [f"v{i}" for i in range(1, 9)]


@pytest.mark.bad_input
@pytest.mark.parametrize("ref", ["../etc@v1", "a/b@v1", "mlp_500@v0", "mlp_500", "MLP@v1", "x@../../v1",
                                 "mlp_500\n@v1", "mlp_500@v1\n", "mlp_500@history"])
def test_bad_references_are_refused(tmp_path: Path, ref: str):
    """`$` in Python's `re` matches before a final newline, so `mlp_500\n@v1` passed the name check; `history` is
    the key of aliases.json that keeps the alias moves, and as an alias it printed the whole history."""
    registry.register(tmp_path, "mlp_500", fake_model(tmp_path), record(0.9), GATE)
    with pytest.raises(PipelineError, match="invalid|no version") as raised:
        registry.resolve(tmp_path, ref)
    assert len(str(raised.value)) < 120 and "\n" not in str(raised.value)[:-1]


@pytest.mark.bad_input
@pytest.mark.parametrize("champion", ["deleted", "accuracy_text", "accuracy_missing"])
def test_registration_goes_on_past_a_champion_it_cannot_compare_with(tmp_path: Path, champion: str):
    """A champion alias naming a deleted version blocked every registration (`no version mlp_500@v9`), and a
    champion record with a non-numeric or missing accuracy made register raise. Registration goes on, judged
    on the floor, and says why no champion was compared; `registry verify` names the problem."""
    import json
    import shutil

    root = tmp_path / "reg"
    for accuracy in (0.95, 0.96):
        registry.register(root, "mlp_500", fake_model(tmp_path), record(accuracy), GATE)
    path = root / "mlp_500" / "v2" / "record.json"  # the champion
    if champion == "deleted":
        shutil.rmtree(path.parent)
    else:
        data = json.loads(path.read_text())
        data["metrics"] = {"accuracy": "high"} if champion == "accuracy_text" else {}
        path.write_text(json.dumps(data))
    version = registry.register(root, "mlp_500", fake_model(tmp_path), record(0.95), GATE)
    assert version["version"] == "v3"  # the deleted v2's number is not reused: the alias history names it
    assert version["blessed"], version["gate_reason"]
    assert ("the champion could not be read (no version mlp_500@v2" if champion == "deleted" else
            "champion v2 was not compared: its metrics.accuracy is") in version["gate_reason"], version["gate_reason"]
    problems = registry.verify(root)
    assert champion == "deleted" or any("mlp_500@v2: its metrics.accuracy" in problem for problem in problems), \
        problems
    assert champion != "deleted" or "mlp_500: version numbers [1, 3] are not 1..2" in problems, problems


@pytest.mark.bad_input
def test_a_record_whose_params_are_not_sections_is_refused_by_predict_and_verify(tmp_path: Path, mnist_sample):
    import json

    root = tmp_path / "reg"
    registry.register(root, "mlp_500", fake_model(tmp_path), {**record(0.9), "params": []}, GATE)
    assert registry.verify(root) == ["mlp_500@v1: its params are not a mapping of sections"]
    np.savez(tmp_path / "digits.npz", x=mnist_sample["x_test"][:2])
    done = subprocess.run([sys.executable, "-m", "mnist_cli", "predict", "mlp_500@v1", str(tmp_path / "digits.npz"),
                           "--root", str(root)], capture_output=True, text=True, env=stage_env())
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
    assert done.stderr.strip() == ("error: mlp_500@v1: its params are not a mapping of sections (`mnist registry "
                                   "verify` lists what is wrong)")
    assert json.loads((root / "mlp_500" / "v1" / "record.json").read_text())["params"] == []


def test_cli_list_show_predict(tmp_path: Path, mnist_sample):
    root = tmp_path / "reg"
    registry.register(root, "mlp_500", fake_model(tmp_path), record(0.95), GATE)
    np.savez(tmp_path / "digits.npz", x=mnist_sample["x_test"][:5])

    def cli(*args: str, group: tuple[str, ...] = ("registry",)) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "mnist_cli", *group, *args, "--root", str(root)],
                              capture_output=True, text=True, env=stage_env())

    listed = cli("list")
    assert listed.returncode == 0 and "mlp_500@v1" in listed.stdout and "champion" in listed.stdout
    shown = json.loads(cli("show", "mlp_500@champion").stdout)
    assert shown["version"] == "v1" and shown["blessed"] is True
    predicted = json.loads(cli("mlp_500@v1", str(tmp_path / "digits.npz"), "--json", group=("predict",)).stdout)
    assert len(predicted["predictions"]) == 5 and all(0 <= p["label"] <= 9 for p in predicted["predictions"])
    missing = cli("show", "mlp_500@v7")
    assert missing.returncode == 1 and missing.stderr.startswith("error: no version mlp_500@v7")
    helped = subprocess.run([sys.executable, "-m", "mnist_cli", "registry", "--help"], capture_output=True, text=True,
                            env=stage_env())
    assert helped.returncode == 0 and "verify" in helped.stdout and "rollback" in helped.stdout


def test_on_number_joins_the_record_and_its_failure_registers_nothing(tmp_path: Path):
    """The flow saves the run as a DVC experiment named after the version inside `on_number`: its fields join
    the record, and when it fails no version appears."""
    root = tmp_path / "reg"

    def broken(version: str, blessed: bool) -> dict:
        raise PipelineError(f"dvc exp save --name m-{version} failed")

    with pytest.raises(PipelineError, match="dvc exp save --name m-v1 failed"):
        registry.register(root, "m", fake_model(tmp_path), record(0.9), GATE, on_number=broken)
    assert registry.versions(root, "m") == [] and not list((root / "m").glob(".staging-*"))
    added = registry.register(root, "m", fake_model(tmp_path), record(0.9), GATE,
                              on_number=lambda version, blessed: {"experiment": f"m-{version}", "seen": blessed})
    assert added["version"] == "v1" and added["experiment"] == "m-v1" and added["seen"] is True
    assert registry.read_record(root, "m", 1)["experiment"] == "m-v1"


def test_a_model_cards_record_text_is_escaped():
    """The card's tables escape record text as the reports do (markdown.table): no raw HTML, no extra cells."""
    from mnist_pipeline.card import render_card

    card = render_card({"name": "m", "version": "v1", "data_source": "<img src=x> | three",
                        "params": {"train": {"model": "m", "backend": "jax", "precision": "mixed_float16"}}})
    assert "| source | \\<img src=x\\> \\| three |" in card and not re.search(r"(?<!\\)<img", card)
    assert "| Keras backend, precision | jax, mixed\\_float16 |" in card
    assert "-S train.backend=jax -S train.precision=mixed_float16" in card
