"""Class colours of label maps: a generated palette and painting a label map with a palette.

Holds `default_palette` (distinct colours for classes without a colour of their own, used by
`seglab.data.labels` when it builds a mapping) and `colorize` (an RGB picture of a map of class
indices). Both are re-exported by `seglab.data.labels`.
"""

from __future__ import annotations

import colorsys

import numpy as np
from numpy.typing import ArrayLike


def colorize(
    labels: np.ndarray,
    palette: ArrayLike,
    ignore_index: int | None = 255,
    ignore_color: tuple[int, int, int] = (0, 0, 0),
) -> np.ndarray:
    """Paints a label map with one colour per class.

    Args:
        labels: Class indices of shape ``(H, W)``.
        palette: RGB colour of each class, ``palette[c]`` for class c (at least C entries).
        ignore_index: Label painted ``ignore_color`` (``None``: no such label).
        ignore_color: RGB colour of ignored pixels (black by default; figures use white, as
            Cityscapes' void is black).

    Returns:
        ``uint8`` RGB of shape ``(H, W, 3)``.

    Raises:
        ValueError: If the map is not 2-D, the palette is malformed or a label has no colour.

    Example:
        >>> colorize(np.array([[0, 1, 255]]), [(255, 0, 0), (0, 0, 255)])[0].tolist()
        [[255, 0, 0], [0, 0, 255], [0, 0, 0]]
    """
    lab = np.asarray(labels)
    if lab.ndim != 2 or not (np.issubdtype(lab.dtype, np.integer) or lab.dtype == np.bool_):
        raise ValueError(f"labels must be a 2-D integer map (H, W), got {lab.dtype} {lab.shape}")
    colors = np.asarray(palette)
    if colors.ndim != 2 or colors.shape[1] != 3 or len(colors) == 0:
        raise ValueError(f"palette must be a list of (R, G, B) colours, got shape {colors.shape}")
    if not np.issubdtype(colors.dtype, np.number) or ((colors < 0) | (colors > 255)).any():
        raise ValueError("palette colours must be numbers in [0, 255]")
    lab = lab.astype(np.int64)
    ignored = np.zeros(lab.shape, bool) if ignore_index is None else lab == ignore_index
    bad = ~ignored & ((lab < 0) | (lab >= len(colors)))
    if bad.any():
        raise ValueError(
            f"label {int(lab[bad][0])} has no colour: the palette has {len(colors)} entries "
            f"and ignore_index is {ignore_index}"
        )
    rgb = colors.astype(np.uint8)[np.where(ignored, 0, lab)]
    rgb[ignored] = ignore_color
    return rgb


def default_palette(count: int) -> np.ndarray:
    """``count`` distinct colours: hues a golden angle apart, so neighbours differ most."""
    hues = (np.arange(count) * 0.618033988749895) % 1.0
    rgb = [colorsys.hsv_to_rgb(float(h), 0.65, 0.9) for h in hues]
    return np.array(np.rint(np.array(rgb).reshape(count, 3) * 255), np.uint8)
