"""Imports point down: no package of semsearch imports itself in a circle.

A circle among module-level imports breaks depending on which module is imported
first; the index package is held to more, no circle even through an import inside a
function (ivfpq's module and the base vector class used to import each other)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "semsearch"


def _name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_name(path): path for path in PACKAGE.rglob("*.py")}


def _type_checking(node: ast.AST) -> bool:
    test = node.test if isinstance(node, ast.If) else None
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(path: Path, top_level_only: bool) -> set[str]:
    """The semsearch modules `path` imports (a `from package import submodule` counts as
    the submodule), leaving out `if TYPE_CHECKING:` blocks."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    nodes: list[ast.AST] = []
    pending: list[ast.AST] = list(tree.body)
    while pending:
        node = pending.pop()
        if _type_checking(node):
            continue
        nodes.append(node)
        if not top_level_only or isinstance(node, (ast.If, ast.Try)):
            pending.extend(ast.iter_child_nodes(node))
    found: set[str] = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                full = f"{node.module}.{alias.name}"
                found.add(full if full in MODULES else node.module)
    return found & set(MODULES)


def _circles(package: str, top_level_only: bool) -> list[list[str]]:
    """Import circles among the modules of `package` (its subpackages included)."""
    inside = {name for name in MODULES if name.startswith(f"{package}.")}
    graph = {name: _imports(MODULES[name], top_level_only) & inside for name in inside}
    circles: list[list[str]] = []
    state: dict[str, str] = {}
    path: list[str] = []

    def visit(name: str) -> None:
        state[name] = "open"
        path.append(name)
        for imported in sorted(graph[name]):
            if state.get(imported) == "open":
                circles.append([*path[path.index(imported) :], imported])
            elif imported not in state:
                visit(imported)
        path.pop()
        state[name] = "done"

    for name in sorted(graph):
        if name not in state:
            visit(name)
    return circles


def test_no_package_has_a_circle_of_module_level_imports() -> None:
    packages = sorted(_name(path.parent) for path in PACKAGE.rglob("__init__.py"))
    assert "semsearch.index.types" in packages
    found = {package: _circles(package, top_level_only=True) for package in packages}
    assert {package: circles for package, circles in found.items() if circles} == {}


def test_no_package_has_a_circle_even_through_late_imports() -> None:
    """An import inside a function is still an import: none closes a circle either."""
    packages = sorted(_name(path.parent) for path in PACKAGE.rglob("__init__.py"))
    found = {package: _circles(package, top_level_only=False) for package in packages}
    assert {package: circles for package, circles in found.items() if circles} == {}


def test_the_circle_finder_finds_the_circle_that_was_there(tmp_path: Path) -> None:
    """vectors.py imported ondisk.py inside functions, and ondisk.py vectors.py."""
    vectors = tmp_path / "vectors.py"
    ondisk = tmp_path / "ondisk.py"
    vectors.write_text("def load():\n    from semsearch.index.ondisk import OnDisk\n")
    ondisk.write_text("from semsearch.index.vectors import VectorIndex\n")
    saved = dict(MODULES)
    MODULES.update({"semsearch.index.vectors": vectors, "semsearch.index.ondisk": ondisk})
    try:
        late = _circles("semsearch.index", top_level_only=False)
        top = _circles("semsearch.index", top_level_only=True)
    finally:
        MODULES.clear()
        MODULES.update(saved)
    assert late == [["semsearch.index.ondisk", "semsearch.index.vectors", "semsearch.index.ondisk"]]
    assert top == []
