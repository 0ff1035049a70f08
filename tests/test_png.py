"""`seglab.png.encode_png`: lossless round trips read back by Pillow, channel order kept."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from seglab.png import encode_png


@pytest.mark.parametrize(
    ("shape", "dtype", "mode"),
    [
        ((5, 7), np.uint8, "L"),
        ((5, 7, 3), np.uint8, "RGB"),
        ((5, 7, 4), np.uint8, "RGBA"),
        ((5, 7), np.uint16, "I;16"),
    ],
)
def test_round_trip(shape: tuple[int, ...], dtype: type, mode: str) -> None:
    rng = np.random.default_rng(0)
    array = rng.integers(0, np.iinfo(dtype).max, shape, endpoint=True).astype(dtype)
    image = Image.open(io.BytesIO(encode_png(array)))
    assert image.mode == mode
    np.testing.assert_array_equal(np.asarray(image), array)


def test_red_stays_red() -> None:
    red = np.zeros((2, 2, 3), np.uint8)
    red[..., 0] = 255
    assert Image.open(io.BytesIO(encode_png(red))).getpixel((0, 0)) == (255, 0, 0)


@pytest.mark.parametrize(
    ("array", "message"),
    [(np.zeros((3, 3), np.float32), "uint8 or uint16"), (np.zeros((3, 3, 2), np.uint8), "shape")],
)
def test_refuses_what_a_png_cannot_hold(array: np.ndarray, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        encode_png(array)
