"""Reading and writing images and masks: every supported format, every bad input."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image, ImageFile

from seglab.data.io import read_image, read_mask, write_label_png, write_png
from seglab.errors import DataError

RNG = np.random.default_rng(0)
GRAY8 = RNG.integers(0, 256, (5, 7), dtype=np.uint8)
RGB8 = RNG.integers(0, 256, (5, 7, 3), dtype=np.uint8)
GRAY16 = RNG.integers(0, 65536, (5, 7), dtype=np.uint16)
RGB16 = RNG.integers(0, 65536, (5, 7, 3), dtype=np.uint16)


def save_pil(path: Path, array: np.ndarray, mode: str | None = None) -> Path:
    image = Image.fromarray(array) if mode is None else Image.fromarray(array).convert(mode)
    image.save(path)
    return path


def test_truncated_images_are_not_silently_accepted() -> None:
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False


@pytest.mark.parametrize(
    ("array", "expected"),
    [(GRAY8, GRAY8[..., None]), (RGB8, RGB8), (GRAY16, GRAY16[..., None])],
    ids=["gray8", "rgb8", "gray16"],
)
def test_read_png_keeps_values_and_bit_depth(
    tmp_path: Path, array: np.ndarray, expected: np.ndarray
) -> None:
    image = read_image(save_pil(tmp_path / "a.png", array))
    assert image.dtype == expected.dtype
    assert image.flags.writeable and image.flags.c_contiguous
    np.testing.assert_array_equal(image, expected)


def test_read_png_16bit_rgb_keeps_16_bits_and_channel_order(tmp_path: Path) -> None:
    write_png(tmp_path / "a.png", RGB16)
    image = read_image(tmp_path / "a.png")
    assert image.dtype == np.uint16
    np.testing.assert_array_equal(image, RGB16)


def test_read_png_drops_alpha(tmp_path: Path) -> None:
    rgba = np.dstack([RGB8, np.full((5, 7), 128, np.uint8)])
    np.testing.assert_array_equal(read_image(save_pil(tmp_path / "rgba.png", rgba)), RGB8)
    la = save_pil(tmp_path / "la.png", np.dstack([GRAY8, GRAY8]), mode="LA")
    np.testing.assert_array_equal(read_image(la), GRAY8[..., None])


def test_read_palette_png_gives_rgb(tmp_path: Path) -> None:
    path = tmp_path / "p.png"
    Image.fromarray(RGB8).convert("P", palette=Image.Palette.ADAPTIVE, colors=4).save(path)
    image = read_image(path)
    assert image.shape == (5, 7, 3)
    np.testing.assert_array_equal(image, np.asarray(Image.open(path).convert("RGB")))


def test_read_jpeg(tmp_path: Path) -> None:
    path = tmp_path / "a.jpg"
    Image.fromarray(np.full((8, 8, 3), 100, np.uint8)).save(path, quality=95)
    image = read_image(path)
    assert image.shape == (8, 8, 3) and image.dtype == np.uint8
    assert np.abs(image.astype(int) - 100).max() <= 2


@pytest.mark.parametrize(
    ("array", "kwargs", "expected"),
    [
        (GRAY16, {}, GRAY16[..., None]),
        (RGB8, {"photometric": "rgb"}, RGB8),
        (RGB8.transpose(2, 0, 1), {"photometric": "rgb", "planarconfig": "separate"}, RGB8),
        (np.dstack([RGB8, GRAY8]), {"photometric": "rgb", "extrasamples": ["unassalpha"]}, RGB8),
        (GRAY8[None], {}, GRAY8[..., None]),  # a one-page stack is a 2D image
    ],
    ids=["gray16", "rgb", "planar-rgb", "rgba", "one-page"],
)
def test_read_tiff(tmp_path: Path, array: np.ndarray, kwargs: dict, expected: np.ndarray) -> None:
    tifffile.imwrite(tmp_path / "a.tif", array, **kwargs)
    image = read_image(tmp_path / "a.tif")
    assert image.dtype == expected.dtype
    np.testing.assert_array_equal(image, expected)


def truncated_png(path: Path) -> Path:
    write_png(path, RNG.integers(0, 256, (64, 64), dtype=np.uint8))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def bad_files(tmp_path: Path) -> dict[str, Path]:
    (tmp_path / "text.png").write_text("not an image")
    tifffile.imwrite(tmp_path / "float.tif", np.zeros((4, 4), np.float32))
    tifffile.imwrite(tmp_path / "stack.tif", np.zeros((5, 8, 8), np.uint8))
    tifffile.imwrite(tmp_path / "int16.tif", np.zeros((4, 4), np.int16))
    (tmp_path / "broken.tif").write_bytes(b"II*\x00garbage")
    return {
        "missing": tmp_path / "missing.png",
        "truncated": truncated_png(tmp_path / "truncated.png"),
        "not-an-image": tmp_path / "text.png",
        "float": tmp_path / "float.tif",
        "3d-stack": tmp_path / "stack.tif",
        "signed": tmp_path / "int16.tif",
        "corrupt-tiff": tmp_path / "broken.tif",
    }


@pytest.mark.parametrize(
    "case", ["missing", "truncated", "not-an-image", "float", "3d-stack", "signed", "corrupt-tiff"]
)
def test_bad_images_raise_data_error_naming_the_file(tmp_path: Path, case: str) -> None:
    path = bad_files(tmp_path)[case]
    with pytest.raises(DataError) as info:
        read_image(path)
    assert path.name in str(info.value)
    assert info.value.path == path


def test_truncated_16bit_colour_png_raises(tmp_path: Path) -> None:
    path = tmp_path / "rgb16.png"
    write_png(path, RNG.integers(0, 65536, (64, 64, 3), dtype=np.uint16))
    path.write_bytes(path.read_bytes()[:300])
    with pytest.raises(DataError, match=r"rgb16\.png"):
        read_image(path)


@pytest.mark.parametrize(
    "array",
    [
        np.array([[0, 255], [255, 0]], np.uint8),
        np.array([[0, 1], [1, 0]], np.uint8),
        np.array([[0, 65535], [65535, 0]], np.uint16),
        np.array([[0, 1], [1, 0]], np.uint16),
        np.repeat(np.array([[0, 255], [255, 0]], np.uint8)[..., None], 3, axis=2),
    ],
    ids=["0-255", "0-1", "16bit-0-65535", "16bit-0-1", "rgb-gray"],
)
def test_read_mask_accepts_binary_encodings(tmp_path: Path, array: np.ndarray) -> None:
    write_png(tmp_path / "m.png", array)
    mask = read_mask(tmp_path / "m.png")
    assert mask.dtype == np.bool_
    np.testing.assert_array_equal(mask, [[False, True], [True, False]])


def test_read_mask_rgba_and_empty_masks(tmp_path: Path) -> None:
    rgba = np.zeros((2, 2, 4), np.uint8)
    rgba[0, 0, :3], rgba[..., 3] = 255, 255
    save_pil(tmp_path / "rgba.png", rgba)
    np.testing.assert_array_equal(read_mask(tmp_path / "rgba.png"), [[True, False], [False, False]])
    write_png(tmp_path / "empty.png", np.zeros((3, 3), np.uint8))
    assert not read_mask(tmp_path / "empty.png").any()


def test_read_mask_rejects_jpeg_compressed_mask(tmp_path: Path) -> None:
    mask = np.zeros((32, 32), np.uint8)
    mask[5:21, 7:19] = 255
    path = tmp_path / "mask.jpg"
    Image.fromarray(mask).save(path, quality=75)
    with pytest.raises(DataError, match=r"mask\.jpg") as info:
        read_mask(path)
    assert "distinct values" in str(info.value) and "lossless PNG" in str(info.value)


@pytest.mark.parametrize(
    ("array", "found"),
    [
        (np.array([[0, 1, 255]], np.uint8), "(0, 1, 255)"),
        (np.array([[0, 3, 250]], np.uint8), "(0, 3, 250)"),
        (np.array([[0, 255]], np.uint16), "(0, 255)"),
    ],
)
def test_read_mask_rejects_other_values(tmp_path: Path, array: np.ndarray, found: str) -> None:
    write_png(tmp_path / "m.png", array)
    with pytest.raises(DataError, match=r"m\.png") as info:
        read_mask(tmp_path / "m.png")
    assert found in str(info.value)


def test_read_mask_rejects_colour_label_image(tmp_path: Path) -> None:
    labels = np.zeros((2, 2, 3), np.uint8)
    labels[0, 0] = (128, 64, 128)
    write_png(tmp_path / "labels.png", labels)
    with pytest.raises(DataError, match="colour channels"):
        read_mask(tmp_path / "labels.png")


@pytest.mark.parametrize(
    "array", [GRAY8, GRAY8[..., None], RGB8, GRAY16, RGB16], ids=["hw", "hw1", "rgb", "16", "rgb16"]
)
def test_write_png_round_trip(tmp_path: Path, array: np.ndarray) -> None:
    path = tmp_path / "deep" / "folder" / "a.png"
    write_png(path, array)
    expected = array if array.ndim == 3 else array[..., None]
    np.testing.assert_array_equal(read_image(path), expected)
    assert [p.name for p in path.parent.iterdir()] == ["a.png"]  # no temporary file left


def test_write_png_replaces_existing_file_and_writes_bool_as_0_255(tmp_path: Path) -> None:
    path = tmp_path / "m.png"
    write_png(path, GRAY8)
    write_png(path, np.array([[True, False]]))
    np.testing.assert_array_equal(np.asarray(Image.open(path)), [[255, 0]])


@pytest.mark.parametrize(
    "array", [np.zeros((2, 2), np.float32), np.zeros((2, 2, 2), np.uint8), np.zeros(4, np.uint8)]
)
def test_write_png_rejects_bad_arrays(tmp_path: Path, array: np.ndarray) -> None:
    with pytest.raises(ValueError, match="write_png"):
        write_png(tmp_path / "a.png", array)
    assert not list(tmp_path.iterdir())


def test_write_label_png_round_trip_and_limits(tmp_path: Path) -> None:
    labels = np.array([[0, 1, 2], [300, 65535, 0]], np.int64)
    write_label_png(tmp_path / "labels.png", labels)
    read = np.asarray(Image.open(io.BytesIO((tmp_path / "labels.png").read_bytes())))
    np.testing.assert_array_equal(read, labels)
    with pytest.raises(ValueError, match="65535"):
        write_label_png(tmp_path / "big.png", np.array([[0, 65536]]))
    with pytest.raises(ValueError, match="integer"):
        write_label_png(tmp_path / "float.png", np.zeros((2, 2)))
