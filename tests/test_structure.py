"""Tests of the source tree's shape: no module imports another module's private name, and
modules and functions stay short."""

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


# A module has fewer lines than this, a function (signature and docstring included) fewer than
# that, but for the exceptions below.
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 60
# Exceptions, as "path:qualified function name" (or a module's "path") -> why. An entry that is
# back under its limit (or gone) fails the test, so the list cannot go stale.
SIZE_EXCEPTIONS: dict[str, str] = {}


def _function_lengths(tree: ast.Module) -> dict[str, int]:
    """Lines of every function and method, by qualified name (`Class.method`, `outer.inner`)."""
    lengths: dict[str, int] = {}

    def visit(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                name = f"{prefix}{child.name}"
                if not isinstance(child, ast.ClassDef):
                    lengths[name] = (child.end_lineno or child.lineno) - child.lineno + 1
                visit(child, f"{name}.")
            else:
                visit(child, prefix)

    visit(tree, "")
    return lengths


def size_report(root: Path) -> dict[str, int]:
    """Lines of every module (`path`) and function (`path:qualified name`) over its limit."""
    long: dict[str, int] = {}
    for path in sorted(root.rglob("*.py")):
        where = path.relative_to(root.parent).as_posix()
        text = path.read_text(encoding="utf-8")
        lines = len(text.splitlines())
        if lines >= MAX_MODULE_LINES:
            long[where] = lines
        for name, length in _function_lengths(ast.parse(text, str(path))).items():
            if length >= MAX_FUNCTION_LINES:
                long[f"{where}:{name}"] = length
    return long


def size_problems(long: dict[str, int], exceptions: dict[str, str]) -> list[str]:
    """What is too long without an exception, and the exceptions that are no longer needed."""
    problems = [
        f"{name}: {lines} lines (limit {MAX_FUNCTION_LINES if ':' in name else MAX_MODULE_LINES})"
        for name, lines in long.items()
        if name not in exceptions
    ]
    problems += [
        f"{name}: listed as an exception but no longer too long (remove it from the list)"
        for name in exceptions
        if name not in long
    ]
    return problems


def test_modules_and_functions_are_short() -> None:
    problems = size_problems(size_report(SRC), SIZE_EXCEPTIONS)
    assert not problems, "split these (or list a reason):\n" + "\n".join(problems)


def _function(name: str, lines: int, indent: str = "") -> str:
    """Source of a function `lines` long, its `def` line included."""
    body = "".join(f"{indent}    x{i} = {i}\n" for i in range(lines - 1))
    return f"{indent}def {name}():\n{body}"


def test_the_size_check_finds_long_code_and_stale_exceptions(tmp_path: Path) -> None:
    package = tmp_path / "seglab"
    package.mkdir()
    (package / "a.py").write_text(
        _function("long", MAX_FUNCTION_LINES)
        + "class C:\n"
        + _function("method", MAX_FUNCTION_LINES, "    ")
        + _function("short", 2, "    ")
        + _function("fits", MAX_FUNCTION_LINES - 1)
    )
    (package / "big.py").write_text("x = 1\n" * MAX_MODULE_LINES)
    long = size_report(package)
    assert long == {
        "seglab/a.py:long": MAX_FUNCTION_LINES,
        "seglab/a.py:C.method": MAX_FUNCTION_LINES,
        "seglab/big.py": MAX_MODULE_LINES,
    }
    problems = size_problems(long, {"seglab/a.py:long": "why", "seglab/a.py:fits": "stale"})
    assert problems == [
        f"seglab/a.py:C.method: {MAX_FUNCTION_LINES} lines (limit {MAX_FUNCTION_LINES})",
        f"seglab/big.py: {MAX_MODULE_LINES} lines (limit {MAX_MODULE_LINES})",
        "seglab/a.py:fits: listed as an exception but no longer too long (remove it from the list)",
    ]
