"""The package reads as one job per module: no module over 500 lines, and no two modules that import each other."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import srkit

SRC = Path(srkit.__file__).parent
MAX_LINES = 500


def module_names(root: Path, package: str) -> dict[str, Path]:
    """Every module of the package under `root` by its dotted name; a package by its own name (its __init__)."""
    names = {}
    for path in sorted(root.rglob("*.py")):
        parts = [package, *path.relative_to(root).with_suffix("").parts]
        names[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return names


def module_level(tree: ast.Module) -> list[ast.Import | ast.ImportFrom]:
    """The imports a module runs when it is imported, `if TYPE_CHECKING:` blocks included (a cycle of type hints
    is a cycle for the reader); the ones inside functions run later, when every module is complete."""
    found, todo = [], list(tree.body)
    while todo:
        node = todo.pop()
        if isinstance(node, ast.Import | ast.ImportFrom):
            found.append(node)
        elif not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            todo.extend(ast.iter_child_nodes(node))
    return found


def import_graph(root: Path, package: str) -> dict[str, set[str]]:
    """Module -> the package's modules it imports at module level.

    `from P import X` is an edge to the module P.X where X is one, else to P itself: for a package, its __init__,
    which runs whatever it imports first. So `from srkit.upscale import Upscaler` inside the upscale package is a
    cycle, as it is when Python runs it. The parent packages that every import runs first are left out: a package's
    __init__ importing its own modules, which import each other, is no cycle by itself.
    """
    names = module_names(root, package)
    graph: dict[str, set[str]] = {}
    for name, path in names.items():
        here = name if path.name == "__init__.py" else name.rpartition(".")[0]
        edges = set()
        for node in module_level(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                edges.update(alias.name for alias in node.names)
                continue
            base = node.module or ""
            if node.level:
                anchor = here.split(".")[: len(here.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            for alias in node.names:
                edges.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in names else base)
        graph[name] = {edge for edge in edges if edge in names and edge != name}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of the graph as the modules along it (the first repeated at the end), or None."""
    state: dict[str, str] = {}  # "open" while on the current path, "done" once every path from it is explored
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = "open"
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        state[node] = "done"
        path.pop()
        return None

    for start in sorted(graph):
        if start not in state and (cycle := visit(start)):
            return cycle
    return None


def test_no_module_imports_itself_through_others():
    graph = import_graph(SRC, "srkit")
    assert "srkit.upscale" in graph and graph["srkit.zoo"], "the graph must see srkit's modules and their imports"
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


TYPE_HINT = "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .a import f"
CASES = {  # files of a package `pkg` -> the cycle found
    "two modules": ({"a.py": "from pkg import b", "b.py": "from pkg.a import f"}, ["pkg.a", "pkg.b", "pkg.a"]),
    "a type hint's import": ({"a.py": "import pkg.b", "b.py": TYPE_HINT}, ["pkg.a", "pkg.b", "pkg.a"]),
    "a name through the __init__ of its own package, which imports it": (
        {"sub/__init__.py": "from pkg.sub.n import g", "sub/n.py": "from pkg.sub import f\ng = 1"},
        ["pkg.sub", "pkg.sub.n", "pkg.sub"],
    ),
    "no cycle: a name through a package's __init__ that imports another module": (
        {"sub/__init__.py": "from pkg.sub.m import f", "sub/m.py": "def f(): ...", "sub/n.py": "from pkg.sub import f"},
        None,
    ),
    "no cycle: an import inside a function": (
        {"__init__.py": "from pkg.a import f", "a.py": "def f():\n    from pkg import b", "b.py": "import pkg.a"},
        None,
    ),
}


@pytest.mark.parametrize(("files", "cycle"), list(CASES.values()), ids=list(CASES))
def test_the_cycle_check_sees_cycles(tmp_path, files, cycle):
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    assert find_cycle(import_graph(tmp_path, "pkg")) == cycle


def test_no_module_is_over_500_lines():
    long = {str(p.relative_to(SRC)): n for p in SRC.rglob("*.py") if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert not long, f"modules over {MAX_LINES} lines (split them by their jobs): {long}"
