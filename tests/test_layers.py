"""The layering of docs/ARCHITECTURE.md §1, read from the source: each package imports only from
the layers below it, Ray only in ``tokmix.jobs``, and nothing imports the CLI."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
LAYER = {
    "tokmix.errors": 1,
    "tokmix.units": 1,
    "tokmix.schemas": 2,
    "tokmix.bpe": 3,
    "tokmix.io": 4,
    "tokmix.solvers": 4,
    "tokmix.analytics": 5,
    "tokmix.jobs": 6,
    "tokmix.cli": 7,
    "tokmix.__main__": 8,
}
"""Packages by layer; same-layer packages (io, solvers) do not import each other either."""
APART = {("tokmix.io", "tokmix.bpe")}
"""Pairs kept apart though layered: I/O reads documents; counting them is the count stage's."""


def _package(module: str) -> str | None:
    for name in sorted(LAYER, key=len, reverse=True):
        if module == name or module.startswith(name + "."):
            return name
    return None


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


MODULES = sorted(p for p in (REPO / "tokmix").rglob("*.py"))


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(REPO)))
def test_imports_go_down_only(path: Path) -> None:
    module = ".".join(path.relative_to(REPO).with_suffix("").parts).removesuffix(".__init__")
    own = _package(module)
    if own is None:  # tokmix/__init__.py
        return
    for name in _imports(path):
        if name.split(".")[0] == "ray":
            assert own == "tokmix.jobs", f"{module} imports Ray"
        other = _package(name)
        if other is None or other == own:
            continue
        assert LAYER[other] < LAYER[own], f"{module} imports {name} (layer {LAYER[other]})"
        assert (own, other) not in APART, f"{module} imports {name}"
