"""Decode samples once: the image, the binary mask and, for DSB2018, the instance labels."""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from seglab.data.io import read_image, read_mask
from seglab.data.layouts import Sample, Skipped
from seglab.errors import DataError

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
        mask: ``(H, W)`` bool foreground mask, or None when unlabelled.
        instances: ``(H, W)`` int32 labels 1..K, one per mask file (dsb2018), else None.
    """

    id: str
    image: np.ndarray
    mask: np.ndarray | None
    instances: np.ndarray | None


def load_sample(sample: Sample) -> LoadedSample:
    """Read a sample's image and masks.

    Instance masks (dsb2018) are combined: ``mask`` is their union and ``instances`` numbers them
    1..K in file order; where two overlap, the first keeps the pixel.

    Raises:
        DataError: A file is unreadable, or a mask's size differs from its image's.
    """
    image = read_image(sample.image)
    if not sample.masks:
        return LoadedSample(sample.id, image, None, None)
    height, width = image.shape[:2]
    instances = np.zeros((height, width), np.int32) if sample.instance_masks else None
    union = np.zeros((height, width), bool)
    overlapping = 0
    for label, path in enumerate(sample.masks, start=1):
        mask = read_mask(path)
        if mask.shape != (height, width):
            raise DataError(
                path,
                f"mask is {mask.shape[1]}x{mask.shape[0]} (WxH) but its image {sample.image} "
                f"is {width}x{height}",
                "resize masks with nearest-neighbour interpolation or fix the export",
            )
        if instances is not None:
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


def iter_load(
    samples: Sequence[Sample], skip_bad: bool = False
) -> Iterator[LoadedSample | Skipped]:
    """Decode samples in order on a small thread pool, yielding each as it is ready.

    At most a few samples are decoded ahead, so memory stays bounded when the caller only keeps
    statistics.

    Args:
        samples: Samples to decode.
        skip_bad: Yield a `Skipped` for a sample whose files are bad instead of raising.

    Raises:
        DataError: A sample is bad and ``skip_bad`` is False.
    """
    with ThreadPoolExecutor(max_workers=_WORKERS) as pool:
        pending: deque[Future[LoadedSample]] = deque()
        queue = iter(samples)
        try:
            while True:
                while len(pending) < 2 * _WORKERS and (sample := next(queue, None)) is not None:
                    pending.append(pool.submit(load_sample, sample))
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
) -> tuple[list[LoadedSample], list[Skipped]]:
    """Decode every sample once.

    Args:
        samples: Samples to decode.
        skip_bad: Record samples with bad files instead of raising.
        progress: Show a progress bar on the terminal.

    Returns:
        The decoded samples (in input order) and the skipped ones.

    Raises:
        DataError: A sample is bad and ``skip_bad`` is False.
    """
    loaded: list[LoadedSample] = []
    skipped: list[Skipped] = []
    results: Iterable[LoadedSample | Skipped] = iter_load(samples, skip_bad)
    if progress:
        from rich.progress import track  # only the CLI asks for a bar

        results = track(results, total=len(samples), description=label)
    for result in results:
        if isinstance(result, Skipped):
            skipped.append(result)
        else:
            loaded.append(result)
    return loaded, skipped
