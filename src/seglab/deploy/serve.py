"""HTTP service around one segmentation model: a web page at `/`, `POST /predict`, `/health`,
`/model` and the OpenAPI docs at `/docs`.

`create_app` loads the model once and returns a FastAPI app; `run` serves it with uvicorn.
Bad uploads get a 4xx with a JSON ``{"detail": "..."}`` naming the problem, never a 500:
400 (no file, empty or corrupt image, unknown format or threshold), 413 (too large), 415 (not
an image type), 503 (inference past the time limit; see `seglab.deploy.limits`).

Example:
    $ seglab serve --model runs/nuclei/model
    $ curl -F file=@cells.png "http://127.0.0.1:8000/predict?format=json"
    $ curl -F file=@cells.png -F threshold=0.4 -F format=labels -o labels.png \\
        http://127.0.0.1:8000/predict
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from importlib.resources import files
from pathlib import Path
from typing import Annotated, Any

from fastapi import FastAPI, HTTPException, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, JSONResponse, Response

from seglab.bundle import read_metadata
from seglab.deploy.answers import Segmenter, media_type
from seglab.deploy.limits import ServeLimits
from seglab.deploy.uploads import (
    ACCEPTED,
    FORMATS,
    IMAGE_TYPES,
    MAX_PIXELS,
    ImageTooLargeError,
    Upload,
    decode_image,
    read_upload,
)
from seglab.errors import ConfigError, DataError, InferenceStoppedError, SeglabError
from seglab.inference.loading import load_predictor
from seglab.kinds import kind_of

__all__ = [
    "ENV_BACKEND",
    "ENV_MODEL",
    "FORMATS",
    "IMAGE_TYPES",
    "MAX_PIXELS",
    "ImageTooLargeError",
    "ServeLimits",
    "app_from_env",
    "create_app",
    "decode_image",
    "run",
    "watch_disconnect",
]

logger = logging.getLogger(__name__)

ENV_MODEL = "SEGLAB_SERVE_MODEL"
ENV_BACKEND = "SEGLAB_SERVE_BACKEND"
_FIELDS = {
    "file": {"type": "string", "format": "binary", "description": ACCEPTED},
    "format": {"type": "string", "enum": list(FORMATS), "default": "png"},
    "threshold": {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1},
}
_FORM = {"type": "object", "required": ["file"], "properties": _FIELDS}
_UPLOAD_DOC = {
    "requestBody": {"required": True, "content": {"multipart/form-data": {"schema": _FORM}}}
}
_PNG_DOC: dict[int | str, dict[str, Any]] = {
    200: {"content": {"image/png": {}, "image/tiff": {}, "application/json": {}}}
}
_FORMAT_HELP = (
    "png (mask, default), json (summary), overlay, probabilities (8-bit grey), labels "
    "(instances, 16-bit PNG) or full (summary with every image as a data: URL)"
)
_THRESHOLD_HELP = "binary models: cut the probabilities here instead, 0 < threshold < 1"


def _detail(exc: DataError) -> str:
    return f"{exc.path.name}: {exc.problem}" + (f"; {exc.hint}" if exc.hint else "")


def _backend_name(predictor: Any) -> str:
    names = {"Predictor": "torch", "OnnxPredictor": "onnx", "OtsuBaseline": "numpy"}
    return names.get(type(predictor).__name__, type(predictor).__name__)


def create_app(
    model: str | Path, backend: str = "auto", limits: ServeLimits | None = None
) -> FastAPI:
    """Build the service for one model, loaded here, once.

    Args:
        model: Bundle folder, or a baseline name such as "otsu".
        backend: "auto", "torch" or "onnx" (see `seglab.inference.loading.load_predictor`).
        limits: What one request may cost; None: the defaults of `ServeLimits`.

    Returns:
        The FastAPI app; serve it with uvicorn (`run`) or test it with `TestClient`.

    Raises:
        SeglabError: The model cannot be loaded or is not a segmentation model (before
            anything is served).
    """
    limits = limits or ServeLimits()
    predictor = _load_segmentation_model(model, backend)
    name = predictor.metadata["model"]["name"]
    segmenter = Segmenter(predictor, limits.max_pixels)
    info = _model_info(predictor)
    page = files("seglab.web").joinpath("index.html").read_text(encoding="utf-8")
    logger.info("serving %s (%s backend)", name, info["backend"])
    app = FastAPI(title="seglab", summary=f"Segmentation with {name}")

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
        fmt: Annotated[str | None, Query(alias="format", description=_FORMAT_HELP)] = None,
        threshold: Annotated[str | None, Query(description=_THRESHOLD_HELP)] = None,
    ) -> Response:
        """Segment one image sent as multipart field `file` (`format`, `threshold` may be
        form fields too); `threshold` replaces a binary model's tuned one.

        Answers in `format` (`seglab.deploy.answers`), with the model's time in the header
        `X-Inference-Ms`. Errors: 400 no file, empty or corrupt image, unknown format or
        threshold, or one the model lacks; 413 upload or image too large; 415 not a PNG, JPEG
        or TIFF; 503 inference longer than the server's limit.
        """
        upload = await read_upload(request, fmt, threshold, limits.upload_bytes)
        segmenter.check(upload)
        return await _segment(segmenter, request, upload, limits.max_seconds)

    return app


def _load_segmentation_model(model: str | Path, backend: str) -> Any:
    """The model's predictor; a classification bundle is refused from its metadata alone,
    before any weights load."""
    from seglab.pretrained import bundle_path

    if bundle_path(model).is_dir() and kind_of(read_metadata(bundle_path(model))).classification:
        raise ConfigError(f"{model}: a classification model; serve serves segmentation models")
    return load_predictor(model, backend=backend)


def _model_info(predictor: Any) -> dict[str, Any]:
    """What `GET /model` answers: the metadata without the training configuration (long, and
    saying nothing to a client), and the inference backend."""
    info = {key: value for key, value in predictor.metadata.items() if key != "config"}
    info["backend"] = _backend_name(predictor)
    return info


async def _segment(
    segmenter: Segmenter, request: Request, upload: Upload, max_seconds: float
) -> Response:
    """The answer to one upload, or a 4xx/503 naming the problem.

    Inference stops between batches of tiles once `max_seconds` have passed since the upload
    was read or the client has gone, so no request holds the model for longer than that.
    """
    gone = threading.Event()
    deadline = time.monotonic() + max_seconds

    def stop() -> str | None:
        if gone.is_set():
            return "the client went away"
        if time.monotonic() > deadline:
            return f"it took longer than the server's limit of {max_seconds:g} s (--max-seconds)"
        return None

    watcher = asyncio.create_task(watch_disconnect(request, gone))
    try:
        result, milliseconds = await run_in_threadpool(segmenter, *upload, stop)
    except ImageTooLargeError as exc:
        raise HTTPException(413, _detail(exc)) from None
    except DataError as exc:
        raise HTTPException(400, _detail(exc)) from None
    except InferenceStoppedError as exc:
        logger.warning("%s: %s", upload.filename, exc)
        raise HTTPException(503, f"{upload.filename}: {exc}; send a smaller image") from None
    except SeglabError as exc:  # an image the model cannot take, such as one 2 pixels wide
        raise HTTPException(400, f"{upload.filename}: {exc}") from None
    finally:
        watcher.cancel()
    headers = {"X-Inference-Ms": f"{milliseconds:.3f}"}
    if isinstance(result, dict):
        return JSONResponse(result, headers=headers)
    return Response(result, media_type=media_type(result), headers=headers)


async def watch_disconnect(request: Request, gone: threading.Event) -> None:
    """Set `gone` once the client has disconnected (polled four times a second)."""
    while not await request.is_disconnected():
        await asyncio.sleep(0.25)
    gone.set()


def app_from_env() -> FastAPI:
    """`create_app` from the environment variables `run` sets, for uvicorn's worker processes."""
    model = os.environ.get(ENV_MODEL)
    if not model:
        raise ConfigError(f"{ENV_MODEL} is not set; start the server with `seglab serve --model`")
    backend = os.environ.get(ENV_BACKEND, "auto")
    return create_app(model, backend, ServeLimits.from_env())


def run(
    model: str | Path,
    host: str = "127.0.0.1",
    port: int = 8000,
    workers: int = 1,
    backend: str = "auto",
    limits: ServeLimits | None = None,
) -> None:
    """Serve a model with uvicorn until interrupted.

    Args:
        model: Bundle folder, or a baseline name such as "otsu".
        host: Address to listen on; the default accepts local connections only.
        port: TCP port.
        workers: Server processes, each with its own copy of the model.
        backend: "auto", "torch" or "onnx".
        limits: What one request may cost; None: the defaults of `ServeLimits`.

    Raises:
        SeglabError: Bad model or settings, before anything is served.
    """
    import uvicorn  # imported here: building and testing the app does not need it

    if workers < 1:
        raise ConfigError(f"workers must be >= 1, got {workers}")
    limits = limits or ServeLimits()
    app = create_app(model, backend, limits)  # fails here, not in every worker
    if workers == 1:
        uvicorn.run(app, host=host, port=port)
        return
    del app  # uvicorn's workers are fresh processes that load the model from the environment
    os.environ.update({ENV_MODEL: str(model), ENV_BACKEND: backend, **limits.to_env()})
    uvicorn.run(
        "seglab.deploy.serve:app_from_env", factory=True, host=host, port=port, workers=workers
    )
