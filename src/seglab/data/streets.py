"""Synthetic street scenes labelled with real Cityscapes label ids, written in its layout.

A camera 1.5 m above a straight street looks along it. Each pixel's ray is cast into a small
3D world: the ground (road, sidewalks), building facades on both sides and across the far end,
and the sky above. Trees, cars, pedestrians, poles and traffic signs standing on the ground are
then painted from the farthest to the nearest, so nearer objects occlude farther ones, and the
ego vehicle's bonnet last. Colours, lighting and texture are drawn per image within each class's
plausible range; some ranges overlap (overcast sky and white facades, concrete sidewalk and
light asphalt, grey cars, poles and buildings), so a model needs shape and position as well.

Image ``i`` depends only on ``(seed, i)``, as in `seglab.data.synthetic`.

This module holds `make_street`, which composes a scene, and `write_streets`, which writes
scenes to a Cityscapes-like folder tree; the drawing itself (geometry, shapes, objects, camera
effects) and the label ids drawn live in `seglab.data.street_drawing`.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from seglab.data.cityscapes import IMAGE_TAG, LABEL_SUFFIX
from seglab.data.io import write_png
from seglab.data.street_drawing import OBJECTS, Scene, background, camera, ego_vehicle
from seglab.data.synthetic import check_output, numbered_splits, partial_folder, split_counts
from seglab.errors import ConfigError

logger = logging.getLogger(__name__)

CITIES = {"train": ("synthtown", "pixelburg"), "val": ("valdorf",), "test": ("testheim",)}


def make_street(
    rng: np.random.Generator, height: int = 128, width: int = 256
) -> tuple[np.ndarray, np.ndarray]:
    """Draw one street scene.

    Args:
        rng: Random generator; the scene depends only on its state.
        height: Image height in pixels (at least 32).
        width: Image width in pixels (at least 32); Cityscapes frames are twice as wide as tall.

    Returns:
        ``(H, W, 3)`` uint8 RGB image and ``(H, W)`` uint8 Cityscapes label ids (sky 23, road 7,
        sidewalk 8, building 11, vegetation 21, car 26, person 24, pole 17, traffic sign 20,
        ego vehicle 1, out of roi 3).

    Raises:
        ValueError: An image side below 32 pixels.

    Example:
        >>> image, label_ids = make_street(np.random.default_rng(0))
        >>> image.shape, label_ids.shape
        ((128, 256, 3), (128, 256))
    """
    if min(height, width) < 32:
        raise ValueError(f"street scenes need at least 32x32 pixels, got {height}x{width}")
    scene = Scene.draw(rng, height, width)
    canvas = background(rng, scene)
    objects = [
        (rng.uniform(max(scene.near, nearest), farthest), draw)
        for draw, low, high, nearest, farthest in OBJECTS
        for _ in range(rng.integers(low, high + 1))
    ]
    for depth, draw in sorted(objects, key=lambda item: -item[0]):  # farthest first
        draw(rng, scene, canvas, depth)
    ego_vehicle(rng, canvas)
    return camera(rng, canvas), canvas.labels


def write_streets(
    out: str | Path,
    n: int,
    height: int = 128,
    width: int = 256,
    seed: int = 0,
    splits: tuple[float, float, float] | None = (0.7, 0.15, 0.15),
) -> dict[str, int]:
    """Write `make_street` scenes in the Cityscapes layout (`seglab.data.cityscapes`).

    Files go to ``<out>.partial`` first, renamed to ``out`` at the end, so an interrupted run
    never looks complete. Image ``i`` is ``<city>_000000_<i:06d>``; train images alternate
    between two cities.

    Args:
        out: Output folder; must not exist or be empty.
        n: Number of images.
        height: Image height in pixels.
        width: Image width in pixels.
        seed: Random seed.
        splits: Fractions for train, val and test.

    Returns:
        Number of images per split written (splits that get no image are not created).

    Raises:
        ConfigError: ``n < 1``, bad split fractions, or no splits (the layout needs them).
        DataError: ``out`` exists and is not an empty folder.
    """
    if splits is None:
        raise ConfigError(
            "the Cityscapes layout always has train/val/test folders: drop --no-split"
        )
    out = check_output(out, n)
    counts = split_counts(n, splits)
    with partial_folder(out) as partial:
        for index, split in numbered_splits(counts):
            rng = np.random.default_rng([seed, index])
            image, label_ids = make_street(rng, height, width)
            city = CITIES[split][index % len(CITIES[split])]
            name = f"{city}_000000_{index:06d}"
            write_png(partial / "leftImg8bit" / split / city / f"{name}{IMAGE_TAG}.png", image)
            write_png(partial / "gtFine" / split / city / f"{name}{LABEL_SUFFIX}", label_ids)
    logger.info("wrote %d street scenes to %s (cityscapes layout)", n, out)
    return counts
