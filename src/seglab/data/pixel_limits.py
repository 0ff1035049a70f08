"""The most pixels a file may declare before seglab decodes it: decompression bombs (a few
KB of PNG or TIFF declaring gigapixels) are refused from their headers.

One limit for images, masks, volumes and the chunks of large images read lazily:
`SEGLAB_MAX_PIXELS`, else `DEFAULT_MAX_PIXELS`.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from seglab.errors import ConfigError, PixelLimitError

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "MAX_PIXELS_ENV",
    "check_pixels",
    "pixel_limit",
    "tiff_chunk_pixels",
    "tiff_pixels",
]

# Files declaring more pixels (voxels) than this are refused before they are decoded: 2**28 is
# 16384 x 16384, or a 512 x 1024 x 512 volume. The environment variable overrides it.
DEFAULT_MAX_PIXELS = 1 << 28
MAX_PIXELS_ENV = "SEGLAB_MAX_PIXELS"


def pixel_limit() -> int:
    """The most pixels (voxels) a file may declare: `SEGLAB_MAX_PIXELS` if set, else
    `DEFAULT_MAX_PIXELS`. Read on every call, so a change of the variable applies at once.

    Raises:
        ConfigError: `SEGLAB_MAX_PIXELS` is not a positive whole number.
    """
    raw = os.environ.get(MAX_PIXELS_ENV, "").strip()
    if not raw:
        return DEFAULT_MAX_PIXELS
    try:
        value = float(raw.replace("_", ""))
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value >= 1 and value == int(value)):
        raise ConfigError(
            f"{MAX_PIXELS_ENV}={raw!r}: expected a positive whole number of pixels, such as "
            f"{DEFAULT_MAX_PIXELS}; unset it for that default"
        )
    return int(value)


def check_pixels(
    path: str | Path, shape: Sequence[int], what: str = "an image", limit: int | None = None
) -> None:
    """Refuse a file whose declared `shape` (channels left out) holds more than `limit` pixels.

    Args:
        path: The file, for the message.
        shape: Its declared size, from its header (pages, rows, columns...).
        what: What the shape is the size of, for the message ("an image", "tiles").
        limit: The most pixels allowed; None: `pixel_limit()`.

    Raises:
        PixelLimitError: A `DataError` naming the file, the declared size and the limit.
    """
    limit = pixel_limit() if limit is None else limit
    pixels = math.prod(int(size) for size in shape)
    if pixels > limit:
        sizes = " x ".join(str(int(size)) for size in shape)
        raise PixelLimitError(
            path,
            f"declares {what} of {sizes} = {pixels:,} pixels, above the limit of {limit:,}; "
            "refused before decoding (a decompression bomb, or too large to decode at once)",
            "split it into smaller images or save it tiled; if it is genuine and this machine "
            f"has the memory, raise the limit with {MAX_PIXELS_ENV}={pixels}",
        )


def tiff_pixels(axes: str, shape: Sequence[int]) -> tuple[int, ...]:
    """The dimensions of a TIFF series (tifffile's axes and shape) that count as pixels: all
    but the samples (``S``) and up to 4 colour planes (``C``)."""
    return tuple(
        int(size)
        for axis, size in zip(axes, shape)
        if not (axis == "S" or (axis == "C" and size <= 4))
    )


def tiff_chunk_pixels(page: Any) -> tuple[int, ...]:
    """The pixel dimensions of a TIFF page's tiles or strips, each decoded whole (tifffile's
    `TiffPage.chunks`, whose last entry is the samples of interleaved colour images)."""
    chunks = tuple(int(size) for size in page.chunks)
    interleaved = page.samplesperpixel > 1 and int(page.planarconfig) == 1
    return chunks[:-1] if interleaved and len(chunks) > 2 else chunks
