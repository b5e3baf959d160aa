"""The layers of design.md, as data: the import-linter contracts in pyproject.toml (run by `lint-imports`
in .ci/run) and the import graph itself (grimp, which import-linter is built on)."""
from __future__ import annotations

import pkgutil
import tomllib
from pathlib import Path

import grimp

import explorer.core

PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"


def _contract(name_start: str) -> dict:
    contracts = tomllib.loads(PYPROJECT.read_text(encoding="utf-8"))["tool"]["importlinter"]["contracts"]
    [contract] = [c for c in contracts if c["name"].startswith(name_start)]
    return contract


def _cycles(graph: grimp.ImportGraph) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.find_modules_directly_imported_by(v):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for module in sorted(graph.modules):
        if module not in index:
            visit(module)
    return cycles


def test_drawing_modules_contract_names_every_core_module_but_the_snapshot():
    """A forbidden contract lists modules by name: a core module added later must be added to it."""
    forbidden = set(_contract("drawing modules")["forbidden_modules"])
    core = {f"explorer.core.{m.name}" for m in pkgutil.iter_modules(explorer.core.__path__)}
    assert core - forbidden == {"explorer.core.snapshot"}
    assert forbidden - core == {"torch"}


def test_import_graph_has_no_cycle():
    """No module imports itself through others at run time (imports under TYPE_CHECKING excluded: they
    never run; the acyclic-siblings contract of lint-imports counts those too)."""
    graph = grimp.build_graph("explorer", cache_dir=None, exclude_type_checking_imports=True)
    assert "explorer.core.session" in graph.modules
    assert _cycles(graph) == []
