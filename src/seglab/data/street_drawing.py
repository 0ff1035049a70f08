"""The drawing of one synthetic street scene, used by `seglab.data.streets.make_street`.

Holds the Cityscapes label ids the scenes use, the camera height and the colour and texture
tables; the canvas that paints labelled shapes (`_Canvas`), the camera and street geometry
(`Scene`) and the building facades (`_Buildings`); the ray-cast background (sky, facades,
ground), the objects standing on the ground (cars, pedestrians, poles with traffic signs, trees)
and the ego vehicle's bonnet; and the camera effects (texture, light, blur, noise) that turn the
painted canvas into the final image. Everything here is re-exported by `seglab.data.streets`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike
from scipy import ndimage

# Cityscapes label ids (seglab.data.cityscapes.CITYSCAPES_LABELS) that the scenes use.
EGO_VEHICLE, OUT_OF_ROI, ROAD, SIDEWALK, BUILDING = 1, 3, 7, 8, 11
POLE, TRAFFIC_SIGN, VEGETATION, SKY, PERSON, CAR = 17, 20, 21, 23, 24, 26
STREET_LABEL_IDS = (EGO_VEHICLE, OUT_OF_ROI, ROAD, SIDEWALK, BUILDING, POLE, TRAFFIC_SIGN,
                    VEGETATION, SKY, PERSON, CAR)  # fmt: skip
CAMERA_HEIGHT = 1.5  # metres above the road, as on a car roof

# Texture strength in grey levels per label id: fine grain and blotches. Leaves are rough and sky
# is smooth; the rest lies between, so texture helps without deciding alone.
_GRAIN, _BLOTCH = np.zeros(256, np.float32), np.zeros(256, np.float32)
_GRAIN[[SKY, BUILDING, ROAD, SIDEWALK, VEGETATION, CAR, PERSON, POLE, TRAFFIC_SIGN]] = (
    1.5, 5, 7, 6, 20, 3, 4, 3, 2)  # fmt: skip
_BLOTCH[[SKY, BUILDING, ROAD, SIDEWALK, VEGETATION, CAR, PERSON, EGO_VEHICLE]] = (
    4, 9, 9, 8, 16, 4, 4, 5)  # fmt: skip
# fmt: off
_FACADES = np.array([(185, 170, 140), (150, 150, 150), (160, 85, 60), (215, 210, 200),
                     (95, 90, 85), (175, 125, 90), (120, 130, 140)], np.float32)
_CAR_PAINTS = np.array([(25, 25, 28), (220, 220, 218), (170, 172, 175), (105, 108, 112),
                        (30, 45, 90), (150, 25, 25), (40, 70, 140), (40, 80, 50),
                        (190, 175, 140)], np.float32)
_CLOTHES = np.array([(30, 30, 35), (40, 50, 90), (90, 90, 95), (120, 30, 35), (170, 160, 130),
                     (60, 80, 60), (200, 200, 200), (150, 110, 60)], np.float32)
_SKIN = np.array([(230, 190, 160), (200, 150, 110), (140, 95, 65), (95, 65, 45)], np.float32)
_SIGN_COLORS = np.array([(190, 30, 30), (30, 70, 170), (230, 190, 30), (30, 120, 60)], np.float32)
_GLASS, _TYRE, _LAMP, _PLATE = (45, 52, 62), (22, 22, 24), (200, 30, 25), (225, 225, 215)
_WHITE, _BARK = (235, 235, 235), (75, 60, 45)
# fmt: on


Box = tuple[float, float, float, float]  # top, bottom, left, right in pixels


@dataclass
class _Canvas:
    image: np.ndarray  # (H, W, 3) float32 RGB
    labels: np.ndarray  # (H, W) uint8 label ids

    def paint(
        self, box: Box, inside: Callable[[np.ndarray, np.ndarray], np.ndarray], color: ArrayLike,
        label: int,
    ) -> None:  # fmt: skip
        """Paint the pixels of `box` whose centres are `inside` (a test on rows y, columns x)."""
        height, width = self.labels.shape
        top, bottom = max(int(np.floor(box[0])), 0), min(int(np.ceil(box[1])), height)
        left, right = max(int(np.floor(box[2])), 0), min(int(np.ceil(box[3])), width)
        if top >= bottom or left >= right:
            return
        yy, xx = np.ogrid[top:bottom, left:right]
        mask = np.broadcast_to(inside(yy + 0.5, xx + 0.5), (bottom - top, right - left))
        self.image[top:bottom, left:right][mask] = color
        self.labels[top:bottom, left:right][mask] = label

    def shade(self, box: Box, factor: float) -> None:
        """Darken the pixels of `box` (a shadow), keeping their labels."""
        height, width = self.labels.shape
        rows = slice(max(int(box[0]), 0), max(min(int(np.ceil(box[1])), height), 0))
        cols = slice(max(int(box[2]), 0), max(min(int(np.ceil(box[3])), width), 0))
        self.image[rows, cols] *= factor

    def rect(self, box: Box, color: ArrayLike, label: int) -> None:
        """Paint a rectangle at least one pixel wide."""
        top, bottom, left, right = box
        right = max(right, left + 1)

        def inside(y: np.ndarray, x: np.ndarray) -> np.ndarray:
            return (y >= top) & (y < bottom) & (x >= left) & (x < right)

        self.paint((top, bottom, left, right), inside, color, label)

    def ellipse(
        self, cy: float, cx: float, ry: float, rx: float, color: ArrayLike, label: int
    ) -> None:
        ry, rx = max(ry, 0.5), max(rx, 0.5)
        box = (cy - ry, cy + ry, cx - rx, cx + rx)
        self.paint(box, lambda y, x: ((y - cy) / ry) ** 2 + ((x - cx) / rx) ** 2 <= 1, color, label)


@dataclass
class Scene:
    """Camera and street geometry, in pixels and metres (x right, z up, depth forward)."""

    height: int
    width: int
    focal: float  # pixels per metre at 1 m depth
    vx: float  # vanishing point
    vy: float
    road: tuple[float, float]  # road edges (lateral metres)
    facades: tuple[float, float]  # facade planes (lateral metres)
    near: float  # nearest depth whose ground point is in the image

    @classmethod
    def draw(cls, rng: np.random.Generator, height: int, width: int) -> Scene:
        focal = width * rng.uniform(0.75, 1.0)
        vy = height * rng.uniform(0.40, 0.50)
        road_width = rng.uniform(7, 14)
        left = -road_width * rng.uniform(0.3, 0.7)  # the camera's lane within the road
        road = (left, left + road_width)
        facades = (road[0] - rng.uniform(2, 4.5), road[1] + rng.uniform(2, 4.5))
        near = focal * CAMERA_HEIGHT / (0.9 * height - vy)
        vx = width * rng.uniform(0.42, 0.58)
        return cls(height, width, focal, vx, vy, road, facades, near)

    def ground(self, x: float, depth: float) -> tuple[float, float, float]:
        """Image column and row of a ground point, and pixels per metre there."""
        scale = self.focal / depth
        return self.vx + x * scale, self.vy + CAMERA_HEIGHT * scale, scale


@dataclass
class _Buildings:
    """Building facades along one side (or across the far end): one row per building."""

    starts: np.ndarray  # where each building begins along the facade (metres)
    heights: np.ndarray
    colors: np.ndarray  # (n, 3)
    glass: np.ndarray  # (n, 3) window colour
    bays: np.ndarray  # window spacing along the facade
    floors: np.ndarray  # storey height

    @classmethod
    def draw(cls, rng: np.random.Generator, start: float, stop: float) -> _Buildings:
        lengths = rng.uniform(8, 25, 40)
        starts = start + np.concatenate([[0.0], np.cumsum(lengths)])
        n = int(np.searchsorted(starts, stop)) + 1
        base = _FACADES[rng.integers(len(_FACADES), size=n)]
        return cls(
            starts[:n],
            rng.uniform(6, 24, n),
            np.clip(base + rng.uniform(-18, 18, (n, 3)), 0, 255),
            rng.uniform(30, 80, (n, 1)) + rng.uniform(0, 25, (n, 3)),
            rng.uniform(2.5, 4.0, n),
            rng.uniform(2.9, 3.6, n),
        )

    def colour(self, along: np.ndarray, z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Colours of facade points, and whether each lies below its building's roof."""
        k = np.clip(np.searchsorted(self.starts, along, side="right") - 1, 0, len(self.starts) - 1)
        offset = along - self.starts[k]
        window = (
            (np.abs(offset % self.bays[k] / self.bays[k] - 0.5) < 0.25)
            & (np.abs(z % self.floors[k] / self.floors[k] - 0.55) < 0.22)
            & (z < self.heights[k] - 0.8)
        )
        return np.where(window[:, None], self.glass[k], self.colors[k]), z <= self.heights[k]


def background(rng: np.random.Generator, scene: Scene) -> _Canvas:
    """Sky, facades and ground, by casting each pixel's ray into the street."""
    focal = scene.focal
    yy, xx = np.mgrid[: scene.height, : scene.width].astype(np.float32) + 0.5
    dy, dx = yy - scene.vy, xx - scene.vx
    with np.errstate(divide="ignore", invalid="ignore"):
        d_ground = np.where(dy > 0, focal * CAMERA_HEIGHT / dy, np.inf)
        d_side = np.where(dx != 0, focal * np.where(dx > 0, *scene.facades[::-1]) / dx, np.inf)
    far = rng.uniform(80, 200)  # the building that closes the street
    on_ground = d_ground < np.minimum(d_side, far)
    image = _sky(rng, scene)
    labels = np.full(dy.shape, SKY, np.uint8)
    light = rng.uniform(0.6, 1.0, 2)  # sun on one side, shade on the other
    # Per wall: its pixels, their depth, their position along it, where it runs, its light.
    walls = [
        (~on_ground & (d_side < far) & (dx < 0), d_side, d_side, (0.5, far), light[0]),
        (~on_ground & (d_side < far) & (dx > 0), d_side, d_side, (0.5, far), light[1]),
        (~on_ground & (d_side >= far), np.full_like(d_side, far), dx * far / focal,
         scene.facades, light.mean()),
    ]  # fmt: skip
    for hit, depth, along, (start, stop), brightness in walls:
        colors, below_roof = _Buildings.draw(rng, start, stop).colour(
            along[hit], CAMERA_HEIGHT - dy[hit] * depth[hit] / focal
        )
        rows, cols = (index[below_roof] for index in np.nonzero(hit))
        image[rows, cols] = colors[below_roof] * brightness
        labels[rows, cols] = BUILDING
    _ground(rng, scene, image, labels, on_ground, d_ground, dx)
    return _Canvas(image, labels)


def _sky(rng: np.random.Generator, scene: Scene) -> np.ndarray:
    if rng.random() < 0.6:  # clear
        top = rng.uniform([40, 90, 160], [90, 140, 220])
        horizon = rng.uniform([150, 180, 215], [200, 215, 240])
    else:  # overcast: greys that white facades and light roads share
        top = np.full(3, rng.uniform(165, 225)) + rng.uniform(-5, 5, 3)
        horizon = np.clip(top + rng.uniform(0, 20), 0, 255)
    t = np.clip((np.arange(scene.height) + 0.5) / scene.vy, 0, 1)[:, None, None]
    rows = (top * (1 - t) + horizon * t).astype(np.float32)
    return np.array(np.broadcast_to(rows, (scene.height, scene.width, 3)))


def _ground(
    rng: np.random.Generator,
    scene: Scene,
    image: np.ndarray,
    labels: np.ndarray,
    on_ground: np.ndarray,
    d_ground: np.ndarray,
    dx: np.ndarray,
) -> None:
    depth = d_ground[on_ground]
    x = dx[on_ground] * depth / scene.focal
    (left, right), asphalt = scene.road, rng.uniform(55, 125)
    road = (x >= left) & (x <= right)
    colors = np.empty((len(x), 3), np.float32)
    colors[:] = asphalt + rng.uniform(-5, 5, 3)
    # Lane lines: dashes between lanes, solid near the edges.
    lanes = np.arange(left + 3.3, right - 1.5, 3.3)
    dashes = (np.abs(x[:, None] - lanes).min(axis=1, initial=99) < 0.08) & (depth % 12 < 4)
    edges = np.minimum(np.abs(x - left - 0.3), np.abs(x - right + 0.3)) < 0.07
    colors[road & (dashes | edges)] = rng.uniform(180, 235)
    if rng.random() < 0.5:  # concrete, close to light asphalt
        walk = np.full(3, asphalt + rng.uniform(10, 50))
    else:  # red pavers
        walk = rng.uniform([140, 105, 95], [180, 140, 130])
    slabs = 1 + 0.05 * ((np.floor(x / 0.6) + np.floor(depth / 0.6)) % 2) * (depth < 15)
    colors[~road] = walk * slabs[~road, None]
    curb = ~road & (np.minimum(np.abs(x - left), np.abs(x - right)) < 0.25)
    colors[curb] = np.clip(walk + 30, 0, 255)
    shadow_edge = rng.uniform(left, right)  # a building's shadow across part of the street
    if rng.random() < 0.5:
        colors[x > shadow_edge] *= rng.uniform(0.55, 0.8)
    image[on_ground] = colors
    labels[on_ground] = np.where(road, ROAD, SIDEWALK)


def _car(rng: np.random.Generator, scene: Scene, canvas: _Canvas, depth: float) -> None:
    left, right = scene.road
    if rng.random() < 0.4:  # parked along the kerb
        lateral = rng.choice([left + 1.1, right - 1.1])
    else:
        lateral = rng.choice(np.arange(left + 1.65, right - 1.0, 3.3))
    cx, bottom, scale = scene.ground(lateral, depth)
    w, h = 1.8 * scale, rng.uniform(1.4, 1.75) * scale
    paint = _CAR_PAINTS[rng.integers(len(_CAR_PAINTS))] + rng.uniform(-12, 12, 3)
    shadow = (bottom - 0.06 * h, bottom + 0.04 * h, cx - 0.55 * w, cx + 0.55 * w)
    canvas.shade(shadow, 0.55)  # darker road under the car, still labelled road
    canvas.rect((bottom - 0.62 * h, bottom - 0.12 * h, cx - w / 2, cx + w / 2), paint, CAR)
    top, waist = bottom - h, bottom - 0.62 * h

    def cabin(y: np.ndarray, x: np.ndarray) -> np.ndarray:
        return (
            (y >= top)
            & (y < waist)
            & (np.abs(x - cx) < w * (0.36 + 0.1 * (y - top) / (waist - top)))
        )

    canvas.paint((top, waist, cx - w / 2, cx + w / 2), cabin, paint, CAR)
    canvas.rect((top + 0.08 * h, waist - 0.02 * h, cx - 0.36 * w, cx + 0.36 * w), _GLASS, CAR)
    for side in (-1, 1):
        wheel, lamp = cx + side * 0.4 * w, cx + side * 0.42 * w
        canvas.rect((bottom - 0.2 * h, bottom, wheel - 0.1 * w, wheel + 0.1 * w), _TYRE, CAR)
        canvas.rect((bottom - 0.56 * h, bottom - 0.47 * h, lamp - 0.06 * w, lamp + 0.06 * w),
                    _LAMP, CAR)  # fmt: skip
    # License plates (label id -1) are never written to label images: they stay car.
    canvas.rect((bottom - 0.36 * h, bottom - 0.26 * h, cx - 0.13 * w, cx + 0.13 * w), _PLATE, CAR)


def _person(rng: np.random.Generator, scene: Scene, canvas: _Canvas, depth: float) -> None:
    (left, right), (outer_left, outer_right) = scene.road, scene.facades
    if rng.random() < 0.5:
        lateral = rng.uniform(outer_left + 0.5, left - 0.5)
    else:
        lateral = rng.uniform(right + 0.5, outer_right - 0.5)
    cx, bottom, scale = scene.ground(lateral, depth)
    h, stride = rng.uniform(1.55, 1.95) * scale, rng.uniform(-0.12, 0.12)
    shirt, trousers = _CLOTHES[rng.integers(len(_CLOTHES), size=2)]
    skin = _SKIN[rng.integers(len(_SKIN))]
    for side in (-1, 1):
        leg, arm = cx + side * (0.07 + stride) * scale, cx + side * 0.25 * scale
        canvas.rect((bottom - 0.48 * h, bottom, leg - 0.07 * scale, leg + 0.07 * scale),
                    trousers, PERSON)  # fmt: skip
        canvas.rect((bottom - 0.8 * h, bottom - 0.45 * h, arm - 0.05 * scale, arm + 0.05 * scale),
                    shirt * 0.9, PERSON)  # fmt: skip
    canvas.rect((bottom - 0.82 * h, bottom - 0.46 * h, cx - 0.21 * scale, cx + 0.21 * scale),
                shirt, PERSON)  # fmt: skip
    canvas.ellipse(bottom - 0.9 * h, cx, 0.065 * h, 0.1 * scale, skin, PERSON)


def _pole(rng: np.random.Generator, scene: Scene, canvas: _Canvas, depth: float) -> None:
    lateral = scene.road[0] - 0.4 if rng.random() < 0.5 else scene.road[1] + 0.4
    cx, bottom, scale = scene.ground(lateral, depth)
    tall, half = rng.uniform(3.5, 8), max(0.12 * scale, 1.0)
    metal = rng.uniform(80, 170) + rng.uniform(-8, 8, 3)
    canvas.rect((bottom - tall * scale, bottom, cx - half, cx + half), metal, POLE)
    if rng.random() < 0.3:
        return
    kind, size = int(rng.integers(4)), rng.uniform(0.6, 0.9)
    r, cy = size * scale / 2, bottom - (tall - size / 2 - 0.1) * scale
    color = _SIGN_COLORS[kind]
    if kind == 0:  # prohibition: red ring, white inside
        canvas.ellipse(cy, cx, r, r, color, TRAFFIC_SIGN)
        canvas.ellipse(cy, cx, 0.72 * r, 0.72 * r, _WHITE, TRAFFIC_SIGN)
    elif kind == 1:  # mandatory: blue disc
        canvas.ellipse(cy, cx, r, r, color, TRAFFIC_SIGN)
    elif kind == 2:  # warning: triangle, point up

        def triangle(y: np.ndarray, x: np.ndarray) -> np.ndarray:
            return (y <= cy + r) & (np.abs(x - cx) <= (y - cy + r) / 2)

        canvas.paint((cy - r, cy + r, cx - r, cx + r), triangle, color, TRAFFIC_SIGN)
    else:  # direction panel
        canvas.rect((cy - 0.6 * r, cy + 0.6 * r, cx - 1.4 * r, cx + 1.4 * r), color, TRAFFIC_SIGN)


def _tree(rng: np.random.Generator, scene: Scene, canvas: _Canvas, depth: float) -> None:
    side = int(rng.integers(2))
    lateral = scene.facades[side] + (1 - 2 * side) * rng.uniform(0.8, 1.5)
    cx, bottom, scale = scene.ground(lateral, depth)
    crown, trunk, half = rng.uniform(1.5, 3.2), rng.uniform(2, 3.5), max(0.15 * scale, 0.5)
    leaves = rng.uniform([45, 75, 25], [100, 135, 60])
    canvas.rect((bottom - (trunk + crown) * scale, bottom, cx - half, cx + half), _BARK, VEGETATION)
    centre, radius = bottom - (trunk + 0.8 * crown) * scale, 0.6 * crown * scale
    for i, (dy, dx) in enumerate(rng.uniform(-0.6, 0.6, (int(rng.integers(4, 8)), 2)) * crown):
        tone = leaves * (0.8 + 0.05 * i)  # a crown of overlapping leafy blobs
        canvas.ellipse(centre + dy * scale, cx + dx * scale, radius, radius, tone, VEGETATION)


# Object kinds: how many per image and their depth range (metres; "near": the image bottom).
OBJECTS: tuple[tuple[Callable[..., None], int, int, float, float], ...] = (
    (_car, 1, 5, 6.0, 40.0),
    (_person, 2, 7, 0.0, 22.0),
    (_pole, 1, 4, 0.0, 40.0),
    (_tree, 0, 6, 0.0, 70.0),
)


def ego_vehicle(rng: np.random.Generator, canvas: _Canvas) -> None:
    """The bonnet along the bottom edge (ego vehicle), sometimes a strip of out-of-roi."""
    height, width = canvas.labels.shape
    if rng.random() < 0.85:
        rise = height * rng.uniform(0.05, 0.11)
        paint = rng.uniform(15, 70) + rng.uniform(-5, 5, 3)

        def bonnet(y: np.ndarray, x: np.ndarray) -> np.ndarray:
            u = (x - width / 2) / (width / 2)
            return y >= height - rise * (1 - 0.45 * u**2)

        canvas.paint((height - rise, height, 0, width), bonnet, paint, EGO_VEHICLE)
    if rng.random() < 0.3:
        rows = float(rng.integers(1, 4))
        canvas.rect((height - rows, height, 0, width), (8, 8, 8), OUT_OF_ROI)


def camera(rng: np.random.Generator, canvas: _Canvas) -> np.ndarray:
    """Texture, uneven light, exposure, tint, lens blur and sensor noise; uint8 RGB."""
    labels, image = canvas.labels, canvas.image
    height, width = labels.shape
    noise = rng.standard_normal((2, height, width), dtype=np.float32)
    blotches = ndimage.gaussian_filter(noise[0], 2.0) * 3
    image += (noise[1] * _GRAIN[labels] + blotches * _BLOTCH[labels])[..., None]
    # Light falling off towards one side and the top or bottom, as a low sun or a cloud would do.
    slope_x, slope_y = rng.uniform(-0.2, 0.2, 2)
    yy, xx = np.ogrid[:height, :width]
    light = 1 + slope_x * (xx / width - 0.5) + slope_y * (yy / height - 0.5)
    image *= (light[..., None] * rng.uniform(0.7, 1.25) * rng.uniform(0.92, 1.08, 3)).astype(
        np.float32
    )
    image = ndimage.gaussian_filter(image, (rng.uniform(0.3, 0.8),) * 2 + (0,))
    image += rng.standard_normal(image.shape, dtype=np.float32) * rng.uniform(2, 6)
    return np.clip(np.rint(image), 0, 255).astype(np.uint8)
