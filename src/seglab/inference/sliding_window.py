"""Sliding-window inference: predict an image of any size with a model trained on fixed tiles.

Pure NumPy helpers in the manner of nnU-Net's `compute_steps_for_sliding_window` and
`compute_gaussian`, and one driver, `sliding_window_predict`, around a user-given `forward`
(torch, ONNX Runtime, anything). Nothing here imports torch, so the ONNX Runtime path can use it.
Works for 2D `(C, H, W)` and 3D `(C, D, H, W)` images alike (any number of spatial axes).

Example:
    >>> image = np.random.rand(3, 1000, 700).astype(np.float32)
    >>> out = sliding_window_predict(image, lambda batch: batch[:, :1], tile=(256, 256))
    >>> out.shape
    (1, 1000, 700)
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable

import numpy as np

from seglab.data.transforms import reflect_pad
from seglab.errors import InferenceStoppedError

__all__ = [
    "StopCheck",
    "flip_tta",
    "gaussian_weights",
    "raise_if_stopped",
    "sliding_window_predict",
    "stopping_progress",
    "tile_boxes",
    "tile_starts",
]

Forward = Callable[[np.ndarray], np.ndarray]
# Asked between batches of tiles: None to go on, else why to stop ("the client went away").
StopCheck = Callable[[], str | None]


def tile_starts(size: int, tile: int, overlap: float = 0.5) -> list[int]:
    """Start offsets of tiles of length `tile` that cover `[0, size)`, evenly spread.

    As in nnU-Net: `n = ceil((size - tile) / step) + 1` tiles, the first at 0 and the last at
    `size - tile`, spaced by `(size - tile) / (n - 1)` and rounded to integers (half up). Unlike
    nnU-Net, `step = floor(tile * (1 - overlap))` (at least 1) is an integer, so that the rounded
    offsets never step further than asked: with size 10, tile 5, overlap 0.5, nnU-Net's
    `[0, 2, 5]` has a step of 3 > 2.5, while this gives `[0, 2, 3, 5]`.

    Args:
        size: Length of the axis, >= 1.
        tile: Length of a tile, >= 1.
        overlap: Fraction of a tile shared with its neighbour at least, in [0, 1).

    Returns:
        Increasing offsets; `[0]` when `size <= tile` (the caller pads or clips).

    Raises:
        ValueError: `size` or `tile` is < 1, or `overlap` is outside [0, 1).

    Example:
        >>> tile_starts(10, 4, 0.5)
        [0, 2, 4, 6]
    """
    if size < 1 or tile < 1:
        raise ValueError(f"size and tile must be >= 1, got size={size}, tile={tile}")
    if not 0 <= overlap < 1:
        raise ValueError(f"overlap must be in [0, 1), got {overlap}")
    if size <= tile:
        return [0]
    # 1e-9 absorbs float error such as 30 * (1 - 0.9) = 2.999999999999999, meant as 3.
    step = max(1, math.floor(tile * (1 - overlap) + 1e-9))
    span = size - tile
    gaps = -(-span // step)  # ceil, in integers
    # floor(i * span / gaps + 1/2) in exact integer arithmetic: no float rounding surprises.
    return [(2 * i * span + gaps) // (2 * gaps) for i in range(gaps + 1)]


def gaussian_weights(tile: tuple[int, ...], sigma_scale: float = 1 / 8) -> np.ndarray:
    """Gaussian importance map that down-weights tile borders, where a model sees less context.

    Centred on the tile's true centre `(tile - 1) / 2`, so that the map is symmetric under
    flips (nnU-Net centres on `tile // 2`, one pixel off for even tiles).

    Args:
        tile: Tile shape, e.g. `(512, 512)` or `(64, 64, 64)`.
        sigma_scale: Standard deviation per axis as a fraction of the tile's length, > 0.

    Returns:
        float32 map of shape `tile`, maximum 1; values that underflow to 0 (far corners with a
        small `sigma_scale`) are raised to the smallest non-zero value, so that no pixel gets a
        total weight of 0 and `sliding_window_predict` never divides by 0.

    Raises:
        ValueError: A tile length is < 1 or `sigma_scale` is <= 0.
    """
    if not tile or min(tile) < 1:
        raise ValueError(f"tile lengths must be >= 1, got {tile}")
    if sigma_scale <= 0:
        raise ValueError(f"sigma_scale must be > 0, got {sigma_scale}")
    weights = np.ones((), dtype=np.float64)
    # The Gaussian is separable: an outer product of 1D profiles, no convolution needed.
    for length in tile:
        x = np.arange(length, dtype=np.float64) - (length - 1) / 2
        profile = np.exp(-0.5 * (x / (length * sigma_scale)) ** 2)
        weights = np.multiply.outer(weights, profile)
    weights = (weights / weights.max()).astype(np.float32)
    if not weights.all():
        weights[weights == 0] = weights[weights > 0].min()
    return weights


def tile_boxes(
    shape: tuple[int, ...], tile: tuple[int, ...], overlap: float = 0.5
) -> list[tuple[slice, ...]]:
    """Boxes of all tiles: the cartesian product of `tile_starts` along each axis.

    Along an axis shorter than the tile, the box is clipped to the axis (`slice(0, size)`), so
    every box has the same shape, `min(tile, shape)` per axis. `sliding_window_predict` pads
    the image up to the tile first, so a model always gets exactly `tile` (as one exported with
    a fixed input shape needs); a model that accepts any size may use the clipped boxes directly.

    Args:
        shape: Spatial shape of the image, e.g. `(H, W)`.
        tile: Tile shape, as many axes as `shape`.
        overlap: Fraction of a tile shared with its neighbours at least, in [0, 1).

    Returns:
        Tuples of slices, one per spatial axis, in C order (the last axis varies fastest).

    Raises:
        ValueError: `shape` and `tile` differ in length, or as in `tile_starts`.
    """
    if len(shape) != len(tile):
        raise ValueError(f"shape {shape} and tile {tile} have different numbers of axes")
    per_axis = [
        [slice(start, start + min(t, s)) for start in tile_starts(s, t, overlap)]
        for s, t in zip(shape, tile)
    ]
    return list(itertools.product(*per_axis))


def sliding_window_predict(
    image: np.ndarray,
    forward: Forward,
    tile: tuple[int, ...],
    overlap: float = 0.5,
    batch_size: int = 4,
    num_outputs: int | None = None,
    gaussian: bool = True,
    progress: Callable[[int, int], None] | None = None,
) -> np.ndarray:
    """Predict an image tile by tile and blend the overlapping tiles with importance weights.

    A tile that sticks out past the end of an axis shorter than the tile is filled by reflecting
    the image (`reflect_pad`), so `forward` always gets tiles of exactly `tile` and never sees
    invented structure. The padding is written into the batch buffer only, never as a padded
    copy of the image. Predictions times weights and the weights are summed into two
    float32 accumulators of the (padded) image's size, so peak memory is the image, the
    accumulators and one batch of tiles, not all tiles at once.

    Args:
        image: float32 image, channels first (other dtypes are cast tile by tile).
        forward: Maps a batch `(B, C, *tile)` float32 to `(B, K, *tile)` predictions
            (probabilities or logits, averaged as they come). The batch is a buffer reused
            between calls: copy it to keep it.
        tile: Spatial tile shape, e.g. `(512, 512)` or `(64, 64, 64)`.
        overlap: Fraction of a tile shared with its neighbours at least, in [0, 1); 0.5 as in
            nnU-Net, so that every pixel is seen away from a tile border at least once.
        batch_size: Tiles per `forward` call, >= 1; the last batch may be smaller.
        num_outputs: K; None takes it from the first batch's output.
        gaussian: Weight tiles with `gaussian_weights` (True) or uniformly (False).
        progress: Called as `progress(tiles_done, tiles_total)` after each batch.

    Raises:
        ValueError: The image's axes do not match `tile`, `batch_size` < 1, or `forward`
            returns a shape other than `(B, K, *tile)` (or a K other than `num_outputs`).

    Shape:
        - image: `(C, *spatial)`, e.g. `(C, H, W)` or `(C, D, H, W)`
        - Output: `(K, *spatial)` float32 blended predictions
    """
    tile = tuple(int(t) for t in tile)
    _check_arguments(image, tile, batch_size, num_outputs)
    spatial = image.shape[1:]
    padded = tuple(max(s, t) for s, t in zip(spatial, tile))
    boxes = tile_boxes(padded, tile, overlap)
    weights = gaussian_weights(tile) if gaussian else np.ones(tile, dtype=np.float32)
    blend = _Blend(padded, weights, num_outputs)
    batch = np.empty((batch_size, image.shape[0], *tile), dtype=np.float32)
    for first in range(0, len(boxes), batch_size):
        chunk = boxes[first : first + batch_size]
        for j, box in enumerate(chunk):
            # The part of the box inside the image; the rest is reflected.
            inside = tuple(slice(b.start, min(b.stop, s)) for b, s in zip(box, spatial))
            batch[j] = reflect_pad(image[(slice(None), *inside)], tile)
        blend.add(chunk, forward(batch[: len(chunk)]), batch[: len(chunk)].shape)
        if progress is not None:
            progress(first + len(chunk), len(boxes))
    return blend.result(spatial)


def _check_arguments(
    image: np.ndarray, tile: tuple[int, ...], batch_size: int, num_outputs: int | None
) -> None:
    if image.ndim != len(tile) + 1:
        raise ValueError(
            f"image of shape {image.shape} does not match tile {tile}: expected (C, *spatial) "
            f"with {len(tile)} spatial axes"
        )
    if batch_size < 1 or (num_outputs is not None and num_outputs < 1):
        raise ValueError(
            f"batch_size and num_outputs must be >= 1, got {batch_size}, {num_outputs}"
        )


class _Blend:
    """Sums of weighted tile predictions, and of the weights, over the padded image."""

    def __init__(
        self, padded: tuple[int, ...], weights: np.ndarray, num_outputs: int | None
    ) -> None:
        self.padded = padded
        self.weights = weights
        self.num_outputs = num_outputs
        self.predictions: np.ndarray | None = None  # (K, *padded), allocated once K is known
        # One channel only: the weights are the same for all K outputs.
        self.weight_sum = np.zeros(padded, dtype=np.float32)

    def add(self, boxes: list[tuple[slice, ...]], output: object, shape: tuple[int, ...]) -> None:
        """Adds `forward`'s `output` for the batch of `shape` holding the tiles of `boxes`."""
        output = np.asarray(output, dtype=np.float32)
        if self.predictions is None:
            # A malformed output gives a k of 0 or a wrong one, which the check below reports.
            k = self.num_outputs or (output.shape[1] if output.ndim > 1 else 0)
            self.predictions = np.zeros((k, *self.padded), dtype=np.float32)
        tile = self.weights.shape
        if output.shape != (len(boxes), self.predictions.shape[0], *tile):
            raise ValueError(
                f"forward returned shape {output.shape} for a batch of shape {shape}; "
                f"expected (B, K, *tile) with K = {self.predictions.shape[0]}"
            )
        for j, box in enumerate(boxes):
            self.predictions[(slice(None), *box)] += output[j] * self.weights
            self.weight_sum[box] += self.weights

    def result(self, spatial: tuple[int, ...]) -> np.ndarray:
        """The blended predictions, cropped to the image's `spatial` shape."""
        assert self.predictions is not None  # there is at least one tile
        self.predictions /= self.weight_sum
        # A copy only where the image was padded, so that the padded buffer can be freed.
        crop = (slice(None), *(slice(0, s) for s in spatial))
        return np.ascontiguousarray(self.predictions[crop])


def raise_if_stopped(stop: StopCheck | None, when: str = "before it began") -> None:
    """Raise `InferenceStoppedError` if `stop` gives a reason; `when` says where it stopped.

    Example:
        >>> raise_if_stopped(lambda: "time is up", "after 1 of 4 tiles")
        Traceback (most recent call last):
        ...
        seglab.errors.InferenceStoppedError: inference stopped after 1 of 4 tiles: time is up
    """
    if stop is not None and (reason := stop()) is not None:
        raise InferenceStoppedError(f"inference stopped {when}: {reason}")


def stopping_progress(stop: StopCheck | None) -> Callable[[int, int], None] | None:
    """A `progress` callback for `sliding_window_predict` that asks `stop` after each batch of
    tiles (see `raise_if_stopped`); None when there is nothing to ask."""
    if stop is None:
        return None

    def progress(done: int, total: int) -> None:
        raise_if_stopped(stop, f"after {done} of {total} tiles")

    return progress


def flip_tta(forward: Forward, spatial_dims: int) -> Forward:
    """Test-time augmentation: average `forward` over all flips of the spatial axes.

    Each flipped batch's prediction is flipped back before averaging, so the result is aligned
    with the input: 4 forward passes for 2D, 8 for 3D.

    Args:
        forward: Maps `(B, C, *spatial)` to `(B, K, *spatial)`.
        spatial_dims: Number of spatial axes (2 or 3), >= 1.

    Returns:
        A function of the same signature as `forward`, returning float32.

    Raises:
        ValueError: `spatial_dims` < 1, or (when called) a batch without `spatial_dims + 2` axes.

    Shape:
        - Input: `(B, C, *spatial)`; output: `(B, K, *spatial)`
    """
    if spatial_dims < 1:
        raise ValueError(f"spatial_dims must be >= 1, got {spatial_dims}")
    axes = range(2, 2 + spatial_dims)
    flips = [c for n in range(spatial_dims + 1) for c in itertools.combinations(axes, n)]

    def averaged(batch: np.ndarray) -> np.ndarray:
        if batch.ndim != spatial_dims + 2:
            raise ValueError(
                f"batch of shape {batch.shape} has no {spatial_dims} spatial axes after (B, C)"
            )
        total = np.array(forward(batch), dtype=np.float32)  # flips[0] is (), no flip
        for flip in flips[1:]:
            # Contiguous copies: torch.from_numpy and ONNX Runtime reject negative strides.
            output = forward(np.ascontiguousarray(np.flip(batch, flip)))
            total += np.flip(np.asarray(output, dtype=np.float32), flip)
        total /= len(flips)
        return total

    return averaged
