"""Volumes decoded with their ground truth, as evaluation scores them and the cache stores them.

Lives in `seglab.data` so that the volume cache (`seglab.data.volume_cache`) reads volumes
without importing the evaluation layer; `seglab.evaluation.volumes` re-exports both names.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from seglab.data.layouts import Sample
from seglab.data.volumes import load_volume_pair
from seglab.errors import DataError

__all__ = ["LabelledVolume", "load_labelled_volumes"]


@dataclass
class LabelledVolume:
    """A decoded volume and its ground truth.

    Attributes:
        id: The file stem.
        path: The image file.
        image: `(D, H, W)` or `(D, H, W, C)` raw volume.
        mask: `(D, H, W)` bool foreground (binary) or int32 class indices (multi-class).
    """

    id: str
    path: Path
    image: np.ndarray
    mask: np.ndarray


def load_labelled_volumes(
    samples: Sequence[Sample], num_classes: int | None = None, ignore_index: int = 255
) -> list[LabelledVolume]:
    """Read each sample's image and labels (`Sample.masks[0]`).

    Args:
        samples: Volume files, as `seglab.training.kinds.volumes.volume_splits` lists them.
        num_classes: None for binary labels (any value > 0 is foreground), else C: labels must
            be class indices below C, or `ignore_index`.
        ignore_index: Label of unlabelled voxels (multi-class only).

    Raises:
        DataError: A file is unreadable, a sample has no labels, or labels are out of range.
    """
    volumes = []
    for sample in samples:
        if not sample.masks:
            raise DataError(sample.image, "has no labels", "add labels/<stem>.tif next to images/")
        volume, labels = load_volume_pair(sample.image, sample.masks[0])
        assert labels is not None  # a label path was given
        if num_classes is None:
            volumes.append(LabelledVolume(sample.id, sample.image, volume.data, labels > 0))
            continue
        bad = (labels >= num_classes) & (labels != ignore_index)
        if bad.any():
            raise DataError(
                sample.masks[0],
                f"holds label {int(labels[bad].max())}, not a class index below "
                f"data.num_classes={num_classes} nor data.ignore_index={ignore_index}",
                "raise data.num_classes or relabel the volume",
            )
        volumes.append(LabelledVolume(sample.id, sample.image, volume.data, labels))
    return volumes
