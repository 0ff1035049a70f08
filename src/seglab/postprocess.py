"""From a binary mask to one label per nucleus.

:func:`instances_from_mask` chains :func:`clean_mask` (fill holes, drop specks) and
:func:`split_touching` (watershed) or :func:`label_components`, as an ``InstanceConfig`` says.
Objects are 8-connected throughout: pixels touching only diagonally are one nucleus.

Run-length encoding and Kaggle submissions are in `seglab.rle`.

Example:
    >>> labels = instances_from_mask(probability > threshold, InstanceConfig())
"""

from __future__ import annotations

import cv2
import numpy as np
from scipy import ndimage as ndi
from skimage.feature import peak_local_max
from skimage.morphology import local_maxima, reconstruction
from skimage.segmentation import relabel_sequential, watershed

from seglab.config import InstanceConfig
from seglab.object_split import (
    MAX_LOCAL_DYNAMIC,
    exact_distance,
    flood_priority,
    grow_markers,
    split_by_distance,
)

_EIGHT_CONNECTED = np.ones((3, 3), dtype=bool)


def as_mask(mask: np.ndarray, name: str = "mask") -> np.ndarray:
    """`mask` as a bool ``(H, W)`` array; a `ValueError` naming it for another shape."""
    array = np.asarray(mask)
    if array.ndim != 2:
        raise ValueError(f"{name} must have shape (H, W), got {array.shape}")
    return array.astype(bool, copy=False)


def as_labels(labels: np.ndarray) -> np.ndarray:
    """`labels` as an int64 ``(H, W)`` label image; a `ValueError` for another shape, a
    non-integer dtype or negative labels."""
    array = np.asarray(labels)
    if array.ndim != 2:
        raise ValueError(f"labels must have shape (H, W), got {array.shape}")
    if array.dtype != np.bool_ and not np.issubdtype(array.dtype, np.integer):
        raise ValueError(f"labels must be an integer label image, got dtype {array.dtype}")
    if array.size and array.min() < 0:
        raise ValueError(f"labels must be >= 0 (0 is background), found {array.min()}")
    return array.astype(np.int64, copy=False)


def clean_mask(mask: np.ndarray, min_area: int = 0, fill_holes: bool = True) -> np.ndarray:
    """Fills holes in objects, then removes 8-connected objects smaller than ``min_area``.

    Args:
        mask: Binary mask (nonzero is foreground), shape ``(H, W)``.
        min_area: Objects with fewer pixels are removed; 0 keeps all.
        fill_holes: Fill enclosed background first, so a ring counts its hole toward the area.

    Returns:
        Cleaned bool mask, shape ``(H, W)``.

    Example:
        >>> clean_mask(np.array([[1, 1, 0, 0], [1, 1, 0, 1]]), min_area=2).astype(int)
        array([[1, 1, 0, 0],
               [1, 1, 0, 0]])
    """
    cleaned = as_mask(mask)
    if cleaned.size == 0:
        return cleaned.copy()
    if fill_holes:
        cleaned = filled_holes(cleaned)
    if min_area > 1:
        _, objects, stats, _ = cv2.connectedComponentsWithStats(
            np.ascontiguousarray(cleaned).view(np.uint8), connectivity=8
        )
        large_enough = stats[:, cv2.CC_STAT_AREA] >= min_area
        large_enough[0] = False
        cleaned = large_enough[objects]
    return np.asarray(cleaned, dtype=bool)


def filled_holes(mask: np.ndarray) -> np.ndarray:
    """``scipy.ndimage.binary_fill_holes(mask)`` of a bool mask: the background 4-connected
    to no image edge becomes foreground. OpenCV's labelling makes it ~5x faster than SciPy's.

    Example:
        >>> filled_holes(np.array([[1, 1, 1], [1, 0, 1], [1, 1, 1]], bool)).all()
        True
    """
    background = np.ascontiguousarray(~mask).view(np.uint8)
    count, regions = cv2.connectedComponents(background, connectivity=4)
    outside = np.zeros(count, dtype=bool)
    outside[regions[[0, -1]].ravel()] = True
    outside[regions[:, [0, -1]].ravel()] = True
    outside[0] = False  # label 0: the mask's own pixels
    return ~outside[regions]


def label_components(mask: np.ndarray) -> np.ndarray:
    """Labels the 8-connected objects of a mask 1..N (0 is background), int32, raster order.

    Example:
        >>> label_components(np.array([[1, 0, 1], [1, 0, 0]]))
        array([[1, 0, 2],
               [1, 0, 0]], dtype=int32)
    """
    labels, _ = ndi.label(as_mask(mask), structure=_EIGHT_CONNECTED)
    return labels.astype(np.int32)


def _distance_peaks(
    distance: np.ndarray, components: np.ndarray, min_distance: int, min_dynamic: float
) -> np.ndarray:
    """Markers at the distance map's significant maxima, one label per marker."""
    # Reconstruction lowers every dome by min_dynamic and flattens shallower bumps into the
    # dome they sit on, so each nucleus keeps one flat top however jagged its pixelated ridge.
    # Objects never interact, and reconstructing each in its bounding box sorts only those
    # pixels: ~10x faster than the whole image when nuclei cover ~10% of it. The background
    # stays below every object, so no object's top merges with it.
    flattened = np.full(distance.shape, -1.0)
    for index, box in enumerate(ndi.find_objects(components), start=1):
        inside = components[box] == index
        local = np.where(inside, distance[box], 0.0)
        flattened[box][inside] = reconstruction(local - min_dynamic, local)[inside]
    tops, _ = ndi.label(
        local_maxima(flattened, connectivity=2, allow_borders=True) & (components > 0),
        structure=_EIGHT_CONNECTED,
    )
    # peak_local_max drops tops within min_distance of a higher one, but thins a flat top into
    # a grid of points: each surviving point stands for the whole top it lies on.
    peaks = peak_local_max(
        flattened, min_distance=min_distance, labels=components, exclude_border=False
    )
    kept = np.zeros(tops.max() + 1, dtype=bool)
    kept[tops[tuple(peaks.T)]] = True
    kept[0] = False
    return np.where(kept[tops], tops, 0)


def split_touching(
    mask: np.ndarray,
    min_distance: int = 4,
    seeds: np.ndarray | None = None,
    min_dynamic: float = 1.0,
) -> np.ndarray:
    """Splits touching nuclei by a watershed of the negative distance transform.

    Markers are the maxima of the Euclidean distance transform at least ``min_distance`` apart,
    those rising less than ``min_dynamic`` pixels above the saddle to a higher one merged into
    it (so an ellipse stays one nucleus: a pixelated ellipse's ridge has bumps of up to ~0.75
    px; 0.5 over-split 32 of 400 random ellipses, 1.0 none, while the neck between two touching
    nuclei is usually deeper); or, given ``seeds``, the 8-connected components of
    ``seeds & mask``. An object without a marker (an unseeded blob) becomes one instance of its
    own. Deterministic.

    Args:
        mask: Binary foreground mask, shape ``(H, W)``.
        min_distance: Minimum distance (pixels) between two markers; about a nucleus radius.
        seeds: Bool nucleus interiors ("foreground minus borders") from a boundary-aware
            model, shape ``(H, W)``; they replace the distance maxima.

    Returns:
        int32 labels 1..N, nonzero exactly on ``mask``, shape ``(H, W)``.

    Example:
        >>> split_touching(two_touching_discs, min_distance=5).max()
        2
    """
    foreground = as_mask(mask)
    components = label_components(foreground)
    if components.max() == 0:
        return components
    if seeds is None and min_dynamic < MAX_LOCAL_DYNAMIC and not foreground.all():
        return split_by_distance(
            foreground, components, int(components.max()), min_distance, min_dynamic
        )
    distance = ndi.distance_transform_edt(foreground)
    if seeds is None:
        markers = _distance_peaks(distance, components, min_distance, min_dynamic)
    else:
        seed_mask = as_mask(seeds, "seeds")
        if seed_mask.shape != foreground.shape:
            raise ValueError(f"seeds shape {seed_mask.shape} must equal mask shape {mask.shape}")
        markers = label_components(seed_mask & foreground)
    unmarked = np.setdiff1d(np.arange(1, components.max() + 1), components[markers > 0])
    if unmarked.size:
        # The deepest pixel of an unmarked object seeds it, so the watershed still floods it.
        centres = ndi.maximum_position(distance, components, unmarked)
        rows, cols = np.array(centres, dtype=np.intp).reshape(-1, 2).T
        markers[rows, cols] = markers.max() + np.arange(1, unmarked.size + 1)
    # connectivity=2 lets the flood cross the diagonal joints of 8-connected objects.
    labels = watershed(flood_priority(distance, markers), markers, mask=foreground, connectivity=2)
    return relabel_sequential(labels)[0].astype(np.int32)


def instances_from_mask(
    mask: np.ndarray,
    config: InstanceConfig,
    seeds: np.ndarray | None = None,
    elevation: np.ndarray | None = None,
) -> np.ndarray:
    """One label per nucleus: clean the mask, split or label it, drop small instances.

    Args:
        mask: Binary foreground mask (a thresholded prediction), shape ``(H, W)``.
        config: ``method``, ``min_area``, ``fill_holes``, ``min_distance``, ``min_dynamic``.
        seeds: Nucleus interiors, e.g. "foreground minus predicted borders" of a
            boundary-aware model. They are split into nuclei first (where borders were missed,
            interiors still touch), then grown back over ``mask`` along ``elevation``.
        elevation: Where seeds grow first (low values first), e.g. the border probability;
            defaults to the negative distance to the background.

    Returns:
        int32 labels 1..N (0 is background), shape ``(H, W)``.

    Example:
        >>> labels = instances_from_mask(prob > 0.5, InstanceConfig(method="components"))
    """
    cleaned = clean_mask(mask, config.min_area, config.fill_holes)
    if seeds is not None:
        interiors = instances_from_mask(as_mask(seeds, "seeds") & cleaned, config)
        if elevation is None:
            elevation = -exact_distance(cleaned)
        components = label_components(cleaned)
        labels = grow_markers(elevation, _merge_markers(interiors, components), components)
    elif config.method == "watershed":
        labels = split_touching(cleaned, config.min_distance, None, config.min_dynamic)
    else:
        labels = label_components(cleaned)
    # A watershed line can cut off slivers smaller than any real nucleus.
    too_small = np.bincount(labels.ravel()) < config.min_area
    too_small[0] = False
    labels[too_small[labels]] = 0
    return relabel_sequential(labels)[0].astype(np.int32)


def _merge_markers(interiors: np.ndarray, components: np.ndarray) -> np.ndarray:
    """Interior labels, plus one marker per component that no interior falls in (so no object
    is lost where the borders swallowed a whole nucleus), numbered after them."""
    uncovered = np.ones(int(components.max()) + 1, dtype=bool)
    uncovered[components[interiors > 0]] = False
    uncovered[0] = False
    numbers = np.where(uncovered, np.cumsum(uncovered) + interiors.max(), 0).astype(np.int32)
    return np.where(interiors > 0, interiors, numbers[components])


def outline(labels: np.ndarray) -> np.ndarray:
    """Bool mask of instance pixels with a 4-neighbour of another label (or background):
    scikit-image's ``find_boundaries(labels, mode="inner")``; the image's edge is no outline.

    Example:
        >>> overlay[outline(labels)] = (255, 255, 0)
    """
    labels = as_labels(labels)
    edges = np.zeros(labels.shape, dtype=bool)
    vertical = labels[1:] != labels[:-1]
    horizontal = labels[:, 1:] != labels[:, :-1]
    edges[1:] |= vertical
    edges[:-1] |= vertical
    edges[:, 1:] |= horizontal
    edges[:, :-1] |= horizontal
    return edges & (labels > 0)
