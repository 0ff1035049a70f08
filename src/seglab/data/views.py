"""Pre-processed copies ("views") of an image, and the imaging modality of an image.

Seed 003's "U-Net extended" is fed the same image three times, each pre-processed differently,
stacked along the channels; it trained far more stably than the plain U-Net, which failed on
high-contrast bright-field images. `make_views` builds that input from a list of view names, so
the names can live in a config and a model bundle.

Example:
    >>> image = np.zeros((4, 4, 3), np.float32)
    >>> make_views(image, DEFAULT_EXTENDED_VIEWS).shape
    (4, 4, 9)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Literal

import cv2
import numpy as np

from seglab.data.transforms import normalize_image

Modality = Literal["brightfield", "fluorescence"]

# Seed 003's three inputs: the image, a locally equalised copy and a negative.
DEFAULT_EXTENDED_VIEWS = ("raw", "clahe", "invert")

# A clip limit of 2 (OpenCV's default is 40) keeps flat background noise from being amplified;
# 8x8 tiles follow uneven illumination without equalising single nuclei away.
_CLAHE_CLIP_LIMIT = 2.0
_CLAHE_TILES = (8, 8)


def raw_view(image: np.ndarray) -> np.ndarray:
    """The image as is (float32)."""
    return np.asarray(image, dtype=np.float32)


def clahe_view(image: np.ndarray) -> np.ndarray:
    """Contrast-limited adaptive histogram equalisation of each channel.

    CLAHE works on integer histograms, so each channel is quantised to uint8 first. A constant
    image stays constant, though not at the same value (the clip limit spreads its histogram).
    """
    clahe = cv2.createCLAHE(clipLimit=_CLAHE_CLIP_LIMIT, tileGridSize=_CLAHE_TILES)
    quantised = np.round(np.clip(image, 0.0, 1.0) * 255).astype(np.uint8)
    channels = [
        clahe.apply(np.ascontiguousarray(quantised[:, :, c])) for c in range(image.shape[2])
    ]
    return np.stack(channels, axis=2).astype(np.float32) / np.float32(255)


def invert_view(image: np.ndarray) -> np.ndarray:
    """The negative, 1 - image: bright-field nuclei (dark) look like fluorescence ones (bright)."""
    return (np.float32(1) - np.asarray(image, dtype=np.float32)).astype(np.float32)


def gradient_view(image: np.ndarray) -> np.ndarray:
    """Sobel gradient magnitude of each channel, divided by its maximum over the whole image.

    One maximum for all channels keeps their relative strengths; a constant image gives zeros.
    """
    data = np.asarray(image, dtype=np.float32)
    # Reflected borders: a zero-padded border would show up as a strong edge around the image.
    dx = cv2.Sobel(data, cv2.CV_32F, 1, 0, ksize=3, borderType=cv2.BORDER_REFLECT_101)
    dy = cv2.Sobel(data, cv2.CV_32F, 0, 1, ksize=3, borderType=cv2.BORDER_REFLECT_101)
    magnitude = np.hypot(dx, dy).reshape(data.shape)
    peak = float(magnitude.max()) if magnitude.size else 0.0
    if peak <= 0:
        return np.zeros_like(data)
    return (magnitude / np.float32(peak)).astype(np.float32)


VIEWS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "raw": raw_view,
    "clahe": clahe_view,
    "invert": invert_view,
    "gradient": gradient_view,
}


def make_views(image: np.ndarray, views: Sequence[str]) -> np.ndarray:
    """Stack the named views of `image` along the channels.

    Args:
        image: Normalised float image, values about [0, 1].
        views: Names from `VIEWS`, in the order their channels should appear.

    Returns:
        float32 array with the channels of ``views[0]`` first, then ``views[1]``, ...

    Raises:
        ValueError: An unknown view name, no view at all, or an image that is not (H, W, C).

    Shape:
        - image: (H, W, C)
        - output: (H, W, C * len(views))
    """
    unknown = [name for name in views if name not in VIEWS]
    if unknown:
        raise ValueError(f"unknown view(s) {unknown}; valid views: {', '.join(VIEWS)}")
    if not views:
        raise ValueError(f"at least one view is needed; valid views: {', '.join(VIEWS)}")
    if image.ndim != 3:
        raise ValueError(f"expected an (H, W, C) image, got shape {image.shape}")
    if tuple(views) == ("raw",):
        # Plain models take this path on every image: no copy, no concatenation.
        return raw_view(image)
    return np.concatenate([VIEWS[name](image) for name in views], axis=2)


def normalized_gray(
    image: np.ndarray, percentiles: tuple[float, float] = (1.0, 99.0)
) -> np.ndarray:
    """Mean of the channels, stretched between its percentiles to [0, 1].

    Args:
        image: (H, W, C) or (H, W) uint8, uint16 or float image.
        percentiles: The (low, high) percentiles mapped to 0 and 1; per image, so dim and bright
            acquisitions look alike.

    Returns:
        (H, W) float32; zeros for a constant image.
    """
    gray = image.astype(np.float32)
    if gray.ndim == 3:
        gray = gray.mean(axis=2)
    if gray.ndim != 2:
        raise ValueError(f"expected an (H, W, C) or (H, W) image, got shape {image.shape}")
    return normalize_image(gray[:, :, None], "percentile", percentiles)[:, :, 0]


def detect_modality(image: np.ndarray) -> Modality:
    """Tell bright-field images (bright background) from fluorescence ones (dark background).

    Nuclei rarely cover half an image, so the median pixel is background: above the middle of
    the image's own range means a bright background. A constant image counts as fluorescence.

    Args:
        image: (H, W, C) or (H, W) uint8, uint16 or float image, not necessarily normalised.

    Returns:
        "brightfield" or "fluorescence".
    """
    return "brightfield" if float(np.median(normalized_gray(image))) > 0.5 else "fluorescence"
