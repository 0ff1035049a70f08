"""The object-by-object watershed (`seglab.object_split`) against a straightforward
whole-image reference: the same labels, pixel for pixel, on random and synthetic masks."""

from __future__ import annotations

from unittest.mock import patch

import hypothesis.extra.numpy as hnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import ndimage as ndi
from skimage.feature import peak_local_max
from skimage.morphology import local_maxima, reconstruction
from skimage.segmentation import relabel_sequential, watershed

from seglab import object_split
from seglab.data.synthetic import make_nuclei
from seglab.object_split import exact_distance, flood_priority, grow_markers, local_peaks
from seglab.postprocess import clean_mask, label_components, split_touching

EIGHT = np.ones((3, 3), dtype=bool)


def whole_image_split(mask: np.ndarray, min_distance: int, min_dynamic: float) -> np.ndarray:
    """The recipe of `split_touching` on the whole image at once."""
    components = label_components(mask)
    if components.max() == 0:
        return components
    distance = ndi.distance_transform_edt(mask)
    flattened = np.full(distance.shape, -1.0)
    for index, box in enumerate(ndi.find_objects(components), start=1):
        inside = components[box] == index
        local = np.where(inside, distance[box], 0.0)
        flattened[box][inside] = reconstruction(local - min_dynamic, local)[inside]
    maxima = local_maxima(flattened, connectivity=2, allow_borders=True) & (components > 0)
    tops, _ = ndi.label(maxima, structure=EIGHT)
    peaks = peak_local_max(
        flattened, min_distance=min_distance, labels=components, exclude_border=False
    )
    kept = np.zeros(tops.max() + 1, dtype=bool)
    kept[tops[tuple(peaks.T)]] = True
    kept[0] = False
    markers = np.where(kept[tops], tops, 0)
    unmarked = np.setdiff1d(np.arange(1, components.max() + 1), components[markers > 0])
    if unmarked.size:
        centres = ndi.maximum_position(distance, components, unmarked)
        rows, cols = np.array(centres, dtype=np.intp).reshape(-1, 2).T
        markers[rows, cols] = markers.max() + np.arange(1, unmarked.size + 1)
    priority = flood_priority(distance, markers)
    labels = watershed(priority, markers, mask=mask, connectivity=2)
    return relabel_sequential(labels)[0].astype(np.int32)


def assert_same(mask: np.ndarray, min_distance: int = 3, min_dynamic: float = 0.5) -> None:
    mask = np.asarray(mask, dtype=bool)
    expected = whole_image_split(mask, min_distance, min_dynamic)
    np.testing.assert_array_equal(split_touching(mask, min_distance, None, min_dynamic), expected)


@settings(max_examples=150, deadline=None)
@given(hnp.arrays(bool, hnp.array_shapes(min_dims=2, max_dims=2, min_side=1, max_side=40)))
def test_random_masks_match_the_whole_image(mask: np.ndarray) -> None:
    assert_same(mask)
    assert_same(mask, min_distance=1, min_dynamic=0.0)


@pytest.mark.parametrize("seed", range(6))
def test_grown_random_blobs_match(seed: int) -> None:
    rng = np.random.default_rng(seed)
    shape = tuple(int(s) for s in rng.integers(20, 90, 2))  # odd, non-square sizes
    mask = ndi.binary_dilation(rng.random(shape) < 0.05, iterations=int(rng.integers(1, 5)))
    for min_distance, min_dynamic in ((3, 0.5), (1, 0.0), (5, 0.9)):
        assert_same(mask, min_distance, min_dynamic)


def test_synthetic_nuclei_match() -> None:
    for _, labels in make_nuclei(12, 128, seed=3):
        assert_same(clean_mask(labels > 0, 10))
    _, big = make_nuclei(1, 301, seed=4)[0]
    assert_same(big[:, :257] > 0)


@pytest.mark.parametrize(
    "mask",
    [
        np.zeros((7, 5), bool),  # empty
        np.ones((9, 13), bool),  # a single object filling the image
        np.pad(np.ones((30, 50), bool), ((0, 3), (2, 0))),  # a huge object at two borders
        np.eye(11, dtype=bool),  # a diagonal line
    ],
)
def test_edge_cases_match(mask: np.ndarray) -> None:
    assert_same(mask)


def test_the_distance_is_scipys_bit_for_bit() -> None:
    rng = np.random.default_rng(0)
    for _ in range(20):
        mask = rng.random(tuple(rng.integers(1, 70, 2))) < rng.uniform(0.3, 0.99)
        np.testing.assert_array_equal(exact_distance(mask), ndi.distance_transform_edt(mask))


def test_two_touching_discs_split_in_two() -> None:
    yy, xx = np.mgrid[:40, :60]
    mask = ((yy - 20) ** 2 + (xx - 20) ** 2 < 100) | ((yy - 20) ** 2 + (xx - 38) ** 2 < 100)
    assert split_touching(mask, 3, None, 0.5).max() == 2


@settings(max_examples=150, deadline=None)
@given(
    hnp.arrays(bool, hnp.array_shapes(min_dims=2, max_dims=2, min_side=1, max_side=30)),
    st.integers(0, 2**32 - 1),
)
def test_grow_markers_is_the_whole_image_watershed(mask: np.ndarray, seed: int) -> None:
    rng = np.random.default_rng(seed)
    components = label_components(mask)
    markers = np.where(mask & (rng.random(mask.shape) < 0.1), rng.integers(1, 6, mask.shape), 0)
    elevation = rng.random(mask.shape)  # continuous: no ties between marker pixels
    expected = watershed(elevation, markers, mask=mask, connectivity=2)
    np.testing.assert_array_equal(grow_markers(elevation, markers, components), expected)


def test_grow_markers_labels_a_one_marker_object_whole() -> None:
    mask = np.zeros((6, 9), bool)
    mask[1:5, 1:4] = True  # one marker: takes it everywhere
    mask[1:5, 5:8] = True  # two markers: split by the elevation's ridge at column 6
    markers = np.zeros(mask.shape, np.int32)
    markers[2, 2], markers[2, 5], markers[2, 7] = 7, 1, 2
    elevation = np.zeros(mask.shape)
    elevation[:, 6] = 1.0
    labels = grow_markers(elevation, markers, label_components(mask))
    assert (labels[1:5, 1:4] == 7).all()
    assert (labels[1:5, 5] == 1).all() and (labels[1:5, 7] == 2).all()
    assert set(np.unique(labels[1:5, 6])) <= {1, 2}
    assert (labels[~mask] == 0).all()


@settings(max_examples=100, deadline=None)
@given(
    hnp.arrays(bool, hnp.array_shapes(min_dims=2, max_dims=2, min_side=1, max_side=20)),
    st.integers(0, 2**32 - 1),
)
def test_flood_priority_keys_order_pixels_as_the_ranks(mask: np.ndarray, seed: int) -> None:
    distance = ndi.distance_transform_edt(mask)
    markers = (np.random.default_rng(seed).random(mask.shape) < 0.3) & mask
    keys = flood_priority(distance, markers).ravel()
    with patch.object(object_split, "_EXACT_FLOAT", 0):
        ranks = flood_priority(distance, markers).ravel()
    np.testing.assert_array_equal(np.sign(keys[:, None] - keys), np.sign(ranks[:, None] - ranks))


@settings(max_examples=300, deadline=None)
@given(
    hnp.arrays(
        np.float64,
        hnp.array_shapes(min_dims=2, max_dims=2, min_side=1, max_side=25),
        elements=st.sampled_from([-1.0, 0.5, 1.0, 1.5, 2.0, 3.0]),  # plateaus and ties
    ),
    st.integers(1, 4),
)
def test_local_peaks_is_peak_local_max(image: np.ndarray, min_distance: int) -> None:
    expected = peak_local_max(
        image, min_distance=min_distance, threshold_abs=-1.0, exclude_border=False
    )
    np.testing.assert_array_equal(local_peaks(image, min_distance), expected)
