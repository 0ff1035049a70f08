"""Pre-processing shared by training and prediction, and the albumentations training pipeline.

`prepare_image` is the single place where an image becomes model input, so a model bundle
applies exactly what training applied.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Literal

import cv2
import numpy as np

if TYPE_CHECKING:
    import albumentations as A

    from seglab.config import AugmentConfig

NormalizeMode = Literal["scale", "percentile"]


def round_up(size: int, divisor: int) -> int:
    """The smallest multiple of `divisor` that is at least `size`."""
    return -(-size // divisor) * divisor


def reflect_pad(array: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Pad the trailing axes of `array` at their far end, by reflection, up to `shape`.

    Reflection, not zeros: on a bright-field image a black margin reads as a dark object (a
    nucleus), while the mirrored image continues its background. Paddings longer than an axis
    reflect repeatedly; an axis of length 1 is repeated. Axes already as long are left alone.

    Shape:
        - array: `(..., *spatial)` with `len(spatial) == len(shape)`
        - Output: `(..., *(max(s, t) for s, t in zip(spatial, shape)))`
    """
    spatial = array.shape[array.ndim - len(shape) :]
    pads = [(0, max(0, t - s)) for s, t in zip(spatial, shape)]
    if not any(after for _, after in pads):
        return array
    lead = [(0, 0)] * (array.ndim - len(shape))
    return np.pad(array, [*lead, *pads], mode="reflect")


def match_channels(image: np.ndarray, channels: int) -> np.ndarray:
    """Return `image` (H, W, C) with `channels` channels: gray is repeated, RGB is averaged."""
    have = image.shape[2]
    if have == channels:
        return image
    if have == 1:
        return np.repeat(image, channels, axis=2)
    if channels == 1:
        mean = image.mean(axis=2, keepdims=True)
        return mean.astype(image.dtype) if np.issubdtype(image.dtype, np.integer) else mean
    raise ValueError(f"cannot convert an image with {have} channels to {channels}")


def percentile_bounds(image: np.ndarray, percentiles: tuple[float, float]) -> tuple[float, float]:
    """The (low, high) percentiles of an image's values (all channels together)."""
    low, high = np.percentile(image, percentiles)
    return float(low), float(high)


def stretch(image: np.ndarray, bounds: tuple[float, float]) -> np.ndarray:
    """Map `[low, high]` to [0, 1] as float32, clipped; all zeros when `high <= low`."""
    low, high = bounds
    data = image.astype(np.float32)
    if high <= low:
        return np.zeros_like(data)
    return np.clip((data - np.float32(low)) / np.float32(high - low), 0.0, 1.0)


def normalize_image(
    image: np.ndarray,
    mode: NormalizeMode = "scale",
    percentiles: tuple[float, float] = (1.0, 99.0),
    bounds: tuple[float, float] | None = None,
) -> np.ndarray:
    """Map an (H, W, C) integer or float image to float32, about [0, 1].

    Args:
        image: uint8, uint16 or float array.
        mode: "scale" divides by the dtype maximum (floats are kept); "percentile" stretches each
            image between its low and high percentiles and clips, so dim and bright
            acquisitions look alike.
        percentiles: The (low, high) percentiles of "percentile" mode.
        bounds: The whole image's percentiles, when `image` is a crop of it (training reads
            crops, and a crop's own percentiles would differ from what prediction uses).
    """
    if mode == "percentile":
        return stretch(image, bounds or percentile_bounds(image, percentiles))
    if np.issubdtype(image.dtype, np.integer):
        return image.astype(np.float32) / np.float32(np.iinfo(image.dtype).max)
    return image.astype(np.float32)


def resize_image(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize an (H, W, C) image to `size` = (H, W); area interpolation when shrinking."""
    height, width = size
    shrinking = height * width < image.shape[0] * image.shape[1]
    interpolation = cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR
    resized = cv2.resize(image, (width, height), interpolation=interpolation)
    return resized.reshape(height, width, image.shape[2])


def resize_mask(mask: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize a label or boolean mask with nearest interpolation (labels must never blend)."""
    height, width = size
    dtype = mask.dtype
    work = mask.astype(np.int32) if dtype in (np.bool_, np.int64, np.uint32) else mask
    resized = cv2.resize(work, (width, height), interpolation=cv2.INTER_NEAREST)
    return resized.astype(dtype)


def build_augmentation(config: AugmentConfig, seed: int = 0) -> A.Compose | None:
    """The albumentations pipeline of `config`, or None when every probability is zero.

    Images are float32 in [0, 1]; masks follow every geometric transform with nearest
    interpolation. Quarter turns (`config.rotate90`) are drawn by the dataset, which knows
    whether a sample is square (a non-square one only turns by 180°).
    """
    os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
    import albumentations as A

    steps: list[A.BasicTransform] = []
    if config.hflip:
        steps.append(A.HorizontalFlip(p=config.hflip))
    if config.vflip:
        steps.append(A.VerticalFlip(p=config.vflip))
    if config.affine:
        steps.append(
            A.Affine(
                scale=(1 - config.affine_scale, 1 + config.affine_scale),
                rotate=(-config.affine_rotate, config.affine_rotate),
                interpolation=cv2.INTER_LINEAR,
                mask_interpolation=cv2.INTER_NEAREST,
                border_mode=cv2.BORDER_REFLECT_101,
                p=config.affine,
            )
        )
    if config.brightness_contrast:
        steps.append(
            A.RandomBrightnessContrast(
                brightness_limit=config.brightness_limit,
                contrast_limit=config.contrast_limit,
                p=config.brightness_contrast,
            )
        )
    if config.invert:
        steps.append(A.InvertImg(p=config.invert))
    if config.blur:
        steps.append(A.GaussianBlur(blur_limit=(3, config.blur_limit | 1), p=config.blur))
    if config.noise:
        steps.append(A.GaussNoise(std_range=(0.0, config.noise_std), p=config.noise))
    # albumentations draws from its own generator: seed it, or runs are not repeatable.
    return A.Compose(steps, seed=seed) if steps else None
