"""The Cityscapes data set: its label table and its folder layout.

Layout (the official ``leftImg8bit_trainvaltest`` and ``gtFine_trainvaltest`` archives, unpacked
into one folder)::

    ROOT/leftImg8bit/<split>/<city>/<city>_<seq>_<frame>_leftImg8bit.png
    ROOT/gtFine/<split>/<city>/<city>_<seq>_<frame>_gtFine_labelIds.png

Only the ``*_gtFine_labelIds.png`` files are read (label ids 0..33, see `CITYSCAPES_LABELS`); the
``_color``, ``_instanceIds`` and ``_polygons`` files beside them are ignored. `seglab.data.labels`
turns label ids into classes.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from seglab.data.io import IMAGE_SUFFIXES
from seglab.data.layouts import SPLIT_NAMES, Sample, Skipped, visible_files
from seglab.errors import DataError

logger = logging.getLogger(__name__)

IMAGE_TAG = "_leftImg8bit"
LABEL_SUFFIX = "_gtFine_labelIds.png"
_TREE = (
    "expected this tree (<split> = train, val or test):\n"
    "    ROOT/leftImg8bit/<split>/<city>/<city>_<seq>_<frame>_leftImg8bit.png\n"
    "    ROOT/gtFine/<split>/<city>/<city>_<seq>_<frame>_gtFine_labelIds.png"
)


@dataclass(frozen=True)
class CityscapesLabel:
    """One row of the official Cityscapes label table (cityscapesScripts' ``labels.py``)."""

    name: str
    id: int  # value in *_gtFine_labelIds.png; -1: never written to label images
    train_id: int  # 0..18 for the 19 benchmark classes; 255 or -1: not trained
    category: str
    category_id: int  # 0..7, the 8 groups of seed 001
    has_instances: bool
    ignore_in_eval: bool
    color: tuple[int, int, int]


_L = CityscapesLabel
CITYSCAPES_LABELS: tuple[CityscapesLabel, ...] = (
    _L("unlabeled", 0, 255, "void", 0, False, True, (0, 0, 0)),
    _L("ego vehicle", 1, 255, "void", 0, False, True, (0, 0, 0)),
    _L("rectification border", 2, 255, "void", 0, False, True, (0, 0, 0)),
    _L("out of roi", 3, 255, "void", 0, False, True, (0, 0, 0)),
    _L("static", 4, 255, "void", 0, False, True, (0, 0, 0)),
    _L("dynamic", 5, 255, "void", 0, False, True, (111, 74, 0)),
    _L("ground", 6, 255, "void", 0, False, True, (81, 0, 81)),
    _L("road", 7, 0, "flat", 1, False, False, (128, 64, 128)),
    _L("sidewalk", 8, 1, "flat", 1, False, False, (244, 35, 232)),
    _L("parking", 9, 255, "flat", 1, False, True, (250, 170, 160)),
    _L("rail track", 10, 255, "flat", 1, False, True, (230, 150, 140)),
    _L("building", 11, 2, "construction", 2, False, False, (70, 70, 70)),
    _L("wall", 12, 3, "construction", 2, False, False, (102, 102, 156)),
    _L("fence", 13, 4, "construction", 2, False, False, (190, 153, 153)),
    _L("guard rail", 14, 255, "construction", 2, False, True, (180, 165, 180)),
    _L("bridge", 15, 255, "construction", 2, False, True, (150, 100, 100)),
    _L("tunnel", 16, 255, "construction", 2, False, True, (150, 120, 90)),
    _L("pole", 17, 5, "object", 3, False, False, (153, 153, 153)),
    _L("polegroup", 18, 255, "object", 3, False, True, (153, 153, 153)),
    _L("traffic light", 19, 6, "object", 3, False, False, (250, 170, 30)),
    _L("traffic sign", 20, 7, "object", 3, False, False, (220, 220, 0)),
    _L("vegetation", 21, 8, "nature", 4, False, False, (107, 142, 35)),
    _L("terrain", 22, 9, "nature", 4, False, False, (152, 251, 152)),
    _L("sky", 23, 10, "sky", 5, False, False, (70, 130, 180)),
    _L("person", 24, 11, "human", 6, True, False, (220, 20, 60)),
    _L("rider", 25, 12, "human", 6, True, False, (255, 0, 0)),
    _L("car", 26, 13, "vehicle", 7, True, False, (0, 0, 142)),
    _L("truck", 27, 14, "vehicle", 7, True, False, (0, 0, 70)),
    _L("bus", 28, 15, "vehicle", 7, True, False, (0, 60, 100)),
    _L("caravan", 29, 255, "vehicle", 7, True, True, (0, 0, 90)),
    _L("trailer", 30, 255, "vehicle", 7, True, True, (0, 0, 110)),
    _L("train", 31, 16, "vehicle", 7, True, False, (0, 80, 100)),
    _L("motorcycle", 32, 17, "vehicle", 7, True, False, (0, 0, 230)),
    _L("bicycle", 33, 18, "vehicle", 7, True, False, (119, 11, 32)),
    _L("license plate", -1, -1, "vehicle", 7, False, True, (0, 0, 142)),
)
# The 8 groups (category ids 0..7) and their colours: each group's main class colour, void black.
CATEGORIES: tuple[tuple[str, tuple[int, int, int]], ...] = (
    ("void", (0, 0, 0)),
    ("flat", (128, 64, 128)),
    ("construction", (70, 70, 70)),
    ("object", (153, 153, 153)),
    ("nature", (107, 142, 35)),
    ("sky", (70, 130, 180)),
    ("human", (220, 20, 60)),
    ("vehicle", (0, 0, 142)),
)


def find_cityscapes(
    root: Path, require_masks: bool = True
) -> tuple[dict[str, list[Sample]], list[Skipped]]:
    """Find the image / labelIds pairs of a Cityscapes folder.

    Args:
        root: The folder holding ``leftImg8bit/`` and ``gtFine/``.
        require_masks: Treat an image without its labelIds file as a problem; pass False for
            prediction (such images then come without masks).

    Returns:
        The samples of each split present under ``leftImg8bit/`` (train, val, test), sorted by
        id ``<city>_<seq>_<frame>``, and the problems found: a city folder without its gtFine
        counterpart, an image without its labelIds file, a labelIds file without its image.

    Raises:
        DataError: No ``leftImg8bit/`` folder, or no image pairs with its labels.

    Example:
        >>> splits, skipped = find_cityscapes(Path("data/cityscapes"))  # doctest: +SKIP
        >>> splits["train"][0].masks[0].name  # doctest: +SKIP
        'aachen_000000_000000_gtFine_labelIds.png'
    """
    images_root = root / "leftImg8bit"
    if not images_root.is_dir():
        raise DataError(root, "no leftImg8bit/ folder", _TREE)
    splits: dict[str, list[Sample]] = {}
    problems: list[Skipped] = []
    for split in SPLIT_NAMES:
        if (images_root / split).is_dir():
            splits[split] = _find_split(
                images_root / split, root / "gtFine" / split, require_masks, problems
            )
    for other in sorted(visible_files(images_root)):
        if other.name not in SPLIT_NAMES:
            logger.debug("ignoring %s: not a train, val or test folder", other)
    if not any(splits.values()):
        first = f" (first problem: {problems[0].path}: {problems[0].reason})" if problems else ""
        pairs = "pairs with its labelIds file" if require_masks else "found"
        raise DataError(root, f"no image {pairs} in the Cityscapes layout{first}", _TREE)
    return splits, problems


def _find_split(
    images_dir: Path, labels_dir: Path, require_masks: bool, problems: list[Skipped]
) -> list[Sample]:
    samples = []
    for city in sorted(visible_files(images_dir)):
        if not city.is_dir():
            if city.stem.endswith(IMAGE_TAG):
                hint = f"move it into a city folder: {images_dir}/<city>/"
                problems.append(Skipped(city, "image outside a city folder", hint))
            continue
        images = _images(city, problems)
        label_city = labels_dir / city.name
        if not label_city.is_dir() and require_masks:
            reason = f"city folder without labels (no {label_city})"
            problems.append(Skipped(city, reason, "unpack gtFine_trainvaltest beside leftImg8bit"))
            continue
        labels = _labels(label_city) if label_city.is_dir() else {}
        for sample_id, image in images.items():
            if sample_id in labels:
                samples.append(Sample(sample_id, image, (labels[sample_id],)))
            elif not require_masks:
                samples.append(Sample(sample_id, image, ()))
            else:
                expected = label_city / f"{sample_id}{LABEL_SUFFIX}"
                reason = f"image without its labelIds file (expected {expected})"
                problems.append(Skipped(image, reason, "add the labels or remove the image"))
        if require_masks:
            problems += [
                Skipped(
                    label,
                    f"labelIds file without an image (expected {city / sample_id}{IMAGE_TAG}.png)",
                    "add the image or remove the labels",
                )
                for sample_id, label in labels.items()
                if sample_id not in images
            ]
    if require_masks and labels_dir.is_dir():
        problems += [
            Skipped(
                city,
                f"labels for a city without images (no {images_dir / city.name})",
                "unpack leftImg8bit_trainvaltest beside gtFine",
            )
            for city in sorted(visible_files(labels_dir))
            if city.is_dir() and not (images_dir / city.name).is_dir()
        ]
    return sorted(samples, key=lambda sample: sample.id)


def _images(city: Path, problems: list[Skipped]) -> dict[str, Path]:
    """``<id>_leftImg8bit.<ext>`` files of a city folder by id; other images are problems."""
    images = {}
    for path in sorted(visible_files(city)):
        if not path.is_file() or path.suffix.lower() not in IMAGE_SUFFIXES:
            logger.debug("ignoring %s: not an image file", path)
        elif path.stem.endswith(IMAGE_TAG):
            images[path.stem.removesuffix(IMAGE_TAG)] = path
        else:
            reason = f"image not named <city>_<seq>_<frame>{IMAGE_TAG}.png"
            problems.append(Skipped(path, reason, "rename it or move it out of leftImg8bit/"))
    return images


def _labels(city: Path) -> dict[str, Path]:
    """``<id>_gtFine_labelIds.png`` files of a city folder by id (colour masks are ignored)."""
    return {
        path.name.removesuffix(LABEL_SUFFIX): path
        for path in sorted(visible_files(city))
        if path.is_file() and path.name.endswith(LABEL_SUFFIX)
    }
