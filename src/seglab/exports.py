"""Lazy package attributes: a name is imported from its module on first use, so importing the
package itself stays fast (`import seglab` does not import torch)."""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any


def lazy_attribute(package: str, exports: Mapping[str, str], name: str) -> Any:
    """`name` imported from its module `exports[name]`: a package's module-level `__getattr__`.

    Raises:
        AttributeError: `name` is not one of `exports`.
    """
    if name in exports:
        return getattr(importlib.import_module(exports[name]), name)
    raise AttributeError(f"module {package!r} has no attribute {name!r}")
