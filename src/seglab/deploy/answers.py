"""What `POST /predict` answers: one model's prediction in the format a client asked for.

Formats (`seglab.deploy.uploads.FORMATS`):

- ``png``: the mask, 0/255 grey (binary) or in the class palette (multi-class).
- ``overlay``: the mask tinted and outlined over the image (RGB PNG).
- ``probabilities``: binary models, the foreground probability as 8-bit grey PNG; a pixel
  of value v has a probability within 1/510 of v / 255.
- ``labels``: models that separate instances, one label per object (0 is background) as a
  16-bit grey PNG; a 32-bit TIFF past 65,535 objects, which PNG cannot number.
- ``json``: a summary: size, foreground fraction, threshold, instance count and RLE (or the
  class fractions of a multi-class model).
- ``full``: the summary plus, under ``images``, every picture the web page shows as a
  ``data:`` URL: ``image`` (the upload as displayed, RGB), ``mask``, ``probabilities`` and
  ``labels`` (each where the model has them).
"""

from __future__ import annotations

import base64
import io
import threading
import time
from typing import Any

import numpy as np
import tifffile
from fastapi import HTTPException

from seglab.baseline import BASELINES
from seglab.deploy.limits import release_memory
from seglab.deploy.uploads import Upload, decode_image
from seglab.inference.sliding_window import StopCheck
from seglab.png import encode_png
from seglab.rle import labels_to_rles
from seglab.viz import mask_overlay, to_display

__all__ = ["Answer", "Segmenter", "labels_file", "media_type", "probability_image"]

Answer = tuple[bytes | dict[str, Any], float]
# Requests of at least this many pixels give their memory back afterwards; smaller ones are
# left to the allocator, which reuses it at once.
_LARGE_PIXELS = 1024 * 1024
_TIFF_MAGIC = (b"II*\x00", b"MM\x00*")


def media_type(content: bytes) -> str:
    """The media type of an encoded answer: ``image/tiff`` or ``image/png``."""
    return "image/tiff" if content[:4] in _TIFF_MAGIC else "image/png"


def _data_url(content: bytes) -> str:
    return f"data:{media_type(content)};base64,{base64.b64encode(content).decode('ascii')}"


def probability_image(probabilities: np.ndarray) -> np.ndarray:
    """Foreground probabilities (H, W) float -> (H, W) uint8, ``round(255 * p)``."""
    return np.rint(np.clip(probabilities, 0.0, 1.0) * 255).astype(np.uint8)


def labels_file(labels: np.ndarray) -> bytes:
    """Instance labels (H, W) as a 16-bit grey PNG, or a zlib-compressed uint32 TIFF when a
    label exceeds 65,535.

    Example:
        >>> labels_file(np.array([[0, 1], [2, 2]]))[:4]
        b'\\x89PNG'
    """
    if labels.max(initial=0) <= np.iinfo(np.uint16).max:
        return encode_png(labels.astype(np.uint16))
    buffer = io.BytesIO()
    tifffile.imwrite(buffer, labels.astype(np.uint32), compression="zlib")
    return buffer.getvalue()


class Segmenter:
    """The predictor behind a lock, and the encodings of its output."""

    def __init__(self, predictor: Any, max_pixels: int) -> None:
        self.predictor = predictor
        self.max_pixels = max_pixels
        self.multiclass = bool(predictor.kind.multiclass)
        metadata = predictor.metadata
        self.instances = not self.multiclass and (
            metadata["model"]["name"] in BASELINES or bool(metadata.get("instances"))
        )
        # One inference at a time: torch already uses every core, so parallel calls would only
        # split them and multiply the peak memory; decoding and encoding still overlap.
        self.lock = threading.Lock()

    def check(self, upload: Upload) -> None:
        """Refuse with a 400, before any decoding or inference, what this model cannot answer."""
        if self.multiclass and upload.threshold is not None:
            raise HTTPException(400, "threshold applies to binary models; this one is multi-class")
        if self.multiclass and upload.fmt == "probabilities":
            raise HTTPException(
                400, "format 'probabilities' applies to binary models; this one is multi-class"
            )
        if upload.fmt == "labels" and not self.instances:
            raise HTTPException(
                400,
                "format 'labels' needs a model that separates instances; this bundle has no "
                "'instances' settings",
            )

    def __call__(
        self, data: bytes, filename: str, fmt: str, threshold: float | None, stop: StopCheck
    ) -> Answer:
        """The answer to one upload in `fmt`, and the model's time in ms; large or failed
        requests give their memory back (`release_memory`)."""
        pixels, failed = 0, True
        try:
            image = decode_image(data, filename, self.max_pixels)
            pixels = image.shape[0] * image.shape[1]
            answer = self._answer(image, fmt, threshold, stop)
            failed = False
            return answer
        finally:
            if failed or pixels >= _LARGE_PIXELS:
                release_memory()

    def _answer(
        self, image: np.ndarray, fmt: str, threshold: float | None, stop: StopCheck
    ) -> Answer:
        instances = self.instances and fmt in ("json", "labels", "full")
        with self.lock:
            start = time.perf_counter()
            prediction = self.predictor.predict(
                image, threshold=threshold, instances=instances, stop=stop
            )
            milliseconds = (time.perf_counter() - start) * 1e3
        if self.multiclass:
            return self._classes(image, prediction.mask, fmt, milliseconds), milliseconds
        return self._binary(image, prediction, fmt, threshold, milliseconds), milliseconds

    def _binary(
        self,
        image: np.ndarray,
        prediction: Any,
        fmt: str,
        threshold: float | None,
        milliseconds: float,
    ) -> bytes | dict[str, Any]:
        mask = prediction.mask
        labels: np.ndarray | None = prediction.instances if self.instances else None
        encoders = {
            "mask": lambda: encode_png(mask.astype(np.uint8) * 255),
            "probabilities": lambda: encode_png(probability_image(prediction.probabilities)),
            "labels": lambda: labels_file(np.asarray(labels)),
        }
        picture = "mask" if fmt == "png" else fmt
        if picture in encoders:
            return encoders[picture]()
        if fmt == "overlay":
            return encode_png(mask_overlay(image, mask))
        summary: dict[str, Any] = {
            "width": int(mask.shape[1]),
            "height": int(mask.shape[0]),
            "foreground_fraction": float(mask.mean()),
            "threshold": float(self.predictor.threshold if threshold is None else threshold),
            "inference_ms": round(milliseconds, 3),
        }
        if labels is not None:
            rles = labels_to_rles(labels)
            summary |= {"instances": len(rles), "rle": rles}
        if fmt == "full":
            shown = ["mask", "probabilities"] + (["labels"] if labels is not None else [])
            images = {name: _data_url(encoders[name]()) for name in shown}
            summary["images"] = {"image": _data_url(encode_png(to_display(image)))} | images
        return summary

    def _classes(
        self, image: np.ndarray, mask: np.ndarray, fmt: str, milliseconds: float
    ) -> bytes | dict[str, Any]:
        """A multi-class answer: the palette-coloured classes, their overlay, or a summary."""
        from seglab.inference.files import class_overlay

        coloured = self.predictor.colour(mask)
        if fmt == "png":
            return encode_png(coloured)
        if fmt == "overlay":
            return encode_png(class_overlay(image, coloured))
        summary: dict[str, Any] = {
            "width": int(mask.shape[1]),
            "height": int(mask.shape[0]),
            "class_fractions": self.predictor.class_fractions(mask),
            "inference_ms": round(milliseconds, 3),
        }
        if fmt == "full":
            summary["images"] = {
                "image": _data_url(encode_png(to_display(image))),
                "mask": _data_url(encode_png(coloured)),
            }
        return summary
