"""Images larger than memory, predicted lazily: read a band of tile rows, predict, write it.

The image is opened with `seglab.data.lazy_io` (TIFF / OME-TIFF, zarr / OME-Zarr) and read one
band of tile rows at a time. Each band gets the bundle's pre-processing, the model's `forward`
and the Gaussian blending of `sliding_window_predict` (the same `tile_boxes` and
`gaussian_weights`, summed in the same order, so the result equals the in-memory one). Rows
that no later tile touches are finished, thresholded and written into a tiled, compressed
BigTIFF or a zarr array. Memory is a few `tile x width` bands, never the whole image.

"percentile" normalisation needs the percentiles of the whole image: they are computed once
from a strided subsample (every s-th row and column, about `PERCENTILE_SAMPLES` pixels; every
pixel of a smaller image), and the same low/high then stretches every tile.

Nothing here imports torch, so the ONNX Runtime backend can use it.

Example:
    >>> predict_large(predictor, "slide.ome.tif", "pred/slide_mask.tif")  # doctest: +SKIP
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from seglab.data.lazy_io import (
    BandWriter,
    LazyImage,
    declared_pixels,
    is_zarr,
    open_band_writer,
    open_lazy,
)
from seglab.data.pixel_limits import pixel_limit
from seglab.data.transforms import match_channels, normalize_image, stretch
from seglab.data.views import make_views
from seglab.errors import ConfigError, DataError
from seglab.inference.base import DEFAULT_TILE, BasePredictor
from seglab.inference.sliding_window import flip_tta, gaussian_weights, tile_boxes

__all__ = [
    "LargePrediction",
    "band_preprocessor",
    "needs_lazy",
    "percentile_bounds",
    "predict_large",
    "tile_progress",
]

# About a million pixels pin the 1st/99th percentiles to ~0.01 percentile rank, in 4 MB.
PERCENTILE_SAMPLES = 1 << 20
# Views computed pixel by pixel; CLAHE and gradients depend on the whole image.
POINTWISE_VIEWS = ("raw", "invert")

# Columns pre-processed at once.
_COLUMNS = 2048

Box = tuple[slice, ...]
ProgressFn = Callable[[int, int], None]


def needs_lazy(path: Path, above_megapixels: float | None) -> bool:
    """Whether `path` goes through `predict_large`: a zarr folder, or a TIFF of more than
    `above_megapixels` million pixels (None: zarr folders only)."""
    if is_zarr(path):
        return True
    if above_megapixels is None or path.suffix.lower() not in (".tif", ".tiff"):
        return False
    return declared_pixels(path) > above_megapixels * 1e6


def percentile_bounds(
    image: LazyImage,
    channels: int,
    percentiles: tuple[float, float],
    max_samples: int = PERCENTILE_SAMPLES,
) -> tuple[Any, Any]:
    """The (low, high) percentiles of an image, from every s-th row and column.

    `s` is the smallest stride leaving at most `max_samples` pixels (1 for smaller images, so
    they get exactly the percentiles of `normalize_image`). Rows are read in bands.

    Returns:
        float64 values as `np.percentile` gives them, of the image matched to `channels`.
    """
    stride = max(1, math.ceil(math.sqrt(image.height * image.width / max_samples)))
    # Bands of at most 16 M pixels, and no more than a read may decode at once.
    per_read = max(1, min(1 << 24, pixel_limit()) // image.width) * stride
    parts = []
    for top in range(0, image.height, per_read):
        rows = image.read_rows(slice(top, min(top + per_read, image.height), stride))
        parts.append(match_channels(rows[:, ::stride], channels).astype(np.float32))
    low, high = np.percentile(np.concatenate(parts), percentiles)
    return low, high


def band_preprocessor(
    predictor: BasePredictor, image: LazyImage
) -> Callable[[np.ndarray], np.ndarray]:
    """A function from raw rows (h, W, C) to model input (C', h, W), as `predictor.preprocess`.

    Raises:
        ConfigError: The bundle resizes images or uses a view that needs the whole image.
        DataError: The image's channels cannot be matched to the model's.
    """
    views = list(predictor.views)
    whole = [v for v in views if v not in POINTWISE_VIEWS]
    if whole or predictor.input_size is not None:
        raise ConfigError(
            f"the model's pre-processing (views {views}, input size {predictor.input_size}) "
            f"needs the whole image; lazy prediction supports views {list(POINTWISE_VIEWS)} "
            "without resizing"
        )
    have, want = image.channels, predictor.channels
    if have != want and 1 not in (have, want):
        raise DataError(image.path, f"has {have} channels; the model takes {want}")
    bounds = None
    if predictor.normalize == "percentile":
        bounds = percentile_bounds(image, want, predictor.percentiles)

    def preprocess(rows: np.ndarray) -> np.ndarray:
        data = match_channels(rows, want)
        if bounds is None:
            data = normalize_image(data, predictor.normalize)
        else:
            data = stretch(data, bounds)
        return make_views(data, views).transpose(2, 0, 1)

    return preprocess


class _InputBands:
    """Pre-processed input bands of tile rows, read when a tile first needs one and dropped
    once the tiles have moved below it."""

    def __init__(
        self, image: LazyImage, preprocess: Callable[[np.ndarray], np.ndarray], width: int
    ) -> None:
        self.image, self.preprocess, self.width = image, preprocess, width
        self.bands: dict[int, np.ndarray] = {}

    def tile(self, box: Box) -> np.ndarray:
        rows, cols = box
        if rows.start not in self.bands:
            self.bands = {top: b for top, b in self.bands.items() if top >= rows.start}
            self.bands[rows.start] = self._read(rows)
        return self.bands[rows.start][:, :, cols]

    def _read(self, rows: slice) -> np.ndarray:
        raw = self.image.read_rows(slice(rows.start, min(rows.stop, self.image.height)))
        # In blocks of columns, so that float64 intermediates ("percentile") stay small.
        first = self.preprocess(raw[:, :_COLUMNS])
        data = np.empty((len(first), *raw.shape[:2]), dtype=np.float32)
        data[:, :, :_COLUMNS] = first
        for left in range(_COLUMNS, raw.shape[1], _COLUMNS):
            data[:, :, left : left + _COLUMNS] = self.preprocess(raw[:, left : left + _COLUMNS])
        pad_rows = rows.stop - rows.start - data.shape[1]
        pad_cols = self.width - data.shape[2]
        if pad_rows or pad_cols:
            # Reflected, never zeros: zeros on a bright-field background read as objects.
            data = np.pad(data, ((0, 0), (0, pad_rows), (0, pad_cols)), mode="reflect")
        return np.ascontiguousarray(data, dtype=np.float32)


class _RowBlender:
    """Weighted sums of tile predictions for the `tile` rows still receiving tiles."""

    def __init__(self, num_outputs: int, tile: tuple[int, int], width: int) -> None:
        self.weights = gaussian_weights(tile)
        self.sums = np.zeros((num_outputs, tile[0], width), dtype=np.float32)
        self.weight_sum = np.zeros((tile[0], width), dtype=np.float32)
        self.top = 0  # the image row of buffer row 0

    def add(self, box: Box, output: np.ndarray) -> None:
        rows = slice(box[0].start - self.top, box[0].stop - self.top)
        self.sums[:, rows, box[1]] += output * self.weights
        self.weight_sum[rows, box[1]] += self.weights

    def finish(self, until: int) -> np.ndarray:
        """Blended (K, n, width) rows `top..until`, which no later tile reaches; frees them."""
        n = until - self.top
        done = self.sums[:, :n] / self.weight_sum[:n]
        for buffer in (self.sums[:], self.weight_sum[None]):
            buffer[:, : buffer.shape[1] - n] = buffer[:, n:]
            buffer[:, buffer.shape[1] - n :] = 0
        self.top = until
        return done


def _tile_predictions(
    boxes: list[Box],
    tile_of: Callable[[Box], np.ndarray],
    forward: Callable[[np.ndarray], np.ndarray],
    batch_size: int,
    progress: ProgressFn | None,
) -> Iterator[tuple[Box, np.ndarray]]:
    """(box, (K, *tile) prediction) in box order, `batch_size` tiles per `forward` call."""
    batch: np.ndarray | None = None
    for first in range(0, len(boxes), batch_size):
        chunk = boxes[first : first + batch_size]
        for j, box in enumerate(chunk):
            data = tile_of(box)
            if batch is None:
                batch = np.empty((batch_size, *data.shape), dtype=np.float32)
            batch[j] = data
        assert batch is not None  # chunk is never empty
        output = np.asarray(forward(batch[: len(chunk)]), dtype=np.float32)
        if output.ndim != 4 or output.shape[0] != len(chunk) or output.shape[2:] != batch.shape[2:]:
            raise ValueError(f"forward returned {output.shape} for a batch of {batch.shape}")
        yield from zip(chunk, output)
        if progress is not None:
            progress(first + len(chunk), len(boxes))


@dataclass
class LargePrediction:
    """What `predict_large` wrote: the mask (and probabilities), of an image of `shape`."""

    mask: Path
    probabilities: Path | None
    shape: tuple[int, int]
    foreground_fraction: float


def predict_large(
    predictor: BasePredictor,
    source_path: str | Path,
    out_path: str | Path,
    probabilities_path: str | Path | None = None,
    progress: ProgressFn | None = None,
) -> LargePrediction:
    """Predict an image larger than memory tile by tile and write its mask band by band.

    Tiles are `predictor.tile` (rounded up to a multiple of 16) with `predictor.overlap`,
    blended with Gaussian weights; an image narrower than a tile is reflected up to it.

    Args:
        predictor: A network predictor (torch or ONNX Runtime), with its pre-processing,
            `forward`, `threshold`, `batch_size` and `tta`.
        source_path: A TIFF / OME-TIFF file or a zarr / OME-Zarr folder.
        out_path: The mask: a tiled BigTIFF (0/255 for binary models, class indices for
            multi-class ones), or a zarr array when it ends in `.zarr`.
        probabilities_path: Also write probabilities × 255 (uint8) here, TIFF or zarr (the
            winning class's probability for multi-class models).
        progress: Called as `progress(tiles_done, tiles_total)` after each batch.

    Raises:
        DataError: The image cannot be read (see `open_lazy`).
        ConfigError: Not a network predictor, or a pre-processing that needs the whole image.
    """
    if not isinstance(predictor, BasePredictor):
        raise ConfigError(
            f"{type(predictor).__name__} predicts whole images only; lazy prediction needs a "
            "network bundle (or raise --lazy-above to predict in memory)"
        )
    with open_lazy(source_path) as image, ExitStack() as outputs:
        preprocess = band_preprocessor(predictor, image)
        side = -(-int(predictor.tile or DEFAULT_TILE) // 16) * 16
        shape = (image.height, image.width)
        padded = (max(shape[0], side), max(shape[1], side))
        boxes = tile_boxes(padded, (side, side), predictor.overlap)
        sinks = [outputs.enter_context(open_band_writer(Path(out_path), shape, np.uint8))]
        if probabilities_path is not None:
            sinks.append(
                outputs.enter_context(open_band_writer(Path(probabilities_path), shape, np.uint8))
            )
        forward = flip_tta(predictor.forward, 2) if predictor.tta else predictor.forward
        bands = _InputBands(image, preprocess, padded[1])
        tiles = _tile_predictions(boxes, bands.tile, forward, predictor.batch_size, progress)
        blender: _RowBlender | None = None
        foreground = 0
        for box, output in tiles:
            if blender is None:
                blender = _RowBlender(len(output), (side, side), padded[1])
            if box[0].start > blender.top:
                foreground += _emit(predictor, blender, box[0].start, shape, sinks)
            blender.add(box, output)
        assert blender is not None  # there is always a tile
        foreground += _emit(predictor, blender, padded[0], shape, sinks)
    written = Path(probabilities_path) if probabilities_path is not None else None
    return LargePrediction(Path(out_path), written, shape, foreground / (shape[0] * shape[1]))


def _emit(
    predictor: BasePredictor,
    blender: _RowBlender,
    until: int,
    shape: tuple[int, int],
    sinks: list[BandWriter],
) -> int:
    """Finish rows up to `until`, write the mask (and probabilities); their foreground count."""
    top = blender.top
    channels = blender.finish(until)[:, : max(0, min(until, shape[0]) - top), : shape[1]]
    if predictor.kind.multiclass:
        mask = channels.argmax(0).astype(np.uint8)
        best = channels.max(0)
    else:
        best = channels[0]
        # Compared in float64, as base.py does (the threshold was tuned so).
        mask = (best >= np.float64(predictor.threshold)).astype(np.uint8) * 255
    sinks[0].write(mask)
    if len(sinks) > 1:
        sinks[1].write(np.round(best * 255).astype(np.uint8))
    return int(np.count_nonzero(mask))


@contextmanager
def tile_progress(description: str) -> Iterator[ProgressFn]:
    """A rich progress bar over tiles, as a `progress(done, total)` function."""
    from rich.progress import Progress

    with Progress(transient=False) as bar:
        task = bar.add_task(description, total=None)

        def update(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        yield update
