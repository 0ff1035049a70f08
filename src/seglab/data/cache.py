"""Decode once, read lazily: an on-disk cache of memory-mapped sample arrays.

Each sample is decoded (and resized, its borders drawn, its labels mapped) once into a folder of
`.npy` files, keyed by its source files (path, size, modification time) and the pre-processing.
Training then reads each crop straight from the memory-mapped arrays, so resident memory is
bounded by the batches in flight, not by the dataset: Cityscapes' 19 GB of pixels train on a
laptop. Runs of a comparison or a cross-validation share one cache and decode nothing twice.

A sample folder is written under a temporary name and renamed when complete, so a reader never
sees half a sample; each array's byte size is recorded and checked, so a truncated file (a full
disk, a killed copy) is detected and the sample decoded again.

Layout: `<cache>/<key[:2]>/<key>/{sample.json,image.npy,mask.npy[,instances.npy,borders.npy]}`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import uuid
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from seglab.data.layouts import Sample, Skipped
from seglab.data.loading import LoadedSample, load_sample
from seglab.data.mapped_arrays import mapped_array
from seglab.data.transforms import percentile_bounds, resize_image, resize_mask
from seglab.errors import ConfigError, DataError

if TYPE_CHECKING:
    from seglab.data.labels import LabelMapping

log = logging.getLogger(__name__)

__all__ = [
    "CACHE_VERSION",
    "CachedSample",
    "Fingerprinted",
    "Preparation",
    "cache_samples",
    "clear_cache",
    "entry_folder",
    "file_stamp",
    "read_record",
    "sample_key",
    "write_entry",
]

# Bumped when the stored arrays change meaning, so old entries are never misread.
CACHE_VERSION = 1
_WORKERS = 2  # decoding threads: PNG and TIFF decoders release the GIL


class Fingerprinted(Protocol):
    """Pre-processing that can be part of a cache key (2D `Preparation`, volumes' own)."""

    def fingerprint(self) -> dict[str, Any]:
        """A JSON-serialisable description of the pre-processing."""
        ...


@dataclass(frozen=True)
class Preparation:
    """What turns decoded files into cached arrays; part of every cache key.

    Attributes:
        size: `(H, W)` to resize every image to, or None for native sizes.
        borders: Draw nucleus borders (the boundary-aware target).
        percentiles: Percentiles of each image to record (per-image normalisation).
        mapping: Label mapping of multi-class masks (None: binary masks).
    """

    size: tuple[int, int] | None
    borders: bool
    percentiles: tuple[float, float]
    mapping: LabelMapping | None = None

    def fingerprint(self) -> dict[str, Any]:
        return {
            "version": CACHE_VERSION,
            "size": list(self.size) if self.size else None,
            "borders": self.borders,
            "percentiles": list(self.percentiles),
            "mapping": self.mapping.to_dict() if self.mapping is not None else None,
        }


@dataclass(frozen=True)
class CachedSample:
    """A sample in the cache; its arrays are memory-mapped on access (`mapped_array`), not
    held by the sample.

    Attributes:
        id: The sample id.
        folder: Its cache folder.
        shape: `(H, W)` of the stored image.
        channels: Channels of the stored image.
        bounds: The image's recorded percentiles `(low, high)` (see `Preparation`).
        foreground: Foreground pixels (binary) or pixels per class (multi-class).
        has_borders: A `borders.npy` is stored.
        has_instances: An `instances.npy` is stored (one mask file per object).
    """

    id: str
    folder: Path
    shape: tuple[int, int]
    channels: int
    bounds: tuple[float, float]
    foreground: tuple[int, ...]
    has_borders: bool = False
    has_instances: bool = False

    @property
    def image(self) -> np.ndarray:
        """`(H, W, C)` uint8/uint16/float image, memory-mapped read-only."""
        return mapped_array(self.folder, "image")

    @property
    def mask(self) -> np.ndarray:
        """`(H, W)` bool mask or uint8 class indices, memory-mapped read-only."""
        return mapped_array(self.folder, "mask")

    @property
    def borders(self) -> np.ndarray | None:
        """`(H, W)` bool nucleus borders, or None."""
        return mapped_array(self.folder, "borders") if self.has_borders else None

    @property
    def instances(self) -> np.ndarray | None:
        """`(H, W)` int32 instance labels (dsb2018), or None."""
        return mapped_array(self.folder, "instances") if self.has_instances else None


def file_stamp(path: Path) -> list[Any]:
    """What identifies a source file in a key: its resolved path, byte size and mtime (ns)."""
    stat = path.stat()
    return [str(path.resolve()), stat.st_size, stat.st_mtime_ns]


def sample_key(sample: Sample, preparation: Fingerprinted) -> str:
    """The cache key of a sample: its files' paths, sizes and times, and the pre-processing."""
    source = {
        "image": file_stamp(sample.image),
        "masks": [file_stamp(p) for p in sample.masks],
        "prepare": preparation.fingerprint(),
    }
    return hashlib.sha256(json.dumps(source, sort_keys=True).encode()).hexdigest()


def entry_folder(cache: Path, key: str) -> Path:
    """The folder of the entry `key`: `<cache>/<key[:2]>/<key>`."""
    return cache / key[:2] / key


def read_record(folder: Path) -> dict[str, Any] | None:
    """The `sample.json` record of a complete entry, or None (missing, truncated, unreadable).

    Every array listed in the record's `bytes` must have the recorded size: a truncated file
    (a full disk, a killed copy) makes the whole entry missing, to be decoded again.
    """
    try:
        record = json.loads((folder / "sample.json").read_text())
        for name, size in record["bytes"].items():
            if (folder / name).stat().st_size != size:
                log.warning("cache entry %s: %s is truncated; decoding again", folder, name)
                return None
    except (OSError, ValueError, KeyError, AttributeError):
        return None
    return record if isinstance(record, dict) else None


def write_entry(folder: Path, arrays: dict[str, np.ndarray], record: dict[str, Any]) -> None:
    """Write `<name>.npy` for each array and `sample.json` (the record and the byte sizes)
    into `folder`, atomically: under a temporary name, renamed when complete.

    An existing (truncated) entry is replaced; if another process (a DDP rank, a parallel run)
    renames its copy first, that one is kept.
    """
    temporary = folder.with_name(f".{folder.name}.{uuid.uuid4().hex}.tmp")
    temporary.mkdir(parents=True)
    try:
        sizes = {}
        for name, array in arrays.items():
            np.save(temporary / f"{name}.npy", np.ascontiguousarray(array))
            sizes[f"{name}.npy"] = (temporary / f"{name}.npy").stat().st_size
        # sample.json last: an entry without it is incomplete and never opened.
        (temporary / "sample.json").write_text(json.dumps({**record, "bytes": sizes}))
        shutil.rmtree(folder, ignore_errors=True)
        try:
            temporary.rename(folder)
        except OSError:  # another process finished it first
            shutil.rmtree(temporary, ignore_errors=True)
    finally:
        if temporary.exists():
            shutil.rmtree(temporary, ignore_errors=True)


def _open(folder: Path, sample_id: str) -> CachedSample | None:
    """The complete cache entry in `folder`, or None (missing, truncated or unreadable)."""
    record = read_record(folder)
    if record is None:
        return None
    try:
        return CachedSample(
            sample_id,
            folder,
            (int(record["shape"][0]), int(record["shape"][1])),
            int(record["channels"]),
            (float(record["bounds"][0]), float(record["bounds"][1])),
            tuple(record["foreground"]),
            "borders.npy" in record["bytes"],
            "instances.npy" in record["bytes"],
        )
    except (KeyError, ValueError, TypeError, IndexError):
        return None


def _arrays(loaded: LoadedSample, preparation: Preparation) -> dict[str, np.ndarray]:
    """The arrays stored for a decoded sample."""
    from seglab.data.dataset import instance_borders

    image, mask, instances = loaded.image, loaded.mask, loaded.instances
    if mask is None:
        raise ValueError(f"sample {loaded.id} has no mask")
    if preparation.borders and instances is None:
        raise ConfigError(
            f"data.target=boundary needs one mask per nucleus (dsb2018 layout); "
            f"sample {loaded.id} has a single mask"
        )
    size = preparation.size
    if size is not None and image.shape[:2] != tuple(size):
        image = resize_image(image, size)
        mask = resize_mask(mask, size)
        instances = resize_mask(instances, size) if instances is not None else None
    arrays = {"image": image, "mask": mask}
    if instances is not None:
        arrays["instances"] = instances  # scored as DSB2018 instances on val and test
    if preparation.borders and instances is not None:
        arrays["borders"] = instance_borders(instances)
    return arrays


def _write(folder: Path, loaded: LoadedSample, preparation: Preparation) -> CachedSample:
    arrays = _arrays(loaded, preparation)
    image, mask = arrays["image"], arrays["mask"]
    mapping = preparation.mapping
    if mapping is None:
        foreground: list[int] = [int(np.count_nonzero(mask))]
    else:
        foreground = np.bincount(mask.ravel(), minlength=256)[: mapping.num_classes].tolist()
    record = {
        "id": loaded.id,
        "shape": list(image.shape[:2]),
        "channels": int(image.shape[2]),
        "bounds": [float(b) for b in percentile_bounds(image, preparation.percentiles)],
        "foreground": [int(f) for f in foreground],
    }
    write_entry(folder, arrays, record)
    entry = _open(folder, loaded.id)
    if entry is None:
        raise DataError(folder, "the cache entry just written cannot be read back")
    return entry


def _build(sample: Sample, folder: Path, preparation: Preparation) -> CachedSample:
    return _write(folder, load_sample(sample, preparation.mapping), preparation)


def _entries(
    samples: Sequence[Sample], cache: Path, preparation: Preparation
) -> Iterator[CachedSample | Future[CachedSample]]:
    """Cached entries as they are, and futures for those being decoded (a few at a time)."""
    with ThreadPoolExecutor(max_workers=_WORKERS) as pool:
        queue: deque[CachedSample | Future[CachedSample]] = deque()
        for sample in samples:
            folder = entry_folder(cache, sample_key(sample, preparation))
            queue.append(
                _open(folder, sample.id) or pool.submit(_build, sample, folder, preparation)
            )
            # In input order, with at most a few decodes in flight (bounded memory).
            while sum(isinstance(item, Future) for item in queue) >= 2 * _WORKERS:
                yield queue.popleft()
        yield from queue


def cache_samples(
    samples: Sequence[Sample],
    cache: Path,
    preparation: Preparation,
    skip_bad: bool = False,
    progress: bool = False,
    label: str = "caching",
) -> tuple[list[CachedSample], list[Skipped]]:
    """Decode into the cache the samples not yet in it, and open them all.

    Args:
        samples: The samples to cache (in order).
        cache: The cache folder (created).
        preparation: The pre-processing that is part of each key.
        skip_bad: Record samples whose files are bad instead of raising.
        progress: Show a progress bar.
        label: The progress bar's description.

    Returns:
        The cached samples in input order, and the skipped ones.

    Raises:
        DataError: A sample's files are bad and `skip_bad` is False.
    """
    cached: list[CachedSample] = []
    skipped: list[Skipped] = []
    results: Iterable[Any] = _entries(samples, cache, preparation)
    if progress:
        from rich.progress import track

        results = track(results, total=len(samples), description=label)
    for result in results:
        try:
            cached.append(result if isinstance(result, CachedSample) else result.result())
        except DataError as exc:
            if not skip_bad:
                raise
            log.warning("skipped %s: %s", exc.path, exc.problem)
            skipped.append(Skipped(exc.path, exc.problem, exc.hint))
    return cached, skipped


def cache_size(cache: Path) -> tuple[int, int]:
    """Sample entries and bytes in a cache folder."""
    entries = sum(1 for _ in cache.glob("*/*/sample.json")) if cache.is_dir() else 0
    total = 0
    for root, _, files in os.walk(cache):
        total += sum((Path(root) / f).stat().st_size for f in files)
    return entries, total


def clear_cache(cache: Path) -> tuple[int, int]:
    """Delete a cache folder; returns the entries and bytes it held.

    Raises:
        DataError: `cache` exists but is not a seglab cache (no `*/*/sample.json` inside and
            not empty), so that a mistyped path never deletes a user's folder.
    """
    entries, total = cache_size(cache)
    if not cache.exists():
        return 0, 0
    if entries == 0 and any(cache.iterdir()):
        raise DataError(cache, "is not a seglab cache (no sample entries in it)", "check the path")
    shutil.rmtree(cache)
    return entries, total
