"""Helpers for running the pipeline outside the project's own workspace (Prefect flows, sweeps).

A run works in its own git worktree of the last commit, sharing the project's DVC cache; its
parameter overrides are written into that worktree's params.yaml (a sweep's grid point becomes
a real catalogue entry there); what made its model is collected into a registry record.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml
from filelock import FileLock

from mnist_pipeline.catalogue import entry, model_input, model_spec
from mnist_pipeline.config import (
    DataParams,
    DistortionsParams,
    EvaluateParams,
    FeaturesParams,
    FetchParams,
    PrepareParams,
    ReportParams,
    ResizeParams,
    TrainParams,
    ValidateParams,
    parse_section,
    read_params,
)
from mnist_pipeline.errors import PipelineError
from mnist_pipeline.layout import Layout
from mnist_pipeline.lineage import lock_stages
from mnist_pipeline.processes import alive, host_name

# flow parameter -> (params section, key)
OVERRIDES = {"dataset": ("data", "dataset"), "model": ("train", "model"), "epochs": ("train", "epochs"),
             "batch_size": ("train", "batch_size"), "learning_rate": ("train", "learning_rate"),
             "seed": ("train", "seed"), "max_train_images": ("train", "max_train_images")}
SECTIONS = {"data": DataParams, "fetch": FetchParams, "validate": ValidateParams, "prepare": PrepareParams,
            "resize": ResizeParams, "features": FeaturesParams, "train": TrainParams, "distortions": DistortionsParams,
            "evaluate": EvaluateParams, "report": ReportParams}


def git(root: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=root, check=True, capture_output=True, text=True).stdout.strip()


def stage_names(root: Path) -> list[str]:
    """The pipeline's stages, in the order dvc.yaml lists them (a topological order)."""
    return list(yaml.safe_load((root / "dvc.yaml").read_text())["stages"])


def slug(text: str) -> str:
    """Prefect artifact keys: lowercase letters, digits and dashes only."""
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


WORKSPACE_PREFIX = "train-mnist-"
OWNER = "owner.json"  # beside a workspace: which host and process made it


def prune_dead_workspaces(root: Path) -> list[str]:
    """Remove the worktrees whose run's process died on this host (a SIGKILLed serving host leaves them
    registered and on disk); git forgets those whose folder is gone. The removed folders."""
    removed = []
    listing = git(root, "worktree", "list", "--porcelain")
    for line in listing.splitlines():
        folder = Path(line.removeprefix("worktree ")) if line.startswith("worktree ") else None
        if folder is None or not folder.parent.name.startswith(WORKSPACE_PREFIX):
            continue
        owner = folder.parent / OWNER
        try:
            made_by = json.loads(owner.read_text())
        except (OSError, ValueError):
            continue  # not ours, or still being made
        if made_by.get("host") == host_name() and not alive(int(made_by.get("pid", 0))):
            subprocess.run(["git", "worktree", "remove", "--force", str(folder)], cwd=root, capture_output=True)
            shutil.rmtree(folder.parent, ignore_errors=True)
            removed.append(str(folder))
    git(root, "worktree", "prune")
    return removed


@contextmanager
def workspace(root: Path, start_lock: Path | None = None) -> Iterator[Path]:
    """A fresh git worktree of HEAD that shares the project's DVC cache; removed afterwards.

    `start_lock` replaces the committed dvc.lock: a sweep hands its children the lock file of
    its shared preprocessing, so they check those outputs out of the cache instead of
    recomputing them. Workspaces that a dead process left behind are pruned first.
    """
    prune_dead_workspaces(root)
    folder = Path(tempfile.mkdtemp(prefix=WORKSPACE_PREFIX)) / "ws"
    (folder.parent / OWNER).write_text(json.dumps({"host": host_name(), "pid": os.getpid()}))
    git(root, "worktree", "add", "--detach", str(folder), "HEAD")
    try:
        if start_lock:
            shutil.copyfile(start_lock, folder / "dvc.lock")
        # what `dvc config --local cache.dir ...` writes, without starting a DVC process (half a second a run)
        (folder / ".dvc" / "config.local").write_text(f"[cache]\n    dir = {(root / '.dvc' / 'cache').resolve()}\n")
        subprocess.run(["dvc", "checkout", "--allow-missing"], cwd=folder, capture_output=True)  # best effort
        shared, local = Layout.from_params(read_params(root / "params.yaml"), root), Layout.from_params(
            read_params(folder / "params.yaml"), folder)
        shared.folder("checkpoints").mkdir(parents=True, exist_ok=True)  # a killed run resumes in the next run
        local.folder("checkpoints").symlink_to(shared.folder("checkpoints").resolve(), target_is_directory=True)
        yield folder
    finally:
        git(root, "worktree", "remove", "--force", str(folder))
        shutil.rmtree(folder.parent, ignore_errors=True)


def save_experiment(folder: Path, name: str, untracked: list[Path]) -> None:
    """Record the workspace's run (params, dvc.lock, metrics, plots, report) as the DVC experiment `name`.

    The worktree shares the project's git repository, so `dvc exp show` in the project lists it beside its
    own experiments. Saves are one at a time across the project's worktrees (a sweep's children finish
    together, and `dvc exp save` moves refs they all share). A commit needs an author: git's configured
    one, else `mnist-pipeline`.
    """
    env = dict(os.environ)
    if not subprocess.run(["git", "config", "user.name"], cwd=folder, capture_output=True, text=True).stdout.strip():
        env.update({f"GIT_{who}_{what}": value for who in ("AUTHOR", "COMMITTER")
                    for what, value in (("NAME", "mnist-pipeline"), ("EMAIL", "mnist-pipeline@localhost"))})
    args = ["dvc", "exp", "save", "--force", "--name", name]
    for path in untracked:
        args += ["--include-untracked", str(path.relative_to(folder))]
    common = Path(git(folder, "rev-parse", "--path-format=absolute", "--git-common-dir"))
    with FileLock(common / "mnist-pipeline-exp-save.lock", timeout=600):  # exp save writes refs the worktrees share
        done = subprocess.run(args, cwd=folder, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        last = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
        raise PipelineError(f"dvc exp save --name {name} failed: {last[0]}")


def committed_params(root: Path) -> dict[str, Any]:
    """params.yaml as the last commit has it: what a run's workspace (a worktree of HEAD) starts from,
    uncommitted edits aside."""
    text = git(root, "show", "HEAD:params.yaml")
    params = yaml.safe_load(text)
    if not isinstance(params, dict):
        raise PipelineError("params.yaml in the last commit must hold a mapping of sections")
    return params


def apply_overrides(params: dict[str, Any], overrides: dict[str, Any], model_settings: dict[str, Any] | None = None,
                    variant_of: str | None = None) -> dict[str, Any]:
    """`params` with this run's overrides applied (a new mapping; `params` is not changed).

    `model_settings` changes fields of the model's catalogue entry (`models.<model>`) for this run;
    with `variant_of`, the entry is a new one: that catalogue entry with those fields changed (how a
    sweep's grid point becomes a real catalogue entry with its own registry versions and report).
    """
    out = json.loads(json.dumps(params))
    for key, value in overrides.items():
        if value is not None:
            section, name = OVERRIDES[key]
            out[section][name] = value
    if model_settings or variant_of:
        model, base = out["train"]["model"], variant_of or out["train"]["model"]
        out["models"][model] = {**entry(out["models"], base), **(model_settings or {})}
    return out


def check_run(params: dict[str, Any]) -> None:
    """Every section a run reads, and its model's catalogue entry, parse: raises the stages' own
    one-line error before any stage runs."""
    Layout.from_params(params)
    for name, section in SECTIONS.items():
        parse_section(params, name, section)
    model = params["train"]["model"]
    model_input(params.get("models", {}), model)
    model_spec(params.get("models", {}), model)


class NoAliasDumper(yaml.SafeDumper):
    """YAML without anchors: a value used twice (a variant's settings) is written twice, not as `&id001` and
    `*id001`, which params files may not hold (config.NoAliasLoader)."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def write_params(folder: Path, params: dict[str, Any]) -> None:
    (folder / "params.yaml").write_text(yaml.dump(params, Dumper=NoAliasDumper, sort_keys=False))


def run_lineage(folder: Path, root: Path) -> dict[str, Any]:
    """What made a workspace's model: data checksums, code revision, stage hashes, timings."""
    layout = Layout.from_params(read_params(folder / "params.yaml"), folder)
    fetched = json.loads(layout.fetch_record.read_text())
    timings = {stage: json.loads(layout.timing(stage).read_text())["seconds"] for stage in stage_names(folder)
               if layout.timing(stage).is_file()}
    return {"dataset": fetched["dataset"], "data_source": fetched["source"],
            "data_files": fetched["source_files"] + [fetched["raw_file"]],
            "git_revision": git(root, "rev-parse", "HEAD"), "dvc_lock": lock_stages(layout.dvc_lock),
            "seconds_per_stage": timings}


def api_error(url: str | None) -> str | None:
    """Why the Prefect API at `url` cannot be used, or None (a sweep's workers need a real server)."""
    if not url:
        return "PREFECT_API_URL is not set; start a server (bash scripts/prefect.sh, README) and export it"
    try:
        with urllib.request.urlopen(f"{url.rstrip('/')}/health", timeout=10) as answer:
            return None if answer.status == 200 else f"the Prefect API at {url} answered {answer.status}"
    except OSError as error:
        return f"cannot reach the Prefect API at {url} ({error}); is the server running?"
