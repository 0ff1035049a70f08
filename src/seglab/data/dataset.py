"""In-memory datasets: files are decoded once, then each epoch only crops, augments and batches."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch.utils.data import Dataset

from seglab.data.transforms import match_channels, normalize_image, resize_image, resize_mask
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
    """Match channels, resize and (with `borders`) draw nucleus borders once, so epochs never
    repeat this work."""
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


def _pad_to(
    image: np.ndarray, mask: np.ndarray, side: int, mask_fill: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    pad_h = max(0, side - image.shape[0])
    pad_w = max(0, side - image.shape[1])
    if pad_h == 0 and pad_w == 0:
        return image, mask
    spec = ((0, pad_h), (0, pad_w))
    mask_spec = spec if mask.ndim == 2 else (*spec, (0, 0))
    return np.pad(image, (*spec, (0, 0))), np.pad(mask, mask_spec, constant_values=mask_fill)


class SegmentationDataset(Dataset[tuple[torch.Tensor, torch.Tensor]]):
    """Batches of `(image (C, H, W) float32, target)` from in-memory samples.

    The binary target is (T, H, W) float32: T = 1 (the mask), or 2 (mask and borders) for the
    boundary-aware target. The multi-class target (`ignore_index` given) is (H, W) int64 class
    indices; padding gets `ignore_index`.

    Args:
        samples: Prepared samples.
        data: The data config (normalisation and crop size).
        augment: albumentations pipeline for training, or None.
        random_crop: Take a random `data.crop` crop (training); otherwise whole images.
        seed: Seeds the crop positions.
        views: Pre-processed copies stacked as channels (see `seglab.data.views`).
        ignore_index: Multi-class: the label of ignored pixels; None for binary masks.
    """

    def __init__(
        self,
        samples: list[ArraySample],
        data: DataConfig,
        augment: A.Compose | None = None,
        random_crop: bool = False,
        seed: int = 0,
        views: list[str] | None = None,
        ignore_index: int | None = None,
    ) -> None:
        self.samples = samples
        self.ignore_index = ignore_index
        self.views = views or ["raw"]
        self.normalize = data.normalize
        self.percentiles = data.percentiles
        self.crop = data.crop if random_crop else None
        self.augment = augment
        self.rng = np.random.default_rng(seed)

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        sample = self.samples[index]
        image = normalize_image(sample.image, self.normalize, self.percentiles)
        mask = sample.mask.astype(np.uint8)
        if sample.borders is not None:
            # One (H, W, 2) mask, so every geometric augmentation moves both targets alike.
            mask = np.stack([mask, sample.borders.astype(np.uint8)], axis=2)
        if self.crop is not None:
            image, mask = _pad_to(image, mask, self.crop, self.ignore_index or 0)
            top = int(self.rng.integers(0, image.shape[0] - self.crop + 1))
            left = int(self.rng.integers(0, image.shape[1] - self.crop + 1))
            image = image[top : top + self.crop, left : left + self.crop]
            mask = mask[top : top + self.crop, left : left + self.crop]
        if self.augment is not None:
            out = self.augment(image=image, mask=mask)
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
        return len({s.image.shape[:2] for s in self.samples}) <= 1


def class_pixel_counts(samples: list[ArraySample], num_classes: int) -> np.ndarray:
    """Pixels of each class over all samples (ignored pixels not counted), shape (C,)."""
    counts = np.zeros(num_classes, np.int64)
    for sample in samples:
        counts += np.bincount(sample.mask.ravel(), minlength=256)[:num_classes]
    return counts


def foreground_fraction(samples: list[ArraySample]) -> float:
    """Fraction of foreground pixels over all samples (for inverse-frequency class weights)."""
    total = sum(s.mask.size for s in samples)
    return float(sum(int(s.mask.sum()) for s in samples) / max(total, 1))
