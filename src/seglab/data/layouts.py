"""Find image/mask samples on disk in the supported folder layouts, and split them.

Layouts (the keys of `LAYOUTS`)::

    folders     ROOT/images/a.png   ROOT/masks/a.png (or a_mask.png; suffixes may differ)
    dsb2018     ROOT/<id>/images/<id>.png   ROOT/<id>/masks/*.png (one PNG per nucleus)
    cityscapes  ROOT/leftImg8bit/<split>/<city>/<id>_leftImg8bit.png
                ROOT/gtFine/<split>/<city>/<id>_gtFine_labelIds.png (see seglab.data.cityscapes)

folders and dsb2018 may be split into ``ROOT/train``, ``ROOT/val`` and ``ROOT/test``
sub-folders, each in the same layout; cityscapes keeps its splits inside ``leftImg8bit/`` and
``gtFine/``. Finding samples only lists files; decoding happens in `seglab.data.loading`.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np

from seglab.data.io import IMAGE_SUFFIXES
from seglab.errors import DataError

logger = logging.getLogger(__name__)

SPLIT_NAMES = ("train", "val", "test")
_LAYOUT_SKETCHES = {
    "folders": "ROOT/images/<name>.png + ROOT/masks/<name>.png",
    "dsb2018": "ROOT/<id>/images/<id>.png + ROOT/<id>/masks/<nucleus>.png",
    "cityscapes": "ROOT/leftImg8bit/<split>/<city>/<id>_leftImg8bit.png + "
    "ROOT/gtFine/<split>/<city>/<id>_gtFine_labelIds.png",
}
_OTHER_IMAGE_SUFFIXES = (".bmp", ".gif", ".webp", ".jp2", ".tga", ".ppm", ".pgm", ".npy")


@dataclass(frozen=True)
class Sample:
    """One image and the mask files that label it.

    Attributes:
        id: Unique name of the sample (the image's file stem or DSB2018 folder name).
        image: Image file.
        masks: Mask files: empty for an unlabelled image, one for the folders layout, one per
            object for dsb2018.
        instance_masks: True when each mask file holds one object, so instance labels can be
            built from them (dsb2018).
    """

    id: str
    image: Path
    masks: tuple[Path, ...]
    instance_masks: bool = False


@dataclass(frozen=True)
class Skipped:
    """A file or sample left out, and why."""

    path: Path
    reason: str
    hint: str = ""


@dataclass
class FoundSamples:
    """The result of `find_samples`: samples per split and what was skipped."""

    layout: str
    splits: dict[str, list[Sample]]
    skipped: list[Skipped]


Found = tuple[list[Sample], list[Skipped]]
SplitsFound = tuple[dict[str, list[Sample]], list[Skipped]]


def find_folders(root: Path, require_masks: bool = True) -> Found:
    """Find samples in the folders layout (``ROOT/images/*``, ``ROOT/masks/*``).

    Returns:
        The samples sorted by id, and the per-sample problems found.
    """
    problems: list[Skipped] = []
    images_dir, masks_dir = root / "images", root / "masks"
    if not images_dir.is_dir():
        raise DataError(root, "no images/ folder", f"expected {_LAYOUT_SKETCHES['folders']}")
    images, dropped = _by_stem(_list_images(images_dir, problems), problems)
    masks: dict[str, Path] = {}
    if masks_dir.is_dir():
        by_image: dict[str, list[Path]] = {}
        for mask in _list_images(masks_dir, problems):
            stem = mask.stem
            if stem not in images and stem.endswith("_mask"):
                stem = stem.removesuffix("_mask")
            by_image.setdefault(stem, []).append(mask)
        for stem, paths in by_image.items():
            if len(paths) == 1:
                masks[stem] = paths[0]
                continue
            reason = f"{len(paths)} masks for image {stem!r}: {', '.join(p.name for p in paths)}"
            problems.append(Skipped(paths[-1], reason, "keep one mask per image"))
            images.pop(stem, None)
            dropped.add(stem)
    elif require_masks and images:
        raise DataError(
            root, "no masks/ folder", "put one mask per image in masks/ with the same file stem"
        )
    samples = []
    for stem, image in images.items():
        if stem in masks:
            samples.append(Sample(stem, image, (masks[stem],)))
        elif require_masks:
            problems.append(_missing_mask(image, f"{masks_dir.name}/{stem}.png"))
        else:
            samples.append(Sample(stem, image, ()))
    if require_masks:
        hint = "give the mask the same file stem as its image, or remove it"
        problems += [
            Skipped(orphan, f"mask without an image (no images/{stem}.*)", hint)
            for stem, orphan in masks.items()
            if stem not in images and stem not in dropped
        ]
    return sorted(samples, key=lambda s: s.id), problems


def find_dsb2018(root: Path, require_masks: bool = True) -> Found:
    """Find samples in the DSB2018 layout (``ROOT/<id>/images/<id>.png``, ``ROOT/<id>/masks``).

    Returns:
        The samples sorted by id, and the per-sample problems found.
    """
    problems: list[Skipped] = []
    samples = []
    for folder in sorted(visible_files(root)):
        if not folder.is_dir():
            logger.debug("ignoring %s: not a sample folder", folder)
            continue
        images_dir, masks_dir = folder / "images", folder / "masks"
        if not images_dir.is_dir():
            hint = f"expected {_LAYOUT_SKETCHES['dsb2018']}"
            problems.append(Skipped(folder, "sample folder without an images/ sub-folder", hint))
            continue
        candidates = _list_images(images_dir, problems)
        named = [p for p in candidates if p.stem == folder.name]
        if len(named) != 1 and len(candidates) != 1:
            reason = f"found {len(candidates)} images, expected exactly one"
            problems.append(Skipped(images_dir, reason, f"keep only images/{folder.name}.png"))
            continue
        image = (named or candidates)[0]
        masks = _list_images(masks_dir, problems) if masks_dir.is_dir() else []
        if not masks and require_masks:
            problems.append(_missing_mask(image, f"{folder.name}/masks/*.png"))
            continue
        masks.sort(key=_natural_key)
        samples.append(Sample(folder.name, image, tuple(masks), instance_masks=True))
    return samples, problems


def find_in_split_folders(
    finder: Callable[..., Found], layout: str, root: Path, require_masks: bool = True
) -> SplitsFound:
    """Apply a one-folder `finder` to ``ROOT/train``, ``ROOT/val``, ``ROOT/test``, or to ROOT.

    Returns:
        The samples of each split (``"all"`` without split folders) and the problems found.

    Raises:
        DataError: A split folder holds no images at all.
    """
    split_dirs = {s: root / s for s in SPLIT_NAMES if (root / s).is_dir()} or {"all": root}
    splits: dict[str, list[Sample]] = {}
    skipped: list[Skipped] = []
    for name, folder in split_dirs.items():
        samples, problems = finder(folder, require_masks=require_masks)
        if not samples and not problems:
            raise DataError(
                folder, f"no images found ({layout} layout)", f"expected {_LAYOUT_SKETCHES[layout]}"
            )
        splits[name] = samples
        skipped += problems
    return splits, skipped


def _find_cityscapes(root: Path, require_masks: bool = True) -> SplitsFound:
    from seglab.data.cityscapes import find_cityscapes  # it imports this module

    return find_cityscapes(root, require_masks)


# Each finder takes (root, require_masks) and returns the samples per split and the problems.
LAYOUTS: dict[str, Callable[..., SplitsFound]] = {
    "folders": partial(find_in_split_folders, find_folders, "folders"),
    "dsb2018": partial(find_in_split_folders, find_dsb2018, "dsb2018"),
    "cityscapes": _find_cityscapes,
}


def detect_layout(root: str | Path) -> str:
    """Guess the layout of a dataset folder.

    Returns:
        ``"cityscapes"`` when ``leftImg8bit/`` exists under the root, ``"folders"`` when
        ``images/`` does (under the root or a split sub-folder), ``"dsb2018"`` when sub-folders
        hold ``images/<name>.png``.

    Raises:
        DataError: The folder is missing or matches no layout.
    """
    root = check_root(Path(root))
    if (root / "leftImg8bit").is_dir():
        return "cityscapes"
    bases = [root] + [root / s for s in SPLIT_NAMES if (root / s).is_dir()]
    if any((base / "images").is_dir() for base in bases):
        return "folders"
    for base in bases:
        for folder in visible_files(base):
            if folder.is_dir() and any(
                (folder / "images" / f"{folder.name}{s}").is_file() for s in IMAGE_SUFFIXES
            ):
                return "dsb2018"
    sketches = "\n".join(f"    {name:10s} {tree}" for name, tree in _LAYOUT_SKETCHES.items())
    raise DataError(
        root,
        "cannot tell the dataset layout: no images/ folder, no <id>/images/<id>.png and no "
        "leftImg8bit/ folder",
        f"arrange the files in one of these layouts (optionally inside train/, val/, test/):\n"
        f"{sketches}",
    )


def find_samples(
    root: str | Path, layout: str = "auto", skip_bad: bool = False, require_masks: bool = True
) -> FoundSamples:
    """List the samples of a dataset folder.

    Args:
        root: Dataset folder. If it holds ``train/``, ``val/`` or ``test/`` sub-folders, each is a
            split named after its folder; otherwise all samples form the split ``"all"``.
            Cityscapes splits are the folders under ``leftImg8bit/``.
        layout: A key of `LAYOUTS`, or ``"auto"`` to call `detect_layout`.
        skip_bad: Record per-sample problems (an image without a mask, ...) in ``skipped``
            instead of raising. Folder-level problems always raise.
        require_masks: Treat an image without a mask as a problem; pass False for prediction.

    Returns:
        The layout, the samples of each split sorted by id, and the skipped files.

    Raises:
        DataError: The folder is missing or empty, or (without ``skip_bad``) a sample is bad.
        ValueError: Unknown layout name.
    """
    root = check_root(Path(root))
    if layout == "auto":
        layout = detect_layout(root)
    if layout not in LAYOUTS:
        raise ValueError(f"unknown layout {layout!r}; choose one of {', '.join(LAYOUTS)} or auto")
    found, skipped = LAYOUTS[layout](root, require_masks=require_masks)
    splits: dict[str, list[Sample]] = {}
    seen: dict[str, str] = {}
    for name, samples in found.items():
        splits[name] = []
        for sample in samples:
            if sample.id in seen:  # the same id in two splits would leak test data into training
                reason = f"id {sample.id!r} is also in split {seen[sample.id]!r}"
                skipped.append(Skipped(sample.image, reason, "give every sample a unique name"))
            else:
                seen[sample.id] = name
                splits[name].append(sample)
    if skipped and not skip_bad:
        first = skipped[0]
        others = len(skipped) - 1
        more = f" (and {others} more problem{'s' * (others > 1)})" if others else ""
        hint = "; ".join(filter(None, [first.hint, "or skip bad samples (skip_bad=True)"]))
        raise DataError(first.path, first.reason + more, hint)
    if not any(splits.values()):
        raise DataError(
            root,
            f"no usable samples ({len(skipped)} skipped)",
            skipped[0].reason if skipped else "",
        )
    for problem in skipped:
        logger.warning("skipped %s: %s", problem.path, problem.reason)
    counts = ", ".join(f"{len(v)} {k}" for k, v in splits.items())
    logger.info("found %s in %s (%s layout)", counts, root, layout)
    return FoundSamples(layout, splits, skipped)


def split_samples(
    samples: Sequence[Sample],
    val_fraction: float = 0.15,
    test_fraction: float = 0.15,
    seed: int = 0,
) -> dict[str, list[Sample]]:
    """Split samples at random into train, val and test, reproducibly for a seed.

    With two or more samples, train and val (when ``val_fraction > 0``) each get at least one;
    test gets at least one when ``test_fraction > 0`` and at least three samples are available.

    Returns:
        ``{"train": [...], "val": [...], "test": [...]}``, each sorted by id.

    Raises:
        ValueError: A fraction outside [0, 1) or fractions summing to 1 or more.
    """
    if not (0 <= val_fraction < 1 and 0 <= test_fraction < 1 and val_fraction + test_fraction < 1):
        raise ValueError(
            f"need 0 <= val_fraction, test_fraction and val_fraction + test_fraction < 1, "
            f"got {val_fraction} and {test_fraction}"
        )
    # Sorting first makes the split depend on the seed only, not on the caller's order.
    ordered = sorted(samples, key=lambda s: s.id)
    n = len(ordered)
    # Round half up, as write_synthetic does (round() sends halves to even).
    n_val, n_test = (
        int(np.floor(n * fraction + 0.5)) for fraction in (val_fraction, test_fraction)
    )
    if n >= 2 and val_fraction > 0:
        n_val = max(n_val, 1)
    if n >= 3 and test_fraction > 0:
        n_test = max(n_test, 1)
    while n > 0 and n - n_val - n_test < 1:  # train must keep one: shrink test first, then val
        if n_test > 0:
            n_test -= 1
        else:
            n_val -= 1
    order = np.random.default_rng(seed).permutation(n)
    parts = np.split(order, [n_val, n_val + n_test])
    val, test, train = ([ordered[i] for i in sorted(part)] for part in parts)
    return {"train": train, "val": val, "test": test}


def check_root(root: Path) -> Path:
    """`root` if it is an existing folder, else a DataError saying what to pass."""
    if not root.exists():
        raise DataError(root, "dataset folder not found", "check the path")
    if not root.is_dir():
        raise DataError(root, "is a file, expected a dataset folder", "pass the folder instead")
    return root


def visible_files(folder: Path) -> list[Path]:
    """Entries of `folder`, without hidden files and macOS archive debris."""
    return [p for p in folder.iterdir() if not p.name.startswith((".", "__MACOSX"))]


def _list_images(folder: Path, problems: list[Skipped]) -> list[Path]:
    """Image files of a folder; unsupported image formats are problems, other files are ignored."""
    files = []
    for path in sorted(visible_files(folder)):
        suffix = path.suffix.lower()
        if path.is_file() and suffix in IMAGE_SUFFIXES:
            files.append(path)
        elif path.is_file() and suffix in _OTHER_IMAGE_SUFFIXES:
            hint = f"convert it to PNG (supported: {', '.join(IMAGE_SUFFIXES)})"
            problems.append(Skipped(path, f"unsupported image format {suffix}", hint))
        else:
            logger.debug("ignoring %s: not an image file", path)
    return files


def _by_stem(files: list[Path], problems: list[Skipped]) -> tuple[dict[str, Path], set[str]]:
    """Map file stems to files, leaving out (and reporting) stems shared by several files."""
    by_stem: dict[str, list[Path]] = {}
    for path in files:
        by_stem.setdefault(path.stem, []).append(path)
    duplicates = {stem for stem, paths in by_stem.items() if len(paths) > 1}
    for stem in sorted(duplicates):
        reason = f"several files named {stem!r}: {', '.join(p.name for p in by_stem[stem])}"
        problems.append(Skipped(by_stem[stem][-1], reason, "keep one file per stem"))
    return {stem: paths[0] for stem, paths in by_stem.items() if stem not in duplicates}, duplicates


def _missing_mask(image: Path, expected: str) -> Skipped:
    hint = "add the mask, or pass require_masks=False to use unlabelled images"
    return Skipped(image, f"image without a mask (expected {expected})", hint)


def _natural_key(path: Path) -> list[int | str]:
    # "nucleus_2" before "nucleus_10", so instance labels follow the numbering people expect.
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", path.name)]
