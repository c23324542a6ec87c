"""The import graph of the project's packages (arena, agents, games, bench), read with `ast`: every
import counts, at module level, inside a function (lazy) or under `if TYPE_CHECKING:`. No module
reaches itself again through its imports, and `arena` imports none of the other three (they find
each other through entry points).

An import of `a.b.c` counts as an edge to the module `a.b.c` only, not to the packages `a` and
`a.b` that Python runs first: a package's `__init__` that re-exports its submodules is not a circle.
"""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("arena", "agents", "games", "bench")


def modules(root: Path, packages=PACKAGES) -> dict[str, Path]:
    """Dotted module name -> file, for every .py file under `packages`."""
    out = {}
    for pkg in packages:
        for path in sorted((root / pkg).rglob("*.py")):
            parts = path.relative_to(root).with_suffix("").parts
            out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


def import_graph(root: Path, packages=PACKAGES) -> dict[str, dict[str, int]]:
    """module -> {imported project module: line of its first import}."""
    mods = modules(root, packages)

    def known(name: str) -> str | None:  # the longest prefix of `name` that is a module of ours
        while name and name not in mods:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, dict[str, int]] = {}
    for mod, path in mods.items():
        package = mod if path.name == "__init__.py" else mod.rpartition(".")[0]
        edges = graph.setdefault(mod, {})
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    up = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*up, *([node.module] if node.module else [])])
                names = [f"{base}.{a.name}" for a in node.names]
            else:
                continue
            for name in names:
                target = known(name)
                if target and target != mod:
                    edges.setdefault(target, node.lineno)
    return graph


def cycles(graph: dict[str, dict[str, int]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph.get(v, {}):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while not comp or comp[-1] != v:
                comp.append(stack.pop())
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def describe(graph: dict[str, dict[str, int]], comp: list[str]) -> str:
    return "; ".join(f"{a}:{line} -> {b}" for a in comp for b, line in graph[a].items() if b in comp)


def test_no_import_circle():
    graph = import_graph(ROOT)
    assert len(graph) > 150  # the whole tree was read
    assert [describe(graph, c) for c in cycles(graph)] == []


def test_arena_imports_no_game_agent_or_bench():
    graph = import_graph(ROOT)
    outside = [f"{m}:{line} -> {t}" for m, edges in graph.items() if m.split(".")[0] == "arena"
               for t, line in edges.items() if t.split(".")[0] != "arena"]
    assert outside == []


def test_the_graph_sees_lazy_relative_and_type_checking_imports(tmp_path):
    """The checks above can fail: a circle closed by a lazy import, a relative import or a
    TYPE_CHECKING import is found, and a package re-exporting its submodule is not a circle."""
    pkg = tmp_path / "p"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("from p.a import A\n")
    (pkg / "a.py").write_text("from p.b import B\nA = 1\n")
    (pkg / "b.py").write_text("def f():\n    from p import a\n    return a\nB = 2\n")
    (pkg / "sub" / "__init__.py").write_text("from .c import C\n")
    (pkg / "sub" / "c.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
                                      "    from ..sub import d\nC = 3\n")
    (pkg / "sub" / "d.py").write_text("import p.sub.c\n")
    graph = import_graph(tmp_path, ("p",))
    assert graph["p"] == {"p.a": 1}
    assert graph["p.b"] == {"p.a": 2}
    assert graph["p.sub.c"] == {"p.sub.d": 3}
    assert cycles(graph) == [["p.a", "p.b"], ["p.sub.c", "p.sub.d"]]
    assert describe(graph, ["p.a", "p.b"]) == "p.a:1 -> p.b; p.b:2 -> p.a"
