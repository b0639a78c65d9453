"""Write each dvc.yaml stage's code deps: exactly the files of our code that running its module can execute.

A stage's `.py` deps are the import closure of `tasks/<stage>.py` (imports at the top or inside functions, and
the `__init__.py` of every package on the way), so editing shared code re-runs every stage that runs it and
nothing else, and DVC's run-cache stays honest. This writes them; `tests/unit/test_structure.py` checks that
dvc.yaml says what this would write. Everything else in dvc.yaml (comments, params, outputs, the other deps)
is left as it is.

    python scripts/code_deps.py           # rewrite the code deps in dvc.yaml
    python scripts/code_deps.py --check   # exit 1 and name the stages whose deps differ
"""

from __future__ import annotations

import argparse
import ast
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DVC_YAML = ROOT / "dvc.yaml"
OURS = ("mnist_pipeline", "tasks")
STAGE = re.compile(r"^  ([a-z_]+):")  # a stage's first line, under `stages:`
CODE_DEP = re.compile(r"^      - ((?:tasks|mnist_pipeline)/\S+\.py)\s*$")  # one code dep, no comment on its line


def module_file(name: str, root: Path = ROOT) -> Path | None:
    for candidate in (root / (name.replace(".", "/") + ".py"), root / name.replace(".", "/") / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def imported(path: Path) -> set[str]:
    """Every module of ours that `path` imports, at the top or inside a function (lazy imports count)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names |= {node.module} | {f"{node.module}.{alias.name}" for alias in node.names}
    return {name for name in names if name.split(".")[0] in OURS}


def code_closure(module: str, root: Path = ROOT) -> set[str]:
    """The files of our code that running `module` can execute: its imports, theirs, and their packages."""
    seen: set[Path] = set()
    todo = [module]
    while todo:
        name = todo.pop()
        path = module_file(name, root)
        if path is None or path in seen:
            continue
        seen.add(path)
        parts = name.split(".")
        todo += [".".join(parts[:i]) for i in range(1, len(parts))]  # packages run their __init__
        todo += sorted(imported(path))
    return {str(path.relative_to(root)) for path in seen}


def ordered(stage: str, files: set[str]) -> list[str]:
    """The stage's own module, the tasks package, then the library: top-level modules before subpackages."""
    first = [f"tasks/{stage}.py", "tasks/__init__.py"]
    return first + sorted(files - set(first), key=lambda name: (name.count("/"), name))


def render(text: str, root: Path = ROOT) -> str:
    """dvc.yaml's text with each stage's run of code-dep lines replaced by its import closure, in order."""
    lines, out, stage, i = text.split("\n"), [], None, 0
    while i < len(lines):
        if found := STAGE.match(lines[i]):
            stage = found.group(1)
        if stage and CODE_DEP.match(lines[i]):
            while i < len(lines) and CODE_DEP.match(lines[i]):
                i += 1  # the stage's current run of code deps, dropped
            out += [f"      - {name}" for name in ordered(stage, code_closure(f"tasks.{stage}", root))]
            continue
        out.append(lines[i])
        i += 1
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 when dvc.yaml differs")
    args = parser.parse_args()
    text = DVC_YAML.read_text()
    wanted = render(text)
    if wanted == text:
        print("dvc.yaml: every stage's code deps are its import closure", file=sys.stderr)
        return
    if args.check:
        raise SystemExit("dvc.yaml: code deps differ from the stages' imports: run python scripts/code_deps.py")
    DVC_YAML.write_text(wanted)
    print("dvc.yaml: code deps rewritten from the stages' imports (then `dvc repro` updates dvc.lock)",
          file=sys.stderr)


if __name__ == "__main__":
    main()
