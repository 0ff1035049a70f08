"""Decode samples once: the image, the binary mask or class indices and, for DSB2018, the
instance labels."""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from seglab.data.io import read_image, read_label_image, read_mask
from seglab.data.layouts import Sample, Skipped
from seglab.errors import DataError

if TYPE_CHECKING:
    from seglab.data.labels import LabelMapping

logger = logging.getLogger(__name__)

# PNG/JPEG decoding releases the GIL, so two threads roughly halve the load time without the
# start-up cost and memory copies of processes.
_WORKERS = 2


@dataclass
class LoadedSample:
    """A decoded sample.

    Attributes:
        id: The sample id.
        image: ``(H, W, C)`` uint8 or uint16 image.
        mask: ``(H, W)`` bool foreground mask (binary), or uint8 class indices (multi-class,
            with the mapping's ignore index for void), or None when unlabelled.
        instances: ``(H, W)`` int32 labels 1..K, one per mask file (dsb2018), else None.
    """

    id: str
    image: np.ndarray
    mask: np.ndarray | None
    instances: np.ndarray | None


def load_sample(sample: Sample, mapping: LabelMapping | None = None) -> LoadedSample:
    """Read a sample's image and masks.

    Instance masks (dsb2018) are combined: ``mask`` is their union and ``instances`` numbers them
    1..K in file order, skipping empty masks (an image without nuclei may hold one all-zero
    mask); where two overlap, the first keeps the pixel. With a label `mapping`
    (multi-class), the one mask file holds label values that the mapping turns into class
    indices.

    Raises:
        DataError: A file is unreadable, or a mask's size differs from its image's.
    """
    image = read_image(sample.image)
    if not sample.masks:
        return LoadedSample(sample.id, image, None, None)
    height, width = image.shape[:2]
    if mapping is not None:
        raw = read_label_image(sample.masks[0])
        _check_size(sample, sample.masks[0], raw.shape, (height, width))
        return LoadedSample(sample.id, image, mapping.apply(raw, sample.masks[0]), None)
    instances = np.zeros((height, width), np.int32) if sample.instance_masks else None
    union = np.zeros((height, width), bool)
    overlapping = 0
    label = 0
    for path in sample.masks:
        mask = read_mask(path)
        _check_size(sample, path, mask.shape, (height, width))
        if instances is not None and mask.any():
            label += 1
            overlapping += int((mask & union).sum())
            instances[mask & ~union] = label
        union |= mask
    if overlapping:
        logger.warning(
            "%s: %d pixels belong to several nucleus masks; each keeps the label of the first "
            "mask in file-name order",
            sample.id,
            overlapping,
        )
    return LoadedSample(sample.id, image, union, instances)


def _check_size(
    sample: Sample, path: Path, shape: tuple[int, ...], expected: tuple[int, int]
) -> None:
    if shape != expected:
        raise DataError(
            path,
            f"mask is {shape[1]}x{shape[0]} (WxH) but its image {sample.image} "
            f"is {expected[1]}x{expected[0]}",
            "resize masks with nearest-neighbour interpolation or fix the export",
        )


def iter_load(
    samples: Sequence[Sample], skip_bad: bool = False, mapping: LabelMapping | None = None
) -> Iterator[LoadedSample | Skipped]:
    """Decode samples in order on a small thread pool, yielding each as it is ready.

    At most a few samples are decoded ahead, so memory stays bounded when the caller only keeps
    statistics.

    Args:
        samples: Samples to decode.
        skip_bad: Yield a `Skipped` for a sample whose files are bad instead of raising.
        mapping: Label mapping of multi-class masks (None: binary masks).

    Raises:
        DataError: A sample is bad and ``skip_bad`` is False.
    """
    with ThreadPoolExecutor(max_workers=_WORKERS) as pool:
        pending: deque[Future[LoadedSample]] = deque()
        queue = iter(samples)
        try:
            while True:
                while len(pending) < 2 * _WORKERS and (sample := next(queue, None)) is not None:
                    pending.append(pool.submit(load_sample, sample, mapping))
                if not pending:
                    return
                try:
                    yield pending.popleft().result()
                except DataError as exc:
                    if not skip_bad:
                        raise
                    logger.warning("skipped %s: %s", exc.path, exc.problem)
                    yield Skipped(exc.path, exc.problem, exc.hint)
        finally:
            for future in pending:
                future.cancel()


def load_samples(
    samples: Sequence[Sample],
    skip_bad: bool = False,
    progress: bool = False,
    label: str = "decoding images",
    mapping: LabelMapping | None = None,
) -> tuple[list[LoadedSample], list[Skipped]]:
    """Decode every sample once.

    Args:
        samples: Samples to decode.
        skip_bad: Record samples with bad files instead of raising.
        progress: Show a progress bar on the terminal.
        label: The progress bar's description.
        mapping: Label mapping of multi-class masks (None: binary masks).

    Returns:
        The decoded samples (in input order) and the skipped ones.

    Raises:
        DataError: A sample is bad and ``skip_bad`` is False.
    """
    loaded: list[LoadedSample] = []
    skipped: list[Skipped] = []
    results: Iterable[LoadedSample | Skipped] = iter_load(samples, skip_bad, mapping)
    if progress:
        from rich.progress import track  # only the CLI asks for a bar

        results = track(results, total=len(samples), description=label)
    for result in results:
        if isinstance(result, Skipped):
            skipped.append(result)
        else:
            loaded.append(result)
    return loaded, skipped
