"""The tree keeps its architecture: the engine imports no Django, and no two modules import each
other at module level.

Both are read from the source, so a new module is covered the day it is added."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("orchestration", "approvals", "config", "demo", "bench")
# The only package inside the engine that may import Django.
RUNTIME = "orchestration.runtime"


def module_names(package: str) -> Iterator[str]:
    for path in sorted((ROOT / package).rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        if "migrations" in parts:
            continue
        yield ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def engine_modules() -> list[str]:
    return [
        name for name in module_names("orchestration")
        if name != RUNTIME and not name.startswith(RUNTIME + ".")
    ]


def _django_modules_loaded_by(module: str) -> str:
    code = (
        f"import sys, importlib; importlib.import_module({module!r}); "
        "print(sorted(m for m in sys.modules if m == 'django' or m.startswith('django.')))"
    )
    env = {"PYTHONPATH": str(ROOT), "PATH": os.environ.get("PATH", "/usr/bin:/bin")}
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
        timeout=60,
    )
    if done.returncode != 0:
        return f"{module}: import failed: {done.stderr.strip().splitlines()[-1:]}"
    loaded = done.stdout.strip()
    return "" if loaded == "[]" else f"{module} loads {loaded}"


def test_every_engine_module_imports_without_django() -> None:
    """Each module outside orchestration/runtime, imported alone in a fresh interpreter, loads
    no Django module: the engine runs where Django is not installed or not configured."""
    modules = engine_modules()
    assert len(modules) > 15, "the engine's modules were not found"
    with ThreadPoolExecutor(max_workers=4) as pool:
        problems = [p for p in pool.map(_django_modules_loaded_by, modules) if p]
    assert not problems, "engine modules that need Django:\n" + "\n".join(problems)


def _resolve(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    if node.level == 0:
        return node.module or ""
    base = module.split(".")
    base = base if is_package else base[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _module_level_imports(
    module: str, path: Path, known: set[str]
) -> set[str]:
    """Modules imported when `module` is imported: top-level statements only (a function-local
    import or one under `if TYPE_CHECKING:` runs later or never)."""
    tree = ast.parse(path.read_text(), str(path))
    found: set[str] = set()
    is_package = path.name == "__init__.py"

    def visit(statements: list[ast.stmt]) -> None:
        for stmt in statements:
            if isinstance(stmt, ast.Import):
                found.update(alias.name for alias in stmt.names)
            elif isinstance(stmt, ast.ImportFrom):
                target = _resolve(module, is_package, stmt)
                found.add(target)
                # `from package import submodule` imports the submodule too.
                found.update(
                    f"{target}.{alias.name}" for alias in stmt.names
                    if f"{target}.{alias.name}" in known
                )
            elif isinstance(stmt, ast.If):
                test = ast.unparse(stmt.test)
                if "TYPE_CHECKING" not in test:
                    visit(stmt.body)
                    visit(stmt.orelse)
            elif isinstance(stmt, ast.Try):
                visit(stmt.body)
                for handler in stmt.handlers:
                    visit(handler.body)
                visit(stmt.orelse)
                visit(stmt.finalbody)

    visit(tree.body)
    return {name for name in found if name in known and name != module}


def import_graph() -> dict[str, set[str]]:
    paths: dict[str, Path] = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            if "migrations" in parts:
                continue
            paths[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    known = set(paths)
    graph = {name: _module_level_imports(name, path, known) for name, path in paths.items()}
    # A package's __init__ that imports its own submodules is how a package publishes its
    # names; the submodule importing the package back is the cycle that matters, not that.
    for name, edges in graph.items():
        graph[name] = {e for e in edges if not e.startswith(name + ".")}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1 on the stack, 2 done
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for target in sorted(graph.get(node, ())):
            if state.get(target) == 1:
                return stack[stack.index(target):] + [target]
            if target not in state:
                found = visit(target)
                if found:
                    return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def test_no_cycle_of_module_level_imports() -> None:
    graph = import_graph()
    assert "orchestration.compiled" in graph["orchestration.graph"]
    cycle = find_cycle(graph)
    assert cycle is None, "module-level import cycle: " + " -> ".join(cycle or [])


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


@pytest.mark.parametrize("public", [
    "orchestration", "orchestration.checkpoint", "orchestration.reducers",
    "orchestration.savers",
])
def test_public_modules_import_without_django(public: str) -> None:
    assert _django_modules_loaded_by(public) == ""
