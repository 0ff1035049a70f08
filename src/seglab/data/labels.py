"""Label tables: from the raw values of a mask file to class indices 0..C-1.

Cityscapes masks (``*_gtFine_labelIds.png``) hold label ids 0..33. `cityscapes_mapping` groups
them into the 8 categories of seed 001 or the 19 benchmark classes (train ids); void pixels are
either ignored (``ignore_index``, the benchmark convention) or a class of their own. Other data
sets map their mask values with a YAML file (`mapping_from_file`) or already hold class indices
(`index_mapping`). `resolve_mapping` picks one from the config's ``data.labels``.

`colorize` and `default_palette` live in `seglab.data.label_colors`, the checks of a YAML label
file's content in `seglab.data.label_files`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import yaml

from seglab.data.cityscapes import CATEGORIES, CITYSCAPES_LABELS, CityscapesLabel
from seglab.data.label_colors import colorize as colorize
from seglab.data.label_colors import default_palette
from seglab.data.label_files import parse_label_file
from seglab.errors import BundleError, ConfigError

logger = logging.getLogger(__name__)

VOID_MODES = ("ignore", "class")
CITYSCAPES_KINDS = ("categories", "train_ids")
_SHOWN_VALUES = 10  # unknown values listed in a warning


@dataclass(frozen=True, eq=False, repr=False)
class LabelMapping:
    """Raw mask values -> class indices, with class names and a palette.

    Attributes:
        names: Class name of each class index.
        palette: ``(C, 3)`` uint8 colour of each class.
        lut: ``(256,)`` or ``(65536,)`` uint8 class index (or ``ignore_index``) of each raw value.
            Entries of values the table does not define are set to the void class (or
            ``ignore_index``).
        ignore_index: Class index of ignored pixels; never one of 0..C-1.
        known: ``(len(lut),)`` bool, True for the raw values the table defines.
        void_index: The void class when void is trained as a class; None when void pixels are
            ignored. Undefined raw values go to this class (or to ``ignore_index``).

    Example:
        >>> mapping = cityscapes_mapping("categories", void="ignore")
        >>> mapping.apply(np.array([[7, 26], [0, 23]], np.uint8)).tolist()
        [[0, 6], [255, 4]]
    """

    names: tuple[str, ...]
    palette: np.ndarray
    lut: np.ndarray
    ignore_index: int
    known: np.ndarray
    void_index: int | None = None

    def __post_init__(self) -> None:
        count = len(self.names)
        palette = np.array(self.palette, dtype=np.uint8)
        lut, known = np.array(self.lut), np.array(self.known, dtype=bool)
        if palette.shape != (count, 3):
            raise ValueError(f"palette must have shape ({count}, 3), got {palette.shape}")
        if lut.shape not in ((256,), (65536,)) or known.shape != lut.shape:
            raise ValueError(f"lut and known must have shape (256,) or (65536,), got {lut.shape}")
        if not count <= self.ignore_index <= 255:
            raise ValueError(
                f"ignore_index must lie in {count}..255 (not a class index), "
                f"got {self.ignore_index}"
            )
        if self.void_index is not None and not 0 <= self.void_index < count:
            raise ValueError(f"void_index must be a class index 0..{count - 1} or None")
        defined = lut[known]
        if np.any((defined >= count) & (defined != self.ignore_index)):
            raise ValueError(f"lut maps values to classes outside 0..{count - 1}")
        lut = np.where(known, lut, self.fill_index).astype(np.uint8)
        for name, array in (("palette", palette), ("lut", lut), ("known", known)):
            array.setflags(write=False)
            object.__setattr__(self, name, array)
        object.__setattr__(self, "names", tuple(self.names))

    def __repr__(self) -> str:
        void = "ignored" if self.void_index is None else f"class {self.void_index}"
        return (
            f"LabelMapping({self.num_classes} classes: {', '.join(self.names)}; void {void}; "
            f"ignore_index {self.ignore_index}; {int(self.known.sum())} known values)"
        )

    @property
    def num_classes(self) -> int:
        """Number of classes C (the model's output channels)."""
        return len(self.names)

    @property
    def fill_index(self) -> int:
        """What raw values the table does not define become: the void class or ignore_index."""
        return self.ignore_index if self.void_index is None else self.void_index

    def apply(self, raw: np.ndarray, source: str | Path | None = None) -> np.ndarray:
        """Turn a mask of raw values into class indices.

        Raw values the table does not define become void; their pixels are counted and logged
        once per call as a warning naming `source`.

        Args:
            raw: ``(H, W)`` integer mask values (e.g. Cityscapes label ids).
            source: The mask's file, named in the warning.

        Returns:
            ``(H, W)`` uint8 class indices, ``ignore_index`` for ignored pixels.

        Raises:
            ValueError: `raw` is not a 2D integer array.
        """
        raw = np.asarray(raw)
        if raw.ndim != 2 or not np.issubdtype(raw.dtype, np.integer):
            raise ValueError(f"raw must be a 2D integer array, got {raw.dtype} {raw.shape}")
        size = self.lut.size
        if raw.dtype == np.uint8 or (raw.dtype == np.uint16 and size == 65536):
            classes, counts = self.lut[raw], np.bincount(raw.ravel(), minlength=size)
            outside = np.empty(0, np.int64)
        else:  # wider or signed values: those beyond the table are undefined too
            flat = raw.astype(np.int64).ravel()
            inside = (flat >= 0) & (flat < size)
            classes = np.full(flat.shape, self.fill_index, np.uint8)
            classes[inside] = self.lut[flat[inside]]
            classes, counts = classes.reshape(raw.shape), np.bincount(flat[inside], minlength=size)
            outside = flat[~inside]
        unknown = np.flatnonzero((counts > 0) & ~self.known)
        if unknown.size or outside.size:
            values = [*unknown.tolist(), *np.unique(outside).tolist()]
            more = f" and {len(values) - _SHOWN_VALUES} more" if len(values) > _SHOWN_VALUES else ""
            void = "ignored" if self.void_index is None else repr(self.names[self.void_index])
            logger.warning(
                "%s: %d pixels hold mask values the label table does not define (%s%s); they "
                "are void (%s)",
                source if source is not None else "mask",
                int(counts[unknown].sum()) + outside.size,
                ", ".join(map(str, values[:_SHOWN_VALUES])),
                more,
                void,
            )
        return classes

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready description (names, palette, ignore_index and the value table)."""
        return {
            "names": list(self.names),
            "palette": self.palette.tolist(),
            "ignore_index": self.ignore_index,
            "void_index": self.void_index,
            "values": {str(v): int(self.lut[v]) for v in np.flatnonzero(self.known)},
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LabelMapping:
        """Rebuild a mapping from `to_dict`'s output.

        Without ``values`` (only names, palette and ignore_index), masks are taken to hold class
        indices already, as in `index_mapping`.

        Raises:
            BundleError: A key is missing or malformed.
        """
        try:
            names = tuple(str(name) for name in data["names"])
            ignore_index = int(data["ignore_index"])
            void_index = data.get("void_index")
            table = data.get("values")
            if table is None:
                table = {str(i): i for i in range(len(names))} | {str(ignore_index): ignore_index}
            pairs = {int(value): int(index) for value, index in table.items()}
            void = None if void_index is None else int(void_index)
            return _build(names, data["palette"], pairs, ignore_index, void)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise BundleError(
                f"malformed label mapping ({type(exc).__name__}: {exc}); expected the keys "
                "names, palette, ignore_index (and values, void_index) written by to_dict()"
            ) from exc


def cityscapes_mapping(
    kind: Literal["categories", "train_ids"],
    void: Literal["ignore", "class"] = "ignore",
    ignore_index: int = 255,
) -> LabelMapping:
    """The mapping of Cityscapes label ids (``*_gtFine_labelIds.png``) to classes.

    Args:
        kind: ``"categories"``: the 8 groups of seed 001 (void, flat, construction, object,
            nature, sky, human, vehicle = category ids 0..7). ``"train_ids"``: the 19 benchmark
            classes (road .. bicycle = train ids 0..18).
        void: ``"ignore"``: void pixels (category void; train id 255) get `ignore_index` and
            the classes are the others (7 categories, 19 train ids). ``"class"``: void is a
            class: index 0 of the 8 categories (as seed 001), or a 20th class at the end.
        ignore_index: Label of ignored pixels.

    Returns:
        The mapping; undefined values (34..255) are void.

    Raises:
        ValueError: Unknown kind or void mode, or an ignore_index that is a class index.
    """
    _check_choice("kind", kind, CITYSCAPES_KINDS)
    _check_choice("void", void, VOID_MODES)
    labels = [label for label in CITYSCAPES_LABELS if label.id >= 0]
    if kind == "categories":
        first = 0 if void == "class" else 1
        names, colors = zip(*CATEGORIES[first:], strict=True)
        pairs = {
            label.id: label.category_id - first if label.category_id >= first else ignore_index
            for label in labels
        }
        void_index = 0 if void == "class" else None
    else:
        trained = sorted((lab for lab in labels if 0 <= lab.train_id < 255), key=_train_id)
        names = tuple(label.name for label in trained)
        colors = tuple(label.color for label in trained)
        void_index = len(names) if void == "class" else None
        if void_index is not None:
            names, colors = (*names, "void"), (*colors, (0, 0, 0))
        outside = ignore_index if void_index is None else void_index
        pairs = {lab.id: lab.train_id if 0 <= lab.train_id < 255 else outside for lab in labels}
    return _build(names, colors, pairs, ignore_index, void_index)


def index_mapping(num_classes: int, ignore_index: int = 255) -> LabelMapping:
    """The mapping of masks that already hold class indices 0..C-1 (the folders layout).

    Values ``>= num_classes`` other than `ignore_index` are undefined: ignored and counted.

    Raises:
        ValueError: ``num_classes`` outside 1..255 or an ignore_index below it.
    """
    if not 1 <= num_classes <= 255:
        raise ValueError(f"num_classes must lie in 1..255, got {num_classes}")
    pairs = {i: i for i in range(num_classes)} | {ignore_index: ignore_index}
    names = tuple(f"class_{i}" for i in range(num_classes))
    return _build(names, default_palette(num_classes), pairs, ignore_index)


def resolve_mapping(
    labels: str,
    void: str,
    ignore_index: int,
    num_classes: int | None = None,
    layout: str = "cityscapes",
) -> LabelMapping:
    """The mapping named by the config's ``data.labels``.

    Args:
        labels: ``"categories"`` or ``"train_ids"`` (Cityscapes tables), or a ``.yaml``/``.yml``
            file (`mapping_from_file`).
        void: ``"ignore"`` or ``"class"``.
        ignore_index: Label of ignored pixels.
        num_classes: With a layout other than cityscapes and the default ``"categories"``,
            masks hold class indices 0..num_classes-1 (`index_mapping`).
        layout: The dataset layout.

    Raises:
        ConfigError: Unknown labels or void value, bad ignore_index, or a bad YAML file.
    """
    if void not in VOID_MODES:
        raise ConfigError(f"'data.void': unknown value {void!r}; choose one of ignore, class")
    if labels.lower().endswith((".yaml", ".yml")):
        return mapping_from_file(labels, void, ignore_index)  # type: ignore[arg-type]
    if labels not in CITYSCAPES_KINDS:
        raise ConfigError(
            f"'data.labels': unknown label mapping {labels!r}; choose one of categories, "
            "train_ids, or the path of a .yaml file mapping mask values to classes"
        )
    if layout != "cityscapes" and labels == "categories" and num_classes is not None:
        if not 1 <= num_classes < ignore_index:
            raise ConfigError(
                f"'data.num_classes': {num_classes} classes need an ignore_index above the "
                f"last class index, and data.ignore_index is {ignore_index}"
            )
        return index_mapping(num_classes, ignore_index)
    try:
        return cityscapes_mapping(labels, void, ignore_index)  # type: ignore[arg-type]
    except ValueError as exc:  # an ignore_index that is also a class index
        raise ConfigError(f"'data.ignore_index': {exc}") from exc


def mapping_from_file(
    path: str | Path, void: Literal["ignore", "class"] = "ignore", ignore_index: int = 255
) -> LabelMapping:
    """Read a YAML file that maps mask values to classes.

    Example file::

        classes:
          - {name: background, values: [0], color: [0, 0, 0]}
          - {name: cell, values: [1, 2]}   # colour optional
        void_values: [255]                 # optional

    With ``void="class"`` a class named ``void`` is added at the end; otherwise void pixels
    get `ignore_index`. Values the file does not list are void and counted when applied.

    Raises:
        ConfigError: The file is missing or unreadable, or a key is missing or malformed
            (the message names the file and the key).
    """
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"'data.labels': cannot read label file {path} ({exc})") from exc
    classes, void_values = parse_label_file(data, path)
    names = [name for name, _, _ in classes]
    colors = [color for _, _, color in classes]
    if void == "class":
        if "void" in names:
            raise ConfigError(f"{path}: 'classes': a class is named 'void', which void=class adds")
        names.append("void")
        colors.append((0, 0, 0))
    void_index = len(names) - 1 if void == "class" else None
    if len(names) > 255 or ignore_index < len(names):
        raise ConfigError(
            f"{path}: 'classes': {len(names)} classes need an ignore_index >= {len(names)} and "
            f"at most 255 classes (ignore_index is {ignore_index})"
        )
    outside = ignore_index if void_index is None else void_index
    pairs = {value: index for index, (_, values, _) in enumerate(classes) for value in values}
    pairs |= {value: outside for value in void_values}
    defaults = default_palette(len(names))
    palette = [defaults[i] if color is None else color for i, color in enumerate(colors)]
    return _build(names, palette, pairs, ignore_index, void_index)


def _build(
    names: Sequence[str],
    colors: object,
    pairs: dict[int, int],
    ignore_index: int,
    void_index: int | None = None,
) -> LabelMapping:
    """A mapping from raw value -> class pairs; a 65536-entry table when a value exceeds 255."""
    size = 65536 if pairs and max(pairs) > 255 else 256
    lut, known = np.zeros(size, np.int64), np.zeros(size, bool)
    for value, index in pairs.items():
        if not 0 <= value < 65536:
            raise ValueError(f"mask value {value} is outside 0..65535")
        lut[value], known[value] = index, True
    palette = np.asarray(colors, np.uint8)
    return LabelMapping(tuple(names), palette, lut, ignore_index, known, void_index)


def _train_id(label: CityscapesLabel) -> int:
    return label.train_id


def _check_choice(name: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ValueError(f"unknown {name} {value!r}; choose one of {', '.join(choices)}")
