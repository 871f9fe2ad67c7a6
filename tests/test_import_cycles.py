"""No import cycles among the project's modules (``shared/``, ``functions/``, ``devhost/``, ``sandbox/``,
``chaos/``, ``benchmarks/``), nor among its top-level packages.

A cycle makes import order matter (a half-initialised module, an ImportError that appears only
when one entry point is loaded first) and ties two concepts together for good. The graph is built
with ``ast`` from every import, at module level and inside functions (a lazy import still ties the
two modules), leaving out ``if TYPE_CHECKING:`` blocks (never run).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("shared", "functions", "devhost", "sandbox", "chaos", "benchmarks")

KNOWN_CYCLES: frozenset[frozenset[str]] = frozenset()
"""None: a new cycle fails the test (move the shared part to a module both can import)."""


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imports(tree: ast.AST) -> Iterator[ast.Import | ast.ImportFrom]:
    """Every import statement that can run (all but those under ``if TYPE_CHECKING:``)."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.orelse:
                yield from _imports(ast.Module(body=[child], type_ignores=[]))
            continue
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node
        yield from _imports(node)


def import_graph() -> dict[str, set[str]]:
    """Module -> the project modules it imports (``from pkg import mod`` counts as importing ``pkg.mod``)."""
    files = {_module_name(p): p for package in PACKAGES for p in (ROOT / package).rglob("*.py")}
    graph: dict[str, set[str]] = {name: set() for name in files}
    for name, path in files.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in _imports(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            else:
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                    base = ".".join([*anchor, base] if base else anchor)
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in files else base for a in node.names]
            graph[name].update(t for t in targets if t in files and t != name)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def _path(graph: dict[str, set[str]], members: list[str]) -> str:
    """The shortest loop through a component's first module, for the failure message: a -> b -> ... -> a."""
    inside, start = set(members), members[0]
    previous: dict[str, str] = {}
    queue = [start]
    while queue:
        node = queue.pop(0)
        for nxt in sorted(graph[node] & inside):
            if nxt == start:
                trail = [node]
                while trail[-1] != start:
                    trail.append(previous[trail[-1]])
                return " -> ".join([*reversed(trail), start])
            if nxt not in previous:
                previous[nxt] = node
                queue.append(nxt)
    return " -> ".join(members)


def test_no_import_cycles_among_the_project_s_modules() -> None:
    graph = import_graph()
    assert len(graph) > 100, "the graph should cover every module of the project's packages"
    unexpected = [c for c in cycles(graph) if frozenset(c) not in KNOWN_CYCLES]
    assert not unexpected, "import cycles: " + "; ".join(_path(graph, c) for c in unexpected)


def test_the_cycle_finder_reports_a_cycle_through_a_function_level_import() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(graph) == [["a", "b", "c"]]
    assert _path(graph, ["a", "b", "c"]) == "a -> b -> c -> a"


def test_type_checking_imports_and_lazy_imports_are_told_apart() -> None:
    tree = ast.parse("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import x\nelse:\n    import y\n"
                     "def f():\n    import z\n")
    names = [alias.name for node in _imports(tree) if isinstance(node, ast.Import) for alias in node.names]
    assert names == ["y", "z"]


def test_no_import_cycles_among_the_top_level_packages() -> None:
    """``shared`` is the domain and imports none of the tools built on it (dev host, sandbox, campaigns)."""
    packages: dict[str, set[str]] = {p: set() for p in PACKAGES}
    for module, targets in import_graph().items():
        top = module.split(".")[0]
        packages[top].update(t.split(".")[0] for t in targets if t.split(".")[0] != top)
    assert cycles(packages) == [], packages
