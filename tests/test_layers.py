"""The code's rooms: imports run one way, modules stay small.

Layers, top to bottom (a module may import its own layer and any below):

    entry points   csv_merger.cli, csv_merger.web, csv_merger.sink, csv_merger.testing, deployments
    flows          flows
    Prefect tasks  tasks.stages, tasks.artifacts, tasks.summary
    engines        tasks.merge, tasks.deliver (neither imports the other; no Prefect)
    base           csv_merger.errors, csv_merger.settings, csv_merger.schema, csv_merger.safety, csv_merger.wording,
                   csv_merger.binary, csv_merger.redis_check

Every import counts, also one inside a function. ``python tests/test_layers.py``
prints each module's layer and any violation.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PACKAGES = ("csv_merger", "tasks", "flows", "deployments")
LAYERS = ("base", "engine", "task", "flow", "entry")
ENGINES = ("tasks.merge", "tasks.deliver")
MAX_LINES = 400
"""A module above this needs a line in its docstring starting "Over 400 lines:"."""


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer_of(module: str) -> str:
    if module.startswith(ENGINES):
        return "engine"
    if module.startswith("tasks"):
        return "task"
    if module.startswith("flows"):
        return "flow"
    if module in ("csv_merger", "csv_merger.errors", "csv_merger.settings", "csv_merger.schema", "csv_merger.safety",
                  "csv_merger.wording", "csv_merger.binary", "csv_merger.redis_check"):
        return "base"
    return "entry"


def imports_of(path: Path, module: str) -> set[str]:
    """Absolute names of every module ``path`` imports (relative imports resolved)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
                package = package[:len(package) - node.level + 1]
                base = ".".join(package + ([base] if base else []))
            found.add(base)
    return found


def modules() -> dict[str, Path]:
    return {module_name(p): p for package in PACKAGES for p in sorted((REPO / package).rglob("*.py"))}


def violations() -> list[str]:
    found = []
    for module, path in modules().items():
        mine = layer_of(module)
        for name in sorted(imports_of(path, module)):
            if name.split(".")[0] == "prefect" or name.startswith("prefect_"):
                if mine in ("base", "engine"):
                    found.append(f"{module} ({mine}) imports {name}: no Prefect below the task layer")
                continue
            if name.split(".")[0] not in PACKAGES:
                continue
            theirs = layer_of(name)
            if LAYERS.index(theirs) > LAYERS.index(mine):
                found.append(f"{module} ({mine}) imports {name} ({theirs}): a higher layer")
            own_engine = next((e for e in ENGINES if module.startswith(e)), None)
            other = next((e for e in ENGINES if name.startswith(e)), None)
            if own_engine and other and other != own_engine:
                found.append(f"{module} imports {name}: one engine never imports the other")
    return found


def oversized() -> list[str]:
    found = []
    for module, path in modules().items():
        text = path.read_text(encoding="utf-8")
        lines = text.count("\n")
        doc = ast.get_docstring(ast.parse(text)) or ""
        if lines > MAX_LINES and "Over 400 lines:" not in doc:
            found.append(f"{module}: {lines} lines and no 'Over 400 lines:' reason in its docstring")
    return found


def test_imports_run_one_way():
    assert violations() == []


def test_checker_sees_a_violation(tmp_path):
    """The checker is not blind: an engine importing a flow, or Prefect, is caught."""
    bad = REPO / "tasks" / "merge" / "_layer_probe.py"
    bad.write_text("import prefect\n\n\ndef f():\n    from flows.merge_and_deliver import merge_and_deliver\n")
    try:
        found = violations()
    finally:
        bad.unlink()
    assert any("tasks.merge._layer_probe (engine) imports prefect" in v for v in found)
    assert any("imports flows.merge_and_deliver (flow)" in v for v in found)


def test_modules_stay_small():
    assert oversized() == []


if __name__ == "__main__":
    width = max(map(len, modules()))
    for module in modules():
        print(f"{module:<{width}}  {layer_of(module)}")
    problems = violations() + oversized()
    print("\n".join(problems) if problems else f"\n{len(modules())} modules: imports run one way, none over "
                                                 f"{MAX_LINES} lines without a reason")
    sys.exit(1 if problems else 0)
