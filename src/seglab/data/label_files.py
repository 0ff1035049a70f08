"""Checks of the content of a YAML label file, before `seglab.data.labels` builds a mapping.

Holds `parse_label_file`, which validates the parsed YAML of a label file (its ``classes`` with
name, values and optional colour, and its optional ``void_values``) and returns it as plain
lists, raising a `ConfigError` that names the file and the key at fault, and its helpers.
`seglab.data.labels.mapping_from_file` reads the file and turns the result into a mapping.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from seglab.errors import ConfigError

_FileClass = tuple[str, list[int], "tuple[int, int, int] | None"]
_FILE_EXAMPLE = "classes: [{name: background, values: [0]}, {name: cell, values: [1, 2]}]"


def parse_label_file(data: object, path: Path) -> tuple[list[_FileClass], list[int]]:
    """Check a label file's content: (name, values, colour or None) per class, void values."""

    def fail(key: str, problem: str) -> ConfigError:
        return ConfigError(f"{path}: '{key}': {problem}\n  hint: expected e.g. {_FILE_EXAMPLE}")

    if not isinstance(data, dict):
        raise fail("classes", "the file must hold a mapping with a 'classes' list")
    for key in data:
        if key not in ("classes", "void_values"):
            raise fail(str(key), "unknown key; the file may hold only classes and void_values")
    entries = data.get("classes")
    if not isinstance(entries, list) or not entries:
        raise fail("classes", "missing, or not a non-empty list of classes")
    classes: list[_FileClass] = []
    owner: dict[int, str] = {}
    for i, entry in enumerate(entries):
        key = f"classes[{i}]"
        if not isinstance(entry, dict):
            raise fail(key, "each class must be a mapping with name and values (color optional)")
        for field in entry:
            if field not in ("name", "values", "color"):
                raise fail(f"{key}.{field}", "unknown key; a class has name, values and color")
        name = entry.get("name")
        if not isinstance(name, str) or not name:
            raise fail(f"{key}.name", "missing, or not a string")
        if name in (c[0] for c in classes):
            raise fail(f"{key}.name", f"class name {name!r} is used twice")
        values = _int_list(entry.get("values"), 65535, f"{key}.values", fail)
        for value in values:
            if value in owner:
                raise fail(f"{key}.values", f"value {value} also belongs to {owner[value]!r}")
            owner[value] = name
        color = entry.get("color")
        if color is not None and (len(_int_list(color, 255, f"{key}.color", fail)) != 3):
            raise fail(f"{key}.color", "a colour is three integers [r, g, b] in 0..255")
        classes.append((name, values, None if color is None else tuple(color)))
    void_values = data.get("void_values", [])
    void_values = _int_list(void_values, 65535, "void_values", fail) if void_values else []
    for value in void_values:
        if value in owner:
            raise fail("void_values", f"value {value} also belongs to class {owner[value]!r}")
    return classes, void_values


def _int_list(
    values: object, maximum: int, key: str, fail: Callable[[str, str], ConfigError]
) -> list[int]:
    if not isinstance(values, list) or not values:
        raise fail(key, "missing, or not a non-empty list of integers")
    for value in values:
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= maximum:
            raise fail(key, f"{value!r} is not an integer in 0..{maximum}")
    return list(values)
