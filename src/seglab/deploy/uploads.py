"""Reading an image upload: the request's multipart form, its `file` field and the image in it.

Every problem is refused with a 4xx naming it, never a 500: 400 (no file, empty or corrupt
image, unknown format, a threshold not between 0 and 1), 413 (too large), 415 (not an image
type). `seglab.deploy.serve` answers `POST /predict` with these.
"""

from __future__ import annotations

import math
import tempfile
from pathlib import Path
from typing import NamedTuple

import numpy as np
from fastapi import HTTPException, Request
from PIL import Image
from starlette.datastructures import FormData, UploadFile
from starlette.types import Message

from seglab.data.io import IMAGE_SUFFIXES, read_image
from seglab.deploy.limits import MIN_CHARGED_SIDE, ServeLimits, charged_pixels
from seglab.errors import DataError, PixelLimitError

__all__ = [
    "ACCEPTED",
    "FORMATS",
    "IMAGE_TYPES",
    "MAX_PIXELS",
    "ImageTooLargeError",
    "Upload",
    "decode_image",
    "parse_threshold",
    "read_upload",
]

FORMATS = ("png", "json", "overlay", "probabilities", "labels", "full")
IMAGE_TYPES = ("image/png", "image/jpeg", "image/tiff")
MAX_PIXELS = ServeLimits().max_pixels
# With the names older or sloppy clients send for the same three formats.
_TYPES = (*IMAGE_TYPES, "image/jpg", "image/pjpeg", "image/x-png", "image/tif", "image/x-tiff")
# Sent by clients that do not know a file's type (curl for .tif, many scripts): the file
# name's extension decides then.
_UNTYPED = ("", "application/octet-stream")
ACCEPTED = "PNG, JPEG or TIFF (" + ", ".join(IMAGE_TYPES) + ")"
_HOW = "send the image as multipart/form-data field 'file', e.g. curl -F file=@image.png URL"
# Boundaries and part headers around the file; generous, since a long file name counts too.
_ENVELOPE_BYTES = 64 * 1024
# The format is told by the first bytes, not by a name a client may have got wrong.
_MAGIC = {b"\x89PNG": ".png", b"\xff\xd8\xff": ".jpg", b"II*\x00": ".tif", b"MM\x00*": ".tif"}


class ImageTooLargeError(DataError):
    """An upload decodes to more pixels than the server accepts."""


class _BodyTooLargeError(Exception):
    """The request body grew past the upload limit while it was being read."""


def decode_image(data: bytes, filename: str = "upload", max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """Decode an uploaded PNG, JPEG or TIFF by the rules of `seglab.data.io.read_image`.

    Args:
        data: The file's bytes; the format is told by its first bytes, not by `filename`.
        filename: The client's name for the file, for error messages.
        max_pixels: Images of more charged pixels (`seglab.deploy.limits.charged_pixels`:
            narrow strips cost more than their pixels) are refused from their header, before
            they are decoded.

    Returns:
        ``(H, W, C)`` array, C = 1 or 3 (alpha dropped), uint8 or uint16 as in the file.

    Raises:
        ImageTooLargeError: More than `max_pixels` pixels.
        DataError: Empty, truncated or corrupt, or not a PNG, JPEG or TIFF.
    """
    name = filename or "upload"
    suffix = next((suffix for magic, suffix in _MAGIC.items() if data.startswith(magic)), None)
    if suffix is None:
        problem = "file is empty" if not data else "not a PNG, JPEG or TIFF file"
        raise DataError(name, problem, f"upload a {ACCEPTED} image")
    # read_image holds the decoding rules (16-bit colour PNGs, TIFF axes, palettes, alpha) and
    # reads paths, so the bytes go through a private temporary file rather than a second copy
    # of those rules that could drift from the first.
    with tempfile.TemporaryDirectory(prefix="seglab-serve-") as folder:
        path = Path(folder) / f"upload{suffix}"
        path.write_bytes(data)
        _check_pixels(path, name, max_pixels)
        try:
            # Every TIFF page and series is checked too, before anything is decoded.
            image = read_image(path, max_pixels=max_pixels)
        except PixelLimitError as exc:
            problem = exc.problem.replace(str(path), name)
            raise ImageTooLargeError(name, problem, _TILES_HINT) from None
        except DataError as exc:
            # Name the client's file, not the temporary copy.
            raise DataError(name, exc.problem.replace(str(path), name), exc.hint) from None
    # Again on the decoded size: a header PIL cannot read was not checked above.
    _check_charged(image.shape[1], image.shape[0], name, max_pixels)
    return image


_TILES_HINT = "split the image into tiles and send them one by one"


def _check_pixels(path: Path, name: str, max_pixels: int) -> None:
    try:
        with Image.open(path) as image:  # lazy: reads the header only
            width, height = image.size
    except Image.DecompressionBombError as exc:
        raise ImageTooLargeError(name, f"image too large ({exc})", _TILES_HINT) from None
    except (OSError, SyntaxError, ValueError):
        return  # an unreadable header: read_image says what is wrong
    _check_charged(width, height, name, max_pixels)


def _check_charged(width: int, height: int, name: str, max_pixels: int) -> None:
    charged = charged_pixels(width, height)
    if charged <= max_pixels:
        return
    problem = f"image is {width}x{height} = {width * height:,} pixels; the limit is {max_pixels:,}"
    if charged > width * height:
        problem = (
            f"image is {width}x{height}, a strip that costs the network as much as "
            f"{charged:,} pixels (each side counts as at least {MIN_CHARGED_SIDE}); "
            f"the limit is {max_pixels:,}"
        )
    raise ImageTooLargeError(name, problem, _TILES_HINT)


class Upload(NamedTuple):
    """One checked request to `POST /predict`."""

    data: bytes
    filename: str
    fmt: str
    threshold: float | None


def parse_threshold(text: str | None) -> float | None:
    """A request's `threshold` field as a number strictly between 0 and 1, or None when absent.

    Raises:
        HTTPException: 400 naming the value, when it is not such a number.

    Example:
        >>> parse_threshold("0.3")
        0.3
    """
    if text is None or text == "":
        return None
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0 < value < 1:  # NaN fails this too
        raise HTTPException(
            400,
            f"threshold must be a number between 0 and 1, got {text!r}; send e.g. "
            "threshold=0.4, or no threshold for the model's own",
        )
    return value


async def read_upload(
    request: Request, fmt: str | None, threshold: str | None, limit: int
) -> Upload:
    """The uploaded file's bytes and name, the answer's format and the threshold, each taken
    from the query, else from the form (format png and no threshold by default), and checked."""
    form = await _read_form(request, limit)
    try:
        fmt = fmt or _text_field(form, "format") or "png"
        if fmt not in FORMATS:
            raise HTTPException(400, f"unknown format {fmt!r}; valid: {', '.join(FORMATS)}")
        cut = parse_threshold(threshold or _text_field(form, "threshold"))
        upload = _get_upload(form)
        data = await upload.read(limit + 1)  # never more than needed to see it is too large
        name = upload.filename or "upload"
    finally:
        await form.close()
    if len(data) > limit:
        raise HTTPException(413, f"{name}: larger than the limit of {limit:,} bytes")
    return Upload(data, name, fmt, cut)


def _text_field(form: FormData, key: str) -> str | None:
    field = form.get(key)
    return field if isinstance(field, str) else None


async def _read_form(request: Request, limit: int) -> FormData:
    """The request's form, refused with a 413 as soon as the body outgrows `limit`."""
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media not in ("multipart/form-data", "application/x-www-form-urlencoded"):
        if not media:
            raise HTTPException(400, f"no file in the request: {_HOW}")
        raise HTTPException(415, f"request content type {media!r} is not a form: {_HOW}")
    cap = limit + _ENVELOPE_BYTES
    declared = request.headers.get("content-length", "")
    # Refuse from the header alone when it tells, so a huge upload is never read at all.
    if declared.isdigit() and int(declared) > cap:
        raise HTTPException(413, f"upload of {int(declared):,} bytes; the limit is {limit:,}")
    received = 0

    async def receive() -> Message:
        # Without Content-Length (chunked uploads) only counting the bytes can enforce the limit.
        nonlocal received
        message = await request.receive()
        received += len(message.get("body", b""))
        if received > cap:
            raise _BodyTooLargeError
        return message

    try:
        return await Request(request.scope, receive).form(max_files=1, max_fields=8)
    except _BodyTooLargeError:
        raise HTTPException(413, f"upload larger than the limit of {limit:,} bytes") from None


def _get_upload(form: FormData) -> UploadFile:
    upload = form.get("file")
    if upload is None:
        fields = ", ".join(repr(key) for key in form) or "none"
        raise HTTPException(400, f"no form field 'file' (fields sent: {fields}): {_HOW}")
    if not isinstance(upload, UploadFile):
        raise HTTPException(400, f"form field 'file' holds text, not a file: {_HOW}")
    media = (upload.content_type or "").split(";")[0].strip().lower()
    suffix = Path(upload.filename or "").suffix.lower()
    if media in _TYPES or (media in _UNTYPED and suffix in IMAGE_SUFFIXES):
        return upload
    shown = media or "no type"
    raise HTTPException(
        415, f"{upload.filename or 'file'}: unsupported type {shown!r}; accepted: {ACCEPTED}"
    )
