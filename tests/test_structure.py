"""Tests of the source tree's shape: no module imports another module's private name."""

from __future__ import annotations

import ast
from pathlib import Path

import seglab

SRC = Path(seglab.__file__).parent


def _module_name(path: Path, root: Path) -> str:
    parts = path.relative_to(root.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imported_module(node: ast.ImportFrom, path: Path, root: Path) -> str:
    """The absolute name of the module a ``from ... import`` reads from."""
    if node.level == 0:
        return node.module or ""
    package = _module_name(path, root).split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    base = package[: len(package) - node.level + 1]
    return ".".join([*base, node.module] if node.module else base)


def private_imports(root: Path) -> list[str]:
    """``path:line: from module import _name`` for every private name imported across modules.

    A name is private when it starts with one underscore (dunders such as ``__version__`` are
    not). Imports from outside seglab are not checked.
    """
    offenders = []
    for path in sorted(root.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if not isinstance(node, ast.ImportFrom):
                continue
            module = _imported_module(node, path, root)
            if module != "seglab" and not module.startswith("seglab."):
                continue
            for alias in node.names:
                if alias.name.startswith("_") and not alias.name.startswith("__"):
                    where = path.relative_to(root.parent)
                    offenders.append(f"{where}:{node.lineno}: from {module} import {alias.name}")
    return offenders


def test_no_module_imports_another_modules_private_name() -> None:
    offenders = private_imports(SRC)
    assert not offenders, "private names imported across modules (make them public):\n" + (
        "\n".join(offenders)
    )


def test_the_check_finds_absolute_and_relative_private_imports(tmp_path: Path) -> None:
    package = tmp_path / "seglab"
    (package / "data").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("from seglab.b import _hidden, shown\nfrom os import _exit\n")
    (package / "data" / "c.py").write_text(
        "def f():\n    from ..a import _helper\n    from .d import __all__, _e\n"
    )
    assert private_imports(package) == [
        "seglab/a.py:1: from seglab.b import _hidden",
        "seglab/data/c.py:2: from seglab.a import _helper",
        "seglab/data/c.py:3: from seglab.data.d import _e",
    ]
