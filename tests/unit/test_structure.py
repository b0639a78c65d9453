"""The project's shape: one source for paths, dvc.yaml's code deps are the code each stage runs, the
committed dvc.lock describes the committed code, and the stages' and the CLI's help."""

from __future__ import annotations

import difflib
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from mnist_pipeline.config import read_params
from mnist_pipeline.errors import PipelineError
from mnist_pipeline.project_files import ProjectFiles, kept_problems
from scripts.code_deps import code_closure, render
from tests.harness import ROOT, stage_env

DVC_YAML = yaml.safe_load((ROOT / "dvc.yaml").read_text())
STAGES = list(DVC_YAML["stages"])


@pytest.mark.parametrize("stage", STAGES)
def test_dvc_yaml_code_deps_are_exactly_what_the_stage_runs(stage: str):
    """Editing shared code re-runs every stage that runs it, and nothing else (scripts/code_deps.py writes them)."""
    declared = {d for d in DVC_YAML["stages"][stage]["deps"] if d.endswith(".py")}
    assert declared == code_closure(f"tasks.{stage}"), f"{stage}: run python scripts/code_deps.py"


def test_code_deps_writer_leaves_dvc_yaml_as_it_is_and_adds_a_new_import(tmp_path: Path):
    """What the writer would write is what dvc.yaml says; in a copy whose stage imports one module more, it adds
    exactly that file to exactly that stage and touches no other line."""
    text = (ROOT / "dvc.yaml").read_text()
    assert render(text) == text, "run python scripts/code_deps.py"
    for folder in ("tasks", "mnist_pipeline"):
        for path in (ROOT / folder).rglob("*.py"):
            target = tmp_path / path.relative_to(ROOT)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(path.read_text())
    fetch = tmp_path / "tasks/fetch.py"
    fetch.write_text(fetch.read_text().replace("from tasks import log, run", "from tasks import log, run\n"
                                               "from mnist_pipeline import paired  # noqa: F401"))
    after = render(text, tmp_path).split("\n")
    changed = [line for line in difflib.ndiff(text.split("\n"), after) if line[:1] in "+-"]
    assert changed == ["+       - mnist_pipeline/paired.py"], changed
    added = after.index("      - mnist_pipeline/paired.py", after.index("  fetch:"))
    assert added < after.index("  validate:")  # in fetch's deps


def test_no_path_or_file_name_literals_outside_the_layout():
    """Folders live in params.yaml `paths`, file names in mnist_pipeline/project_files.py: nowhere else in the code."""
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    files = ProjectFiles.from_params(params)
    names = {Path(getattr(files, attr)).name for attr in dir(ProjectFiles)
             if isinstance(getattr(ProjectFiles, attr), property) and attr not in ("live_dir", "report_dir")}
    names -= {"params.yaml", "dvc.lock"}
    quoted = [f'"{name}"' for name in sorted(names)] + [f'/{name}"' for name in sorted(names)]
    quoted += [f'"{folder}' for folder in sorted(params["paths"].values()) if "/" in folder]
    quoted += [f'"{folder}/' for folder in sorted(params["paths"].values())]
    pattern = re.compile("|".join(re.escape(x) for x in quoted))
    offenders = []
    for folder in ("tasks", "flows", "mnist_cli", "mnist_pipeline"):
        for path in (ROOT / folder).rglob("*.py"):
            if path.name in ("project_files.py", "registry.py"):  # the pipeline's files; the registry's (its docstring)
                continue
            for number, line in enumerate(path.read_text().splitlines(), start=1):
                if pattern.search(line) and not line.lstrip().startswith("#"):
                    offenders.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert not offenders, "\n".join(offenders)


def test_dvc_yaml_names_the_layouts_files():
    """The few file names dvc.yaml must spell out (metrics and plots) are the layout's."""
    files = ProjectFiles.from_params(yaml.safe_load((ROOT / "params.yaml").read_text()))
    evaluate, train = DVC_YAML["stages"]["evaluate"], DVC_YAML["stages"]["train"]
    assert next(iter(evaluate["metrics"][0])) == "${paths.evaluation}/" + files.metrics.name
    assert next(iter(evaluate["outs"][0])) == "${paths.evaluation}/" + files.evaluation_record.name
    assert next(iter(evaluate["plots"][0])) == "${paths.evaluation}/" + files.confusion_csv.name
    assert next(iter(train["outs"][1])) == "${paths.live}/" + files.live_metrics.name
    assert [next(iter(stage["metrics"][0])) for stage in DVC_YAML["stages"].values() if "metrics" in stage] == \
        ["${paths.evaluation}/" + files.metrics.name]  # dvclive's are no metric: `dvc exp show` stays narrow
    assert "${paths.model}/" + files.train_record.name in DVC_YAML["stages"]["report"]["deps"]


def test_one_stage_one_module_one_params_section():
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    for stage in STAGES:
        assert (ROOT / "tasks" / f"{stage}.py").is_file()
        section = {"guard": "paths"}.get(stage, stage)  # the guard checks `paths`
        assert section in params and section in DVC_YAML["stages"][stage]["params"], stage
    assert sorted(p.stem for p in (ROOT / "tasks").glob("*.py") if p.stem != "__init__") == sorted(STAGES)


def test_committed_dvc_lock_matches_the_code():
    """A stale dvc.lock no longer describes the code that made the committed outputs: `dvc status` must not
    find any code dependency of any stage modified. (Missing data outputs, as in a fresh clone, are fine.)"""
    done = subprocess.run(["dvc", "status", "--json"], cwd=ROOT, env=stage_env(), capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    stale = []
    for stage, changes in json.loads(done.stdout or "{}").items():
        for change in changes:
            if isinstance(change, dict):
                for path, state in change.get("changed deps", {}).items():
                    if path.endswith(".py"):
                        stale.append(f"{stage}: {path} {state}")
    assert not stale, "dvc.lock is stale; run the main job (bash scripts/main.sh) and commit dvc.lock: " + \
        "; ".join(stale)


def test_tensorflow_log_level_default_agrees():
    setup = (ROOT / "scripts/setup.sh").read_text()
    package = (ROOT / "mnist_pipeline/__init__.py").read_text()
    in_setup = re.search(r'TF_CPP_MIN_LOG_LEVEL:-(\d)', setup).group(1)
    in_package = re.search(r'setdefault\("TF_CPP_MIN_LOG_LEVEL", "(\d)"\)', package).group(1)
    assert in_setup == in_package


@pytest.mark.parametrize("stage", STAGES)
def test_stage_help_runs_nothing(stage: str, tmp_path: Path):
    """`python -m tasks.<stage> --help` explains the stage and what it reads and writes, and writes nothing."""
    (tmp_path / "params.yaml").write_text((ROOT / "params.yaml").read_text())
    (tmp_path / "dvc.yaml").write_text((ROOT / "dvc.yaml").read_text())
    done = subprocess.run([sys.executable, "-m", f"tasks.{stage}", "--help"], cwd=tmp_path, env=stage_env(),
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"usage: python -m tasks.{stage}") and f"{stage}:" in done.stdout
    assert "params:" in done.stdout and "outs:" in done.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dvc.yaml", "params.yaml"]


def test_cli_help_lists_the_subcommands():
    done = subprocess.run(["mnist", "--help"], env=stage_env(), capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    for command in ("registry", "predict", "compare", "sweep"):
        assert re.search(rf"^\s+{command}\s", done.stdout, re.M), done.stdout
        sub = subprocess.run(["mnist", command, "--help"], env=stage_env(), capture_output=True, text=True,
                             timeout=120)
        assert sub.returncode == 0 and "Usage: mnist " + command in sub.stdout, sub.stdout + sub.stderr


DVC_FILES = {"dvc.yaml", "dvc.lock", "params.yaml"}  # DVC reads these itself: they cannot be ignored


def dvc_outputs() -> set[str]:
    """The folder of every output, metric and plot dvc.yaml's stages name (params.yaml's `paths` put in)."""
    paths = read_params(ROOT / "params.yaml")["paths"]
    names = [next(iter(out)) if isinstance(out, dict) else out for stage in DVC_YAML["stages"].values()
             for kind in ("outs", "metrics", "plots") for out in stage.get(kind, [])]
    return {str(paths[found.group(1)]) if (found := re.match(r"\$\{paths\.(\w+)\}", name)) else name
            for name in names}


def test_dvcignore_allows_an_output_only_where_params_yaml_puts_one():
    """`dvc exp run` checks out every output before any stage runs, and a moved output has no hash yet, so its new
    path is emptied: `-S paths.demo=notes` deleted an untracked notes/a.txt with exit 0, `=README.md` the README.
    DVC refuses an output at a path .dvcignore ignores before that, so .dvcignore ignores everything but DVC's own
    files and the output folders params.yaml names (checked with DVC's own matcher, as `dvc exp run` uses it)."""
    from dvc.fs import LocalFileSystem
    from dvc.ignore import DvcIgnoreFilter

    fs = LocalFileSystem()
    matcher = DvcIgnoreFilter(fs, str(ROOT))

    def ignored(name: str) -> bool:
        return matcher.is_ignored(fs, str(ROOT / name), ignore_subrepos=False)

    outputs = dvc_outputs()
    assert {"guard", "model", "data/raw", "demo"} <= outputs
    for name in sorted(outputs | DVC_FILES):
        assert not ignored(name) and not ignored(f"{name}/some/file"), name
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    own = [name for name in tracked if name in DVC_FILES or any(name.startswith(f"{out}/") for out in outputs)]
    assert own and [name for name in tracked if not ignored(name)] == own
    for name in ("notes", "demo2", "data/demo2", "data/cache", "registry", "checkpoints", "timings", "reports",
                 "mnist_pipeline", "tasks", "README.md", ".dvcignore", ".gitignore", "data/.gitignore"):
        assert ignored(name), f"{name}: DVC would empty it under a moved output"
    allowed = {line[2:].removesuffix("/**") for line in (ROOT / ".dvcignore").read_text().splitlines()
               if line.startswith("!/")}
    assert allowed == outputs | DVC_FILES | {"data"}  # data/ holds outputs; /data/* ignores the rest of it


# The rule behind `dvc exp run -S paths.demo=registry` (which deleted every registered version): each `paths` value,
# moved to each folder the project keeps, is refused in one line, and the committed folders pass.
KEPT_CASES = [".", ".git", ".git/hooks", ".dvc", ".dvc/cache", ".venv", "registry", "registry/cnn", "data/cache",
              "guard", "docs", "tests/unit", "mnist_pipeline", "data", "evaluation/sub", "reports/mnist"]


@pytest.mark.parametrize("folder", KEPT_CASES)
def test_no_output_folder_may_be_a_kept_one(folder: str):
    params = read_params(ROOT / "params.yaml")
    files = ProjectFiles.from_params(params, ROOT)
    files.check_kept(params)  # the committed folders are every output's own
    for key in params["paths"]:
        if folder == params["paths"][key]:
            continue
        moved = {**params, "paths": {**params["paths"], key: folder}}
        with pytest.raises(PipelineError) as refused:
            ProjectFiles.from_params(moved, ROOT).check_kept(moved)
        message = str(refused.value)
        assert "\n" not in message and message.startswith(f"paths.{key}={folder!r} "), message
        assert "nothing was deleted" in message


def test_an_output_folder_of_its_own_passes():
    params = read_params(ROOT / "params.yaml")
    for key, folder in (("demo", "demo_elsewhere"), ("report", "my-report"), ("timings", "timings-2")):
        moved = {**params, "paths": {**params["paths"], key: folder}}
        ProjectFiles.from_params(moved, ROOT).check_kept(moved)
    assert kept_problems({"a": "x", "b": "x/y"}, {}, set(), {})[0] == "paths.a='x' contains paths.b's folder (x/y)"
