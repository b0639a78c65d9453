"""The bad-input catalogue: each broken input through real `dvc repro` in a real git repository.

Every case must give one `error:` line naming the problem, a non-zero exit from
`dvc repro`, and lose nothing: the failing stage writes nothing (DVC removed its last
outputs before running it: no output persists, so the run-cache works), later stages do
not run, and `dvc checkout` brings the last good outputs back byte for byte.
"""

from __future__ import annotations

import gzip
import http.server
import importlib.util
import shutil
import subprocess
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import yaml

from mnist_pipeline.data import sources
from mnist_pipeline.files import save_npz, sha256_file
from tests.harness import dvc, make_repo

OUTPUTS = ("data/raw/raw.npz", "data/validated/validation.json", "data/prepared/prepared.npz")


@dataclass(frozen=True)
class Case:
    name: str
    stage: str  # the stage that must refuse it
    expect: str  # text the one error line must contain
    make: Callable[[Path, dict[str, np.ndarray]], dict]  # writes the input, returns `data` params


def npz_case(mutate: Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]]) -> Callable:
    def make(folder: Path, good: dict[str, np.ndarray]) -> dict:
        path = folder / "input.npz"
        np.savez(path, **mutate({key: value.copy() for key, value in good.items()}))
        return {"path": str(path)}
    return make


def truncated(folder: Path, good: dict[str, np.ndarray]) -> dict:
    path = folder / "input.npz"
    save_npz(path, good)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    return {"path": str(path)}


def corrupt(folder: Path, good: dict[str, np.ndarray]) -> dict:
    path = folder / "input.npz"
    save_npz(path, good)
    data = bytearray(path.read_bytes())
    data[30:4000] = b"\xff" * 3970  # keep the zip magic, destroy the first member
    path.write_bytes(bytes(data))
    return {"path": str(path)}


def pickled(folder: Path, good: dict[str, np.ndarray]) -> dict:
    path = folder / "input.npz"
    np.savez(path, **{**good, "x_train": np.array([{"payload": "os.system"}] * 3, dtype=object)})
    return {"path": str(path)}


def wrong_magic_idx(folder: Path, good: dict[str, np.ndarray]) -> dict:
    target = folder / "idx"
    target.mkdir()
    for key, stem in sources.IDX_NAMES.items():
        array = good[key]
        magic = bytes([0, 0, 0x08, array.ndim]) if key != "y_test" else b"\x01\x08\x00\x00"
        dims = b"".join(int(d).to_bytes(4, "big") for d in array.shape)
        (target / f"{stem}.gz").write_bytes(gzip.compress(magic + dims + array.tobytes()))
    return {"path": str(target)}


def drop_class(arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    keep = arrays["y_test"] != 7
    return {**arrays, "x_test": arrays["x_test"][keep], "y_test": arrays["y_test"][keep]}


def bad_labels(arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    labels = arrays["y_train"].astype(np.int64)
    labels[[5, 9]] = [10, -1]
    return {**arrays, "y_train": labels}


def nan_images(arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    images = arrays["x_test"].astype(np.float32)
    images[3, 10, 10] = np.nan
    return {**arrays, "x_test": images}


def not_an_archive(folder: Path, good: dict[str, np.ndarray]) -> dict:
    path = folder / "input.npz"
    path.write_text("x_train,y_train\n1,2\n")
    return {"path": str(path)}


CASES = [
    Case("truncated npz", "fetch", "corrupt or truncated .npz", truncated),
    Case("corrupt npz", "fetch", ".npz", corrupt),
    Case("not an npz at all", "fetch", "not an .npz archive", not_an_archive),
    Case("pickled objects in npz", "fetch", "pickled Python objects; refused", pickled),
    Case("wrong keys", "fetch", "missing keys", npz_case(lambda a: {"images": a["x_train"], "labels": a["y_train"]})),
    Case("IDX wrong magic number", "fetch", "wrong IDX magic number", wrong_magic_idx),
    Case("wrong image dtype", "validate", "images dtype is float64",
         npz_case(lambda a: {**a, "x_train": a["x_train"].astype(np.float64)})),
    Case("wrong image shape", "validate", "image shape is 784",
         npz_case(lambda a: {**a, "x_train": a["x_train"].reshape(len(a["x_train"]), 784)})),
    Case("labels 10 and -1", "validate", "labels in 0..9", npz_case(bad_labels)),
    Case("NaN in float images", "validate", "no NaN pixels", npz_case(nan_images)),
    Case("image/label count mismatch", "validate", "image and label counts match",
         npz_case(lambda a: {**a, "y_test": a["y_test"][:-3]})),
    Case("empty arrays", "validate", "split is not empty",
         npz_case(lambda a: {**a, "x_test": a["x_test"][:0], "y_test": a["y_test"][:0]})),
    Case("a split missing a class", "validate", "missing classes [7]", npz_case(drop_class)),
]


class BadBytesHandler(http.server.SimpleHTTPRequestHandler):
    """Serves the real Fashion-MNIST files, with one byte of the training labels flipped."""

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        name = self.path.strip("/")
        data = (sources.FASHION_DEBIAN_DIR / name).read_bytes()
        if name == "train-labels-idx1-ubyte.gz":
            data = data[:-1] + bytes([data[-1] ^ 0xFF])
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A repository with one good `dvc repro` done (offline MNIST sample, small MLP)."""
    root = make_repo(tmp_path_factory.mktemp("repo"))
    set_params(root, {"data": {}, "train": {"model": "mlp_500", "epochs": 1}})
    result = dvc(root, "repro")
    assert result.returncode == 0, result.stdout
    yield root


def set_params(root: Path, overrides: dict[str, dict]) -> None:
    original = root / "params.original.yaml"
    if not original.exists():
        shutil.copy(root / "params.yaml", original)
    params = yaml.safe_load(original.read_text())
    for section, values in overrides.items():
        params[section].update(values)
    params["train"]["epochs"] = 1  # the data stages are under test; keep training short
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def hashes(root: Path) -> dict[str, str]:
    return {name: sha256_file(root / name) for name in OUTPUTS}


def assert_refused(root: Path, result, stage: str, expect: str, before: dict[str, str]) -> None:
    assert result.returncode != 0, result.stdout
    errors = [line for line in result.stdout.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.stdout
    assert errors[0].startswith(f"error: {stage}:") and expect in errors[0], errors[0]
    failed = OUTPUTS[0] if stage == "fetch" else OUTPUTS[1]
    folder = (root / failed).parent
    assert not folder.exists() or not any(folder.iterdir()), f"{stage} left {list(folder.iterdir())}"
    untouched = OUTPUTS[2:]  # the stages after the failing one did not run
    assert {k: sha256_file(root / k) for k in untouched} == {k: before[k] for k in untouched}
    restored = dvc(root, "checkout")
    assert restored.returncode == 0, restored.stdout
    kept = OUTPUTS if stage == "fetch" else OUTPUTS[1:]  # validate failures: fetch did succeed (a new raw.npz)
    after = hashes(root)
    assert {k: after[k] for k in kept} == {k: before[k] for k in kept}  # the last good outputs, from the cache


@pytest.mark.e2e
@pytest.mark.bad_input
@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_bad_input_is_refused(repo: Path, small_raw, tmp_path: Path, case: Case):
    before = hashes(repo)
    set_params(repo, {"fetch": case.make(tmp_path, small_raw), "train": {"model": "mlp_500"}})
    assert_refused(repo, dvc(repo, "repro"), case.stage, case.expect, before)


@pytest.mark.e2e
@pytest.mark.bad_input
def test_download_with_wrong_checksum_is_refused(repo: Path, tmp_path: Path):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), BadBytesHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        before = hashes(repo)
        cache = tmp_path / "cache"
        set_params(repo, {"data": {"dataset": "fashion_mnist"}, "fetch": {"source": "download", "retries": 0,
                                   "mirror": f"http://127.0.0.1:{server.server_address[1]}/",
                                   "cache_dir": str(cache)}, "train": {"model": "mlp_500"}})
        assert_refused(repo, dvc(repo, "repro"), "fetch", "failed its sha256 check", before)
        assert not (cache / "fashion_mnist" / "train-labels-idx1-ubyte.gz").exists()
    finally:
        server.shutdown()


@pytest.mark.e2e
def test_a_good_local_file_then_reproduces(repo: Path, small_raw, tmp_path: Path):
    """The positive control: the same repository accepts a good local .npz after the failures."""
    save_npz(tmp_path / "good.npz", small_raw)
    set_params(repo, {"fetch": {"path": str(tmp_path / "good.npz")}, "train": {"model": "mlp_500"}})
    result = dvc(repo, "repro")
    assert result.returncode == 0, result.stdout
    assert "fetch: mnist from source 'path' (auto)" in result.stdout
    assert "800 images (600 train / 200 test)" in result.stdout


@pytest.mark.e2e
@pytest.mark.bad_input
def test_an_output_folder_over_what_the_project_keeps_is_refused_before_dvc_deletes_it(repo: Path):
    """The probe's data losses: `dvc exp run -S paths.demo=registry` deleted every registered version, `-S
    paths.live=.` params.yaml and dvc.yaml, `-S paths.demo=docs` the tracked docs/ with an untracked note; later
    probes: `=mnist_pipeline` the code with an uncommitted file, `=README.md` the README, `=notes` an untracked
    folder (exit 0). `dvc exp run` empties a moved output's path before any stage runs, so DVC must refuse it
    first: .dvcignore ignores all but the outputs' own folders, and DVC refuses an output there when it loads
    dvc.yaml. The guard stage, which runs before every other, refuses the rest in one line. A folder allowed in
    .dvcignore (its two lines) then takes the output."""
    set_params(repo, {"train": {"model": "mlp_500"}})
    version = repo / "registry" / "mlp_500" / "v1" / "record.json"
    version.parent.mkdir(parents=True, exist_ok=True)
    version.write_text('{"a": "registered version"}\n')
    (repo / "params.yaml").write_text((repo / "params.yaml").read_text() + "# a note of the user's\n")
    (repo / "docs" / "notes.md").write_text("x\n")
    (repo / "mnist_pipeline" / "uncommitted.py").write_text("# not committed yet\n")
    (repo / "notes").mkdir(exist_ok=True)
    (repo / "notes" / "a.txt").write_text("mine\n")
    kept = {path: path.read_bytes() for path in (version, repo / "params.yaml", repo / "dvc.yaml", repo / "README.md",
                                                 repo / "docs" / "notes.md", repo / "mnist_pipeline" / "uncommitted.py",
                                                 repo / "mnist_pipeline" / "config.py", repo / "notes" / "a.txt")}
    for setting, words in (("paths.demo=registry", "is ignored by .dvcignore"),  # DVC's own refusal
                           ("paths.live=.", "is ignored by .dvcignore"),  # ./metrics.json: the guard's line before
                           ("paths.checkpoints=registry", "error: guard: paths.checkpoints='registry' is the model "
                                                          "registry"),
                           ("paths.demo=docs", "is ignored by .dvcignore"),
                           ("paths.demo=mnist_pipeline", "is ignored by .dvcignore"),
                           ("paths.demo=README.md", "is ignored by .dvcignore"),
                           ("paths.demo=notes", "is ignored by .dvcignore"),
                           ("paths.demo=data/notes", "is ignored by .dvcignore")):
        done = dvc(repo, "exp", "run", "-S", setting)
        assert done.returncode != 0 and words in done.stdout, done.stdout
        for path, content in kept.items():
            if path.name != "params.yaml":  # dvc exp run -S wrote its setting there; the note stays
                assert path.read_bytes() == content, (setting, path)
        assert "# a note of the user's" in (repo / "params.yaml").read_text()
        subprocess.run(["git", "checkout", "-q", "main"], cwd=repo, capture_output=True)  # DVC leaves HEAD detached
        set_params(repo, {"train": {"model": "mlp_500"}})
        (repo / "params.yaml").write_text((repo / "params.yaml").read_text() + "# a note of the user's\n")
    # the documented way to give an output a new folder of its own
    ignore = (repo / ".dvcignore").read_text()
    try:
        (repo / ".dvcignore").write_text(ignore + "!/demo2\n!/demo2/**\n")
        done = dvc(repo, "exp", "run", "-S", "paths.demo=demo2")
        assert done.returncode == 0, done.stdout
        assert (repo / "demo2" / "demo.json").is_file()
    finally:
        (repo / ".dvcignore").write_text(ignore)
        subprocess.run(["git", "checkout", "-q", "main"], cwd=repo, capture_output=True)
        set_params(repo, {"train": {"model": "mlp_500"}})
        for path in (repo / "mnist_pipeline" / "uncommitted.py", repo / "notes" / "a.txt"):
            path.unlink(missing_ok=True)  # a failure above that lost one must not be hidden by this clean-up
        dvc(repo, "checkout")


@pytest.mark.e2e
@pytest.mark.bad_input
@pytest.mark.parametrize("setting, words", [
    ("train.epochs=true", "train.epochs: Input should be a valid integer"),  # DVC's == took it for 1: no re-run
    ("models.mlp_500.hidden=[0]", "models.mlp_500.hidden.0: Input should be greater than or equal to 1"),
    ("fetch.sample_test_size=4995", "fetch.sample_test_size: Input should be less than or equal to 4800"),
])
def test_a_params_value_a_stage_would_refuse_is_refused_by_the_guard_in_one_line(repo: Path, setting: str,
                                                                                  words: str):
    """Each of these gave a Keras or scikit-learn traceback, or (true for 1) recorded an experiment no stage
    accepts; the guard, which depends on params.yaml itself, refuses it in one line before any stage runs."""
    set_params(repo, {"train": {"model": "mlp_500"}})
    before = hashes(repo)
    done = dvc(repo, "exp", "run", "-S", setting)
    errors = [line for line in done.stdout.splitlines() if line.startswith("error:")]
    assert done.returncode != 0 and "Traceback" not in done.stdout, done.stdout
    assert len(errors) == 1 and errors[0].startswith("error: guard: bad params: ") and words in errors[0], errors
    assert hashes(repo) == before
    # the guard's own record stays: DVC deletes an output before its stage runs unless it persists, and a
    # refused guard left the committed guard/paths.json deleted in git
    assert (repo / "guard" / "paths.json").is_file()
    changed = subprocess.run(["git", "status", "--porcelain"], cwd=repo, capture_output=True, text=True).stdout
    assert not [line for line in changed.splitlines() if line.startswith(" D")], changed
    subprocess.run(["git", "checkout", "-q", "main"], cwd=repo, capture_output=True)  # DVC leaves HEAD detached


@pytest.mark.e2e
@pytest.mark.bad_input
@pytest.mark.skipif(importlib.util.find_spec("jax") is not None, reason="this venv has JAX (.venv-backends)")
def test_a_backend_this_venv_lacks_is_refused_by_the_guard_before_any_stage(repo: Path):
    """`-S train.backend=jax` in the main venv: the guard refuses it in one line naming the set-up that has JAX,
    before any stage runs (train would refuse it too, after the stages before it)."""
    set_params(repo, {"train": {"model": "mlp_500"}})
    before = hashes(repo)
    done = dvc(repo, "exp", "run", "-S", "train.backend=jax")
    errors = [line for line in done.stdout.splitlines() if line.startswith("error:")]
    assert done.returncode != 0 and "Traceback" not in done.stdout, done.stdout
    assert len(errors) == 1, errors
    assert errors[0].startswith("error: guard: train.backend jax: jax is not installed in "), errors
    assert "scripts/setup-backends.sh" in errors[0] and "Running stage 'train'" not in done.stdout
    assert hashes(repo) == before
    subprocess.run(["git", "checkout", "-q", "main"], cwd=repo, capture_output=True)  # DVC leaves HEAD detached


@pytest.mark.e2e
@pytest.mark.bad_input
def test_a_layer_too_big_for_memory_is_one_line_naming_its_size(repo: Path):
    """`hidden=[3000000]` gave 59 lines of TensorFlow's ResourceExhaustedError; a layer of 10^9 units (3 TB of
    weights) is one line saying out of memory, with the tensor's shape."""
    set_params(repo, {"train": {"model": "mlp_500"}})
    done = dvc(repo, "exp", "run", "-S", "models.mlp_500.hidden=[1000000000]")
    errors = [line for line in done.stdout.splitlines() if line.startswith("error:")]
    assert done.returncode != 0 and "Traceback" not in done.stdout, done.stdout[-3000:]
    assert len(errors) == 1 and errors[0].startswith("error: train: out of memory (OOM when allocating tensor with "
                                                     "shape[784,1000000000]"), errors
    subprocess.run(["git", "checkout", "-q", "main"], cwd=repo, capture_output=True)
