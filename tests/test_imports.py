"""The import graph of rag/ and api/, read from the source: imports point down the pipeline.

No cycle; the service never goes through the command line; the library never reaches up into
the service, except the CLI's `rag serve`. Every import counts, also one inside a function or
under TYPE_CHECKING: a cycle is a knot in the design even where Python would tolerate it.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator, Mapping

from tests.conftest import REPO

PACKAGES = ("rag", "api")


def project_modules() -> dict[str, ast.Module]:
    """Every module of the packages by dotted name, parsed."""
    found = {}
    for package in PACKAGES:
        for path in sorted((REPO / package).rglob("*.py")):
            parts = path.relative_to(REPO).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            found[name] = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    return found


def imported(name: str, tree: ast.Module, known: set[str]) -> set[str]:
    """The project modules `name` imports anywhere in its source (`from rag import x` names
    rag.x when that is a module)."""
    package = name if name in PACKAGES else name.rpartition(".")[0]
    targets: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            targets.add(base)
            targets.update(f"{base}.{alias.name}" for alias in node.names)
    return {t for t in targets if t in known and t != name}


def import_graph() -> dict[str, set[str]]:
    modules = project_modules()
    known = set(modules)
    return {name: imported(name, tree, known) for name, tree in modules.items()}


def find_cycle(graph: Mapping[str, set[str]]) -> list[str] | None:
    """One cycle of the graph as a path that ends where it starts, or None."""
    state: dict[str, str] = {}  # "open" while on the path, "done" once fully explored
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = "open"
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "open":
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        path.pop()
        state[node] = "done"
        return None

    for start in sorted(graph):
        if start not in state and (cycle := visit(start)):
            return cycle
    return None


def edges(graph: Mapping[str, set[str]]) -> Iterator[tuple[str, str]]:
    for source, targets in graph.items():
        for target in targets:
            yield source, target


def test_the_cycle_finder_finds_one():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None


def test_the_graph_sees_imports_inside_functions():
    graph = import_graph()
    assert "api.app" in graph["rag.cli"]  # `rag serve` imports the service lazily
    assert "rag.pipeline" in graph["api.state"]
    assert "rag.search.retriever" in graph["rag.pipeline"]  # inside open_retriever


def test_no_import_cycle():
    cycle = find_cycle(import_graph())
    assert cycle is None, " -> ".join(cycle or ())


def test_the_service_never_imports_the_command_line():
    wrong = [(s, t) for s, t in edges(import_graph()) if s.startswith("api") and t == "rag.cli"]
    assert wrong == []


def test_only_the_command_line_imports_the_service():
    wrong = [
        (s, t)
        for s, t in edges(import_graph())
        if s.startswith("rag") and t.startswith("api") and s != "rag.cli"
    ]
    assert wrong == []


def test_the_modes_are_a_leaf():
    # Any module may type a mode (rag/settings.py too) without an import that could come back.
    assert import_graph()["rag.mode"] == set()
