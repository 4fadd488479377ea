"""The package shows its architecture: small files, no import cycles, one home per constant.

Checked from the source (``ast``), so a lazy import inside a function counts like any other;
imports under ``if TYPE_CHECKING:`` do not run and are left out.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

import wavenb
from wavenb.core.types import MODEL_ID

PACKAGE = Path(wavenb.__file__).parent
MAX_LINES = 600


def modules() -> Iterator[tuple[str, Path]]:
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        yield name, path


def imports_of(name: str, path: Path) -> set[str]:
    """The wavenb modules ``name`` imports at run time (lazily or not)."""
    tree = ast.parse(path.read_text("utf-8"))
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skipped |= {id(child) for child in ast.walk(node)}
    found: set[str] = set()
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            found.add(base)
            found |= {f"{base}.{alias.name}" for alias in node.names}
    known = {module for module, _ in modules()}
    return {module for module in found if module in known and module != name}


def test_no_source_file_is_longer_than_600_lines() -> None:
    long = {str(path.relative_to(PACKAGE)): n for _, path in modules()
            if (n := len(path.read_text("utf-8").splitlines())) > MAX_LINES}  # fmt: skip
    assert long == {}


def test_the_import_graph_has_no_cycle() -> None:
    graph = {name: imports_of(name, path) for name, path in modules()}
    # Tarjan's strongly connected components: any component of two or more is a cycle.
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in graph[node]:
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for node in graph:
        if node not in index:
            visit(node)
    assert cycles == []


def string_constants(path: Path) -> Iterator[str]:
    tree = ast.parse(path.read_text("utf-8"))
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
        and node.body and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
            yield node.value


@pytest.mark.parametrize("value", [MODEL_ID, "wavespeed-ai/prompt-optimizer", "0.1.0"])
def test_each_constant_has_one_home(value: str) -> None:
    homes = [str(path.relative_to(PACKAGE)) for _, path in modules()
             if any(text == value for text in string_constants(path))]  # fmt: skip
    assert len(homes) <= 1, homes


def test_the_version_comes_from_the_package_metadata() -> None:
    from importlib.metadata import version

    assert wavenb.__version__ == version("wavenb")
