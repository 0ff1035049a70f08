"""What surrounds synthetic nuclei and is not a nucleus (label 0), per rendering.

A model that only ever sees nuclei on plain backgrounds learns "stained or dark = nucleus" and
cuts real stained tissue into nucleus-sized pieces. These layers show it what else a field holds:

- H&E and IHC: gland-like regions (large smooth blobs with a stained rim, some around a clear
  lumen), membrane lines between cells, cytoplasm texture and stroma fibres, stained with eosin
  (H&E) or brown DAB (IHC). Nuclei fall both inside and outside the glands.
- bright-field: background mottle, dust specks, lint fibres, large faint out-of-focus blobs,
  out-of-focus dust rings and phase-like halos (a bright or dark ring) around the nuclei.
- fluorescence: dim diffuse cytoplasm around nuclei and large out-of-focus blobs, kept below
  half the brightness of the image's dimmest nucleus (and a mottled background, drawn in
  `seglab.data.nuclei_synth`).

Each function returns an optical density (transmitted light) or an emitted intensity to add,
drawn from the generator it is given; stain vectors are the optical densities per RGB channel of
Ruifrok & Johnston's colour-deconvolution matrix (the one behind scikit-image's ``rgb2hed``).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from seglab.data.nuclei_field import NucleusField, coarse_field, smooth_noise

HEMATOXYLIN = np.array([0.65, 0.70, 0.29], np.float32)  # purple-blue
EOSIN = np.array([0.07, 0.99, 0.11], np.float32)  # pink
DAB = np.array([0.27, 0.57, 0.78], np.float32)  # brown (diaminobenzidine)


def he_tissue(rng: np.random.Generator, field: NucleusField) -> np.ndarray:
    """Eosin optical density ``(H, W, 3)``: stroma fibres, cytoplasm, glands and membranes."""
    size = field.labels.shape[0]
    tissue = 0.3 + 0.12 * coarse_field(rng, size, 5) + 0.07 * _fibres(rng, size)
    tissue += 0.1 * smooth_noise(rng, size, 1.5)
    # Cytoplasm: a pinker halo around nuclei.
    tissue += rng.uniform(0.2, 0.6) * cytoplasm(field)
    if rng.random() < 0.6:
        epithelium, rim, lumen = glands(rng, size, field.diameter)
        tissue = tissue * (1 - 0.8 * lumen) + rng.uniform(0.3, 0.9) * epithelium
        tissue += rng.uniform(0.3, 1.0) * rim
    if rng.random() < 0.5:
        tissue += rng.uniform(0.15, 0.6) * membranes(rng, field)
    eosin = np.clip(tissue, 0.05, None) * rng.uniform(0.8, 1.4)
    return eosin[..., None] * EOSIN


def ihc_tissue(rng: np.random.Generator, field: NucleusField) -> np.ndarray:
    """DAB and counterstain optical density ``(H, W, 3)`` of immunohistochemistry tissue.

    Pale haematoxylin-counterstained stroma; brown DAB in gland epithelium (textured cytoplasm,
    dark membranes between its cells, a dark rim) and around some nuclei outside the glands,
    but not on the nuclei themselves.
    """
    size = field.labels.shape[0]
    counterstain = rng.uniform(0.02, 0.12) * (1 + 0.6 * _fibres(rng, size).clip(-1.5, 1.5))
    # Cytoplasm grain: box-filtered noise, cheaper than a Gaussian at this width.
    grain = ndimage.uniform_filter(rng.standard_normal((size, size), dtype=np.float32), 4)
    grain /= np.abs(grain).max() + 1e-9
    dab = np.zeros((size, size), np.float32)
    if rng.random() < 0.85:
        epithelium, rim, _ = glands(rng, size, field.diameter)
        dab += rng.uniform(0.3, 1.0) * epithelium * (1 + 0.5 * grain)
        dab += rng.uniform(0.3, 1.2) * rim
        dab += rng.uniform(0.5, 1.8) * membranes(rng, field) * epithelium
    if rng.random() < 0.3:
        dab += rng.uniform(0.2, 0.8) * cytoplasm(field) * (1 + 0.5 * grain)
    # The stained antigen is in membranes and cytoplasm: nuclei stay blue even inside glands.
    dab *= 1 - 0.85 * (field.labels > 0)
    density = np.clip(counterstain, 0, None)[..., None] * HEMATOXYLIN
    return density + np.clip(dab, 0, None)[..., None] * DAB


def brightfield_clutter(rng: np.random.Generator, field: NucleusField) -> np.ndarray:
    """Grey optical density ``(H, W)`` (negative: brighter than the light) of unstained clutter.

    Background mottle, dust specks, lint fibres, large out-of-focus blobs, out-of-focus dust
    rings and, in some images, a phase-like halo (bright or dark ring) around each nucleus.
    """
    size = field.labels.shape[0]
    density = 0.04 * (1 + coarse_field(rng, size, 6)) + rng.uniform(0, 0.04) * mottle(rng, size)
    density += _specks(rng, size, int(rng.poisson(rng.uniform(0, 25))), length=1)
    if rng.random() < 0.4:
        density += _specks(rng, size, int(rng.integers(1, 6)), length=int(rng.integers(8, 40)))
    blobs = int(rng.integers(0, 4))
    density += rng.uniform(0.05, 0.35) * defocused_blobs(rng, size, field.diameter, blobs)
    for _ in range(int(rng.integers(0, 3))):
        density += rng.uniform(0.04, 0.15) * _ring(rng, size)
    if field.labels.max() and rng.random() < 0.4:
        # Phase-like halo: just outside each nucleus, brighter (negative density) or darker.
        halo = cytoplasm(field, width_factor=0.5) - (field.labels > 0)
        density += rng.choice([-1.0, 1.0]) * rng.uniform(0.1, 0.35) * np.clip(halo, 0, None)
    return density.astype(np.float32)


def fluorescence_clutter(rng: np.random.Generator, field: NucleusField) -> np.ndarray:
    """Emitted light ``(H, W)`` to add: dim cytoplasm and out-of-focus blobs.

    Both stay below half the brightness of the image's dimmest nucleus (peak nuclear signal is
    its brightness), so dim nuclei still stand out from them.
    """
    size = field.labels.shape[0]
    dimmest = float(field.brightness.min()) if field.brightness.size else 0.1
    light = np.zeros((size, size), np.float32)
    if rng.random() < 0.6:
        light += rng.uniform(0.05, 0.2) * dimmest * cytoplasm(field)
    blobs = defocused_blobs(rng, size, field.diameter, int(rng.integers(0, 4)))
    return light + rng.uniform(0.1, 0.3) * dimmest * blobs


def mottle(rng: np.random.Generator, size: int) -> np.ndarray:
    """Background texture (-1..1 about) 8-24 pixels across: uneven mounting medium, dirt, ripple.

    In an almost empty field, percentile normalisation stretches this texture to full contrast;
    a model must see it as background.
    """
    return coarse_field(rng, size, int(size / rng.uniform(8, 24)) + 2)


def cytoplasm(field: NucleusField, width_factor: float = 1.0) -> np.ndarray:
    """A smooth halo of the nuclei (0..1), about `width_factor` nucleus diameters wide."""
    width = max(int(field.diameter * width_factor), 3)
    cells = (field.labels > 0).astype(np.float32)
    # Two box filters (cost independent of width) approximate a wide Gaussian halo.
    cells = ndimage.uniform_filter(ndimage.uniform_filter(cells, width), width)
    return cells / (cells.max() + 1e-9)


def glands(
    rng: np.random.Generator, size: int, diameter: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gland-like regions several nuclei across: (epithelium, its rim, the clear lumen), 0..1.

    The regions are the upper level sets of a coarse random field, so they are large and
    smooth; a higher level inside some of them is a lumen ringed by epithelium.
    """
    cells = int(np.clip(size / (diameter * rng.uniform(4, 9)), 2, 12)) + 1
    level = coarse_field(rng, size, cells)
    edge = rng.uniform(-0.1, 0.35)
    # Some glands are solid, others ring a lumen.
    lumen_edge = edge + rng.uniform(0.2, 0.6) if rng.random() < 0.6 else np.inf
    inside = _step(level - edge, 0.03)
    lumen = _step(level - lumen_edge, 0.03)
    rim = np.exp(-(((level - edge) / 0.025) ** 2)) + np.exp(-(((level - lumen_edge) / 0.025) ** 2))
    return inside - lumen, rim, lumen


def membranes(rng: np.random.Generator, field: NucleusField) -> np.ndarray:
    """Lines (0..1) between cells: the borders of the Voronoi cells of the nuclei and of others.

    Cells are about two nucleus diameters across; each nucleus is the centre of one, and random
    centres fill the rest. Lines are faint over the nuclei.
    """
    size = field.labels.shape[0]
    spacing = 2 * field.diameter * rng.uniform(0.8, 1.3)
    extra = rng.uniform(0, size, (int(rng.poisson(size**2 / spacing**2)) + 1, 2))
    if len(field.centres):
        # Cells without a nucleus in view only where no nucleus is near (none in the same or a
        # neighbouring square of a coarse grid), so borders pass between nuclei, not through.
        square = 0.6 * spacing
        bins = int(size / square) + 2
        occupied = np.zeros((bins, bins), bool)
        occupied[tuple(np.clip(field.centres // square, -1, bins - 2).astype(int).T + 1)] = True
        occupied = ndimage.maximum_filter(occupied, 3)
        extra = extra[~occupied[tuple((extra // square).astype(int).T + 1)]]
    centres = np.concatenate([field.centres.reshape(-1, 2), extra])
    # The Voronoi cells at half resolution (a quarter of the distance-transform cost) ...
    half = (size + 1) // 2
    rows, cols = np.clip(centres.astype(int) // 2, 0, half - 1).T
    seeds = np.zeros((half, half), np.int32)
    seeds[rows, cols] = np.arange(1, len(centres) + 1)
    nearest = ndimage.distance_transform_edt(
        seeds == 0, return_distances=False, return_indices=True
    )
    owner = seeds[nearest[0], nearest[1]]
    # ... looked up at smoothly displaced full-resolution positions: bent borders.
    cells = int(np.clip(size / spacing, 2, 40)) + 2
    bend = 0.12 * spacing
    grid = np.arange(size)
    rows = np.clip((grid[:, None] + bend * coarse_field(rng, size, cells)) / 2, 0, half - 1)
    cols = np.clip((grid[None, :] + bend * coarse_field(rng, size, cells)) / 2, 0, half - 1)
    region = owner[rows.astype(int), cols.astype(int)]
    borders = np.zeros((size, size), np.float32)
    borders[:-1] += region[:-1] != region[1:]
    borders[:, :-1] += region[:, :-1] != region[:, 1:]
    lines = ndimage.gaussian_filter(np.minimum(borders, 1), rng.uniform(0.6, 1.2), truncate=2)
    # Where clumped nuclei meet, the membrane lies above or below them: faint over the nuclei.
    lines *= 1 - 0.7 * (field.labels > 0)
    return lines / (lines.max() + 1e-9)


def defocused_blobs(rng: np.random.Generator, size: int, diameter: float, count: int) -> np.ndarray:
    """`count` large Gaussian blobs, 1-3 nucleus diameters wide: out of focus; peak 1 at most."""
    axis = np.arange(size, dtype=np.float32)
    blobs = np.zeros((size, size), np.float32)
    for _ in range(count):
        sigma = diameter * rng.uniform(1.0, 3.0)
        cy, cx = rng.uniform(0, size, 2)
        # A Gaussian is separable: an outer product of two 1-D profiles costs one pass.
        blob = np.outer(
            np.exp(-0.5 * ((axis - cy) / sigma) ** 2), np.exp(-0.5 * ((axis - cx) / sigma) ** 2)
        )
        np.maximum(blobs, blob, out=blobs)
    return blobs


def _step(x: np.ndarray, softness: float) -> np.ndarray:
    """A smooth step from 0 (x < 0) to 1 (x > 0) over about `softness`."""
    return 0.5 * (1 + np.tanh(x / softness))


def _fibres(rng: np.random.Generator, size: int) -> np.ndarray:
    """Anisotropic stroma texture of unit standard deviation: smooth across, long along."""
    noise = rng.standard_normal((size, size), dtype=np.float32)
    fibres = ndimage.gaussian_filter1d(noise, rng.uniform(0.7, 2), axis=0, truncate=3)
    # Stretched along with a box filter: cheap at any length.
    fibres = ndimage.uniform_filter1d(fibres, int(rng.integers(6, 20)), axis=1)
    fibres = fibres.T if rng.random() < 0.5 else fibres
    return fibres / (fibres.std() + 1e-9)


def _specks(rng: np.random.Generator, size: int, count: int, length: int) -> np.ndarray:
    """`count` sharp dark specks (dust; `length` 1) or lint fibres `length` pixels long."""
    specks = np.zeros((size, size), np.float32)
    if not count:
        return specks
    rows, cols = rng.integers(0, size, (2, count))
    specks[rows, cols] = rng.uniform(0.3, 1.5, count) / length**0.5
    sigma = rng.uniform(0.5, 1.0)
    if length > 1:
        specks = ndimage.uniform_filter1d(specks, length, axis=int(rng.integers(2))) * length
    return ndimage.gaussian_filter(specks, sigma, truncate=2) * (2 * np.pi * sigma**2)


def _ring(rng: np.random.Generator, size: int) -> np.ndarray:
    """An out-of-focus dust ring (a faint donut, peak 1) of radius 8-40 pixels."""
    radius, width = rng.uniform(8, 40), rng.uniform(1.5, 5)
    cy, cx = rng.uniform(0, size, 2)
    yy, xx = np.ogrid[:size, :size]
    distance = np.hypot(yy - cy, xx - cx, dtype=np.float32)
    return np.exp(-(((distance - radius) / width) ** 2))
