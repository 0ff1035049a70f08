"""Decode once, read patches lazily: the volume entries of the on-disk cache.

Each training, validation or test volume is decoded once into the cache of `seglab.data.cache`
(same folder, same keys of source files and pre-processing, same atomic entries and truncation
check), as `.npy` arrays:

- `image.npy`: `(C, D, H, W)` in the file's dtype (uint8 stays 1 byte a voxel). The model
  input is made per read: channels matched and normalised exactly as `prepare_volume` does for
  the whole volume, with the percentiles of the whole volume recorded at decoding time, so a
  patch equals the same box of the prepared volume.
- `labels.npy`: `(D, H, W)` bool foreground (binary) or int32 class indices (multi-class).
- `foreground.npy`: the flat indices patches are centred on (`foreground_voxels`).

Readers open the memory-maps on each access and copy only the voxels they need, so nothing
stays mapped between reads: resident memory is bounded by workers x batch, not by the volumes.

Example:
    >>> volumes = cache_volumes(samples, Path("runs/cache"), VolumePreparation())  # doctest: +SKIP
    >>> source = PreparedVolume(volumes[0], channels=1)  # doctest: +SKIP
    >>> image, labels = source.read((slice(0, 32), slice(0, 32), slice(0, 32)))  # doctest: +SKIP
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, overload

import numpy as np

from seglab.data.cache import entry_folder, read_record, sample_key, write_entry
from seglab.data.labelled_volumes import LabelledVolume, load_labelled_volumes
from seglab.data.layouts import Sample
from seglab.data.mapped_arrays import mapped_array
from seglab.data.patches import foreground_voxels
from seglab.data.transforms import NormalizeMode, match_channels, normalize_image, percentile_bounds
from seglab.errors import DataError

__all__ = [
    "VOLUME_CACHE_VERSION",
    "CachedVolume",
    "LabelledVolumes",
    "PreparedVolume",
    "VolumePreparation",
    "cache_volumes",
    "prepare_patch",
]

log = logging.getLogger(__name__)

# Bumped when the stored volume arrays change meaning, so old entries are never misread.
VOLUME_CACHE_VERSION = 1


@dataclass(frozen=True)
class VolumePreparation:
    """What turns volume files into cached arrays; part of every volume's cache key.

    Attributes:
        num_classes: None for binary labels (> 0 is foreground), else C class indices.
        ignore_index: Multi-class label of unlabelled voxels (never a patch centre).
        percentiles: Percentiles of each whole volume to record ("percentile" normalisation).
    """

    num_classes: int | None = None
    ignore_index: int = 255
    percentiles: tuple[float, float] = (1.0, 99.0)

    def fingerprint(self) -> dict[str, Any]:
        """The JSON description hashed into the key (`seglab.data.cache.sample_key`)."""
        return {
            "kind": "volume",
            "version": VOLUME_CACHE_VERSION,
            "num_classes": self.num_classes,
            "ignore_index": self.ignore_index if self.num_classes is not None else None,
            "percentiles": list(self.percentiles),
        }


@dataclass(frozen=True)
class CachedVolume:
    """A volume in the cache; its arrays are memory-mapped on each access, never held.

    Attributes:
        id: The file stem.
        path: The source image file.
        folder: Its cache folder.
        shape: Spatial shape `(D, H, W)`.
        channels: Channels of the stored image.
        bounds: Recorded percentiles `(low, high)` of the whole image, all channels together.
        positive: Voxels whose label is > 0.
        foreground_count: Candidate patch centres stored in `foreground.npy`.
    """

    id: str
    path: Path
    folder: Path
    shape: tuple[int, int, int]
    channels: int
    bounds: tuple[float, float]
    positive: int
    foreground_count: int

    @property
    def image(self) -> np.ndarray:
        """`(C, D, H, W)` image in its file's dtype, memory-mapped read-only."""
        return mapped_array(self.folder, "image")

    @property
    def labels(self) -> np.ndarray:
        """`(D, H, W)` bool foreground or int32 class indices, memory-mapped read-only."""
        return mapped_array(self.folder, "labels")

    @property
    def foreground(self) -> np.ndarray:
        """`(N,)` int64 flat indices of the candidate patch centres, memory-mapped read-only."""
        return mapped_array(self.folder, "foreground")

    def labelled(self) -> LabelledVolume:
        """The volume as `evaluate_volume_samples` scores it: memory-maps, `(D, H, W, C)`."""
        return LabelledVolume(self.id, self.path, np.moveaxis(self.image, 0, -1), self.labels)


def _open(folder: Path, sample: Sample) -> CachedVolume | None:
    """The complete volume entry in `folder`, or None (missing, truncated or unreadable)."""
    record = read_record(folder)
    if record is None or record.get("kind") != "volume":
        return None
    try:
        depth, height, width = (int(s) for s in record["shape"])
        return CachedVolume(
            sample.id,
            sample.image,
            folder,
            (depth, height, width),
            int(record["channels"]),
            (float(record["bounds"][0]), float(record["bounds"][1])),
            int(record["positive"]),
            int(record["foreground"]),
        )
    except (KeyError, ValueError, TypeError, IndexError):
        return None


def _build(sample: Sample, folder: Path, preparation: VolumePreparation) -> CachedVolume:
    """Decode a volume and its labels (checked as `load_labelled_volumes` does) into `folder`."""
    (volume,) = load_labelled_volumes([sample], preparation.num_classes, preparation.ignore_index)
    image = volume.image[..., None] if volume.image.ndim == 3 else volume.image
    if image.ndim != 4:
        raise DataError(sample.image, f"expected a (D, H, W[, C]) volume, got {image.shape}")
    multiclass = preparation.num_classes is not None
    labels = volume.mask.astype(np.int32 if multiclass else np.bool_, copy=False)
    ignored = preparation.ignore_index if multiclass else None
    arrays = {
        "image": np.moveaxis(image, -1, 0),
        "labels": labels,
        "foreground": foreground_voxels(labels, ignored),
    }
    record = {
        "kind": "volume",
        "id": sample.id,
        "shape": list(labels.shape),
        "channels": int(image.shape[-1]),
        "dtype": str(image.dtype),
        "bounds": list(percentile_bounds(image, preparation.percentiles)),
        "positive": int(np.count_nonzero(labels)),
        "foreground": len(arrays["foreground"]),
    }
    write_entry(folder, arrays, record)
    entry = _open(folder, sample)
    if entry is None:
        raise DataError(folder, "the cache entry just written cannot be read back")
    return entry


def cache_volumes(
    samples: Sequence[Sample],
    cache: Path,
    preparation: VolumePreparation,
    progress: bool = False,
    label: str = "caching volumes",
) -> list[CachedVolume]:
    """Decode into the cache the volumes not yet in it (one at a time), and open them all.

    Args:
        samples: Volume files with their labels (`Sample.masks[0]`), in order.
        cache: The cache folder (created); shared with the 2D samples.
        preparation: The label and normalisation settings that are part of each key.
        progress: Show a progress bar.
        label: The progress bar's description.

    Returns:
        The cached volumes in input order.

    Raises:
        DataError: A file is unreadable, a volume has no labels, or labels are out of range.
    """
    items: Iterable[Sample] = samples
    if progress:
        from rich.progress import track

        items = track(samples, total=len(samples), description=label)
    volumes = []
    for sample in items:
        if not sample.masks:
            raise DataError(sample.image, "has no labels", "add labels/<stem>.tif next to images/")
        folder = entry_folder(cache, sample_key(sample, preparation))
        volumes.append(_open(folder, sample) or _build(sample, folder, preparation))
    return volumes


def prepare_patch(
    raw: np.ndarray,
    channels: int,
    normalize: NormalizeMode = "scale",
    bounds: tuple[float, float] | None = None,
) -> np.ndarray:
    """Model input of a box of a stored image, as `prepare_volume` makes the whole volume.

    Args:
        raw: `(C, d, h, w)` voxels in the file's dtype.
        channels: Input channels of the model (gray is repeated, RGB averaged).
        normalize: "scale" or "percentile".
        bounds: The whole volume's percentiles after channel matching ("percentile" mode).

    Returns:
        `(channels, d, h, w)` float32, C-contiguous.
    """
    data = np.moveaxis(raw, 0, -1)
    depth, height, width, have = data.shape
    flat = match_channels(data.reshape(depth * height, width, have), channels)
    image = normalize_image(flat.reshape(depth, height, width, channels), normalize, bounds=bounds)
    return np.ascontiguousarray(np.moveaxis(image, -1, 0), dtype=np.float32)


class PreparedVolume:
    """A cached volume as model input: a `PatchSource` that reads boxes from memory-maps.

    Each read opens the arrays, copies the box, and lets the maps go, so that no page of the
    volume stays resident between reads (whatever the number of volumes and workers).

    Args:
        volume: The cached volume.
        channels: Input channels of the model.
        normalize: "scale" or "percentile" (`seglab.data.transforms.normalize_image`).
        percentiles: The percentiles the entry was cached with ("percentile" mode).
    """

    def __init__(
        self,
        volume: CachedVolume,
        channels: int,
        normalize: NormalizeMode = "scale",
        percentiles: tuple[float, float] = (1.0, 99.0),
    ) -> None:
        self.volume = volume
        self.channels = channels
        self.normalize: NormalizeMode = normalize
        self.bounds = volume.bounds
        if normalize == "percentile" and channels != volume.channels:
            # Matched channels have other percentiles than the stored ones: computed once, from
            # the whole volume (as prediction does), at the cost of reading it here.
            whole = np.moveaxis(volume.image, 0, -1)
            depth, height, width, have = whole.shape
            matched = match_channels(whole.reshape(depth * height, width, have), channels)
            self.bounds = percentile_bounds(matched, percentiles)

    @property
    def shape(self) -> tuple[int, int, int]:
        return self.volume.shape

    @property
    def foreground_count(self) -> int:
        return self.volume.foreground_count

    def foreground_voxel(self, number: int) -> int:
        return int(self.volume.foreground[number])

    def read(self, box: tuple[slice, slice, slice]) -> tuple[np.ndarray, np.ndarray]:
        raw = np.array(self.volume.image[(slice(None), *box)])
        labels = np.array(self.volume.labels[box])
        return prepare_patch(raw, self.channels, self.normalize, self.bounds), labels


class LabelledVolumes(Sequence["LabelledVolume"]):
    """Cached volumes as `LabelledVolume`s of memory-maps, each made when indexed, so that a
    loop over them (validation, test scoring) holds one volume's maps at a time.

    Args:
        volumes: The cached volumes.
        flat: Labels as one row `(1, D * H * W)`: how `tune_threshold` scores a whole volume as
            one image.
    """

    def __init__(self, volumes: Sequence[CachedVolume], flat: bool = False) -> None:
        self.volumes = list(volumes)
        self.flat = flat

    def __len__(self) -> int:
        return len(self.volumes)

    @overload
    def __getitem__(self, index: int) -> LabelledVolume: ...

    @overload
    def __getitem__(self, index: slice) -> list[LabelledVolume]: ...

    def __getitem__(self, index: int | slice) -> LabelledVolume | list[LabelledVolume]:
        if isinstance(index, slice):
            return [self[i] for i in range(len(self))[index]]
        volume = self.volumes[index].labelled()
        if self.flat:
            volume.mask = volume.mask.reshape(1, -1)
        return volume
