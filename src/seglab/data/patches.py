"""Training patches from volumes: random crops, a share centred on foreground, flipped.

A volume is far too large for one training step, so each epoch draws `patches_per_volume`
patches from every volume. Uniform crops of a volume that is mostly background teach mostly
background, so, as nnU-Net does, a share of the patches (a third by default) is centred on a
random foreground voxel. Every patch depends only on `(seed, epoch, index)`: `EpochSampler`
hands the dataset `(epoch, index)` keys, so worker processes never repeat each other's patches
and a run is reproducible whatever `num_workers` is.

The datasets read volumes through `PatchSource`s: in-memory arrays (`ArrayVolume`) or cached,
memory-mapped ones (`seglab.data.volume_cache.PreparedVolume`), which read only the voxels of
each patch, so resident memory is bounded by the patches in flight, not by the volumes.

Example:
    >>> dataset = PatchDataset([image], [labels > 0], patch=(32, 32, 32), seed=0)
    >>> loader = DataLoader(dataset, batch_size=2, sampler=EpochSampler(len(dataset)))
    >>> images, targets = next(iter(loader))  # (2, C, 32, 32, 32), (2, 1, 32, 32, 32)
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from functools import cached_property
from typing import Protocol

import numpy as np
import torch
from torch.utils.data import Dataset

from seglab.data.sampling import item_rng
from seglab.data.transforms import reflect_pad
from seglab.errors import ConfigError

__all__ = [
    "DEFAULT_PATCH_SIDE",
    "MAX_FOREGROUND_VOXELS",
    "ArrayVolume",
    "PatchDataset",
    "PatchSource",
    "VolumeDataset",
    "choose_patch",
    "foreground_voxels",
    "patch_start",
    "volume_target",
]

log = logging.getLogger(__name__)

# Seed 002's trade-off: patches, not whole volumes. 64³ holds several blobs of 8-24 voxels
# across and trains in a fraction of a second per batch on a CPU with a small U-Net.
DEFAULT_PATCH_SIDE = 64

# Foreground voxels kept per volume to centre patches on (a random subset beyond this): enough
# to cover every object, without holding millions of coordinates for a large volume.
MAX_FOREGROUND_VOXELS = 100_000


def volume_target(labels: np.ndarray, multiclass: bool) -> torch.Tensor:
    """The training target of a label volume: `(1, D, H, W)` float32 0/1 foreground (binary,
    labels > 0) or `(D, H, W)` int64 class indices (multi-class)."""
    if multiclass:
        return torch.from_numpy(np.ascontiguousarray(labels, dtype=np.int64))
    return torch.from_numpy(np.ascontiguousarray(labels > 0, dtype=np.float32)[None])


def patch_start(centre: int, patch: int, size: int) -> int:
    """Start of a patch of length `patch` centred on `centre`, moved inside `[0, size)`.

    Example:
        >>> patch_start(3, 8, 20), patch_start(10, 8, 20), patch_start(19, 8, 20)
        (0, 6, 12)
    """
    return int(min(max(centre - patch // 2, 0), size - patch))


def foreground_voxels(labels: np.ndarray, ignore_index: int | None = None) -> np.ndarray:
    """Flat indices of the voxels patches may be centred on: labels > 0, not `ignore_index`.

    At most `MAX_FOREGROUND_VOXELS`, a fixed random subset beyond: the same whatever the run's
    seed, so that one cache entry serves every run.

    Shape:
        - labels: `(D, H, W)`
        - Output: `(N,)` int64, increasing
    """
    wanted = labels > 0
    if ignore_index is not None:
        wanted &= labels != ignore_index
    flat = np.flatnonzero(wanted)
    if len(flat) > MAX_FOREGROUND_VOXELS:
        rng = np.random.default_rng(len(flat))
        flat = np.sort(rng.choice(flat, MAX_FOREGROUND_VOXELS, replace=False))
    return flat.astype(np.int64)


class PatchSource(Protocol):
    """A volume the datasets read boxes of: in memory, or memory-mapped from the cache."""

    @property
    def shape(self) -> tuple[int, int, int]:
        """Spatial shape `(D, H, W)`."""
        ...

    @property
    def foreground_count(self) -> int:
        """How many candidate patch centres (`foreground_voxels`) the volume has."""
        ...

    def foreground_voxel(self, number: int) -> int:
        """The flat index (into `shape`) of candidate centre `number`."""
        ...

    def read(self, box: tuple[slice, slice, slice]) -> tuple[np.ndarray, np.ndarray]:
        """The `(C, d, h, w)` float32 model input and `(d, h, w)` labels inside `box`."""
        ...


class ArrayVolume:
    """A `PatchSource` of in-memory arrays.

    Args:
        image: `(C, D, H, W)` float32 normalised volume.
        labels: `(D, H, W)` integer labels (see `PatchDataset`).
        ignore_index: Multi-class label of unlabelled voxels: never a patch centre.

    Raises:
        ValueError: The shapes do not match.
    """

    def __init__(
        self, image: np.ndarray, labels: np.ndarray, ignore_index: int | None = None
    ) -> None:
        if image.ndim != 4 or image.shape[1:] != labels.shape:
            raise ValueError(
                f"image {image.shape} must be (C, D, H, W) and labels {labels.shape} (D, H, W) "
                "of the same size"
            )
        self.image, self.labels, self.ignore_index = image, labels, ignore_index
        self.shape: tuple[int, int, int] = (labels.shape[0], labels.shape[1], labels.shape[2])

    @cached_property
    def _foreground(self) -> np.ndarray:
        return foreground_voxels(self.labels, self.ignore_index)

    @property
    def foreground_count(self) -> int:
        return len(self._foreground)

    def foreground_voxel(self, number: int) -> int:
        return int(self._foreground[number])

    def read(self, box: tuple[slice, slice, slice]) -> tuple[np.ndarray, np.ndarray]:
        return self.image[(slice(None), *box)], self.labels[box]


class PatchDataset(Dataset[tuple[torch.Tensor, torch.Tensor]]):
    """Random patches of volumes, reproducible per `(seed, epoch, index)`.

    Item `index` comes from volume `index // patches_per_volume`; of each volume's items, the
    first `round(foreground_share * patches_per_volume)` are centred on a random foreground voxel
    (uniform when the volume has none), the others are uniform over the volume. A patch that
    sticks out of a volume smaller than the patch is padded at the far end: the image by
    reflection (as sliding-window prediction pads), the labels with `pad_label`; only the patch
    is padded, never the volume. Each axis is then flipped with probability `flip`.

    `PatchDataset(images, labels, ...)` takes in-memory arrays; `PatchDataset.from_volumes`
    takes any `PatchSource`s, such as memory-mapped cached volumes.

    Args:
        images: `(C, D, H, W)` float32 normalised volumes.
        labels: `(D, H, W)` integer labels of each volume: 0 is background; any other value is
            foreground (binary) or a class index (multi-class).
        patch: Patch size `(D, H, W)`.
        patches_per_volume: Items per volume per epoch.
        foreground_share: Share of each volume's items centred on foreground, in [0, 1].
        flip: Probability of flipping each of the three axes, in [0, 1].
        seed: Seed of the patch positions and flips.
        multiclass: Targets are class indices `(D, H, W)` int64, not a `(1, D, H, W)` mask.
        ignore_index: Multi-class label of unlabelled voxels: never a patch centre.
        pad_label: Label of the padding (multi-class: use `ignore_index`, so that padding is
            not learnt as background).

    Raises:
        ValueError: Mismatched lists or shapes, an empty list, or an out-of-range argument.

    Shape:
        - item: image `(C, *patch)` float32, target `(1, *patch)` float32 (binary) or `patch`
          int64 (multi-class)
    """

    def __init__(
        self,
        images: Sequence[np.ndarray],
        labels: Sequence[np.ndarray],
        patch: tuple[int, int, int],
        patches_per_volume: int = 8,
        foreground_share: float = 0.33,
        flip: float = 0.5,
        seed: int = 0,
        multiclass: bool = False,
        ignore_index: int | None = None,
        pad_label: int = 0,
    ) -> None:
        if not images or len(images) != len(labels):
            raise ValueError(
                f"need as many label volumes as images (>= 1): {len(images)}, {len(labels)}"
            )
        volumes = []
        for number, (image, label) in enumerate(zip(images, labels, strict=True)):
            try:
                volumes.append(ArrayVolume(image, label, ignore_index))
            except ValueError as exc:
                raise ValueError(f"volume {number}: {exc}") from None
        self._configure(
            volumes, patch, patches_per_volume, foreground_share, flip, seed, multiclass, pad_label
        )

    @classmethod
    def from_volumes(
        cls,
        volumes: Sequence[PatchSource],
        patch: tuple[int, int, int],
        patches_per_volume: int = 8,
        foreground_share: float = 0.33,
        flip: float = 0.5,
        seed: int = 0,
        multiclass: bool = False,
        pad_label: int = 0,
    ) -> PatchDataset:
        """Patches of `PatchSource`s (candidate centres are theirs); other arguments as above.

        Raises:
            ValueError: No volume, or an out-of-range argument.
        """
        if not volumes:
            raise ValueError("need at least one volume")
        dataset = cls.__new__(cls)
        dataset._configure(
            volumes, patch, patches_per_volume, foreground_share, flip, seed, multiclass, pad_label
        )
        return dataset

    def _configure(
        self,
        volumes: Sequence[PatchSource],
        patch: tuple[int, int, int],
        patches_per_volume: int,
        foreground_share: float,
        flip: float,
        seed: int,
        multiclass: bool,
        pad_label: int,
    ) -> None:
        if len(patch) != 3 or min(patch) < 1:
            raise ValueError(f"patch must be 3 sizes >= 1, got {patch}")
        if patches_per_volume < 1 or not 0 <= foreground_share <= 1 or not 0 <= flip <= 1:
            raise ValueError(
                "need patches_per_volume >= 1, foreground_share and flip in [0, 1]; got "
                f"{patches_per_volume}, {foreground_share}, {flip}"
            )
        self.volumes = list(volumes)
        self.patch = (int(patch[0]), int(patch[1]), int(patch[2]))
        self.patches_per_volume = patches_per_volume
        # Round half up: 0.5 of 3 patches is 2 centred ones, as the share promises "at least".
        self.foreground_items = int(np.floor(foreground_share * patches_per_volume + 0.5))
        self.flip = flip
        self.seed = seed
        self.multiclass, self.pad_label = multiclass, pad_label

    def __len__(self) -> int:
        return len(self.volumes) * self.patches_per_volume

    def __getitem__(self, key: int | tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
        """Item `key` = `(epoch, index)` (from `EpochSampler`), or `index` for epoch 0."""
        index = key[1] if isinstance(key, tuple) else key
        if not 0 <= index < len(self):
            raise IndexError(f"patch index {index} out of range [0, {len(self)})")
        rng = item_rng(self.seed, key)
        number, slot = divmod(index, self.patches_per_volume)
        source = self.volumes[number]
        # Positions are drawn in the volume as if padded up to the patch (at the far end).
        size = [max(s, p) for s, p in zip(source.shape, self.patch)]
        count = source.foreground_count
        if slot < self.foreground_items and count:
            flat = source.foreground_voxel(int(rng.integers(count)))
            centre = np.unravel_index(flat, source.shape)
            starts = [patch_start(int(c), p, s) for c, p, s in zip(centre, self.patch, size)]
        else:
            starts = [int(rng.integers(0, s - p + 1)) for p, s in zip(self.patch, size)]
        d, h, w = (slice(start, start + p) for start, p in zip(starts, self.patch))
        image, label = source.read((d, h, w))
        image = reflect_pad(image, self.patch)
        pads = [(0, p - s) for p, s in zip(self.patch, label.shape)]
        if any(after for _, after in pads):
            label = np.pad(label, pads, constant_values=self.pad_label)
        flipped = [axis for axis in range(3) if rng.random() < self.flip]
        if flipped:
            image = np.flip(image, tuple(axis + 1 for axis in flipped))
            label = np.flip(label, tuple(flipped))
        # Copies: torch rejects the negative strides of flips (even along axes of length 1).
        return torch.from_numpy(image.copy()), volume_target(label.copy(), self.multiclass)


class VolumeDataset(Dataset[tuple[torch.Tensor, torch.Tensor]]):
    """Whole volumes, one per item (validation: batch size 1, as sizes may differ).

    `VolumeDataset(images, labels)` takes in-memory arrays; `VolumeDataset.from_volumes` any
    `PatchSource`s, each read whole when its item is asked for.

    Args:
        images: `(C, D, H, W)` float32 normalised volumes.
        labels: `(D, H, W)` integer labels (see `PatchDataset`).
        multiclass: Targets are class indices, not a foreground mask.
    """

    def __init__(
        self, images: Sequence[np.ndarray], labels: Sequence[np.ndarray], multiclass: bool = False
    ) -> None:
        if len(images) != len(labels):
            raise ValueError(f"need as many label volumes as images: {len(images)}, {len(labels)}")
        self.volumes: list[PatchSource] = [ArrayVolume(i, m) for i, m in zip(images, labels)]
        self.multiclass = multiclass

    @classmethod
    def from_volumes(
        cls, volumes: Sequence[PatchSource], multiclass: bool = False
    ) -> VolumeDataset:
        """Whole volumes of `PatchSource`s."""
        dataset = cls([], [], multiclass)
        dataset.volumes = list(volumes)
        return dataset

    def __len__(self) -> int:
        return len(self.volumes)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        source = self.volumes[index]
        image, labels = source.read((slice(None), slice(None), slice(None)))
        return torch.from_numpy(np.ascontiguousarray(image)), volume_target(labels, self.multiclass)


def choose_patch(
    setting: list[int] | str | None,
    model_factory: Callable[[], torch.nn.Module],
    channels: int,
    batch_size: int,
    shapes: Sequence[tuple[int, ...]],
) -> tuple[int, int, int]:
    """The training patch `(D, H, W)` for the config's `data.patch` setting.

    Args:
        setting: `[D, H, W]` as given; None for `DEFAULT_PATCH_SIDE` per axis; "auto" for the
            largest cube whose training step fits half the device's free memory at `batch_size`
            (`seglab.planner.plan_patch`: measured CPU peaks are 1.5-2.5x its estimate at batch
            2, and 100-200 MiB more than that at batch 1; see benchmarks/planner_check.py).
            Both are capped per axis at the largest training volume's extent rounded up to the
            model's divisor.
        model_factory: Builds the model (for its divisor, and to plan "auto").
        channels: Input channels of the model.
        batch_size: Patches per training step.
        shapes: Spatial shapes `(D, H, W)` of the training volumes.

    Raises:
        ConfigError: `data.patch` is not 3 sizes >= 1, or nothing fits with "auto".
    """
    from seglab.planner import format_size, free_memory_bytes, plan_patch

    if isinstance(setting, list):
        if len(setting) != 3 or min(setting) < 1:
            raise ConfigError(f"'data.patch': expected [D, H, W] sizes >= 1, got {setting}")
        return (setting[0], setting[1], setting[2])
    divisor = int(getattr(model_factory(), "divisor", 1))
    extent = [-(-max(s[axis] for s in shapes) // divisor) * divisor for axis in range(3)]
    side = DEFAULT_PATCH_SIDE
    if setting == "auto":
        budget = free_memory_bytes() // 2
        rows = plan_patch(
            model_factory, channels, budget, divisor, 3, max(extent), batches=(batch_size,)
        )
        if not rows:
            raise ConfigError(
                f"'data.patch': auto: no patch fits {format_size(budget)} at batch {batch_size}; "
                "lower data.batch_size or model.params.n_filters, or set data.patch=[D,H,W]"
            )
        side = rows[0].side
        log.info(
            "data.patch auto: cube side %d at batch %d, estimated %s of a %s budget",
            side,
            batch_size,
            format_size(rows[0].total_bytes),
            format_size(budget),
        )
    depth, height, width = (min(side, e) for e in extent)
    log.info("data.patch: [%d, %d, %d]", depth, height, width)
    return (depth, height, width)
