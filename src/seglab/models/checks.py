"""Argument checks shared by every model constructor (values often come from YAML)."""

from __future__ import annotations


def check_int(name: str, value: object, minimum: int) -> None:
    """Raise ValueError unless `value` is an integer >= `minimum`."""
    # bool is an int subclass; `depth=True` is a config mistake, not a depth of 1.
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")


def check_dropout(dropout: object) -> None:
    """Raise ValueError unless `dropout` is a number in [0, 1)."""
    is_number = isinstance(dropout, int | float) and not isinstance(dropout, bool)
    if not (is_number and 0 <= dropout < 1):  # type: ignore[operator]
        raise ValueError(f"dropout must be in [0, 1), got {dropout!r}")


def check_unet(
    in_channels: object, num_classes: object, n_filters: object, depth: object, dropout: object
) -> None:
    """The checks common to the 2D and 3D U-Nets."""
    check_int("in_channels", in_channels, 1)
    check_int("num_classes", num_classes, 1)
    check_int("n_filters", n_filters, 1)
    check_int("depth", depth, 1)
    check_dropout(dropout)
