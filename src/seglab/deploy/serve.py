"""HTTP service around one segmentation model: a web page at `/`, `POST /predict`, `/health`,
`/model` and the OpenAPI docs at `/docs`.

`create_app` loads the model once and returns a FastAPI app; `run` serves it with uvicorn.
Bad uploads get a 4xx with a JSON ``{"detail": "..."}`` naming the problem, never a 500:
400 (no file, empty or corrupt image, unknown format), 413 (too large), 415 (not an image type).

Example:
    $ seglab serve --model runs/nuclei/model
    $ curl -F file=@cells.png "http://127.0.0.1:8000/predict?format=json"
"""

from __future__ import annotations

import io
import logging
import os
import tempfile
import threading
import time
from importlib.resources import files
from pathlib import Path
from typing import Annotated, Any

import numpy as np
from fastapi import FastAPI, HTTPException, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, JSONResponse, Response
from PIL import Image
from starlette.datastructures import FormData, UploadFile
from starlette.types import Message

from seglab.baseline import BASELINES
from seglab.bundle import read_metadata
from seglab.data.io import IMAGE_SUFFIXES, read_image
from seglab.errors import ConfigError, DataError
from seglab.inference.loading import load_predictor
from seglab.kinds import kind_of
from seglab.postprocess import labels_to_rles
from seglab.viz import mask_overlay

logger = logging.getLogger(__name__)

FORMATS = ("png", "json", "overlay")
IMAGE_TYPES = ("image/png", "image/jpeg", "image/tiff")
# 8192 x 8192: the float32 probabilities alone take 256 MB and a U-Net's activations many
# times that; a larger image should be tiled by the client rather than take the server down.
MAX_PIXELS = 8192 * 8192
ENV_MODEL = "SEGLAB_SERVE_MODEL"
ENV_BACKEND = "SEGLAB_SERVE_BACKEND"
ENV_MAX_UPLOAD_MB = "SEGLAB_SERVE_MAX_UPLOAD_MB"
# With the names older or sloppy clients send for the same three formats.
_TYPES = (*IMAGE_TYPES, "image/jpg", "image/pjpeg", "image/x-png", "image/tif", "image/x-tiff")
# Sent by clients that do not know a file's type (curl for .tif, many scripts): the file
# name's extension decides then.
_UNTYPED = ("", "application/octet-stream")
_ACCEPTED = "PNG, JPEG or TIFF (" + ", ".join(IMAGE_TYPES) + ")"
_HOW = "send the image as multipart/form-data field 'file', e.g. curl -F file=@image.png URL"
# Boundaries and part headers around the file; generous, since a long file name counts too.
_ENVELOPE_BYTES = 64 * 1024
# The format is told by the first bytes, not by a name a client may have got wrong.
_MAGIC = {b"\x89PNG": ".png", b"\xff\xd8\xff": ".jpg", b"II*\x00": ".tif", b"MM\x00*": ".tif"}
_FILE_FIELD = {"file": {"type": "string", "format": "binary", "description": _ACCEPTED}}
_FORM = {"type": "object", "required": ["file"], "properties": _FILE_FIELD}
_UPLOAD_DOC = {
    "requestBody": {"required": True, "content": {"multipart/form-data": {"schema": _FORM}}}
}
_PNG_DOC: dict[int | str, dict[str, Any]] = {200: {"content": {"image/png": {}}}}


class ImageTooLargeError(DataError):
    """An upload decodes to more pixels than the server accepts."""


class _BodyTooLargeError(Exception):
    """The request body grew past the upload limit while it was being read."""


def decode_image(data: bytes, filename: str = "upload", max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """Decode an uploaded PNG, JPEG or TIFF by the rules of `seglab.data.io.read_image`.

    Args:
        data: The file's bytes; the format is told by its first bytes, not by `filename`.
        filename: The client's name for the file, for error messages.
        max_pixels: Larger images are refused from their header, before they are decoded.

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
        raise DataError(name, problem, f"upload a {_ACCEPTED} image")
    # read_image holds the decoding rules (16-bit colour PNGs, TIFF axes, palettes, alpha) and
    # reads paths, so the bytes go through a private temporary file rather than a second copy
    # of those rules that could drift from the first.
    with tempfile.TemporaryDirectory(prefix="seglab-serve-") as folder:
        path = Path(folder) / f"upload{suffix}"
        path.write_bytes(data)
        _check_pixels(path, name, max_pixels)
        try:
            return read_image(path)
        except DataError as exc:
            # Name the client's file, not the temporary copy.
            raise DataError(name, exc.problem.replace(str(path), name), exc.hint) from None


def _check_pixels(path: Path, name: str, max_pixels: int) -> None:
    hint = "split the image into tiles and send them one by one"
    try:
        with Image.open(path) as image:  # lazy: reads the header only
            width, height = image.size
    except Image.DecompressionBombError as exc:
        raise ImageTooLargeError(name, f"image too large ({exc})", hint) from None
    except (OSError, SyntaxError, ValueError):
        return  # an unreadable header: read_image says what is wrong
    if width * height > max_pixels:
        problem = (
            f"image is {width}x{height} = {width * height:,} pixels; the limit is {max_pixels:,}"
        )
        raise ImageTooLargeError(name, problem, hint)


def _detail(exc: DataError) -> str:
    return f"{exc.path.name}: {exc.problem}" + (f"; {exc.hint}" if exc.hint else "")


def _png(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    # Masks compress well even at level 1, which is several times faster than the default 6.
    Image.fromarray(array).save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


class _Segmenter:
    """The predictor behind a lock, and the encodings of its output."""

    def __init__(self, predictor: Any) -> None:
        self.predictor = predictor
        metadata = predictor.metadata
        self.instances = metadata["model"]["name"] in BASELINES or bool(metadata.get("instances"))
        # One inference at a time: torch already uses every core, so parallel calls would only
        # split them and multiply the peak memory; decoding and encoding still overlap.
        self.lock = threading.Lock()

    def __call__(
        self, data: bytes, filename: str, fmt: str
    ) -> tuple[bytes | dict[str, Any], float]:
        image = decode_image(data, filename)
        instances = self.instances and fmt == "json"
        with self.lock:
            start = time.perf_counter()
            prediction = self.predictor.predict(image, instances=instances)
            milliseconds = (time.perf_counter() - start) * 1e3
        mask = prediction.mask
        if self.predictor.kind.multiclass:
            return self._classes(image, mask, fmt, milliseconds), milliseconds
        if fmt == "png":
            return _png(mask.astype(np.uint8) * 255), milliseconds
        if fmt == "overlay":
            return _png(mask_overlay(image, mask)), milliseconds
        summary: dict[str, Any] = {
            "width": int(mask.shape[1]),
            "height": int(mask.shape[0]),
            "foreground_fraction": float(mask.mean()),
            "threshold": float(self.predictor.threshold),
            "inference_ms": round(milliseconds, 3),
        }
        if instances and prediction.instances is not None:
            rles = labels_to_rles(prediction.instances)
            summary |= {"instances": len(rles), "rle": rles}
        return summary, milliseconds

    def _classes(
        self, image: np.ndarray, mask: np.ndarray, fmt: str, milliseconds: float
    ) -> bytes | dict[str, Any]:
        """A multi-class answer: the palette-coloured classes, their overlay, or a summary."""
        from seglab.inference.files import class_overlay

        coloured = self.predictor.colour(mask)
        if fmt == "png":
            return _png(coloured)
        if fmt == "overlay":
            return _png(class_overlay(image, coloured))
        return {
            "width": int(mask.shape[1]),
            "height": int(mask.shape[0]),
            "class_fractions": self.predictor.class_fractions(mask),
            "inference_ms": round(milliseconds, 3),
        }


def _backend_name(predictor: Any) -> str:
    names = {"Predictor": "torch", "OnnxPredictor": "onnx", "OtsuBaseline": "numpy"}
    return names.get(type(predictor).__name__, type(predictor).__name__)


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
        415, f"{upload.filename or 'file'}: unsupported type {shown!r}; accepted: {_ACCEPTED}"
    )


def create_app(model: str | Path, backend: str = "auto", max_upload_mb: float = 20.0) -> FastAPI:
    """Build the service for one model, loaded here, once.

    Args:
        model: Bundle folder, or a baseline name such as "otsu".
        backend: "auto", "torch" or "onnx" (see `seglab.inference.loading.load_predictor`).
        max_upload_mb: Largest accepted upload, in MiB (2**20 bytes).

    Returns:
        The FastAPI app; serve it with uvicorn (`run`) or test it with `TestClient`.

    Raises:
        SeglabError: The model cannot be loaded, is not a segmentation model, or the upload
            limit is not positive; raised before anything is served.
    """
    if not max_upload_mb > 0:
        raise ConfigError(f"max_upload_mb must be > 0, got {max_upload_mb}")
    # From its metadata alone: a classification bundle is refused before any weights load.
    if Path(model).is_dir() and kind_of(read_metadata(model)).classification:
        raise ConfigError(f"{model}: a classification model; serve serves segmentation models")
    predictor = load_predictor(model, backend=backend)
    metadata = predictor.metadata
    segmenter = _Segmenter(predictor)
    limit = int(max_upload_mb * 2**20)
    # Everything but the training configuration, which is long and says nothing to a client.
    info = {key: value for key, value in metadata.items() if key != "config"}
    info["backend"] = _backend_name(predictor)
    page = files("seglab.web").joinpath("index.html").read_text(encoding="utf-8")
    logger.info("serving %s (%s backend)", metadata["model"]["name"], info["backend"])

    app = FastAPI(title="seglab", summary=f"Segmentation with {metadata['model']['name']}")

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def index() -> HTMLResponse:
        return HTMLResponse(page)

    @app.get("/health")
    async def health() -> dict[str, str]:
        """Liveness: the model is loaded and the server answers."""
        return {"status": "ok"}

    @app.get("/model")
    async def model_info() -> dict[str, Any]:
        """The bundle's metadata (without its training config) and the inference backend."""
        return info

    @app.post("/predict", openapi_extra=_UPLOAD_DOC, responses=_PNG_DOC)
    async def predict(
        request: Request,
        fmt: Annotated[
            str | None,
            Query(alias="format", description="png (0/255 mask, default), json or overlay"),
        ] = None,
    ) -> Response:
        """Segment one image sent as multipart field `file` (`format` may be a form field too).

        Answers the mask as a 0/255 PNG, a JSON summary or an overlay PNG, with the model's
        time in the header `X-Inference-Ms`. Errors: 400 no file, empty or corrupt image,
        unknown format; 413 upload or image too large; 415 not a PNG, JPEG or TIFF.
        """
        form = await _read_form(request, limit)
        try:
            field = form.get("format")
            fmt = fmt or (field if isinstance(field, str) else None) or "png"
            if fmt not in FORMATS:
                raise HTTPException(400, f"unknown format {fmt!r}; valid: {', '.join(FORMATS)}")
            upload = _get_upload(form)
            data = await upload.read(limit + 1)  # never more than needed to see it is too large
            name = upload.filename or "upload"
        finally:
            await form.close()
        if len(data) > limit:
            raise HTTPException(413, f"{name}: larger than the limit of {limit:,} bytes")
        try:
            result, milliseconds = await run_in_threadpool(segmenter, data, name, fmt)
        except ImageTooLargeError as exc:
            raise HTTPException(413, _detail(exc)) from None
        except DataError as exc:
            raise HTTPException(400, _detail(exc)) from None
        headers = {"X-Inference-Ms": f"{milliseconds:.3f}"}
        if isinstance(result, dict):
            return JSONResponse(result, headers=headers)
        return Response(result, media_type="image/png", headers=headers)

    return app


def app_from_env() -> FastAPI:
    """`create_app` from the environment variables `run` sets, for uvicorn's worker processes."""
    model = os.environ.get(ENV_MODEL)
    if not model:
        raise ConfigError(f"{ENV_MODEL} is not set; start the server with `seglab serve --model`")
    backend = os.environ.get(ENV_BACKEND, "auto")
    return create_app(model, backend, float(os.environ.get(ENV_MAX_UPLOAD_MB, "20")))


def run(
    model: str | Path,
    host: str = "127.0.0.1",
    port: int = 8000,
    workers: int = 1,
    backend: str = "auto",
    max_upload_mb: float = 20.0,
) -> None:
    """Serve a model with uvicorn until interrupted.

    Args:
        model: Bundle folder, or a baseline name such as "otsu".
        host: Address to listen on; the default accepts local connections only.
        port: TCP port.
        workers: Server processes, each with its own copy of the model.
        backend: "auto", "torch" or "onnx".
        max_upload_mb: Largest accepted upload, in MiB.

    Raises:
        SeglabError: Bad model or settings, before anything is served.
    """
    import uvicorn  # imported here: building and testing the app does not need it

    if workers < 1:
        raise ConfigError(f"workers must be >= 1, got {workers}")
    app = create_app(model, backend, max_upload_mb)  # fails here, not in every worker
    if workers == 1:
        uvicorn.run(app, host=host, port=port)
        return
    del app  # uvicorn's workers are fresh processes that load the model from the environment
    os.environ.update(
        {ENV_MODEL: str(model), ENV_BACKEND: backend, ENV_MAX_UPLOAD_MB: str(max_upload_mb)}
    )
    uvicorn.run(
        "seglab.deploy.serve:app_from_env", factory=True, host=host, port=port, workers=workers
    )
