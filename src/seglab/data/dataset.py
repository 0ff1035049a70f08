"""The 2D segmentation dataset: lazy crops of cached (or in-memory) samples, seeded per item."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch.utils.data import Dataset

from seglab.data.sampling import item_rng
from seglab.data.transforms import (
    match_channels,
    normalize_image,
    percentile_bounds,
    reflect_pad,
    resize_image,
    resize_mask,
)
from seglab.data.views import make_views
from seglab.errors import ConfigError

if TYPE_CHECKING:
    import albumentations as A

    from seglab.config import DataConfig
    from seglab.data.loading import LoadedSample


@dataclass
class ArraySample:
    """One decoded sample ready for batching: raw-dtype image (H, W, C), mask (H, W) (boolean,
    or uint8 class indices for multi-class) and, for the boundary-aware target, the boolean
    nucleus borders (H, W)."""

    id: str
    image: np.ndarray
    mask: np.ndarray
    borders: np.ndarray | None = None
    # The whole image's percentiles; None: computed from what is read.
    bounds: tuple[float, float] | None = None

    @property
    def foreground(self) -> tuple[int, ...]:
        """Foreground pixels (boolean mask), or pixels per class value 0..255 (class indices)."""
        if self.mask.dtype == np.bool_:
            return (int(np.count_nonzero(self.mask)),)
        return tuple(np.bincount(self.mask.ravel(), minlength=256).tolist())


def instance_borders(instances: np.ndarray) -> np.ndarray:
    """Inner boundary pixels of every instance: where touching nuclei meet, a 2-pixel line."""
    from skimage.segmentation import find_boundaries

    return np.asarray(find_boundaries(instances, mode="inner"))


def prepare_samples(
    loaded: list[LoadedSample],
    channels: int,
    size: tuple[int, int] | None,
    borders: bool = False,
) -> list[ArraySample]:
    """Match channels, resize and (with `borders`) draw nucleus borders once, in memory (for
    small sample lists; training goes through `seglab.data.cache`)."""
    prepared = []
    for sample in loaded:
        if sample.mask is None:
            raise ValueError(f"sample {sample.id} has no mask")
        if borders and sample.instances is None:
            raise ConfigError(
                f"data.target=boundary needs one mask per nucleus (dsb2018 layout); "
                f"sample {sample.id} has a single mask"
            )
        image = match_channels(sample.image, channels)
        mask, instances = sample.mask, sample.instances
        if size is not None and image.shape[:2] != tuple(size):
            image = resize_image(image, size)
            mask = resize_mask(mask, size)
            instances = resize_mask(instances, size) if instances is not None else None
        edges = instance_borders(instances) if borders and instances is not None else None
        prepared.append(ArraySample(sample.id, image, mask, edges))
    return prepared


def random_window(
    shape: tuple[int, int], side: int, rng: np.random.Generator
) -> tuple[slice, slice]:
    """A random `side`×`side` window of an image of `shape`; the whole axis where it is shorter."""
    starts = [int(rng.integers(0, max(size - side, 0) + 1)) for size in shape]
    return tuple(slice(start, start + side) for start in starts)  # type: ignore[return-value]


def rotate_quarters(
    image: np.ndarray, mask: np.ndarray, probability: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Rotate by a random multiple of 90° with `probability`; by 180° only when the sample is
    not square, so that every item of a batch keeps its shape."""
    if probability == 0 or rng.random() >= probability:
        return image, mask
    square = image.shape[0] == image.shape[1]
    turns = int(rng.integers(1, 4)) if square else 2
    return np.rot90(image, turns), np.rot90(mask, turns)


class SegmentationDataset(Dataset[tuple[torch.Tensor, torch.Tensor]]):
    """Batches of `(image (C, H, W) float32, target)` read lazily from samples.

    Each item reads only its crop from the (memory-mapped) sample arrays, pads it by reflection
    where the image is smaller than the crop, and draws its crop, rotation and augmentation
    from `(seed, epoch, index)` (see `seglab.data.sampling`). The binary target is (T, H, W)
    float32: T = 1 (the mask), or 2 (mask and borders) for the boundary-aware target. The
    multi-class target (`ignore_index` given) is (H, W) int64 class indices.

    Args:
        samples: `CachedSample`s or in-memory `ArraySample`s.
        data: The data config (normalisation and augmentation).
        channels: Input channels of the model (grey images are repeated, RGB averaged).
        crop: Side of the random training crops, or None for whole images.
        augment: albumentations pipeline for training, or None.
        seed: Seeds every random draw.
        views: Pre-processed copies stacked as channels (see `seglab.data.views`).
        ignore_index: Multi-class: the label of ignored pixels; None for binary masks.
        rotate90: Probability of a quarter-turn rotation (training).
    """

    def __init__(
        self,
        samples: Sequence[Any],
        data: DataConfig,
        channels: int,
        crop: int | None = None,
        augment: A.Compose | None = None,
        seed: int = 0,
        views: list[str] | None = None,
        ignore_index: int | None = None,
        rotate90: float = 0.0,
    ) -> None:
        self.samples = samples
        self.channels = channels
        self.ignore_index = ignore_index
        self.views = views or ["raw"]
        self.normalize = data.normalize
        self.percentiles = data.percentiles
        self.crop = crop
        self.augment = augment
        self.seed = seed
        self.rotate90 = rotate90

    def __len__(self) -> int:
        return len(self.samples)

    def _read(
        self, sample: Any, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray, tuple[float, float] | None]:
        """The (cropped) image, its mask (H, W) or (H, W, 2) with borders, and the whole image's
        percentiles for normalisation."""
        image, mask, borders = sample.image, sample.mask, sample.borders
        window = (slice(None), slice(None))
        if self.crop is not None:
            window = random_window(image.shape[:2], self.crop, rng)
        image = np.asarray(image[window])
        mask = np.array(mask[window], dtype=np.uint8)  # a writable copy, not the mapped file
        if borders is not None:
            # One (H, W, 2) mask, so every geometric augmentation moves both targets alike.
            mask = np.stack([mask, np.asarray(borders[window], dtype=np.uint8)], axis=2)
        if self.crop is not None:
            image = reflect_pad(image.transpose(2, 0, 1), (self.crop, self.crop)).transpose(1, 2, 0)
            spatial_first = mask if mask.ndim == 2 else mask.transpose(2, 0, 1)
            padded = reflect_pad(spatial_first, (self.crop, self.crop))
            mask = padded if mask.ndim == 2 else padded.transpose(1, 2, 0)
        return image, mask, sample.bounds if self.normalize == "percentile" else None

    def __getitem__(self, key: int | tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
        """Item `key` = `(epoch, index)` (from `EpochSampler`), or `index` for epoch 0."""
        index = key[1] if isinstance(key, tuple) else key
        rng = item_rng(self.seed, key)
        image, mask, bounds = self._read(self.samples[index], rng)
        image = match_channels(image, self.channels)
        if bounds is None and self.normalize == "percentile":
            bounds = percentile_bounds(image, self.percentiles)
        image = normalize_image(image, self.normalize, self.percentiles, bounds)
        image, mask = rotate_quarters(image, mask, self.rotate90, rng)
        if self.augment is not None:
            self.augment.set_random_seed(int(rng.integers(2**31)))
            out = self.augment(image=np.ascontiguousarray(image), mask=np.ascontiguousarray(mask))
            image, mask = out["image"], out["mask"]
        image = make_views(image, self.views)
        image_t = torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))
        if self.ignore_index is not None:
            return image_t, torch.from_numpy(np.ascontiguousarray(mask)).long()
        target = mask[None] if mask.ndim == 2 else mask.transpose(2, 0, 1)
        mask_t = torch.from_numpy(np.ascontiguousarray(target)).float()
        return image_t, mask_t

    def same_size(self) -> bool:
        """Whether every item has one shape, so items can share a batch."""
        if self.crop is not None:
            return True
        return len({tuple(s.image.shape[:2]) for s in self.samples}) <= 1


def class_pixel_counts(samples: Sequence[Any], num_classes: int) -> np.ndarray:
    """Pixels of each class over all samples (ignored pixels not counted), shape (C,)."""
    counts = np.zeros(num_classes, np.int64)
    for sample in samples:
        counts += np.asarray(sample.foreground[:num_classes], np.int64)
    return counts


def check_classes_present(samples: Sequence[Any], names: Sequence[str]) -> None:
    """Refuse multi-class training masks that hold fewer than two of the classes `names`.

    Binary 0/255 masks read with `data.num_classes=2` are the usual cause: 0 is class 0 and
    255 the ignore value, so every nucleus would be ignored and the model learn nothing.

    Raises:
        ConfigError: Naming the classes found and the fix.
    """
    counts = class_pixel_counts(samples, len(names))
    present = [name for name, count in zip(names, counts) if count]
    if len(present) >= 2:
        return
    found = ", ".join(present) or "no class at all"
    raise ConfigError(
        f"data.num_classes={len(names)}: the training masks hold {found} and otherwise only "
        "ignored or undefined values; masks of 0 and 255 are binary masks: leave "
        f"data.num_classes unset for binary segmentation, or save class indices "
        f"0..{len(names) - 1} in the masks"
    )


def foreground_fraction(samples: Sequence[Any]) -> float:
    """Fraction of foreground pixels over all samples (for inverse-frequency class weights)."""
    total = sum(int(np.prod(s.mask.shape)) for s in samples)
    return float(sum(s.foreground[0] for s in samples) / max(total, 1))
