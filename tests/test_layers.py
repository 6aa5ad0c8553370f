"""The package's layers, read from its source: no import cycle, storage at the bottom importing
nothing above it, and no module reading another's private names (docs/design.md §1).

Every module is parsed with ``ast``; imports inside functions count (they run too), imports under
``if TYPE_CHECKING:`` do not (they never run).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
#: Where each package's source is (the widgets live outside tracker/, installed as its subpackage)
SOURCES = {"tracker": REPO / "tracker", "tracker.widgets": REPO / "widgets"}

#: The modules outside tracker.storage that storage may import: leaves that import nothing of
#: tracker's but each other (checked below), so storage stays the bottom layer.
STORAGE_MAY_IMPORT = {"tracker", "tracker.errors", "tracker.models", "tracker.values",
                      "tracker.arguments", "tracker._ids", "tracker.events", "tracker.teardown",
                      "tracker._process"}


def _modules() -> dict[str, ast.Module]:
    """Every module of the package by dotted name, parsed."""
    parsed = {}
    for package, folder in SOURCES.items():
        for path in sorted(folder.rglob("*.py")):
            parts = path.relative_to(folder).with_suffix("").parts
            name = ".".join([package, *(parts[:-1] if parts[-1] == "__init__" else parts)])
            parsed.setdefault(name, ast.parse(path.read_text(encoding="utf-8"), str(path)))
    return parsed


def _is_package(name: str) -> bool:
    folder = SOURCES.get(name) or SOURCES["tracker"].joinpath(*name.split(".")[1:])
    return (folder / "__init__.py").exists()


def _runtime_nodes(tree: ast.AST) -> Iterator[ast.AST]:
    """The nodes of ``tree`` that run, leaving out ``if TYPE_CHECKING:`` blocks."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            yield from (n for child in node.orelse for n in [child, *_runtime_nodes(child)])
            continue
        yield node
        yield from _runtime_nodes(node)


def _imports(name: str, tree: ast.Module, modules: set[str]) -> Iterator[tuple[str, ast.AST]]:
    """(module imported, the node) for each import of a tracker module that runs."""
    package = name if _is_package(name) else name.rpartition(".")[0]
    for node in _runtime_nodes(tree):
        if isinstance(node, ast.Import):
            yield from ((alias.name, node) for alias in node.names
                        if alias.name.startswith("tracker"))
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.rsplit(".", node.level - 1)[0]
                base = f"{anchor}.{base}" if base else anchor
            if base != "tracker" and not base.startswith("tracker."):
                continue
            for alias in node.names:
                child = f"{base}.{alias.name}"
                # `from tracker import run` imports a module; `from tracker import Catalog`,
                # a name from the package's __init__.
                yield (child if child in modules else base), node


def _graph() -> dict[str, set[str]]:
    parsed = _modules()
    names = set(parsed)
    return {name: {target for target, _ in _imports(name, tree, names) if target != name}
            for name, tree in parsed.items()}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in graph.get(node, ()):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_no_module_imports_itself_back_through_others() -> None:
    graph = _graph()
    # The package's __init__ imports its public names from the modules below it; a module that
    # imports one of them (`from tracker import Catalog`) would close a circle through it.
    assert _cycles(graph) == []


def test_storage_imports_nothing_above_it() -> None:
    graph = _graph()
    storage = {name for name in graph if name.startswith("tracker.storage")}
    assert storage, "tracker/storage/ is missing"
    above = {name: sorted(target for target in targets
                          if target not in storage and target not in STORAGE_MAY_IMPORT)
             for name, targets in graph.items() if name in storage}
    assert {name: targets for name, targets in above.items() if targets} == {}


def test_the_leaves_storage_may_import_are_leaves() -> None:
    graph = _graph()
    leaves = STORAGE_MAY_IMPORT - {"tracker"}
    assert {name: sorted(graph[name] - leaves) for name in leaves
            if name in graph and graph[name] - leaves} == {}


def _defined_private_names(tree: ast.Module) -> set[str]:
    """The ``_names`` a module defines: functions, classes, globals, its objects' attributes."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
        elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store) and \
                isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"):
            names.add(node.attr)
        elif isinstance(node, ast.arg):
            names.add(node.arg)
        elif isinstance(node, ast.alias):
            names.add((node.asname or node.name).split(".")[0])
    return {name for name in names if name.startswith("_") and not name.startswith("__")}


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _private_reads(parsed: dict[str, ast.Module]) -> list[str]:
    """Each place a module reads another's private name: imported, or as an attribute."""
    owned = {name: _defined_private_names(tree) for name, tree in parsed.items()}
    everyone = set().union(*owned.values())
    found = []
    for name, tree in parsed.items():
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("tracker"):
                found += [f"{name}: from {node.module} import {alias.name}"
                          for alias in node.names if _private(alias.name)
                          and f"{node.module}.{alias.name}" not in parsed]  # a module
            # `other._state` where _state is another module's (not something of this one's own)
            elif isinstance(node, ast.Attribute) and _private(node.attr) and \
                    node.attr in everyone - owned[name]:
                found.append(f"{name}: {ast.unparse(node)}")
    return found


def test_no_module_reads_another_modules_private_names() -> None:
    assert _private_reads(_modules()) == []


def test_the_private_name_check_sees_each_way_of_reading_one() -> None:
    # The crossings the review found (exchange.py and manage.py used the reads' helpers).
    parsed = {name: ast.parse(source) for name, source in {
        "tracker.queries": "def _flush_for_read(): ...\ndef _records(): ...",
        "tracker.storage.writer": "def _insert_missing(): ...",
        "tracker.manage": "from tracker.queries import _flush_for_read\n"
                          "from tracker import queries\nsearch._records()",
        "tracker.exchange": "import tracker.storage.writer as writer\n"
                            "writer._insert_missing()",
    }.items()}
    assert _private_reads(parsed) == [
        "tracker.manage: from tracker.queries import _flush_for_read",
        "tracker.manage: search._records",
        "tracker.exchange: writer._insert_missing",
    ]
