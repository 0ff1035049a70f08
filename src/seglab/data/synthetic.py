"""Synthetic datasets, deterministic by seed, written in the same layouts as real data.

Image ``i`` of a dataset depends only on ``(seed, i)``, so a larger dataset starts with the
images of a smaller one and any image can be regenerated on its own.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import ndimage

from seglab.data.io import write_png
from seglab.data.nuclei_synth import check_options, render_nuclei
from seglab.errors import ConfigError, DataError

logger = logging.getLogger(__name__)

Pair = tuple[np.ndarray, np.ndarray]
_HEMATOXYLIN = np.array([0.65, 0.70, 0.29])  # optical density per RGB channel: purple-blue
_EOSIN = np.array([0.07, 0.99, 0.11])  # pink


def make_circles(n: int, size: int = 128, seed: int = 0) -> list[Pair]:
    """A few bright circles of random radius over a noisy background (as in seed 002).

    Returns:
        ``n`` pairs of uint8 image ``(size, size, 1)`` and bool mask ``(size, size)``.
    """
    return [_circles(_rng(seed, i), size) for i in range(n)]


def make_nuclei(n: int, size: int = 128, seed: int = 0, variant: str = "mixed") -> list[Pair]:
    """Cell nuclei like those of DSB2018: touching ellipses of varied size, shape and brightness.

    Args:
        n: Number of images.
        size: Image side in pixels; nucleus radii (about 4-14 px at 128) scale with it.
        seed: Random seed.
        variant: ``"fluorescence"`` (bright nuclei on a dark background), ``"brightfield"``
            (dark purple nuclei on a bright, pink background) or ``"mixed"`` (each image draws
            one, 70 % fluorescence as in DSB2018).

    Returns:
        ``n`` pairs of uint8 RGB image ``(size, size, 3)`` and int32 instance labels
        ``(size, size)`` (0 = background, 1..K = nuclei).

    Raises:
        ValueError: Unknown variant.
    """
    if variant not in ("fluorescence", "brightfield", "mixed"):
        raise ValueError(f"unknown variant {variant!r}; choose fluorescence, brightfield or mixed")
    return [_nuclei(_rng(seed, i), size, variant) for i in range(n)]


def make_realistic_nuclei(
    n: int, size: int = 256, seed: int = 0, modality: str = "mixed", bit_depth: int = 8
) -> list[Pair]:
    """Realistic nuclei (`seglab.data.nuclei_synth`): dim and bright, textured, blurred, clumped.

    Args:
        n: Number of images.
        size: Image side in pixels; nucleus sizes come from each image's zoom, not from ``size``.
        seed: Random seed.
        modality: ``"fluorescence"``, ``"brightfield"``, ``"he"`` (H&E-like), ``"ihc"``
            (immunohistochemistry-like: DAB-brown glands) or ``"mixed"``.
        bit_depth: 8 or 16.

    Returns:
        ``n`` pairs of RGB image ``(size, size, 3)`` (uint8 or uint16) and int32 instance labels.

    Raises:
        ValueError: Unknown modality or bit depth.
    """
    check_options(modality, bit_depth)
    return [render_nuclei(_rng(seed, i), size, modality, bit_depth) for i in range(n)]


@dataclass(frozen=True)
class SyntheticKind:
    """A synthetic dataset: how to draw image ``index`` and which layout it is written in."""

    sample: Callable[[int, int, int], Pair]  # (index, size, seed) -> (image, target)
    layout: str
    description: str


def _street(index: int, size: int, seed: int) -> Pair:
    from seglab.data.streets import make_street  # imported here: streets imports this module

    return make_street(_rng(seed, index), size, 2 * size)


SYNTHETIC_KINDS = {
    "circles": SyntheticKind(
        lambda i, size, seed: _circles(_rng(seed, i), size),
        "folders",
        "bright circles on a noisy gray background; binary masks",
    ),
    "nuclei": SyntheticKind(
        lambda i, size, seed: render_nuclei(_rng(seed, i), size),
        "dsb2018",
        "realistic nuclei (fluorescence, bright-field, H&E, IHC; dim and bright, clumped, noisy)",
    ),
    "nuclei_simple": SyntheticKind(
        lambda i, size, seed: _nuclei(_rng(seed, i), size, "mixed"),
        "dsb2018",
        "easy nuclei: even ellipses on flat backgrounds (quick demos and tests)",
    ),
    "streets": SyntheticKind(
        _street,
        "cityscapes",
        "street scenes labelled with Cityscapes label ids; size x 2 size pixels",
    ),
}


def write_synthetic(
    kind: str,
    out: Path,
    n: int,
    size: int = 128,
    seed: int = 0,
    splits: tuple[float, float, float] | None = (0.7, 0.15, 0.15),
    modality: str | None = None,
    bit_depth: int | None = None,
) -> dict[str, int]:
    """Write a synthetic dataset to disk in its real layout.

    ``circles`` is written in the folders layout, ``nuclei`` in the dsb2018 layout, ``streets``
    in the cityscapes layout (`seglab.data.streets.write_streets`, ``size`` high and twice as
    wide). Files go to ``<out>.partial`` first, which is renamed to ``out`` at the end, so an
    interrupted run never looks complete.

    Args:
        kind: A key of `SYNTHETIC_KINDS`.
        out: Output folder; must not exist or be empty.
        n: Number of images.
        size: Image side in pixels (streets: the height).
        seed: Random seed.
        splits: Fractions for ``train/``, ``val/`` and ``test/`` sub-folders, or None to write
            everything directly under ``out`` (not for streets: Cityscapes always has splits).
        modality: ``nuclei`` only: the rendering (`make_realistic_nuclei`); None means mixed.
        bit_depth: ``nuclei`` only: 8 or 16; None means 8.

    Returns:
        Number of images per split written (splits that get no image are not created).

    Raises:
        ConfigError: Unknown kind, ``n < 1``, bad split fractions, or a bad modality or bit
            depth (or either given for a kind other than ``nuclei``).
        DataError: ``out`` exists and is not an empty folder.
    """
    if kind not in SYNTHETIC_KINDS:
        raise ConfigError(
            f"unknown synthetic kind {kind!r}; choose one of {', '.join(SYNTHETIC_KINDS)}"
        )
    spec = _with_options(kind, SYNTHETIC_KINDS[kind], modality, bit_depth)
    if spec.layout == "cityscapes":
        from seglab.data.streets import write_streets

        return write_streets(out, n, height=size, width=2 * size, seed=seed, splits=splits)
    out = check_output(out, n)
    counts = split_counts(n, splits)
    with partial_folder(out) as partial:
        for index, split in numbered_splits(counts):
            base = partial / split if splits is not None else partial
            image, target = spec.sample(index, size, seed)
            _write_sample(spec.layout, base, f"{kind}_{index:04d}", image, target)
    logger.info("wrote %d %s images to %s (%s layout)", n, kind, out, spec.layout)
    return counts


def _with_options(
    kind: str, spec: SyntheticKind, modality: str | None, bit_depth: int | None
) -> SyntheticKind:
    """The nuclei kind with a chosen modality and bit depth; other kinds refuse both."""
    if modality is None and bit_depth is None:
        return spec
    if kind != "nuclei":
        raise ConfigError(f"modality and bit depth apply to kind nuclei only, not {kind}")
    chosen, depth = modality or "mixed", bit_depth or 8
    try:
        check_options(chosen, depth)
    except ValueError as error:
        raise ConfigError(str(error)) from None
    return SyntheticKind(
        lambda i, size, seed: render_nuclei(_rng(seed, i), size, chosen, depth),
        spec.layout,
        spec.description,
    )


def _rng(seed: int, index: int) -> np.random.Generator:
    return np.random.default_rng([seed, index])


@contextmanager
def partial_folder(out: Path) -> Iterator[Path]:
    """Yield `<out>.partial` (emptied first: left by an interrupted run), renamed to `out` when
    the block succeeds, so an interrupted run never looks complete. `out` must be missing or
    empty (`check_output`)."""
    partial = out.with_name(out.name + ".partial")
    if partial.exists():
        logger.info("removing %s left by an interrupted run", partial)
        shutil.rmtree(partial)
    yield partial
    if out.exists():
        out.rmdir()  # empty (checked before); a folder cannot be renamed over it everywhere
    partial.rename(out)


def check_output(out: str | Path, n: int) -> Path:
    """Refuse a bad count or a non-empty output folder before generating anything."""
    if n < 1:
        raise ConfigError(f"n must be at least 1, got {n}")
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise DataError(out, "already exists and is not empty", "choose a new folder or delete it")
    return out


def split_counts(n: int, splits: tuple[float, float, float] | None) -> dict[str, int]:
    """How many of `n` generated samples go to train / val / test (or "all" without splits)."""
    if splits is None:
        return {"all": n}
    if len(splits) != 3 or min(splits) < 0 or not np.isclose(sum(splits), 1.0):
        raise ConfigError(f"splits must be three non-negative fractions summing to 1, got {splits}")
    # Round half up: Python's round() sends halves to even (1.5 -> 2 but 2.5 -> 2).
    val, test = (int(np.floor(n * fraction + 0.5)) for fraction in splits[1:])
    while n - val - test < 1:  # train is never empty: shrink test first, then val
        test, val = (test - 1, val) if test else (test, val - 1)
    counts = {"train": n - val - test, "val": val, "test": test}
    return {name: count for name, count in counts.items() if count > 0}


def numbered_splits(counts: dict[str, int]) -> Iterator[tuple[int, str]]:
    """`(index, split)` of every sample to generate: indices run on across the splits of
    `split_counts`, from 0, so that sample `i` is the same whatever the split fractions."""
    splits = (split for split, count in counts.items() for _ in range(count))
    yield from enumerate(splits)


def _write_sample(
    layout: str, base: Path, sample_id: str, image: np.ndarray, target: np.ndarray
) -> None:
    if layout == "folders":
        write_png(base / "images" / f"{sample_id}.png", image)
        write_png(base / "masks" / f"{sample_id}.png", target)
        return
    folder = base / sample_id
    write_png(folder / "images" / f"{sample_id}.png", image)
    for label in range(1, int(target.max()) + 1):
        write_png(folder / "masks" / f"{sample_id}_{label}.png", target == label)
    if not target.any():
        # A field without nuclei is labelled by one all-zero mask (`load_sample` numbers none),
        # so it counts as labelled background rather than as an unlabelled image.
        write_png(folder / "masks" / f"{sample_id}_empty.png", target > 0)


def _circles(rng: np.random.Generator, size: int) -> Pair:
    yy, xx = np.mgrid[:size, :size]
    mask = np.zeros((size, size), bool)
    for _ in range(rng.integers(1, 5)):
        radius = max(rng.uniform(0.05, 0.18) * size, 2.0)
        cy, cx = rng.uniform(radius, size - radius, 2)
        mask |= (yy - cy) ** 2 + (xx - cx) ** 2 <= radius**2
    background, foreground = rng.uniform(20, 90), rng.uniform(150, 230)
    image = np.where(mask, foreground, background) + rng.normal(0, rng.uniform(8, 25), mask.shape)
    return np.clip(image, 0, 255).astype(np.uint8)[..., None], mask


def _nuclei(rng: np.random.Generator, size: int, variant: str) -> Pair:
    if variant == "mixed":
        variant = "fluorescence" if rng.random() < 0.7 else "brightfield"
    labels, profile = _place_nuclei(rng, size)
    # Per-nucleus staining strength, so brightness varies within an image as well as across.
    strength = np.concatenate([[0.0], rng.uniform(0.5, 1.0, labels.max())])[labels] * profile
    texture = ndimage.gaussian_filter(rng.normal(0, 1, labels.shape), 1.5)
    strength *= 1 + 0.6 * texture  # chromatin texture
    if variant == "fluorescence":
        gray = rng.uniform(0.02, 0.1) + _smooth_field(rng, size, 0.04) + 0.9 * strength
        tint = 1 - rng.uniform(0, 0.25, 3)
        rgb = gray[..., None] * (tint / tint.max())
    else:
        eosin = np.clip(0.15 + _smooth_field(rng, size, 0.15), 0, None)
        density = rng.uniform(1.4, 2.2) * strength
        light = rng.uniform(0.9, 1.0, 3)
        rgb = light * np.exp(-(density[..., None] * _HEMATOXYLIN + eosin[..., None] * _EOSIN))
    rgb = ndimage.gaussian_filter(rgb, (rng.uniform(0.6, 1.2),) * 2 + (0,))
    rgb += rng.normal(0, rng.uniform(0.01, 0.03), rgb.shape)
    return np.clip(rgb * 255, 0, 255).astype(np.uint8), labels


def _place_nuclei(rng: np.random.Generator, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Instance labels and a 0..1 intensity profile (bright centre, dimmer rim) of nuclei."""
    scale = size / 128
    labels = np.zeros((size, size), np.int32)
    profile = np.zeros((size, size))
    placed: list[tuple[float, float, float, float, float]] = []
    target = max(1, round(rng.integers(8, 24) * scale**2))
    for _ in range(20 * target):
        if len(placed) == target:
            break
        a = rng.uniform(4, 14) * scale
        b, theta = a * rng.uniform(0.6, 1.0), rng.uniform(0, np.pi)
        if placed and rng.random() < 0.4:
            # Put it against an existing nucleus so that touching pairs need splitting later.
            cy0, cx0, a0, b0, theta0 = placed[rng.integers(len(placed))]
            phi = rng.uniform(0, 2 * np.pi)
            reach = _radius(a0, b0, phi - theta0) + _radius(a, b, phi + np.pi - theta)
            distance = reach * rng.uniform(0.85, 1.0)
            cy, cx = cy0 + distance * np.sin(phi), cx0 + distance * np.cos(phi)
        else:
            cy, cx = rng.uniform(0, size, 2)
        window, inside, rho = _ellipse(rng, size, cy, cx, a, b, theta)
        free = inside & (labels[window] == 0)
        # Mostly visible and not a sliver at the border; earlier nuclei keep overlapping pixels.
        if inside.sum() < 10 * scale**2 or free.sum() < 0.8 * inside.sum():
            continue
        placed.append((cy, cx, a, b, theta))
        labels[window][free] = len(placed)
        profile[window][free] = 1 - 0.35 * rho[free] ** 2
    return labels, profile


def _radius(a: float, b: float, angle: float) -> float:
    """Distance from an ellipse's centre to its edge at ``angle`` from its major axis."""
    return a * b / float(np.hypot(b * np.cos(angle), a * np.sin(angle)))


def _ellipse(
    rng: np.random.Generator, size: int, cy: float, cx: float, a: float, b: float, theta: float
) -> tuple[tuple[slice, slice], np.ndarray, np.ndarray]:
    """A slightly irregular ellipse inside its bounding window: (window, inside, radius 0..1)."""
    wobble, phase = rng.uniform(0, 0.08), rng.uniform(0, 2 * np.pi)
    reach = a * (1 + wobble) + 1
    top, left = max(int(cy - reach), 0), max(int(cx - reach), 0)
    # Clamped to at least top/left: a centre outside the image gives an empty window.
    bottom = max(min(int(cy + reach) + 2, size), top)
    right = max(min(int(cx + reach) + 2, size), left)
    yy, xx = np.mgrid[top:bottom, left:right]
    dy, dx = yy - cy, xx - cx
    u = dx * np.cos(theta) + dy * np.sin(theta)
    v = -dx * np.sin(theta) + dy * np.cos(theta)
    # Radius relative to a boundary that wobbles with angle, so nuclei are not perfect ellipses.
    rho = np.hypot(u / a, v / b) / (1 + wobble * np.sin(3 * np.arctan2(v, u) + phase))
    return (slice(top, bottom), slice(left, right)), rho <= 1, np.minimum(rho, 1)


def _smooth_field(rng: np.random.Generator, size: int, amplitude: float) -> np.ndarray:
    """Low-frequency background variation (uneven illumination, cytoplasm)."""
    field = ndimage.gaussian_filter(rng.normal(0, 1, (size, size)), size / 8, mode="wrap")
    return amplitude * field / (np.abs(field).max() + 1e-9)
