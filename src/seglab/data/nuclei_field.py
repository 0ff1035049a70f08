"""The nuclei of one synthetic image before rendering, and the smooth random fields it uses.

`seglab.data.nuclei_synth` places the nuclei; `seglab.data.nuclei_tissue` draws what surrounds
them. Both share these smooth random fields.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage


@dataclass
class NucleusField:
    """Nuclei placed in one image, before rendering.

    Attributes:
        labels: int32 instance ids ``(H, W)``, 0 = background, 1..K.
        sharp: Nuclear signal (0..~1) of the in-focus nuclei; overlapping nuclei add up.
        blurred: Signal of the out-of-focus nuclei (blurred when rendered).
        brightness: Per-nucleus brightness, index ``k - 1`` for label ``k``.
        diameter: Mean nucleus diameter of this image in pixels (its zoom).
        centres: ``(K, 2)`` float (row, column) of each nucleus's centre, index ``k - 1``.
    """

    labels: np.ndarray
    sharp: np.ndarray
    blurred: np.ndarray
    brightness: np.ndarray
    diameter: float
    centres: np.ndarray


def smooth_noise(rng: np.random.Generator, size: int, sigma: float) -> np.ndarray:
    """Smooth noise of unit peak magnitude, correlated over about `sigma` pixels."""
    noise = rng.standard_normal((size, size), dtype=np.float32)
    field = ndimage.gaussian_filter(noise, sigma, mode="wrap", truncate=3)
    return field / (np.abs(field).max() + 1e-9)


def coarse_field(rng: np.random.Generator, size: int, cells: int) -> np.ndarray:
    """A very smooth random field (-1..1 about), upsampled from a `cells` x `cells` grid."""
    grid = rng.uniform(-1, 1, (cells, cells))
    # Bilinear upsampling as two small matrix products: much faster than ndimage.zoom.
    steps = np.linspace(0, cells - 1, size)
    weights = np.maximum(0, 1 - np.abs(steps[:, None] - np.arange(cells)[None, :]))
    return (weights @ grid @ weights.T).astype(np.float32)
