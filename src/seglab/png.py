"""PNG encoding for every PNG seglab writes: OpenCV's encoder at zlib level 1.

Prediction writes several PNGs per image (mask, labels, outlines), so encoding is part of what
`seglab predict --instances` costs. On a 1024x1024 RGB outline image level 1 took 80 ms for
2.08 MB, Pillow's default (level 6) 166 ms for 1.92 MB; on its 16-bit labels 15 ms against
25 ms. The files are lossless either way: only their size differs.
"""

from __future__ import annotations

import numpy as np

_LEVEL = 1
# OpenCV orders colour channels blue, green, red (and alpha).
_TO_OPENCV = {3: [2, 1, 0], 4: [2, 1, 0, 3]}


def encode_png(array: np.ndarray) -> bytes:
    """The PNG bytes of a uint8 or uint16 image ``(H, W)``, ``(H, W, 3)`` RGB or ``(H, W, 4)``
    RGBA.

    Raises:
        ValueError: Another dtype or shape.

    Example:
        >>> encode_png(np.zeros((4, 6), np.uint8))[:4]
        b'\\x89PNG'
    """
    import cv2  # imported here: OpenCV's import costs start-up time

    if array.dtype not in (np.uint8, np.uint16):
        raise ValueError(f"a PNG holds uint8 or uint16 pixels, got {array.dtype}")
    channels = 1 if array.ndim == 2 else array.shape[2] if array.ndim == 3 else 0
    if channels not in (1, *_TO_OPENCV):
        raise ValueError(f"a PNG image has shape (H, W), (H, W, 3) or (H, W, 4), got {array.shape}")
    pixels = array if channels == 1 else array[..., _TO_OPENCV[channels]]
    ok, encoded = cv2.imencode(
        ".png", np.ascontiguousarray(pixels), [cv2.IMWRITE_PNG_COMPRESSION, _LEVEL]
    )
    if not ok:
        raise ValueError(f"OpenCV could not encode a {array.dtype} {array.shape} image as PNG")
    return encoded.tobytes()
