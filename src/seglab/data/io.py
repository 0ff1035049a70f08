"""Read and write 2D images and masks; every bad input raises a `DataError` naming the file.

Images come back as ``(H, W, C)`` arrays with C = 1 (grayscale) or 3 (RGB) and their bit depth
kept (uint8 or uint16); binary masks come back as ``(H, W)`` bool arrays and label images
(multi-class masks) as ``(H, W)`` integer label values. Writes are atomic, so an interrupted run
never leaves a half-written PNG that later reads as corrupt.

Decompression bombs: the size a file declares (every page of a TIFF's series and its tiles or
strips, a PNG/JPEG header) is checked against `pixel_limit` before anything is decoded, so a
small file declaring a huge image is refused instead of filling memory.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
from PIL import Image, ImageFile

from seglab.atomic_files import atomic_write_bytes
from seglab.data.pixel_limits import (
    check_pixels,
    pixel_limit,
    tiff_chunk_pixels,
    tiff_pixels,
)
from seglab.errors import DataError
from seglab.png import encode_png

logger = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff")
_TIFF_SUFFIXES = (".tif", ".tiff")
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_EXPECTED = "a 2D grayscale or RGB image with 8- or 16-bit unsigned integer pixels"
_MASK_HINT = (
    "save masks as lossless PNG with 0 for background and 255 for foreground "
    "(JPEG compression changes pixel values at object edges)"
)


def read_image(path: str | Path, max_pixels: int | None = None) -> np.ndarray:
    """Read a PNG, JPEG or TIFF image.

    Alpha channels are dropped and palette images are expanded to RGB; the bit depth is kept.
    The size the file declares is checked against `max_pixels` before it is decoded.

    Args:
        path: Image file.
        max_pixels: The most pixels the file may declare (all pages of a TIFF's series
            counted); None: `pixel_limit()`.

    Returns:
        Array of shape ``(H, W, C)`` with C = 1 or 3, dtype uint8 or uint16.

    Raises:
        DataError: The file is missing, is not an image, is truncated or corrupt, or holds
            something other than a 2D 8/16-bit grayscale or RGB image (a float image, a 3D stack),
            or declares more than `max_pixels` pixels.
        ConfigError: `SEGLAB_MAX_PIXELS` is not a pixel count.
    """
    path = Path(path)
    limit = pixel_limit() if max_pixels is None else max_pixels
    if not path.is_file():
        raise DataError(path, "file not found", "check the path and the file name")
    if path.suffix.lower() in _TIFF_SUFFIXES:
        array = _read_tiff(path, limit)
    elif _is_16bit_colour_png(path):
        array = _read_png_16bit_colour(path, limit)
    else:
        array = _read_pillow(path, limit)
    return _check_image(path, array)


def read_mask(path: str | Path, max_pixels: int | None = None) -> np.ndarray:
    """Read a binary mask.

    Accepted: single-channel masks, or RGB(A) masks whose colour channels are all equal, holding
    only {0, 255} or {0, 1} (8-bit), or {0, 1} or {0, 65535} (16-bit).

    Args:
        path: Mask file.
        max_pixels: As in `read_image`.

    Returns:
        Bool array of shape ``(H, W)``, True for foreground.

    Raises:
        DataError: The file cannot be read as an image, is a colour label image, or holds other
            values (typically a JPEG-compressed mask).
    """
    path = Path(path)
    array = read_image(path, max_pixels)
    if not _one_plane(array):
        raise DataError(
            path,
            "mask has differing colour channels (a colour label image?); "
            "expected a single-channel binary mask",
            _MASK_HINT,
        )
    plane = array[..., 0]
    # bincount over the full value range is much faster than np.unique's sort on large masks.
    counts = np.bincount(plane.ravel(), minlength=256 if plane.dtype == np.uint8 else 65536)
    found = set(np.flatnonzero(counts).tolist())
    allowed = ({0, 255}, {0, 1}) if plane.dtype == np.uint8 else ({0, 1}, {0, 65535})
    if not any(found <= values for values in allowed):
        shown = sorted(found)
        listed = ", ".join(map(str, shown[:8])) + (", ..." if len(shown) > 8 else "")
        raise DataError(
            path,
            f"mask holds {len(shown)} distinct values ({listed}); expected only "
            f"{' or '.join(str(sorted(v)) for v in allowed)}",
            _MASK_HINT,
        )
    return plane > 0


def read_label_image(path: str | Path, max_pixels: int | None = None) -> np.ndarray:
    """Read a label image: one integer label value per pixel (class indices, Cityscapes ids).

    Accepted: single-channel 8/16-bit PNG or TIFF, an RGB(A) image whose colour channels are all
    equal, or a palette PNG (its palette indices are the labels, as in Pascal VOC).

    Args:
        path: Label image file.
        max_pixels: As in `read_image`.

    Returns:
        ``(H, W)`` uint8 or uint16 label values.

    Raises:
        DataError: The file cannot be read as an image, or is a colour-coded mask (such as
            Cityscapes' ``*_gtFine_color.png``), whose colours cannot be mapped to labels.
    """
    path = Path(path)
    limit = pixel_limit() if max_pixels is None else max_pixels
    indices = _palette_indices(path, limit)
    if indices is not None:
        return indices
    array = read_image(path, limit)
    if not _one_plane(array):
        raise DataError(
            path,
            "label image has differing colour channels (a colour-coded mask?); expected one "
            "label value per pixel",
            "use the *_gtFine_labelIds.png file (class indices / label ids) instead of the "
            "*_gtFine_color.png one, or save class indices as a single-channel PNG",
        )
    return np.ascontiguousarray(array[..., 0])


def _palette_indices(path: Path, limit: int) -> np.ndarray | None:
    """The palette indices of a palette PNG (``P`` mode), None for any other file."""
    if path.suffix.lower() != ".png" or not path.is_file():
        return None
    try:
        with Image.open(path) as image:
            if image.mode != "P":
                return None
            width, height = image.size
            check_pixels(path, (height, width), limit=limit)
            image.load()
            return np.array(image, dtype=np.uint8)
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError):
        return None  # read_image reports the problem


def _one_plane(array: np.ndarray) -> bool:
    """Whether an (H, W, C) image holds one value per pixel: one channel, or three equal ones."""
    return array.shape[2] != 3 or (
        np.array_equal(array[..., 0], array[..., 1])
        and np.array_equal(array[..., 0], array[..., 2])
    )


def write_png(path: str | Path, array: np.ndarray) -> None:
    """Write an array as a PNG, atomically, creating parent folders.

    Args:
        path: Destination file.
        array: uint8 or uint16 array of shape ``(H, W)``, ``(H, W, 1)`` or ``(H, W, 3)``; a bool
            array is written as 0/255 uint8.

    Raises:
        ValueError: Unsupported dtype or shape.
    """
    if array.dtype == np.bool_:
        array = array.astype(np.uint8) * 255
    if array.dtype not in (np.uint8, np.uint16):
        raise ValueError(f"write_png needs uint8 or uint16 pixels, got {array.dtype}")
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[..., 0]
    if not (array.ndim == 2 or (array.ndim == 3 and array.shape[2] == 3)):
        raise ValueError(f"write_png needs shape (H, W), (H, W, 1) or (H, W, 3), got {array.shape}")
    atomic_write_bytes(path, encode_png(array))


def write_label_png(path: str | Path, labels: np.ndarray) -> None:
    """Write an integer label image (0 = background, 1..K = objects) as a 16-bit PNG, atomically.

    Args:
        path: Destination file.
        labels: Integer array of shape ``(H, W)``.

    Raises:
        ValueError: Not a 2D integer array, negative labels, or more than 65535 labels.
    """
    if labels.ndim != 2 or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"labels must be a 2D integer array, got {labels.dtype} {labels.shape}")
    if labels.size and (labels.min() < 0 or labels.max() > 65535):
        raise ValueError(
            f"labels must lie in 0..65535 to fit a 16-bit PNG, got {labels.min()}..{labels.max()}"
        )
    write_png(path, labels.astype(np.uint16))


def _read_pillow(path: Path, limit: int) -> np.ndarray:
    if ImageFile.LOAD_TRUNCATED_IMAGES:
        # Another library switched this global on; truncated files would then load as silently
        # zero-filled images, which we cannot detect, so at least say so.
        logger.warning(
            "PIL.ImageFile.LOAD_TRUNCATED_IMAGES is True: truncated images will not be detected"
        )
    try:
        with Image.open(path) as image:  # reads the header only
            width, height = image.size
            check_pixels(path, (height, width), limit=limit)
            image.load()  # Pillow decodes lazily: force it here so corrupt data fails inside try
            return _pillow_to_array(path, image)
    except DataError:
        raise
    except Image.DecompressionBombError as exc:
        # Pillow's own check (twice PIL.Image.MAX_IMAGE_PIXELS) runs in Image.open, before ours.
        raise DataError(
            path,
            f"refused before decoding by Pillow's decompression-bomb check ({exc})",
            "split it into smaller images (Pillow's limit is PIL.Image.MAX_IMAGE_PIXELS)",
        ) from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise DataError(
            path, f"cannot read as an image ({exc})", f"expected {_EXPECTED}; re-export the file"
        ) from exc


def _pillow_to_array(path: Path, image: Image.Image) -> np.ndarray:
    mode = image.mode
    if mode in ("1", "P", "PA", "CMYK", "YCbCr"):
        image = image.convert("L" if mode == "1" else "RGB")
        mode = image.mode
    array = np.asarray(image)
    if mode in ("L", "I;16", "I;16L", "I;16B"):
        return array.astype(array.dtype.newbyteorder("="), copy=False)
    if mode == "LA":
        return array[..., :1]
    if mode in ("RGB", "RGBA", "RGBX"):
        return array[..., :3]
    if mode == "I" and array.size and array.min() >= 0 and array.max() <= 65535:
        return array.astype(np.uint16)  # older Pillow opens 16-bit grayscale PNGs as "I"
    raise DataError(path, f"unsupported pixel mode {mode!r}", f"expected {_EXPECTED}")


def _is_16bit_colour_png(path: Path) -> bool:
    # Pillow silently reduces 16-bit RGB(A) and gray+alpha PNGs to 8 bits, so spot them from the
    # IHDR header (bit depth at byte 24, colour type at byte 25) and decode them with OpenCV.
    with path.open("rb") as handle:
        header = handle.read(26)
    return (
        header[:8] == _PNG_SIGNATURE
        and len(header) == 26
        and header[24] == 16
        and (header[25] in (2, 4, 6))
    )


def _read_png_16bit_colour(path: Path, limit: int) -> np.ndarray:
    import cv2  # only needed for 16-bit colour PNGs; imported here to keep start-up fast

    data = path.read_bytes()
    # IHDR: width and height are big-endian 32-bit integers at bytes 16 and 20.
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    check_pixels(path, (height, width), limit=limit)
    decoded = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if decoded is None:
        raise DataError(
            path,
            "cannot decode this 16-bit PNG (truncated or corrupt?)",
            f"expected {_EXPECTED}; re-export the file",
        )
    if decoded.ndim == 2:
        return decoded[..., None]
    if data[25] == 4:  # gray + alpha: OpenCV expands it to BGRA with equal colour channels
        return decoded[..., :1]
    return decoded[..., 2::-1]  # BGR(A) -> RGB, alpha dropped


def _read_tiff(path: Path, limit: int) -> np.ndarray:
    import tifffile  # imported here: only TIFF users pay for it

    try:
        with tifffile.TiffFile(path) as tif:
            series = tif.series[0]
            axes, shape = series.axes, tuple(series.shape)
            # All known from the header: refuse before decoding a single pixel.
            check_pixels(path, tiff_pixels(axes, shape), limit=limit)
            check_pixels(path, tiff_chunk_pixels(series.keyframe), "tiles or strips", limit)
            # Drop singleton axes (e.g. a one-page stack) but keep the image plane.
            keep = [i for i, axis in enumerate(axes) if axis in "YXS" or shape[i] > 1]
            axes = "".join(axes[i] for i in keep)
            shape = tuple(shape[i] for i in keep)
            if axes not in ("YX", "YXS", "SYX"):
                raise DataError(
                    path,
                    f"TIFF holds an array with axes {axes!r} and shape {shape}",
                    f"expected {_EXPECTED}; save each 2D slice of a stack as its own file",
                )
            array = series.asarray().reshape(shape)
    except DataError:
        raise
    # A corrupt TIFF can fail in many ways inside tifffile (struct, index, key, value errors);
    # all of them mean the same thing to the user.
    except Exception as exc:
        raise DataError(
            path, f"cannot read as a TIFF image ({exc})", f"expected {_EXPECTED}; re-export it"
        ) from exc
    if axes == "SYX":
        array = np.moveaxis(array, 0, -1)
    if array.dtype == np.bool_:
        array = array.astype(np.uint8) * 255
    return array if array.ndim == 3 else array[..., None]


def _check_image(path: Path, array: np.ndarray) -> np.ndarray:
    if array.dtype not in (np.uint8, np.uint16):
        raise DataError(
            path,
            f"unsupported pixel type {array.dtype}",
            f"expected {_EXPECTED}; convert it, e.g. rescale floats to 0..255 and save as uint8",
        )
    if array.ndim == 2:
        array = array[..., None]
    channels = array.shape[2] if array.ndim == 3 else 0
    if channels in (2, 4):
        array = array[..., : channels - 1]  # drop alpha
    elif channels not in (1, 3):
        raise DataError(path, f"unsupported image shape {array.shape}", f"expected {_EXPECTED}")
    if array.shape[0] == 0 or array.shape[1] == 0:
        raise DataError(path, f"image is empty (shape {array.shape})", "re-export the file")
    # Pillow hands out read-only buffers; callers (augmentation) may write in place.
    return np.require(array, requirements=("C", "W"))
