"""Watershed splitting object by object: the labels of a whole-image watershed, at the cost of
the objects that need splitting.

`split_by_distance` gives exactly the labels of the whole-image recipe in
:func:`seglab.postprocess.split_touching` (markers at the ``min_dynamic``-maxima of the
Euclidean distance transform that ``peak_local_max`` keeps, a marker at the deepest pixel of an
object without one, a watershed of the negative distance, labels numbered as
``relabel_sequential`` numbers them). Why it may work object by object:

* Objects are 8-connected components, and the watershed floods with connectivity 2 inside the
  mask, so no object's labels depend on another's.
* The distance transform of an object's pixels is exact in its bounding box grown by one pixel
  (the nearest background pixel of a pixel lies in that box: walking straight out of the object
  meets background within it, and anything outside the box is farther), and the exact distance
  is computed once for the whole image (`exact_distance`).
* An object whose distance map has all its regional maxima within ``min_dynamic`` of its
  maximum ``M``, and whose pixels at distance >= ``M - min_dynamic`` are one 8-connected set,
  keeps one flat top after the reconstruction, and that top is kept by ``peak_local_max`` (its
  highest point lies on it); it is one instance, found with a handful of whole-image array
  operations and no watershed. Only the other objects go through the reconstruction, peak
  search and watershed in their bounding box.
* Instances are numbered as the whole-image labelling numbers them: kept tops by their first
  pixel in raster order, then objects without a kept top by their component index.
"""

from __future__ import annotations

import cv2
import numpy as np
from scipy import ndimage as ndi
from skimage.feature import peak_local_max
from skimage.morphology import local_maxima, reconstruction
from skimage.segmentation import watershed

EIGHT_CONNECTED = np.ones((3, 3), dtype=bool)
# OpenCV's precise L2 transform works in float32: squared distances stay exact integers while
# the image diagonal is below ~2000 px (the error of d**2 is below 0.5 up to d**2 ~ 4e6).
_OPENCV_MAX_DIAGONAL = 2000.0
# Objects never interact while min_dynamic < 1: their reconstruction values stay above 0 (the
# distance is >= 1 on an object), above the background's.
MAX_LOCAL_DYNAMIC = 1.0
# Integers up to 2**53 are exact in float64.
_EXACT_FLOAT = 2**53


def exact_distance(foreground: np.ndarray) -> np.ndarray:
    """``scipy.ndimage.distance_transform_edt(foreground)``, bit for bit, ~10x faster.

    OpenCV's exact (Felzenszwalb) transform gives the nearest background pixel's distance; its
    square is an integer, rounded and square-rooted in float64 as SciPy does.
    """
    height, width = foreground.shape
    if foreground.all() or np.hypot(height, width) >= _OPENCV_MAX_DIAGONAL:
        return np.asarray(ndi.distance_transform_edt(foreground), dtype=np.float64)
    approximate = cv2.distanceTransform(
        foreground.astype(np.uint8), cv2.DIST_L2, cv2.DIST_MASK_PRECISE
    ).astype(np.float64)
    return np.sqrt(np.rint(approximate * approximate))


def flood_priority(distance: np.ndarray, markers: np.ndarray) -> np.ndarray:
    """The watershed's priorities (float64): deeper pixels first, and among equally deep ones
    the marker pixels first, in raster order; other ties stay ties.

    The watershed's queue breaks ties among unmarked pixels by when they were reached, which no
    other object changes, but hands out equal marker pixels in an order that depends on the
    whole queue. Ordering them makes an object flooded in its bounding box come out as it does
    in the whole image (the order within a box is the whole image's).

    `distance` is a Euclidean distance transform, so its squares are integers: one integer key
    per pixel, ``-distance**2 * 2n + unmarked * n + (raster index if marked)``, orders the
    pixels without a sort; float64 holds it exactly below 2**53, else the keys are ranked.
    """
    size = distance.size
    marked = markers.ravel() > 0
    among_markers = np.where(marked, np.arange(size), 0)
    squared = np.rint(distance.ravel() ** 2).astype(np.int64)
    if squared.size and int(squared.max()) * 2 * size + 2 * size < _EXACT_FLOAT:
        keys = -squared * (2 * size) + np.where(marked, among_markers, size)
        return keys.astype(np.float64).reshape(distance.shape)
    order = np.lexsort((among_markers, ~marked, -squared))
    sorted_keys = np.stack([-squared[order], ~marked[order], among_markers[order]])
    new = np.ones(size, dtype=bool)
    new[1:] = (sorted_keys[:, 1:] != sorted_keys[:, :-1]).any(axis=0)
    ranks = np.empty(size)
    ranks[order] = np.cumsum(new)
    return ranks.reshape(distance.shape)


def first_pixels(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The labels present (sorted, > 0) and the raster index of each one's first pixel."""
    flat = labels.ravel()
    where = np.flatnonzero(flat)
    values, first = np.unique(flat[where], return_index=True)
    return values, where[first]


def simple_objects(
    distance: np.ndarray, components: np.ndarray, count: int, min_dynamic: float
) -> tuple[np.ndarray, np.ndarray]:
    """Which objects keep a single non-flat top (see the module docstring), and where each
    one's top starts (raster index; -1 for the others). Both indexed by component, 0 unused."""
    inside = components > 0
    owner, depth = components[inside], distance[inside]
    highest = _per_object(np.maximum, owner, depth, count, -np.inf)
    level = highest - min_dynamic
    maxima = local_maxima(distance, connectivity=2, allow_borders=True)[inside]
    lowest_maximum = _per_object(np.minimum, owner[maxima], depth[maxima], count, np.inf)
    lowest = _per_object(np.minimum, owner, depth, count, np.inf)
    high, _ = ndi.label(inside & (distance >= level[components]), structure=EIGHT_CONNECTED)
    _, starts = first_pixels(high)
    owners = components.ravel()[starts]
    pieces = np.bincount(owners, minlength=count + 1)
    simple = (pieces == 1) & (lowest_maximum >= level) & (lowest < level)
    simple[0] = False
    top_start = np.full(count + 1, -1, dtype=np.int64)
    top_start[owners[simple[owners]]] = starts[simple[owners]]
    return simple, top_start


def _per_object(
    reduce: np.ufunc, owner: np.ndarray, values: np.ndarray, count: int, empty: float
) -> np.ndarray:
    """`reduce` (np.maximum, np.minimum) of `values` per object 0..count, `empty` if none.

    An unbuffered `ufunc.at` in one pass: `ndi.maximum` with an index sorts the whole image.
    """
    out = np.full(count + 1, empty)
    reduce.at(out, owner, values)
    return out


def split_by_distance(
    foreground: np.ndarray,
    components: np.ndarray,
    count: int,
    min_distance: int,
    min_dynamic: float,
) -> np.ndarray:
    """Instance labels (int32, 1..N) of `foreground`, whose 8-connected `components` are
    labelled 1..`count`; equal to the whole-image recipe (see the module docstring).

    Requires ``min_dynamic < MAX_LOCAL_DYNAMIC`` and some background pixel.
    """
    distance = exact_distance(foreground)
    simple, top_start = simple_objects(distance, components, count, min_dynamic)
    others = np.flatnonzero(~simple[1:]) + 1
    packed = Packing(components, others, distance, margin=max(1, min_distance))
    markers, keys = packed.markers(min_distance, min_dynamic)
    flooded = watershed(
        flood_priority(packed.values, markers), markers, mask=packed.objects > 0, connectivity=2
    )
    # Sort keys of every instance: (0, first pixel of its top) or (1, its component index).
    keys = [(0, int(start)) for start in top_start[simple]] + keys
    rank = np.empty(len(keys) + 1, dtype=np.int64)
    rank[0] = 0
    rank[1 + np.array(sorted(range(len(keys)), key=keys.__getitem__), dtype=np.int64)] = np.arange(
        1, len(keys) + 1
    )
    lookup = np.zeros(count + 1, dtype=np.int64)
    lookup[simple] = rank[1 : 1 + int(simple.sum())]
    labels = lookup[components]
    shift = int(simple.sum())  # packed markers number their keys after the simple objects'
    packed.unpack(rank[flooded + shift], labels)
    return labels.astype(np.int32)


class Packing:
    """Objects cut out of an image into one small canvas, each in its bounding box with a
    background margin, so that one call of each whole-image step serves all of them.

    Args:
        components: Labels 1..N of the 8-connected objects.
        chosen: The component indices to pack.
        values: The image the packed steps work on (its distance transform, an elevation).
        margin: Background pixels between two boxes and around the canvas, at least 1.

    Attributes:
        objects: The canvas's objects, numbered 1..len(chosen) in `chosen`'s order.
        values: `values` on them, 0 on the background.
        boxes, places: Each object's box in the image and in the canvas.
    """

    def __init__(
        self, components: np.ndarray, chosen: np.ndarray, values: np.ndarray, margin: int = 1
    ):
        all_boxes = ndi.find_objects(components)
        self.chosen = chosen
        self.boxes = [all_boxes[index - 1] for index in chosen]
        self.width = components.shape[1]
        self.margin = margin
        sizes = [(box[0].stop - box[0].start, box[1].stop - box[1].start) for box in self.boxes]
        self.places, shape = _shelves(sizes, margin)
        self.objects = np.zeros(shape, dtype=np.int32)
        for number, (index, box, place) in enumerate(zip(chosen, self.boxes, self.places), 1):
            self.objects[place][components[box] == index] = number
        self.values = self.pack(values)

    def pack(self, image: np.ndarray) -> np.ndarray:
        """`image` on the packed objects' pixels, 0 elsewhere: a canvas."""
        canvas = np.zeros(self.objects.shape, dtype=image.dtype)
        for number, (box, place) in enumerate(zip(self.boxes, self.places), 1):
            inside = self.objects[place] == number
            canvas[place][inside] = image[box][inside]
        return canvas

    def unpack(self, canvas: np.ndarray, image: np.ndarray) -> None:
        """Writes a canvas's values on the packed objects' pixels back into `image`."""
        for number, (box, place) in enumerate(zip(self.boxes, self.places), 1):
            inside = self.objects[place] == number
            image[box][inside] = canvas[place][inside]

    def markers(self, min_distance: int, min_dynamic: float) -> tuple[np.ndarray, list]:
        """The canvas's watershed markers and the sort key of each (markers number keys from
        1, in order): ``(0, first pixel of the top in the image)`` for the kept tops of the
        ``min_dynamic``-reconstruction, ``(1, component)`` for an object without one (its
        marker is any one of its pixels: it floods alone)."""
        inside = self.objects > 0
        local = self.values
        # Reconstruction values stay above 0 where min_dynamic < 1 and the background is 0, so
        # no object's reconstruction reaches another across the background.
        flattened = np.where(inside, reconstruction(local - min_dynamic, local), -1.0)
        maxima = local_maxima(flattened, connectivity=2, allow_borders=True) & inside
        tops, count = ndi.label(maxima, structure=EIGHT_CONNECTED)
        top_numbers, top_starts = first_pixels(tops)
        owner = self.objects.ravel()[top_starts]
        per_object = np.bincount(owner, minlength=len(self.chosen) + 1)
        number, values = self.objects[inside], flattened[inside]
        low = _per_object(np.minimum, number, values, len(self.chosen), np.inf)
        high = _per_object(np.maximum, number, values, len(self.chosen), -np.inf)
        # One top on a non-flat object: peak_local_max keeps it (its highest point is on it).
        needs_peaks = (per_object > 1) | (low == high)
        needs_peaks[0] = False
        peaks = self.peaks(
            flattened, needs_peaks & (low < high), needs_peaks & (low == high), min_distance
        )
        kept = ~needs_peaks[owner]
        peak_tops = tops[tuple(peaks.T)]
        kept[np.searchsorted(top_numbers, peak_tops[peak_tops > 0])] = True
        keys: list[tuple[int, int]] = [
            (0, self.image_index(int(start))) for start in top_starts[kept]
        ]
        lookup = np.zeros(count + 1, dtype=np.int32)
        lookup[top_numbers[kept]] = np.arange(1, int(kept.sum()) + 1)
        markers = lookup[tops]
        for number in np.setdiff1d(np.arange(1, len(self.chosen) + 1), owner[kept]):
            keys.append((1, int(self.chosen[number - 1])))
            place = self.places[number - 1]
            row, col = np.argwhere(self.objects[place] == number)[0]
            markers[place][row, col] = len(keys)
        return markers, keys

    def peaks(
        self, flattened: np.ndarray, sloped: np.ndarray, flat: np.ndarray, min_distance: int
    ) -> np.ndarray:
        """``peak_local_max(flattened, min_distance, labels=objects)`` on the `sloped` and
        `flat` objects (bool per object number, 0 unused); needs ``margin >= min_distance``.

        Boxes that far apart never see each other's pixels, so one call over all sloped objects
        gives the per-object answer. Flat ones still go one by one: on an object without a
        lower pixel peak_local_max keeps the pixels an opening removes, which one call over
        several objects would not.
        """
        if self.margin < min_distance:
            raise ValueError(f"packed with margin {self.margin} < min_distance {min_distance}")
        found = [np.empty((0, 2), dtype=np.intp)]
        if sloped.any():
            found.append(local_peaks(np.where(sloped[self.objects], flattened, -1.0), min_distance))
        if flat.any():
            labels = np.where(flat[self.objects], self.objects, 0)
            found.append(
                peak_local_max(
                    flattened,
                    min_distance=min_distance,
                    labels=labels,
                    threshold_abs=-1.0,
                    exclude_border=False,
                )
            )
        return np.vstack(found)

    def image_index(self, canvas_index: int) -> int:
        """The raster index in the image of a canvas pixel of an object."""
        row, col = divmod(canvas_index, self.objects.shape[1])
        number = self.objects[row, col]
        box, place = self.boxes[number - 1], self.places[number - 1]
        return (row - place[0].start + box[0].start) * self.width + (
            col - place[1].start + box[1].start
        )


def _shelves(
    sizes: list[tuple[int, int]], margin: int
) -> tuple[list[tuple[slice, slice]], tuple[int, int]]:
    """Places for boxes of `sizes` (height, width) in rows of a canvas, `margin` background
    pixels around each; the places and the canvas shape."""
    area = sum((h + margin) * (w + margin) for h, w in sizes)
    width = max([int(np.sqrt(area)) + margin, *(w + 2 * margin for _, w in sizes)])
    places: list[tuple[slice, slice]] = [(slice(0), slice(0))] * len(sizes)
    row, col, shelf = margin, margin, 0
    # Tallest first, so that each shelf holds boxes of about its height: little empty canvas.
    for index in sorted(range(len(sizes)), key=lambda i: -sizes[i][0]):
        height, box_width = sizes[index]
        if col + box_width + margin > width:
            row, col, shelf = row + shelf + margin, margin, 0
        places[index] = (slice(row, row + height), slice(col, col + box_width))
        col += box_width + margin
        shelf = max(shelf, height)
    return places, (row + shelf + margin, width)


def grow_markers(elevation: np.ndarray, markers: np.ndarray, components: np.ndarray) -> np.ndarray:
    """``watershed(elevation, markers, mask=components > 0, connectivity=2)``, flooding only
    the objects that hold several markers: an object with one marker takes its label whole.

    The same labels as the whole-image watershed wherever no two pixels of different markers in
    one object have equal elevations (scikit-image queues every marker pixel at age 0, so how
    such ties break depends on the whole queue).

    Args:
        elevation: Where the flood goes first (low first), ``(H, W)``.
        markers: Labels > 0 that grow, ``(H, W)``.
        components: The 8-connected objects 1..N they grow over, ``(H, W)``.

    Returns:
        Labels of `markers`' dtype; 0 on the background and on objects without a marker.
    """
    marked = (markers > 0) & (components > 0)
    stride = int(markers.max()) + 1
    pairs = np.unique(components[marked].astype(np.int64) * stride + markers[marked])
    owner, label = np.divmod(pairs, stride)
    per_object = np.bincount(owner, minlength=int(components.max()) + 1)
    single = per_object[owner] == 1
    lookup = np.zeros(per_object.size, dtype=markers.dtype)
    lookup[owner[single]] = label[single]
    labels = lookup[components]
    several = np.flatnonzero(per_object > 1)
    if several.size:
        packed = Packing(components, several, elevation)
        flooded = watershed(
            packed.values, packed.pack(markers), mask=packed.objects > 0, connectivity=2
        )
        packed.unpack(flooded, labels)
    return labels


def local_peaks(image: np.ndarray, min_distance: int, threshold: float = -1.0) -> np.ndarray:
    """``peak_local_max(image, min_distance, threshold_abs=threshold, exclude_border=False)``,
    coordinates in the same order, without its per-peak distance queries.

    Candidates are the pixels above `threshold` that equal their neighbourhood's maximum
    (Chebyshev radius `min_distance`), none if every pixel does (but a lone pixel is one). From
    the highest (ties in raster order), each kept one rules out the candidates closer than
    `min_distance`, marked on a grid.
    """
    if image.size == 1:
        candidates = image > threshold
    else:
        candidates = image == ndi.maximum_filter(image, size=2 * min_distance + 1, mode="nearest")
        if candidates.all():
            candidates[:] = False  # a flat image has no peak
        candidates &= image > threshold
    rows, cols = np.nonzero(candidates)
    order = np.argsort(-image[rows, cols], kind="stable")
    coords = np.stack([rows[order], cols[order]], axis=1)
    if min_distance <= 1:
        return coords
    reach = min_distance - 1  # closer than min_distance: at most this many pixels away
    ruled_out = np.zeros((image.shape[0] + 2 * reach, image.shape[1] + 2 * reach), dtype=bool)
    kept = np.zeros(len(coords), dtype=bool)
    for index, (row, col) in enumerate(coords.tolist()):
        if not ruled_out[row + reach, col + reach]:
            kept[index] = True
            ruled_out[row : row + 2 * reach + 1, col : col + 2 * reach + 1] = True
    return coords[kept]
