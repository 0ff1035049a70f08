"""Read and write 3D volumes (TIFF stacks, ``.npy``, NIfTI) and find them on disk.

Volumes come back as ``(D, H, W)`` or ``(D, H, W, C)`` arrays with their voxel spacing in
``(z, y, x)`` order when the format stores it. Layout ``volumes``::

    ROOT/images/<stem>.tif   ROOT/labels/<stem>.nii.gz   (suffixes may differ)

optionally split into ``ROOT/train``, ``ROOT/val`` and ``ROOT/test``, each in that layout.
NIfTI needs nibabel (``pip install seglab[volumes]``), which is imported only when used.
The size each file declares (TIFF series and tiles, ``.npy`` and NIfTI headers) is checked
against `seglab.data.io.pixel_limit` before its voxels are read.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import tifffile
from scipy import ndimage

from seglab.atomic_files import atomic_path
from seglab.data.pixel_limits import check_pixels, tiff_chunk_pixels, tiff_pixels
from seglab.data.synthetic import check_output, numbered_splits, partial_folder, split_counts
from seglab.errors import ConfigError, DataError

logger = logging.getLogger(__name__)

VOLUME_SUFFIXES = (".tif", ".tiff", ".npy", ".nii", ".nii.gz")
_SUFFIXES = ", ".join(VOLUME_SUFFIXES)
SPLIT_NAMES = ("train", "val", "test")
_LAYOUT = "ROOT/images/<stem>.tif + ROOT/labels/<stem>.tif (optionally under train/ val/ test/)"
_IMAGEJ_DTYPES = (np.uint8, np.uint16, np.float32)  # the only types ImageJ hyperstacks hold
VolumeEntry = tuple[str, Path, Path | None]


@dataclass
class Volume:
    """A 3D image and its voxel size.

    Attributes:
        data: Array of shape ``(D, H, W)`` or ``(D, H, W, C)``.
        spacing: Voxel size ``(z, y, x)`` in the file's units, or None if the format has none.
    """

    data: np.ndarray
    spacing: tuple[float, float, float] | None = None


def volume_stem(path: str | Path) -> str:
    """File name without its volume suffix; ``a.nii.gz`` gives ``a``, not ``a.nii``."""
    name = Path(path).name
    return name[: -len(".nii.gz")] if name.lower().endswith(".nii.gz") else Path(name).stem


def _suffix(path: Path) -> str:
    return ".nii.gz" if path.name.lower().endswith(".nii.gz") else path.suffix.lower()


def read_volume(path: str | Path) -> Volume:
    """Read a multi-page TIFF stack, a ``.npy`` array or a NIfTI file.

    NIfTI stores voxels in ``(x, y, z)`` order; they are transposed to ``(z, y, x)`` so every
    format comes back alike.

    Raises:
        DataError: The file is missing, unreadable or corrupt, has an unsupported suffix,
            holds a 2D image or an array of more than 4 dimensions, or declares more voxels
            than `seglab.data.io.pixel_limit`.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(path, "file not found", "check the path and the file name")
    suffix = _suffix(path)
    if suffix not in VOLUME_SUFFIXES:
        raise DataError(path, f"unsupported volume format {suffix!r}", f"use one of {_SUFFIXES}")
    try:
        if suffix in (".tif", ".tiff"):
            volume = _read_tiff(path)
        elif suffix == ".npy":
            volume = _read_npy(path)
        else:
            volume = _read_nifti(path)
    except DataError:
        raise
    except Exception as error:  # each reader raises its own types for truncated or bad files
        raise DataError(
            path, f"cannot be read as a volume ({error})", "the file may be corrupt; re-export it"
        ) from error
    if volume.data.ndim < 3:
        raise DataError(
            path,
            f"expected a 3D stack (D, H, W), got a 2D image of shape {volume.data.shape}",
            "save the slices as one multi-page TIFF or a 3D .npy array",
        )
    if volume.data.ndim > 4:
        raise DataError(path, f"expected (D, H, W) or (D, H, W, C), got {volume.data.shape}")
    return volume


def _voxels(shape: tuple[int, ...]) -> tuple[int, ...]:
    """The dimensions of a volume's array that count as voxels: a last axis of at most 4 is
    its channels."""
    return shape[:-1] if len(shape) == 4 and shape[-1] <= 4 else shape


def _read_npy(path: Path) -> Volume:
    # A memory map reads the header only; the voxels are copied in once the size is known.
    mapped = np.load(path, mmap_mode="r", allow_pickle=False)
    check_pixels(path, _voxels(mapped.shape), "a volume")
    return Volume(np.array(mapped))


def _read_tiff(path: Path) -> Volume:
    with tifffile.TiffFile(path) as tif:
        series = tif.series[0]
        check_pixels(path, tiff_pixels(series.axes, series.shape), "a volume")
        check_pixels(path, tiff_chunk_pixels(series.keyframe), "tiles or strips")
        data, axes = series.asarray(), series.axes
        if "C" in axes and axes.index("C") < len(axes) - 1:  # ImageJ order ZCYX -> (D, H, W, C)
            data = np.moveaxis(data, axes.index("C"), -1)
        z = (tif.imagej_metadata or {}).get("spacing")
        tags = tif.pages.first.tags
        if z is None or "XResolution" not in tags or "YResolution" not in tags:
            return Volume(data)
        # Resolution is pixels per unit, as a rational (numerator, denominator).
        x_num, x_den = tags["XResolution"].value
        y_num, y_den = tags["YResolution"].value
        return Volume(data, (float(z), y_den / y_num, x_den / x_num))


def _read_nifti(path: Path) -> Volume:
    try:
        import nibabel
    except ImportError as error:
        raise DataError(
            path,
            "reading NIfTI files needs nibabel, which is not installed",
            "pip install nibabel (or pip install 'seglab[volumes]')",
        ) from error
    image: Any = nibabel.load(path)  # reads the header; the voxels are read on demand
    check_pixels(path, _voxels(tuple(image.shape)), "a volume")
    data = np.asanyarray(image.dataobj)
    data = np.ascontiguousarray(np.moveaxis(data, [0, 1, 2], [2, 1, 0]) if data.ndim >= 3 else data)
    x, y, z = (float(zoom) for zoom in image.header.get_zooms()[:3])
    return Volume(data, (z, y, x))


def write_volume(
    path: str | Path, data: np.ndarray, spacing: tuple[float, float, float] | None = None
) -> None:
    """Write a ``(D, H, W)`` or ``(D, H, W, C)`` volume atomically as ``.tif`` or ``.npy``.

    TIFF files are ImageJ hyperstacks (uint8, uint16 or float32) holding the ``(z, y, x)``
    spacing; ``.npy`` files keep any dtype but no spacing.

    Raises:
        DataError: Unsupported suffix, shape, or TIFF dtype.
    """
    path = Path(path)
    suffix = _suffix(path)
    if data.ndim not in (3, 4):
        raise DataError(path, f"expected a (D, H, W) or (D, H, W, C) array, got {data.shape}")
    if suffix == ".npy":
        if spacing is not None:
            logger.warning("%s: .npy files cannot hold the voxel spacing; it is dropped", path)
        with atomic_path(path) as temporary, temporary.open("wb") as file:
            np.save(file, data, allow_pickle=False)  # a file object: np.save would add ".npy"
        return
    if suffix not in (".tif", ".tiff"):
        raise DataError(path, f"cannot write volumes as {suffix!r}", "use .tif or .npy")
    if data.dtype not in _IMAGEJ_DTYPES:
        raise DataError(
            path,
            f"ImageJ TIFF stacks cannot hold {data.dtype} voxels",
            "cast to uint8, uint16 or float32, or write a .npy file",
        )
    axes = "ZYX" if data.ndim == 3 else "ZCYX"
    stack = data if data.ndim == 3 else np.moveaxis(data, -1, 1)
    options: dict[str, Any] = {"metadata": {"axes": axes}}
    if spacing is not None:
        z, y, x = spacing
        options = {"metadata": {"axes": axes, "spacing": z}, "resolution": (1 / x, 1 / y)}
    with atomic_path(path) as temporary:
        tifffile.imwrite(temporary, stack, imagej=True, **options)


def find_volumes(root: str | Path) -> dict[str, list[VolumeEntry]]:
    """List the volumes of a ``volumes`` layout as ``{split: [(stem, image, labels), ...]}``.

    Splits are the ``train/ val/ test/`` sub-folders present, else ``"all"``. Without a
    ``labels/`` folder every label path is None (data to predict on).

    Raises:
        DataError: ``root`` or ``images/`` is missing or empty, two files share a stem, or
            ``labels/`` exists but lacks an image's labels.
    """
    root = Path(root)
    if not root.is_dir():
        raise DataError(root, "dataset folder not found", f"expected {_LAYOUT}")
    splits = [name for name in SPLIT_NAMES if (root / name).is_dir()]
    if not splits:
        return {"all": _find_flat(root)}
    return {name: _find_flat(root / name) for name in splits}


def _find_flat(folder: Path) -> list[VolumeEntry]:
    images = _volume_files(folder / "images")
    if not images:
        raise DataError(folder / "images", "no volume files found", f"expected {_LAYOUT}")
    if not (folder / "labels").is_dir():
        return [(stem, path, None) for stem, path in sorted(images.items())]
    labels = _volume_files(folder / "labels")
    for stem, path in images.items():
        if stem not in labels:
            raise DataError(
                path,
                f"has no labels in {folder / 'labels'}",
                f"add labels/{stem}.tif (or any of {_SUFFIXES})",
            )
    for stem in sorted(labels.keys() - images.keys()):
        logger.warning("%s: labels without an image; ignored", labels[stem])
    return [(stem, images[stem], labels[stem]) for stem in sorted(images)]


def _volume_files(folder: Path) -> dict[str, Path]:
    files: dict[str, Path] = {}
    if not folder.is_dir():
        return files
    for path in sorted(folder.iterdir()):
        if path.name.startswith(".") or _suffix(path) not in VOLUME_SUFFIXES:
            continue  # hidden temporaries of interrupted writes, notes, thumbnails
        stem = volume_stem(path)
        if stem in files:
            raise DataError(path, f"shares its stem with {files[stem].name}", "keep one of them")
        files[stem] = path
    return files


def load_volume_pair(
    image_path: str | Path, label_path: str | Path | None
) -> tuple[Volume, np.ndarray | None]:
    """Read an image volume and its ``(D, H, W)`` int32 label volume (None without labels).

    Raises:
        DataError: Either file is unreadable, the labels are not integer ``(D, H, W)`` values,
            or their shape differs from the image's spatial shape.
    """
    image = read_volume(image_path)
    if label_path is None:
        return image, None
    raw = read_volume(label_path).data
    if raw.ndim == 4 and raw.shape[-1] == 1:
        raw = raw[..., 0]
    if raw.ndim != 3:
        raise DataError(label_path, f"expected (D, H, W) labels, got shape {raw.shape}")
    if raw.shape != image.data.shape[:3]:
        raise DataError(
            label_path,
            f"labels of shape {raw.shape} do not match image {image_path} of shape "
            f"{image.data.shape[:3]} (D, H, W)",
            "the image and its labels must cover the same voxels",
        )
    labels = raw.astype(np.int32)
    if not np.array_equal(labels, raw) or labels.min(initial=0) < 0:
        raise DataError(label_path, "labels must be non-negative integers", "0 is background")
    return image, labels


def make_blobs3d(
    n: int, size: int = 64, seed: int = 0, classes: int | None = None
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Random rotated ellipsoids in noisy, blurred ``(size, size, size)`` volumes.

    Volume ``i`` depends only on ``(seed, i)``. Radii are 4-12 voxels at ``size=64``, scaled
    with ``size``; overlapping voxels keep the earlier label.

    Args:
        n: Number of volumes.
        size: Side of each cube.
        seed: Random seed.
        classes: None: binary data, objects numbered 1..K. C >= 2: labels are the class indices
            0..C-1 (0 background) and a blob's class is its size: class c draws its radii from
            the c-th of C-1 equal bands of 4-12 voxels (brightness says nothing of the class).

    Returns:
        ``(image, labels)`` pairs: uint8 images and int32 labels.

    Raises:
        ConfigError: ``classes`` below 2.
    """
    _check_classes(classes)
    return [_blobs3d(np.random.default_rng([seed, index]), size, classes) for index in range(n)]


def _check_classes(classes: int | None) -> None:
    if classes is not None and classes < 2:
        raise ConfigError(
            f"classes={classes}: multi-class blobs need at least 2 classes (0 is background)"
        )


def _blob_radii(rng: np.random.Generator, classes: int | None) -> tuple[int | None, np.ndarray]:
    """The class (None for binary data) and 3 radii at ``size=64`` of the next blob."""
    if classes is None:
        return None, rng.uniform(4, 12, 3)
    label = int(rng.integers(1, classes))
    band = 8 / (classes - 1)
    return label, rng.uniform(4 + (label - 1) * band, 4 + label * band, 3)


def _blobs3d(
    rng: np.random.Generator, size: int, classes: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    labels = np.zeros((size,) * 3, np.int32)
    brightness = np.full(labels.shape, 30.0)
    target = int(rng.integers(3, 8))
    k = 0
    for _ in range(4 * target):  # blobs mostly hidden by earlier ones are redrawn
        if k == target:
            break
        label, radii = _blob_radii(rng, classes)
        radii = np.maximum(radii * size / 64, 1.5)
        reach = int(np.ceil(radii.max()))
        center = rng.uniform(reach, size - reach, 3) if size > 2 * reach else np.full(3, size / 2)
        rotation, _ = np.linalg.qr(rng.normal(size=(3, 3)))
        low = np.maximum(np.floor(center - reach).astype(int), 0)
        high = np.minimum(np.ceil(center + reach).astype(int) + 1, size)
        box = tuple(slice(lo, hi) for lo, hi in zip(low, high))
        grid = np.stack(
            np.meshgrid(*(np.arange(lo, hi) for lo, hi in zip(low, high)), indexing="ij"), -1
        )
        inside = (((grid - center) @ rotation / radii) ** 2).sum(-1) <= 1
        free = inside & (labels[box] == 0)
        if not free.any() or free.sum() < 0.5 * inside.sum():
            continue
        k += 1
        labels[box][free] = k if label is None else label
        brightness[box][free] = rng.uniform(140, 230)
    image = ndimage.gaussian_filter(brightness, sigma=1.0) + rng.normal(0, 8, labels.shape)
    return np.clip(np.rint(image), 0, 255).astype(np.uint8), labels


def write_blobs3d(
    out: str | Path,
    n: int,
    size: int = 64,
    seed: int = 0,
    splits: tuple[float, float, float] | None = (0.7, 0.15, 0.15),
    classes: int | None = None,
) -> dict[str, int]:
    """Write `make_blobs3d` volumes in the ``volumes`` layout as ``.tif`` stacks.

    Images are uint8 and labels uint16: object numbers, or with ``classes`` the class indices
    0..C-1 (train with ``data.num_classes=C``). Files go to ``<out>.partial``, renamed to ``out`` at
    the end, so an interrupted run never looks complete.

    Returns:
        Volumes written per split (``"all"`` when ``splits`` is None).

    Raises:
        ConfigError: ``n < 1``, bad split fractions or ``classes`` below 2.
        DataError: ``out`` exists and is not an empty folder.
    """
    _check_classes(classes)
    out = check_output(out, n)
    counts = split_counts(n, splits)
    with partial_folder(out) as partial:
        for index, split in numbered_splits(counts):
            base = partial / split if splits is not None else partial
            image, labels = _blobs3d(np.random.default_rng([seed, index]), size, classes)
            name = f"blobs3d_{index:04d}.tif"
            write_volume(base / "images" / name, image, (1.0, 1.0, 1.0))
            write_volume(base / "labels" / name, labels.astype(np.uint16))
    logger.info("wrote %d blobs3d volumes to %s", n, out)
    return counts
