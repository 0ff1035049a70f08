"""Realistic synthetic nuclei: what a model trained on them has to cope with on real microscopy.

Each image draws a zoom (mean nucleus diameter 7-60 px, single nuclei 5-80 px), a density and a
clumping tendency, then places nuclei that touch and overlap; a share of fields
(`NEAR_EMPTY_SHARE`) holds only 0-3 nuclei, so that normalised noise is seen as background.
Every nucleus gets its own brightness (an image spans 8-15x between its dimmest and brightest
nucleus), chromatin texture and focus; the whole image gets uneven illumination, vignetting and
Poisson-Gaussian camera noise. Renderings: fluorescence (bright on dark), bright-field (dark on
bright), H&E (haematoxylin-blue nuclei in pink eosin tissue) and IHC (lightly
haematoxylin-stained nuclei among brown DAB-stained glands and membranes). Each rendering also
draws structure that is not a nucleus (label 0; `seglab.data.nuclei_tissue`): glands, membranes,
cytoplasm and stroma; dust, debris and halos; dim cytoplasm and out-of-focus blobs.

Image ``i`` depends only on ``(seed, i)`` through the generator passed in.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from seglab.data.nuclei_field import NucleusField, coarse_field, smooth_noise
from seglab.data.nuclei_tissue import (
    EOSIN,
    HEMATOXYLIN,
    brightfield_clutter,
    fluorescence_clutter,
    he_tissue,
    ihc_tissue,
    mottle,
)

MODALITIES = ("fluorescence", "brightfield", "he", "ihc", "mixed")
BIT_DEPTHS = (8, 16)
# Shares of each rendering in "mixed": DSB2018 is mostly fluorescence.
MIXED_SHARES = {"fluorescence": 0.5, "brightfield": 0.2, "he": 0.15, "ihc": 0.15}
NEAR_EMPTY_SHARE = 0.08  # fields with 0-3 nuclei
_BRIGHTFIELD_STAIN = np.array(
    [0.55, 0.62, 0.45], np.float32
)  # greyish-purple, unstained-ish bright-field


def check_options(modality: str, bit_depth: int) -> None:
    """Raise a `ValueError` naming the valid values for an unknown modality or bit depth."""
    if modality not in MODALITIES:
        raise ValueError(f"unknown modality {modality!r}; choose one of {', '.join(MODALITIES)}")
    if bit_depth not in BIT_DEPTHS:
        raise ValueError(f"bit depth must be 8 or 16, got {bit_depth}")


def render_nuclei(
    rng: np.random.Generator, size: int, modality: str = "mixed", bit_depth: int = 8
) -> tuple[np.ndarray, np.ndarray]:
    """Draw one realistic nuclei image and its instance labels.

    Args:
        rng: The image's own random generator (``default_rng([seed, index])``).
        size: Image side in pixels.
        modality: ``fluorescence``, ``brightfield``, ``he``, ``ihc`` or ``mixed`` (each image
            draws one, by `MIXED_SHARES`).
        bit_depth: 8 (uint8) or 16 (uint16, camera counts up to a few thousand).

    Returns:
        RGB image ``(size, size, 3)`` (uint8 or uint16) and int32 labels ``(size, size)``.

    Raises:
        ValueError: Unknown modality or bit depth.
    """
    check_options(modality, bit_depth)
    if modality == "mixed":
        modality = str(rng.choice(list(MIXED_SHARES), p=list(MIXED_SHARES.values())))
    field = place_nuclei(rng, size)
    illumination = _illumination(rng, size)
    if modality == "fluorescence":
        rgb = _fluorescence(rng, field, illumination)
    else:
        rgb = _transmitted(rng, field, illumination, modality)
    return _camera(rng, rgb, bit_depth, dark_background=modality == "fluorescence"), field.labels


def place_nuclei(rng: np.random.Generator, size: int) -> NucleusField:
    """Place touching, overlapping and clumped nuclei at a zoom drawn for this image.

    Args:
        rng: Random generator.
        size: Image side in pixels.

    Returns:
        The placed nuclei (labels numbered 1..K without gaps; K is 0-3 in a near-empty field).
    """
    # At most a third of the image side, so that small images still hold several nuclei.
    diameter = min(float(np.exp(rng.uniform(np.log(7), np.log(60)))), max(size / 3, 5.0))
    cover = rng.uniform(0.08, 0.4)
    target = int(np.clip(cover * size**2 / (np.pi * diameter**2 / 4), 1, 250))
    if rng.random() < NEAR_EMPTY_SHARE:
        target = int(rng.integers(0, 4))
    clumping = rng.uniform(0.2, 0.8)
    span = rng.uniform(8, 15)  # brightest / dimmest nucleus of this image
    texture = smooth_noise(rng, size, max(diameter / 10, 0.7))
    labels = np.zeros((size, size), np.int32)
    sharp, blurred = np.zeros((size, size), np.float32), np.zeros((size, size), np.float32)
    placed: list[tuple[float, float, float]] = []
    brightness: list[float] = []
    for _ in range(2 * target):
        if len(placed) == target:
            break
        d = min(max(diameter * float(np.exp(rng.normal(0, 0.25))), 5.0), 80.0)
        cy, cx = _centre(rng, size, d, placed, clumping)
        iy, ix = int(cy), int(cx)
        if 0 <= iy < size and 0 <= ix < size and labels[iy, ix]:
            continue  # centred on another nucleus: would overlap too much, skip it cheaply
        window, inside, rho = _ellipse(rng, size, cy, cx, d / 2)
        free = inside & (labels[window] == 0)
        # Overlaps up to 40 %: the earlier nucleus keeps the shared pixels in the labels.
        if free.sum() < 8 or free.sum() < 0.6 * inside.sum():
            continue
        # The first two nuclei are the brightest and the dimmest, so every image spans `span`.
        u = [0.0, 1.0][len(placed)] if len(placed) < 2 else rng.uniform(0, 1)
        level = span ** (-u)
        placed.append((cy, cx, d))
        brightness.append(level)
        labels[window][free] = len(placed)
        signal = level * (1 - 0.3 * rho**2) * (1 + rng.uniform(0.4, 1.0) * texture[window])
        defocus = rng.uniform(0, 1) ** 2  # most nuclei in focus, a few well out
        signal *= inside
        sharp[window] += (1 - defocus) * signal
        blurred[window] += defocus * signal
    centres = np.array([(cy, cx) for cy, cx, _ in placed], np.float32).reshape(-1, 2)
    return NucleusField(labels, sharp, blurred, np.array(brightness), diameter, centres)


def _centre(
    rng: np.random.Generator,
    size: int,
    d: float,
    placed: list[tuple[float, float, float]],
    clumping: float,
) -> tuple[float, float]:
    """A free position, or one against an earlier nucleus (touching or overlapping)."""
    if not placed or rng.random() > clumping:
        cy, cx = rng.uniform(-0.2 * d, size + 0.2 * d, 2)
        return float(cy), float(cx)
    cy0, cx0, d0 = placed[int(rng.integers(len(placed)))]
    phi = rng.uniform(0, 2 * np.pi)
    distance = (d0 + d) / 2 * rng.uniform(0.65, 1.05)
    return cy0 + distance * float(np.sin(phi)), cx0 + distance * float(np.cos(phi))


def _ellipse(
    rng: np.random.Generator, size: int, cy: float, cx: float, a: float
) -> tuple[tuple[slice, slice], np.ndarray, np.ndarray]:
    """An irregular ellipse of semi-major axis `a` in its window: (window, inside, radius 0..1)."""
    b, theta = a * rng.uniform(0.55, 1.0), rng.uniform(0, np.pi)
    wobble, phase, lobes = rng.uniform(0, 0.12), rng.uniform(0, 2 * np.pi), rng.integers(2, 5)
    reach = a * (1 + wobble) + 1
    top, left = max(int(cy - reach), 0), max(int(cx - reach), 0)
    bottom = max(min(int(cy + reach) + 2, size), top)
    right = max(min(int(cx + reach) + 2, size), left)
    yy, xx = np.arange(top, bottom)[:, None], np.arange(left, right)[None, :]
    dy, dx = yy - cy, xx - cx
    u = dx * np.cos(theta) + dy * np.sin(theta)
    v = -dx * np.sin(theta) + dy * np.cos(theta)
    rho = np.hypot(u / a, v / b) / (1 + wobble * np.sin(lobes * np.arctan2(v, u) + phase))
    return (slice(top, bottom), slice(left, right)), rho <= 1, np.minimum(rho, 1)


def _illumination(rng: np.random.Generator, size: int) -> np.ndarray:
    """Uneven illumination (a smooth field plus a gradient) times vignetting, peak 1."""
    yy, xx = np.ogrid[:size, :size]
    r2 = ((yy - size * rng.uniform(0.3, 0.7)) ** 2 + (xx - size * rng.uniform(0.3, 0.7)) ** 2) / (
        size**2 / 2
    )
    vignette = 1 - rng.uniform(0, 0.5) * r2
    gy, gx = rng.uniform(-0.25, 0.25, 2)
    gradient = 1 + gy * (yy / size - 0.5) + gx * (xx / size - 0.5)
    light = vignette * gradient * (1 + rng.uniform(0, 0.25) * coarse_field(rng, size, 4))
    light = np.clip(light, 0.2, None)
    return (light / light.max()).astype(np.float32)


def _focus(rng: np.random.Generator, field: NucleusField) -> np.ndarray:
    """The nuclear signal with in-focus nuclei slightly and out-of-focus ones strongly blurred."""
    sharp = ndimage.gaussian_filter(field.sharp, rng.uniform(0.4, 1.0), truncate=3)
    sigma = 1 + field.diameter * rng.uniform(0.08, 0.2)
    blurred = ndimage.gaussian_filter(field.blurred, sigma, truncate=3)
    return sharp + blurred


def _fluorescence(
    rng: np.random.Generator, field: NucleusField, illumination: np.ndarray
) -> np.ndarray:
    """Emitted light: background autofluorescence plus nuclei, times illumination; peak ~1."""
    size = field.labels.shape[0]
    mottled = 1 + 0.3 * coarse_field(rng, size, 6) + rng.uniform(0, 0.3) * mottle(rng, size)
    background = rng.uniform(0.005, 0.06) * mottled
    signal = 0.9 * (_focus(rng, field) + fluorescence_clutter(rng, field))
    gray = (background + signal) * illumination
    tint = 1 - rng.uniform(0, 0.3, 3) if rng.random() < 0.3 else np.ones(3)
    return gray[..., None] * (tint / tint.max())


def _transmitted(
    rng: np.random.Generator, field: NucleusField, illumination: np.ndarray, modality: str
) -> np.ndarray:
    """Transmitted light through stained nuclei and what surrounds them (Beer-Lambert)."""
    nuclear = _focus(rng, field) * np.float32(rng.uniform(1.0, 2.2))
    if modality == "brightfield":
        density = nuclear[..., None] * _BRIGHTFIELD_STAIN
        density += brightfield_clutter(rng, field)[..., None]
    elif modality == "he":
        # Nuclei take up a little eosin too, folded into their stain vector.
        density = nuclear[..., None] * (HEMATOXYLIN + 0.05 * EOSIN) + he_tissue(rng, field)
    else:
        # IHC counterstains nuclei more lightly than H&E does.
        density = nuclear[..., None] * (rng.uniform(0.4, 0.9) * HEMATOXYLIN)
        density += ihc_tissue(rng, field)
    light = illumination[..., None] * rng.uniform(0.9, 1.0, 3).astype(np.float32)
    return light * np.exp(-density)


def _camera(
    rng: np.random.Generator, rgb: np.ndarray, bit_depth: int, dark_background: bool
) -> np.ndarray:
    """Poisson-Gaussian camera noise and quantisation to 8 or 16 bits."""
    # Photons at full scale: few (noisy, dim fluorescence) to many (bright-field's clean light).
    low, high = (100, 1000) if dark_background else (200, 3000)
    photons = float(np.exp(rng.uniform(np.log(low), np.log(high))))
    expected = np.clip(rgb, 0, None).astype(np.float32) * photons
    # Poisson shot noise by its normal approximation (several times faster), plus read noise.
    spread = np.sqrt(expected + rng.uniform(0.5, 3.0) ** 2)
    counts = expected + spread * rng.standard_normal(expected.shape, dtype=np.float32)
    signal = counts / photons
    if bit_depth == 8:
        return np.clip(signal * 255, 0, 255).astype(np.uint8)
    gain = rng.uniform(1000, 16000)  # 12- to 14-bit cameras saved as 16 bits, plus an offset
    offset = rng.uniform(50, 200)
    return np.clip(signal * gain + offset, 0, 65535).astype(np.uint16)
