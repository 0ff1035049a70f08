"""Image-classification datasets: IDX (MNIST) files, class folders, scikit-learn's digits; splits.

Layouts (the keys of `CLASSIFICATION_LAYOUTS`; ``"digits"`` needs no files)::

    idx            ROOT/train-images-idx3-ubyte[.gz] + ROOT/train-labels-idx1-ubyte[.gz] (+ t10k-*)
    class_folders  ROOT/<class>/<image>.png, optionally inside ROOT/train|val|test/

Loaders return ``{split: ClassificationData}`` with ``(N, H, W, C)`` uint8 images and labels
``0..K-1`` indexing the same ``class_names`` in every split. Nothing here imports torch.
"""

from __future__ import annotations

import gzip
import logging
import struct
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from seglab.data.io import IMAGE_SUFFIXES, read_image
from seglab.data.layouts import SPLIT_NAMES, check_root, visible_files
from seglab.errors import ConfigError, DataError

logger = logging.getLogger(__name__)

_LAYOUT_SKETCHES = {
    "idx": "ROOT/train-images-idx3-ubyte[.gz] + ROOT/train-labels-idx1-ubyte[.gz] (+ t10k-*)",
    "class_folders": "ROOT/<class>/<image>.png, optionally inside ROOT/train|val|test/",
}
_IDX_SPLITS = {"train": "train", "test": "t10k"}  # split name -> MNIST file prefix
_IDX_HINT = "download it again; IDX files are the raw MNIST files (e.g. t10k-images-idx3-ubyte)"
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_NO_INDICES = np.empty(0, dtype=np.int64)


@dataclass
class ClassificationData:
    """Images with one class label each.

    Attributes:
        images: ``(N, H, W, C)`` uint8 images.
        labels: ``(N,)`` int64 class indices in ``0..K-1``.
        class_names: The K class names; ``labels`` index into it.
        ids: One name per image: its file path, ``"<IDX file name>:<index>"`` or
            ``"digits:<index>"``.
    """

    images: np.ndarray
    labels: np.ndarray
    class_names: list[str]
    ids: list[str]

    def __post_init__(self) -> None:
        if not len(self.images) == len(self.labels) == len(self.ids):
            raise ValueError(
                f"{len(self.images)} images, {len(self.labels)} labels and {len(self.ids)} ids; "
                "expected one label and one id per image"
            )

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, indices: Sequence[int] | np.ndarray) -> ClassificationData:
        """The images at `indices` (positions or a boolean mask), in that order."""
        index = np.asarray(indices)
        index = np.flatnonzero(index) if index.dtype == np.bool_ else index.astype(np.intp)
        ids = [self.ids[i] for i in index]
        return ClassificationData(self.images[index], self.labels[index], [*self.class_names], ids)


def read_idx(path: str | Path) -> np.ndarray:
    """Read an IDX file (MNIST's format; plain or gzip) as a uint8 array of the header's shape.

    IDX: 2 zero bytes, a type byte (only 0x08, unsigned byte, is supported), the number of
    dimensions, one big-endian int32 size per dimension, then the data.

    Raises:
        DataError: The file is missing, is not IDX (wrong magic number), holds another element
            type, or holds fewer or more data bytes than its header says.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(path, "file not found", "check the path and the file name")
    data = path.read_bytes()
    # Sniff rather than trust the suffix: browsers often un-gzip MNIST downloads but keep ".gz".
    if data[:2] == b"\x1f\x8b":
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError, zlib.error) as exc:
            raise DataError(path, f"corrupt or truncated gzip file ({exc})", _IDX_HINT) from exc
    if len(data) < 4 or data[:2] != b"\x00\x00":
        png = " (it is a PNG image)" if data.startswith(_PNG_SIGNATURE) else ""
        raise DataError(
            path,
            f"not an IDX file{png}: starts with bytes [{data[:4].hex(' ')}], "
            "expected [00 00 08 <number of dimensions>]",
            f"{_IDX_HINT}; for folders of images use the class_folders layout",
        )
    type_code, ndim = data[2], data[3]
    if type_code != 0x08:
        raise DataError(
            path,
            f"IDX element type 0x{type_code:02x} is not supported; expected 0x08 (unsigned byte)",
            "convert the data to 8-bit unsigned integers",
        )
    header_size = 4 + 4 * ndim
    if ndim == 0 or len(data) < header_size:
        raise DataError(path, f"truncated IDX header ({ndim} dimensions, {len(data)} bytes)")
    shape = struct.unpack(f">{ndim}I", data[4:header_size])
    expected = int(np.prod(shape, dtype=object))  # Python ints: a corrupt header cannot overflow
    found = len(data) - header_size
    if found != expected:
        problem = (
            f"truncated: header says {shape} = {expected} data bytes, found {found}"
            if found < expected
            else f"{found - expected} unexpected bytes after the {expected} bytes of {shape} data"
        )
        raise DataError(path, problem, _IDX_HINT)
    # Copy: np.frombuffer views immutable bytes, and callers may modify the array in place.
    return np.frombuffer(data, np.uint8, offset=header_size).reshape(shape).copy()


def load_idx(root: str | Path) -> dict[str, ClassificationData]:
    """Load MNIST-style IDX files: ``train-*`` as split "train", ``t10k-*`` as split "test".

    Names may read ``-idx3-ubyte`` or ``.idx3-ubyte``, plain or ``.gz``. Class names are the
    distinct label values over all splits (``"0"``..``"9"`` for MNIST); images ``(N, H, W, 1)``.

    Raises:
        DataError: No IDX files, an images file without its labels file (or the reverse),
            differing image and label counts, or a bad IDX file.
    """
    root = check_root(Path(root))
    arrays: dict[str, tuple[np.ndarray, np.ndarray, Path]] = {}
    for split, prefix in _IDX_SPLITS.items():
        images_path = _find_idx(root, prefix, "images", 3)
        labels_path = _find_idx(root, prefix, "labels", 1)
        if images_path is None and labels_path is None:
            continue
        if images_path is None or labels_path is None:
            kind, partner = (
                ("labels", images_path) if labels_path is None else ("images", labels_path)
            )
            missing = root / f"{prefix}-{kind}-idx{1 if kind == 'labels' else 3}-ubyte"
            hint = f"put {missing.name} (or {missing.name}.gz) in {root}"
            raise DataError(missing, f"{kind} file not found, but {partner} is there", hint)
        images, labels = read_idx(images_path), read_idx(labels_path)
        if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
            raise DataError(
                images_path,
                f"holds {len(images)} images of shape {images.shape[1:]} but {labels_path} holds "
                f"{len(labels)} labels of shape {labels.shape[1:]}; expected N (H, W) images "
                "and N () labels",
                "use the images and labels files of the same split and release",
            )
        arrays[split] = (images[..., None], labels, images_path)
    if not arrays:
        raise DataError(root, "no IDX files found", f"expected {_LAYOUT_SKETCHES['idx']}")
    values = np.unique(np.concatenate([labels for _, labels, _ in arrays.values()]))
    class_names = [str(v) for v in values.tolist()]
    result = {}
    for split, (images, labels, images_path) in arrays.items():
        # Maps raw values (e.g. EMNIST letters 1..26) to indices 0..K-1 shared by the splits.
        indices = np.searchsorted(values, labels).astype(np.int64)
        ids = [f"{images_path.name}:{i}" for i in range(len(labels))]
        result[split] = ClassificationData(images, indices, list(class_names), ids)
    return result


def load_class_folders(root: str | Path) -> dict[str, ClassificationData]:
    """Load ``ROOT/<class>/<image>`` as split "all", or ``ROOT/train|val|test/<class>/<image>``.

    Class names are the sorted folder names over all splits, so a label means the same class in
    every split. Files without an image suffix are ignored.

    Raises:
        DataError: The root is missing or has no class folders, a class folder holds no images,
            or the images differ in size or channel count (we never resize silently).
    """
    root = check_root(Path(root))
    split_dirs = {s: root / s for s in SPLIT_NAMES if (root / s).is_dir()} or {"all": root}
    files: dict[str, dict[str, list[Path]]] = {}
    for split, folder in split_dirs.items():
        class_dirs = sorted(p for p in visible_files(folder) if p.is_dir())
        if not class_dirs:
            sketch = _LAYOUT_SKETCHES["class_folders"]
            raise DataError(folder, "no class sub-folders", f"expected {sketch}")
        if any(_is_image(p) for p in visible_files(folder)):
            logger.warning("ignoring the images directly in %s: not in a class folder", folder)
        files[split] = {}
        for class_dir in class_dirs:
            files[split][class_dir.name] = sorted(
                p for p in visible_files(class_dir) if _is_image(p)
            )
            if not files[split][class_dir.name]:
                raise DataError(
                    class_dir,
                    f"class folder holds no images ({', '.join(IMAGE_SUFFIXES)})",
                    "add images of this class, or remove the folder",
                )
    class_names = sorted({name for by_class in files.values() for name in by_class})
    label_of = {name: label for label, name in enumerate(class_names)}
    first: tuple[tuple[int, ...], Path] | None = None  # every image must match the first one
    result = {}
    for split, by_class in files.items():
        images, labels, ids = [], [], []
        for name, paths in by_class.items():
            for path in paths:
                image = read_image(path)
                first = first or (image.shape, path)
                if image.shape != first[0] or image.dtype != np.uint8:
                    raise DataError(
                        path,
                        f"image is {_describe(image.shape, image.dtype)}; expected "
                        f"{_describe(first[0])} like {first[1]}",
                        "resize the images to one size first, or convert them to 8 bits "
                        "(we do not resize or rescale silently)",
                    )
                images.append(image)
                labels.append(label_of[name])
                ids.append(str(path))
        labels_array = np.array(labels, dtype=np.int64)
        result[split] = ClassificationData(np.stack(images), labels_array, list(class_names), ids)
    return result


def load_digits() -> dict[str, ClassificationData]:
    """scikit-learn's 8×8 digits (shipped with the package, no download) as split "all".

    1,797 images ``(8, 8, 1)``, scaled from 0..16 to uint8 0..255; class names ``"0"``..``"9"``.
    """
    from sklearn.datasets import load_digits as sklearn_digits  # slow import: only when used

    digits = sklearn_digits()
    images = np.round(digits.images * 255 / 16).astype(np.uint8)[..., None]
    labels = np.asarray(digits.target, dtype=np.int64)
    ids = [f"digits:{i}" for i in range(len(labels))]
    names = [str(name) for name in digits.target_names]
    return {"all": ClassificationData(images, labels, names, ids)}


CLASSIFICATION_LAYOUTS: dict[str, Callable[[str | Path], dict[str, ClassificationData]]] = {
    "idx": load_idx,
    "class_folders": load_class_folders,
}


def detect_classification_layout(root: str | Path) -> str:
    """Guess a dataset folder's layout: ``"idx"`` when an IDX images file is present, else
    ``"class_folders"`` when sub-folders hold images or ``train/``, ``val/`` or ``test/`` exist.

    Raises:
        DataError: The folder is missing or matches no layout.
    """
    root = check_root(Path(root))
    if any(_find_idx(root, prefix, "images", 3) for prefix in _IDX_SPLITS.values()):
        return "idx"
    if any((root / s).is_dir() for s in SPLIT_NAMES) or any(
        p.is_dir() and any(_is_image(f) for f in visible_files(p)) for p in visible_files(root)
    ):
        return "class_folders"
    sketches = "\n".join(f"    {name:13s} {tree}" for name, tree in _LAYOUT_SKETCHES.items())
    raise DataError(
        root,
        "cannot tell the dataset layout: no IDX images file and no class folders of images",
        f"arrange the files in one of these layouts:\n{sketches}",
    )


def load_classification(
    root: str | Path | None, layout: str = "auto"
) -> tuple[str, dict[str, ClassificationData]]:
    """Load a classification dataset; returns the layout name and the data of each split.

    Args:
        root: Dataset folder; None or ``"digits"`` means scikit-learn's digits.
        layout: ``"digits"``, a key of `CLASSIFICATION_LAYOUTS`, or ``"auto"`` to detect it.

    Raises:
        ValueError: Unknown layout name.
        ConfigError: A file layout without a root folder.
        DataError: The folder is missing, matches no layout, or holds bad data.
    """
    names = ("digits", *CLASSIFICATION_LAYOUTS)
    if layout != "auto" and layout not in names:
        raise ValueError(f"unknown layout {layout!r}; choose one of {', '.join(names)} or auto")
    if layout == "digits" or (layout == "auto" and (root is None or str(root) == "digits")):
        layout, splits = "digits", load_digits()
    elif root is None:
        raise ConfigError(f"layout {layout!r} needs a data folder; pass --data DIR")
    else:
        layout = detect_classification_layout(root) if layout == "auto" else layout
        splits = CLASSIFICATION_LAYOUTS[layout](root)
    counts = ", ".join(f"{len(data)} {name}" for name, data in splits.items())
    logger.info("loaded %s images from %s (%s layout)", counts, root, layout)
    return layout, splits


def stratified_split(
    labels: np.ndarray, val_fraction: float = 0.15, test_fraction: float = 0.15, seed: int = 0
) -> dict[str, np.ndarray]:
    """Split indices into train, val and test with every class in proportion, reproducibly.

    Each class gives ``round(n_c * fraction)`` (halves up) of its images to val and to test and
    keeps at least one for train (test shrinks first, then val).

    Returns:
        Sorted, disjoint index arrays ``{"train", "val", "test"}`` covering every index; no
        ``"test"`` when ``test_fraction`` is 0.

    Raises:
        ValueError: A fraction outside [0, 1), or fractions summing to 1 or more.
    """
    if not (0 <= val_fraction < 1 and 0 <= test_fraction < 1 and val_fraction + test_fraction < 1):
        raise ValueError(
            f"need 0 <= val_fraction, test_fraction and val_fraction + test_fraction < 1, "
            f"got {val_fraction} and {test_fraction}"
        )
    parts: dict[str, list[np.ndarray]] = {"train": [], "val": [], "test": []}
    for members in _shuffled_classes(labels, seed):
        n = len(members)
        # Halves up, as seglab.data.layouts.split_samples does (round() sends halves to even).
        n_val, n_test = (int(np.floor(n * f + 0.5)) for f in (val_fraction, test_fraction))
        n_test = min(n_test, n - 1)
        n_val = min(n_val, n - 1 - n_test)
        val, test, train = np.split(members, [n_val, n_val + n_test])
        for name, part in (("train", train), ("val", val), ("test", test)):
            parts[name].append(part)
    result = {name: np.sort(np.concatenate([_NO_INDICES, *p])) for name, p in parts.items()}
    if test_fraction == 0:
        del result["test"]
    return result


def stratified_folds(labels: np.ndarray, k: int = 5, seed: int = 0) -> list[np.ndarray]:
    """Split indices into `k` cross-validation folds, each class spread evenly over them.

    Each class is shuffled and dealt round-robin, the deal starting where the previous class's
    ended, so fold sizes also differ by at most one overall.

    Returns:
        `k` sorted, disjoint int64 index arrays that together hold every index.

    Raises:
        ValueError: ``k < 2``, or a class with fewer than `k` images (a fold would lack it).
    """
    if k < 2:
        raise ValueError(f"cross-validation needs k >= 2 folds, got k={k}")
    values, counts = np.unique(np.asarray(labels), return_counts=True)
    if counts.size == 0:
        raise ValueError("no labels to split into folds")
    if counts.min() < k:
        smallest = values[counts.argmin()].item()
        raise ValueError(
            f"k={k} folds need at least {k} images of every class; "
            f"class {smallest!r} has {counts.min()}"
        )
    folds: list[list[int]] = [[] for _ in range(k)]
    start = 0
    for members in _shuffled_classes(labels, seed):
        for j, index in enumerate(members.tolist()):
            folds[(start + j) % k].append(index)
        start = (start + len(members)) % k
    return [np.sort(np.array(fold, dtype=np.int64)) for fold in folds]


def _shuffled_classes(labels: np.ndarray, seed: int) -> list[np.ndarray]:
    """The indices of each class (classes in sorted order), each shuffled, reproducibly."""
    labels = np.asarray(labels)
    if labels.ndim != 1:
        raise ValueError(f"labels must be a 1D array, got shape {labels.shape}")
    rng = np.random.default_rng(seed)
    return [rng.permutation(np.flatnonzero(labels == v)) for v in np.unique(labels)]


def _find_idx(root: Path, prefix: str, kind: str, ndim: int) -> Path | None:
    for stem in (f"{prefix}-{kind}-idx{ndim}-ubyte", f"{prefix}-{kind}.idx{ndim}-ubyte"):
        for path in (root / stem, root / f"{stem}.gz"):
            if path.is_file():
                return path
    return None


def _is_image(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES


def _describe(shape: tuple[int, ...], dtype: np.dtype | type = np.uint8) -> str:
    # Width x height, the way image viewers and Pillow report sizes.
    height, width, channels = shape
    return f"{width}x{height} {np.dtype(dtype)} pixels, {channels} channel{'s' * (channels != 1)}"
