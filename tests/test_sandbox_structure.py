"""The sandbox package stays navigable: short modules, no import cycles (lazy imports count)."""

from __future__ import annotations

import ast
from pathlib import Path

import wavenb.sandbox

PACKAGE = Path(wavenb.sandbox.__file__).parent
MAX_LINES = 600


def modules() -> dict[str, Path]:
    return {
        ("wavenb.sandbox" if p.stem == "__init__" else f"wavenb.sandbox.{p.stem}"): p
        for p in PACKAGE.glob("*.py")
    }


def imports(path: Path, known: set[str]) -> set[str]:
    """Sandbox modules ``path`` imports anywhere in it (inside functions too)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module:
            names = [f"{node.module}.{alias.name}" for alias in node.names]
            found |= {name for name in names if name in known}
            if node.module in known and not any(name in known for name in names):
                found.add(node.module)
        elif isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name in known}
    return found


def test_no_sandbox_module_is_over_600_lines() -> None:
    long = {
        p.name: n
        for p in PACKAGE.glob("*.py")
        if (n := len(p.read_text().splitlines())) > MAX_LINES
    }
    assert long == {}


def test_the_sandbox_has_no_import_cycle() -> None:
    known = modules()
    graph = {name: imports(path, set(known)) - {name} for name, path in known.items()}

    def reaches(start: str, goal: str) -> bool:
        seen, todo = set(), list(graph[start])
        while todo:
            here = todo.pop()
            if here == goal:
                return True
            if here not in seen:
                seen.add(here)
                todo.extend(graph[here])
        return False

    cycles = sorted(name for name in graph if reaches(name, name))
    assert cycles == []


def test_the_cycle_check_would_see_a_lazy_import(tmp_path: Path) -> None:
    """The checker is not blind: a function-level import counts as an edge."""
    module = tmp_path / "m.py"
    module.write_text("def f():\n    from wavenb.sandbox._app import create_app\n")
    assert imports(module, {"wavenb.sandbox._app"}) == {"wavenb.sandbox._app"}


def test_the_public_names_are_kept() -> None:
    assert sorted(wavenb.sandbox.__all__) == [
        "FaultPlan", "SANDBOX_BANNER", "SandboxConfig", "SandboxState", "ServedSandbox",
        "create_app", "serve", "serving",
    ]  # fmt: skip
    from wavenb.sandbox._motion import CameraMotion, parse_motion
    from wavenb.sandbox._render import probe_video, render_video

    assert all(callable(x) for x in (CameraMotion, parse_motion, probe_video, render_video))
