"""Tests of `seglab.inference.sliding_window`: tile offsets, Gaussian weights, blending, TTA."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import ndimage

from seglab.inference.sliding_window import (
    flip_tta,
    gaussian_weights,
    sliding_window_predict,
    tile_boxes,
    tile_starts,
)


def identity(batch: np.ndarray) -> np.ndarray:
    return batch


# --- tile_starts ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("size", "tile", "overlap", "expected"),
    [
        # step 4·0.5 = 2; n = ceil((10-4)/2)+1 = 4; spacing 6/3 = 2 -> 0, 2, 4, 6
        (10, 4, 0.5, [0, 2, 4, 6]),
        # step 4·0.75 = 3; n = ceil(6/3)+1 = 3; spacing 3 -> 0, 3, 6
        (10, 4, 0.25, [0, 3, 6]),
        # step 2; n = ceil(7/2)+1 = 5; spacing 7/4 = 1.75 -> 0, 1.75, 3.5, 5.25, 7 -> 0, 2, 4, 5, 7
        (11, 4, 0.5, [0, 2, 4, 5, 7]),
        # step floor(5·0.5) = 2; n = ceil(5/2)+1 = 4; spacing 5/3 -> 0, 1.67, 3.33, 5 -> 0, 2, 3, 5
        (10, 5, 0.5, [0, 2, 3, 5]),
        # overlap 0: step 4; n = ceil(6/4)+1 = 3; spacing 3 -> 0, 3, 6 (tiles still overlap by 1)
        (10, 4, 0.0, [0, 3, 6]),
        # step 256; n = ceil(3584/256)+1 = 15 -> multiples of 256 up to 3584
        (4096, 512, 0.5, list(range(0, 3585, 256))),
        # step 48; n = ceil(160/48)+1 = 5; spacing 160/4 = 40
        (256, 96, 0.5, [0, 40, 80, 120, 160]),
        (4, 4, 0.5, [0]),  # the tile fits exactly
        (3, 4, 0.5, [0]),  # smaller than the tile: the caller pads
    ],
)
def test_tile_starts_golden(size: int, tile: int, overlap: float, expected: list[int]) -> None:
    assert tile_starts(size, tile, overlap) == expected


@settings(max_examples=300, deadline=None)
@given(
    size=st.integers(1, 600),
    tile=st.integers(1, 300),
    overlap=st.floats(0, 0.95),
)
def test_tile_starts_cover_with_requested_overlap(size: int, tile: int, overlap: float) -> None:
    starts = tile_starts(size, tile, overlap)
    assert starts[0] == 0
    assert starts[-1] == max(size - tile, 0)
    steps = np.diff(starts)
    assert (steps >= 1).all()  # no tile twice
    # Integer offsets cannot step less than 1 pixel, whatever the overlap.
    assert (steps <= max(1.0, tile * (1 - overlap)) + 1e-6).all()
    if size > tile:  # as few tiles as the step allows
        step = max(1, math.floor(tile * (1 - overlap) + 1e-9))
        assert len(starts) == math.ceil((size - tile) / step) + 1


@pytest.mark.parametrize(
    ("size", "tile", "overlap"), [(0, 4, 0.5), (10, 0, 0.5), (10, 4, 1.0), (10, 4, -0.1)]
)
def test_tile_starts_rejects_bad_arguments(size: int, tile: int, overlap: float) -> None:
    with pytest.raises(ValueError):
        tile_starts(size, tile, overlap)


# --- gaussian_weights ----------------------------------------------------------------------------


@pytest.mark.parametrize("tile", [(5, 5), (8, 6), (7, 4, 9), (64, 64, 64), (1, 3)])
def test_gaussian_weights_peak_symmetry_and_no_zeros(tile: tuple[int, ...]) -> None:
    weights = gaussian_weights(tile)
    assert weights.shape == tile
    assert weights.dtype == np.float32
    assert weights.max() == 1.0
    centre = tuple((t - 1) // 2 for t in tile)  # for an even length, one of the two middles
    assert weights[centre] == 1.0
    for axis in range(len(tile)):
        np.testing.assert_array_equal(weights, np.flip(weights, axis))
    assert (weights > 0).all()


def test_gaussian_weights_golden_1d() -> None:
    # tile 8, sigma 8/8 = 1, centre 3.5: exp(-x²/2) / exp(-1/8) at x = 0.5, 1.5, 2.5, 3.5
    expected = np.exp(-0.5 * np.array([3.5, 2.5, 1.5, 0.5]) ** 2 + 0.125)
    np.testing.assert_allclose(gaussian_weights((8,)), np.r_[expected, expected[::-1]], rtol=1e-6)


def test_gaussian_weights_clamps_underflow_to_smallest_non_zero() -> None:
    # sigma 0.05·40 = 2, centre 19.5: the normalised 1D profile is exp(-(x² - 0.25) / 8) at
    # x = 0.5 .. 19.5, about 2e-21 at the ends; a 3D corner is its cube, 1e-62, 0 in float32.
    profile = np.exp(-(np.abs(np.arange(40) - 19.5) ** 2 - 0.25) / 8)
    exact = np.multiply.outer(np.multiply.outer(profile, profile), profile).astype(np.float32)
    assert exact[0, 0, 0] == 0 and (exact == 0).sum() > 8
    weights = gaussian_weights((40, 40, 40), sigma_scale=0.05)
    smallest = exact[exact > 0].min()
    assert (weights[exact == 0] == smallest).all()
    np.testing.assert_allclose(weights[exact > 0], exact[exact > 0], rtol=1e-5)


def test_gaussian_weights_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError):
        gaussian_weights((4, 0))
    with pytest.raises(ValueError):
        gaussian_weights((4, 4), sigma_scale=0)


# --- tile_boxes ----------------------------------------------------------------------------------


def test_tile_boxes_product_and_clipping() -> None:
    boxes = tile_boxes((10, 3), (4, 4), 0.5)
    # rows: starts 0, 2, 4, 6; columns: 3 < 4, so one box clipped to the axis
    assert boxes == [(slice(r, r + 4), slice(0, 3)) for r in (0, 2, 4, 6)]
    assert len(tile_boxes((10, 11, 4), (4, 4, 4), 0.5)) == 4 * 5 * 1
    with pytest.raises(ValueError):
        tile_boxes((10, 10), (4,), 0.5)


# --- sliding_window_predict ----------------------------------------------------------------------


@st.composite
def image_and_tile(draw: st.DrawFn) -> tuple[np.ndarray, tuple[int, ...]]:
    """A (C, *spatial) integer-valued float32 image, 2D or 3D, and a tile that may exceed it."""
    dims = draw(st.sampled_from([2, 3]))
    limit = 40 if dims == 2 else 14
    spatial = tuple(draw(st.integers(1, limit)) for _ in range(dims))
    tile = tuple(draw(st.integers(1, limit)) for _ in range(dims))
    channels = draw(st.integers(1, 3))
    seed = draw(st.integers(0, 2**32 - 1))
    image = np.random.default_rng(seed).integers(-50, 50, (channels, *spatial))
    return image.astype(np.float32), tile


@settings(max_examples=60, deadline=None)
@given(
    case=image_and_tile(),
    overlap=st.sampled_from([0.0, 0.25, 0.5, 0.75]),
    batch_size=st.integers(1, 5),
)
def test_identity_forward_reproduces_the_image(
    case: tuple[np.ndarray, tuple[int, ...]], overlap: float, batch_size: int
) -> None:
    image, tile = case
    # Uniform weights on integers: every sum k·x and the division by k are exact in float32.
    uniform = sliding_window_predict(image, identity, tile, overlap, batch_size, gaussian=False)
    np.testing.assert_array_equal(uniform, image)
    # Gaussian weights: Σ w·x / Σ w, exact up to float32 rounding.
    blended = sliding_window_predict(image, identity, tile, overlap, batch_size)
    assert blended.shape == image.shape
    assert blended.dtype == np.float32
    np.testing.assert_allclose(blended, image, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    ("shape", "tile"), [((2, 37, 23), (8, 16)), ((1, 13, 9, 20), (6, 6, 6)), ((3, 5, 70), (8, 8))]
)
def test_position_independent_forward_equals_whole_image(
    shape: tuple[int, ...], tile: tuple[int, ...]
) -> None:
    image = np.random.default_rng(0).normal(size=shape).astype(np.float32)

    def affine(batch: np.ndarray) -> np.ndarray:  # two outputs per pixel: 2x + 1 and -x
        return np.concatenate([2 * batch[:, :1] + 1, -batch[:, :1]], axis=1)

    out = sliding_window_predict(image, affine, tile)
    np.testing.assert_allclose(out, affine(image[None])[0], rtol=1e-5, atol=1e-5)


def test_forward_always_gets_exact_tiles_padded_by_reflection() -> None:
    # 5 rows < tile 8: rows 5, 6, 7 mirror rows 3, 2, 1 (never zeros, which a bright-field
    # model reads as dark nuclei).
    image = np.ones((2, 5, 30), dtype=np.float32)
    image[:, 1:4] = np.array([0.9, 0.8, 0.7], dtype=np.float32)[None, :, None]
    seen: list[np.ndarray] = []

    def recording(batch: np.ndarray) -> np.ndarray:
        seen.append(batch.copy())  # the batch buffer is reused between calls
        return batch

    out = sliding_window_predict(image, recording, (8, 8), batch_size=3)
    assert {b.shape[1:] for b in seen} == {(2, 8, 8)}
    mirrored = np.array([1, 0.9, 0.8, 0.7, 1, 0.7, 0.8, 0.9], dtype=np.float32)
    assert all(np.array_equal(b[:, :, :, 0].reshape(-1, 8)[0], mirrored) for b in seen)
    np.testing.assert_allclose(out, image, rtol=1e-6)


def test_batch_size_changes_the_calls_but_not_the_result() -> None:
    image = np.random.default_rng(1).random((1, 50, 45)).astype(np.float32)
    # rows: ceil(34/8)+1 = 6 tiles spaced 6.8; columns: ceil(29/8)+1 = 5 tiles spaced 7.25
    n_tiles = len(tile_boxes((50, 45), (16, 16), 0.5))
    assert n_tiles == 6 * 5

    def run(batch_size: int) -> tuple[np.ndarray, list[int], list[tuple[int, int]]]:
        calls: list[int] = []
        progress: list[tuple[int, int]] = []

        def ramp(batch: np.ndarray) -> np.ndarray:  # position-dependent, so the blending shows
            calls.append(len(batch))
            return batch * np.linspace(0, 1, 16, dtype=np.float32)

        out = sliding_window_predict(
            image, ramp, (16, 16), batch_size=batch_size, progress=lambda *a: progress.append(a)
        )
        return out, calls, progress

    reference, _, _ = run(1)
    for batch_size in (1, 2, 4, 7, 30, 100):
        out, calls, progress = run(batch_size)
        assert len(calls) == math.ceil(n_tiles / batch_size)
        assert calls == [min(batch_size, n_tiles - i) for i in range(0, n_tiles, batch_size)]
        assert progress == [
            (min(i + batch_size, n_tiles), n_tiles) for i in range(0, n_tiles, batch_size)
        ]
        np.testing.assert_array_equal(out, reference)


def test_num_outputs_and_bad_forward_shapes_are_reported() -> None:
    image = np.zeros((1, 20, 20), dtype=np.float32)
    out = sliding_window_predict(image, lambda b: np.repeat(b, 3, axis=1), (8, 8), num_outputs=3)
    assert out.shape == (3, 20, 20)
    with pytest.raises(ValueError, match="K = 2"):
        sliding_window_predict(image, lambda b: np.repeat(b, 3, axis=1), (8, 8), num_outputs=2)
    with pytest.raises(ValueError, match="forward returned shape"):
        sliding_window_predict(image, lambda b: b[:, :, :4], (8, 8))  # cropped output
    with pytest.raises(ValueError, match="forward returned shape"):
        sliding_window_predict(image, lambda b: b[:, 0], (8, 8))  # no channel axis
    with pytest.raises(ValueError, match="spatial axes"):
        sliding_window_predict(image[0], identity, (8, 8))
    with pytest.raises(ValueError, match="batch_size"):
        sliding_window_predict(image, identity, (8, 8), batch_size=0)


def test_module_does_not_import_torch() -> None:
    # The ONNX Runtime path uses these helpers in processes that must never load torch.
    code = (
        "import sys, numpy as np; from seglab.inference import sliding_window as sw; "
        "sw.sliding_window_predict(np.zeros((1, 9, 9), np.float32), lambda b: b, (4, 4)); "
        "assert 'torch' not in sys.modules, 'torch imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


# --- flip_tta ------------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(2, 3, 9, 12), (1, 2, 5, 6, 7)])
def test_flip_tta_of_an_equivariant_forward_is_the_forward(shape: tuple[int, ...]) -> None:
    batch = np.random.default_rng(2).random(shape).astype(np.float32)
    calls: list[np.ndarray] = []

    def box_filter(x: np.ndarray) -> np.ndarray:  # a centred 3×3(×3) mean commutes with flips
        calls.append(x)
        return ndimage.uniform_filter(x, size=(1, 1) + (3,) * (x.ndim - 2), mode="constant")

    spatial_dims = len(shape) - 2
    out = flip_tta(box_filter, spatial_dims)(batch)
    assert len(calls) == 2**spatial_dims
    assert all(c.flags.c_contiguous for c in calls)  # torch.from_numpy needs positive strides
    np.testing.assert_allclose(out, box_filter(batch), rtol=1e-5, atol=1e-6)


def test_flip_tta_of_a_position_dependent_forward_is_the_mean_over_flips() -> None:
    h, w = 3, 5
    batch = np.arange(h * w, dtype=np.float32).reshape(1, 1, h, w)
    rows, cols = np.mgrid[0:h, 0:w].astype(np.float32)

    def add_position(x: np.ndarray) -> np.ndarray:  # out = x + 10·row + col
        return x + 10 * rows + cols

    out = flip_tta(add_position, 2)(batch)
    # At pixel (0, 0), x = 0; flipped back, the offsets added there are: no flip 0; rows flipped
    # 10·2 = 20; columns flipped 4; both 24. Mean (0 + 20 + 4 + 24) / 4 = 12.
    assert out[0, 0, 0, 0] == 12
    # Everywhere: x + 10·(h-1)/2 + (w-1)/2 = x + 12.
    np.testing.assert_array_equal(out, batch + 12)
    with pytest.raises(ValueError):
        flip_tta(add_position, 3)(batch)
    with pytest.raises(ValueError):
        flip_tta(add_position, 0)


@pytest.mark.parametrize("shape", [(4, 4), (4, 50), (5, 7), (63, 64), (64, 130)])
def test_flip_tta_on_images_at_or_below_the_tile(shape: tuple[int, int], tmp_path: Path) -> None:
    # Flipped views were once handed to torch with negative strides, which it refuses.
    from conftest import tiny_gray_unet_bundle
    from seglab.inference.loading import load_predictor

    predictor = load_predictor(tiny_gray_unet_bundle(tmp_path / "m"))
    image = np.random.default_rng(0).integers(0, 255, (*shape, 1), dtype=np.uint8)
    plain = predictor.predict_proba(image)
    predictor.tta = True
    averaged = predictor.predict_proba(image)
    assert averaged.shape == plain.shape == shape
    assert np.isfinite(averaged).all() and ((averaged >= 0) & (averaged <= 1)).all()
