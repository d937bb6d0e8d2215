"""The package's import graph: no circles, and the engine never reaches Airflow.

The walk reads every ``dativo_provider/**/*.py`` with :mod:`ast` and counts each import statement
wherever it sits: at module level or inside a function (a lazy import still closes a circle, it only
moves the failure to run time). Imports under ``if TYPE_CHECKING:`` never run, so they cannot close a
circle; they still count for the layering rule, since the engine must not need Airflow even for its
types. Imports by computed name (``importlib.import_module(f"...")``) are not seen.
"""

from __future__ import annotations

import ast
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "dativo_provider"
#: The engine: plain Python over Arrow and pyiceberg, reusable without Airflow.
ENGINE = [f"{PACKAGE}.{name}" for name in (
    "ingest", "sources", "iceberg", "contracts", "quality", "privacy", "markdown_kv",
    "connections", "exceptions", "progress", "optional", "ml", "lineage", "ui",
)]
AIRFLOW_LAYER = [f"{PACKAGE}.{name}" for name in ("operators", "hooks", "sensors", "triggers", "plugins")]


@dataclass(frozen=True)
class Import:
    """One import statement's target: a module of the package or the top-level name of another."""

    target: str
    line: int
    runs: bool  # False under ``if TYPE_CHECKING:``


@dataclass
class ImportGraph:
    files: dict[str, Path]
    imports: dict[str, list[Import]] = field(default_factory=dict)

    def runtime_edges(self) -> dict[str, set[str]]:
        """Module → the package modules its executed imports load (itself excluded)."""
        return {
            module: {i.target for i in found if i.runs and i.target in self.files and i.target != module}
            for module, found in self.imports.items()
        }

    def where(self, module: str, target: str) -> str:
        line = next(i.line for i in self.imports[module] if i.target == target and i.runs)
        return f"{self.files[module].name}:{line}"


def module_files(root: Path, package: str) -> dict[str, Path]:
    """Every module of ``package`` (under ``root``) by dotted name; a package by its ``__init__``."""
    files = {}
    for path in sorted((root / package).rglob("*.py")):
        parts = path.relative_to(root).with_suffix("").parts
        files[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return files


def import_graph(root: Path, package: str) -> ImportGraph:
    graph = ImportGraph(module_files(root, package))
    for module, path in graph.files.items():
        tree = ast.parse(path.read_text(), filename=str(path))
        here = module if path.name == "__init__.py" else module.rpartition(".")[0]
        type_only = _type_checking_nodes(tree)
        graph.imports[module] = [
            Import(target, node.lineno, runs=node not in type_only)
            for node in ast.walk(tree) if isinstance(node, ast.Import | ast.ImportFrom)
            for target in _targets(node, here, graph.files, package)
        ]
    return graph


def _type_checking_nodes(tree: ast.Module) -> set[ast.AST]:
    """The statements inside ``if TYPE_CHECKING:`` (or ``typing.TYPE_CHECKING``) blocks."""
    nodes: set[ast.AST] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.body:
                nodes.update(ast.walk(child))
    return nodes


def _targets(node: ast.Import | ast.ImportFrom, here: str, files: dict[str, Path], package: str) -> list[str]:
    """What one statement loads: package modules (by their longest known name) and other top-levels."""
    if isinstance(node, ast.Import):
        names = [alias.name for alias in node.names]
    else:
        base = node.module or ""
        if node.level:  # relative: level 1 is the current package, each further level one up
            anchor = here.split(".")[: len(here.split(".")) - node.level + 1]
            base = ".".join(anchor + ([base] if base else []))
        # `from pkg import name` loads the submodule pkg.name if there is one, else pkg itself.
        names = [f"{base}.{a.name}" if f"{base}.{a.name}" in files else base for a in node.names]
    targets = []
    for name in names:
        if name.split(".")[0] != package:
            targets.append(name.split(".")[0])
            continue
        while name not in files and "." in name:
            name = name.rpartition(".")[0]
        targets.append(name)
    return targets


def circles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        for target in sorted(edges.get(module, ())):
            if target not in index:
                visit(target)
                low[module] = min(low[module], low[target])
            elif target in stack:
                low[module] = min(low[module], index[target])
        if low[module] == index[module]:
            component = []
            while not component or component[-1] != module:
                component.append(stack.pop())
            if len(component) > 1:
                found.append(sorted(component))

    for module in sorted(edges):
        if module not in index:
            visit(module)
    return sorted(found)


def _describe(graph: ImportGraph, circle: list[str]) -> str:
    edges = graph.runtime_edges()
    members = set(circle)
    links = [f"{a} -> {b} ({graph.where(a, b)})" for a in circle for b in sorted(edges[a] & members)]
    return "circle:\n    " + "\n    ".join(links)


def _in(module: str, packages: list[str]) -> bool:
    return any(module == p or module.startswith(p + ".") for p in packages)


def airflow_paths(graph: ImportGraph, engine: list[str], airflow_layer: list[str]) -> list[str]:
    """For each engine module that reaches Airflow, the shortest chain of imports that does it."""
    edges = {m: {i.target for i in found if i.target in graph.files} for m, found in graph.imports.items()}
    forbidden = {m for m in graph.files if _in(m, airflow_layer)}
    forbidden |= {m for m, found in graph.imports.items() if any(i.target == "airflow" for i in found)}
    problems = []
    for start in sorted(m for m in graph.files if _in(m, engine)):
        came_from: dict[str, str | None] = {start: None}
        queue = deque([start])
        while queue:
            module = queue.popleft()
            if module in forbidden:
                chain = [module]
                while (previous := came_from[chain[-1]]) is not None:
                    chain.append(previous)
                end = "" if _in(module, airflow_layer) else " -> airflow"
                problems.append(" -> ".join(reversed(chain)) + end)
                break
            for target in sorted(edges[module] - came_from.keys()):
                came_from[target] = module
                queue.append(target)
    return problems


# -- the package -------------------------------------------------------------------------------


def test_no_import_circles_in_the_package() -> None:
    graph = import_graph(ROOT, PACKAGE)
    assert len(graph.files) > 100  # the walk found the package
    found = circles(graph.runtime_edges())
    assert not found, "\n".join(_describe(graph, circle) for circle in found)


def test_engine_never_reaches_airflow() -> None:
    graph = import_graph(ROOT, PACKAGE)
    problems = airflow_paths(graph, ENGINE, AIRFLOW_LAYER)
    assert not problems, "engine modules that import Airflow:\n" + "\n".join(problems)


# -- the walker itself, on a synthetic package ---------------------------------------------------


def _write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def test_walker_finds_a_circle_closed_by_a_lazy_relative_import(tmp_path: Path) -> None:
    _write(tmp_path, {
        "pkg/__init__.py": "",
        "pkg/sub/__init__.py": "",
        "pkg/sub/a.py": "from pkg.sub import b\n",
        "pkg/sub/b.py": "def later():\n    from ..c import thing\n    return thing\n",
        "pkg/c.py": "import pkg.sub.a as a\nthing = 1\n",
        "pkg/d.py": "from pkg import c\nimport os\n",  # into the circle, not part of it
    })
    graph = import_graph(tmp_path, "pkg")
    assert circles(graph.runtime_edges()) == [["pkg.c", "pkg.sub.a", "pkg.sub.b"]]
    assert "pkg.sub.b -> pkg.c (b.py:2)" in _describe(graph, ["pkg.c", "pkg.sub.a", "pkg.sub.b"])
    assert graph.runtime_edges()["pkg.d"] == {"pkg.c"}


def test_walker_ignores_type_checking_imports_for_circles_only(tmp_path: Path) -> None:
    _write(tmp_path, {
        "pkg/__init__.py": "",
        "pkg/engine.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg.ops import Op\n",
        "pkg/ops.py": "from airflow.models import BaseOperator\nfrom pkg import engine\n",
    })
    graph = import_graph(tmp_path, "pkg")
    assert circles(graph.runtime_edges()) == []
    assert airflow_paths(graph, ["pkg.engine"], []) == ["pkg.engine -> pkg.ops -> airflow"]
    assert airflow_paths(graph, ["pkg.engine"], ["pkg.ops"]) == ["pkg.engine -> pkg.ops"]
