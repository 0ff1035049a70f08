"""Read and write 2D images larger than memory, one band of rows at a time.

Reading: a TIFF / OME-TIFF through `tifffile`'s zarr store (level 0 of a pyramid), or a memory
map when the file is uncompressed and contiguous; a zarr array or an OME-Zarr image (its first
multiscale dataset) through `zarr`. Writing: a tiled, zlib-compressed BigTIFF or a zarr array,
filled band by band under a temporary name and renamed once complete, so a half-written output
never looks finished. Every bad input raises a `DataError` naming the file.

The image itself may be of any size; what is decoded at once (a stored chunk: a TIFF tile or
strip, a zarr chunk; a band of rows) is checked against `seglab.data.io.pixel_limit`, so a
TIFF stored as one huge compressed strip is refused when opened, before anything is decoded.

Example:
    >>> with open_lazy("slide.ome.tif") as image:  # doctest: +SKIP
    ...     top = image.read_rows(slice(0, 256))  # (256, W, C)
"""

from __future__ import annotations

import logging
import math
import queue
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from seglab.atomic_files import atomic_directory, atomic_path
from seglab.data.pixel_limits import check_pixels
from seglab.errors import ConfigError, DataError

__all__ = [
    "OUTPUT_TILE",
    "BandWriter",
    "LazyImage",
    "declared_pixels",
    "is_zarr",
    "open_band_writer",
    "open_lazy",
]

logger = logging.getLogger(__name__)

# Tiles of the written TIFF and chunks of the written zarr array.
OUTPUT_TILE = 256
# A chunk larger than this is decoded whole on every read: worth a warning.
_LARGE_CHUNK = 1 << 26
_EXPECTED = "a 2D image with axes (Y, X), (Y, X, C) or (C, Y, X), C <= 4, 8- or 16-bit pixels"


def is_zarr(path: Path) -> bool:
    """Whether `path` is a zarr folder (`.zarr`, `.ome.zarr`): one image, not a folder of them."""
    return path.suffix.lower() == ".zarr" and path.is_dir()


def declared_pixels(path: Path) -> int:
    """H x W of a TIFF's first series, from its header only; 0 when it cannot be read."""
    import tifffile

    try:
        with tifffile.TiffFile(path) as tif:
            series = tif.series[0]
            sizes = dict(zip(series.axes, series.shape))
    except Exception:  # read_image reports unreadable files with a clear message
        return 0
    return int(sizes.get("Y", 0)) * int(sizes.get("X", 0))


class LazyImage:
    """A 2D image read band by band from a zarr array or a memory map.

    Args:
        path: The file, for error messages.
        array: Anything sliceable like a NumPy array (zarr array, `numpy.memmap`).
        axes: One letter per axis of `array`: "Y", "X", "C", or "1" for a singleton axis
            read at index 0.
        close: Called by `close` (the TIFF's zarr store), if any.
    """

    def __init__(
        self, path: Path, array: Any, axes: str, close: Callable[[], None] | None = None
    ) -> None:
        self.path, self.array, self.axes, self._close = path, array, axes, close
        sizes = dict(zip(axes, array.shape))
        self.height, self.width = int(sizes["Y"]), int(sizes["X"])
        stored = int(sizes.get("C", 1))
        # Alpha is dropped, as `read_image` does.
        self.channels = stored - 1 if stored in (2, 4) else stored
        self.dtype = np.dtype(array.dtype)

    def read_rows(self, rows: slice) -> np.ndarray:
        """Rows `rows` (a step is allowed) of every column, as (h, W, C) in the stored dtype.

        Raises:
            DataError: The rows hold more pixels than `seglab.data.io.pixel_limit`, or cannot
                be decoded.
        """
        count = len(range(*rows.indices(self.height)))
        check_pixels(self.path, (count, self.width), f"rows {rows.start}..{rows.stop}, a band")
        key = tuple(rows if a == "Y" else 0 if a == "1" else slice(None) for a in self.axes)
        try:
            data = np.asarray(self.array[key])
        except Exception as exc:  # codecs and stores raise their own types
            raise DataError(
                self.path, f"cannot read rows {rows.start}..{rows.stop} ({exc})", "re-export it"
            ) from exc
        kept = self.axes.replace("1", "")
        if kept == "CYX":
            data = np.moveaxis(data, 0, -1)
        elif kept == "YX":
            data = data[..., None]
        return data[..., : self.channels]

    def close(self) -> None:
        if self._close is not None:
            self._close()

    def __enter__(self) -> LazyImage:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_lazy(path: str | Path) -> LazyImage:
    """Open a TIFF / OME-TIFF file or a zarr / OME-Zarr folder without reading its pixels.

    Raises:
        DataError: Missing, unreadable, or not a 2D 8/16-bit image of at most 4 channels.
    """
    path = Path(path)
    if not path.exists():
        raise DataError(path, "not found", "check the path")
    image = _open_zarr(path) if path.is_dir() else _open_tiff(path)
    if image.dtype not in (np.uint8, np.uint16):
        image.close()
        raise DataError(path, f"unsupported pixel type {image.dtype}", f"expected {_EXPECTED}")
    chunks = getattr(image.array, "chunks", None)  # a memory map has none: nothing to decode
    if chunks is not None:
        # Each chunk is decoded whole on every read that touches it.
        planes = [size for axis, size in zip(image.axes, chunks) if axis in "YX"]
        try:
            check_pixels(path, planes, "chunks (tiles or strips, each decoded whole)")
        except DataError:
            image.close()
            raise
    if chunks is not None and math.prod(chunks) * image.dtype.itemsize > _LARGE_CHUNK:
        logger.warning(
            "%s: stored in chunks of %s, each decoded whole; save it tiled", path, chunks
        )
    return image


def _zarr() -> Any:
    """The zarr module; it needs Python >= 3.11, so a 3.10 install may lack it."""
    try:
        import zarr
    except ImportError:
        raise ConfigError(
            "large images (zarr folders, compressed TIFFs read lazily) need zarr >= 3: "
            "pip install 'zarr>=3' (Python >= 3.11)"
        ) from None
    return zarr


def _open_tiff(path: Path) -> LazyImage:
    import tifffile

    try:
        with tifffile.TiffFile(path) as tif:
            series = tif.series[0]
            names, shape = series.axes, tuple(series.shape)
            contiguous = len(series.levels) == 1 and series.dataoffset is not None
        if contiguous:
            # Uncompressed and contiguous: a memory map, paged in by the OS as bands are read.
            return LazyImage(path, tifffile.memmap(path, mode="r"), _axes(path, names, shape))
        zarr = _zarr()
        store = tifffile.imread(path, aszarr=True)
        node = zarr.open(store, mode="r")
        array = node if isinstance(node, zarr.Array) else node["0"]  # level 0 of a pyramid
        if not isinstance(array, zarr.Array):
            raise DataError(path, "level 0 of the pyramid is not an array", f"expected {_EXPECTED}")
    except (DataError, ConfigError):
        raise
    except Exception as exc:  # tifffile fails in many ways on corrupt files
        raise DataError(
            path, f"cannot read as a TIFF image ({exc})", f"expected {_EXPECTED}"
        ) from exc
    return LazyImage(path, array, _axes(path, names, tuple(array.shape)), store.close)


def _open_zarr(path: Path) -> LazyImage:
    zarr = _zarr()
    hint = f"expected a zarr array or an OME-Zarr image folder holding {_EXPECTED}"
    try:
        node = zarr.open(str(path), mode="r")
        if isinstance(node, zarr.Array):
            return LazyImage(path, node, _axes(path, None, tuple(node.shape)))
        attrs: dict[str, Any] = dict(node.attrs.asdict())
        multiscales: Any = attrs.get("ome", attrs).get("multiscales")
        if not multiscales:
            raise DataError(path, "zarr group without OME-Zarr multiscales metadata", hint)
        first = multiscales[0]
        array = node[str(first["datasets"][0]["path"])]
        names = [a["name"] if isinstance(a, dict) else str(a) for a in first.get("axes") or []]
    except DataError:
        raise
    except Exception as exc:  # zarr raises JSON, key, type and its own errors
        raise DataError(path, f"cannot open as a zarr image ({exc})", hint) from exc
    if not isinstance(array, zarr.Array):
        raise DataError(path, "the first multiscale dataset is a group, not an array", hint)
    letters = "".join({"y": "Y", "x": "X", "c": "C"}.get(n.lower(), "Q") for n in names)
    shape = tuple(array.shape)
    return LazyImage(path, array, _axes(path, letters if len(names) == len(shape) else None, shape))


def _axes(path: Path, names: str | None, shape: tuple[int, ...]) -> str:
    """Axis letters for `LazyImage` from tifffile's (YXS, CYX, TZYX...) or OME's names; without
    names, leading singletons are dropped and a last (first) axis of <= 4 is the channels."""
    if names is None:
        lead = next((i for i, s in enumerate(shape) if s > 1 or len(shape) - i <= 2), 0)
        rest = shape[lead:]
        if len(rest) == 3:
            names = "Q" * lead + ("YXC" if rest[2] <= 4 else "CYX" if rest[0] <= 4 else "QQQ")
        else:
            names = "Q" * lead + ("YX" if len(rest) == 2 else "Q" * len(rest))
    axes = ""
    for name, size in zip(names.upper(), shape):
        if name in "YX":
            axes += name
        elif name in "CS" and size <= 4:
            axes += "C"
        elif size == 1:
            axes += "1"
        else:
            axes += "?"
    if axes.replace("1", "") not in ("YX", "YXC", "CYX"):
        raise DataError(path, f"holds an array with axes {names!r}, shape {shape}", _EXPECTED)
    return axes


class BandWriter:
    """Writes rows of a (H, W) array in blocks of `OUTPUT_TILE` rows; subclasses store them."""

    def __init__(self, shape: tuple[int, int], dtype: type) -> None:
        self.shape, self.dtype = shape, np.dtype(dtype)
        self.block = np.zeros((OUTPUT_TILE, shape[1]), dtype=self.dtype)
        self.filled = self.top = 0

    def write(self, rows: np.ndarray) -> None:
        while len(rows):
            n = min(len(rows), OUTPUT_TILE - self.filled)
            self.block[self.filled : self.filled + n] = rows[:n]
            rows, self.filled = rows[n:], self.filled + n
            if self.filled == OUTPUT_TILE:
                self.flush()

    def flush(self) -> None:
        if self.filled:
            self.store(self.top, self.block[: self.filled])
            self.top, self.filled = self.top + self.filled, 0

    def store(self, top: int, block: np.ndarray) -> None:
        raise NotImplementedError

    def close(self) -> None:
        self.flush()


class _ZarrSink(BandWriter):
    """A zarr array of `OUTPUT_TILE` square chunks, written a row of chunks at a time."""

    def __init__(self, path: Path, shape: tuple[int, int], dtype: type) -> None:
        super().__init__(shape, dtype)
        zarr = _zarr()
        chunks = (OUTPUT_TILE, OUTPUT_TILE)
        self.array = zarr.create_array(
            str(path), shape=shape, chunks=chunks, dtype=self.dtype, overwrite=True
        )

    def store(self, top: int, block: np.ndarray) -> None:
        self.array[top : top + len(block)] = block


class _TiffSink(BandWriter):
    """A tiled, zlib-compressed BigTIFF; `tifffile` pulls the tiles from a bounded queue in a
    writer thread, since it writes a page from one iterator of tiles."""

    def __init__(self, path: Path, shape: tuple[int, int], dtype: type) -> None:
        super().__init__(shape, dtype)
        per_row = -(-shape[1] // OUTPUT_TILE)
        self.tiles: queue.Queue[np.ndarray | None] = queue.Queue(maxsize=2 * per_row)
        self.error: BaseException | None = None
        self.ended = False  # the writer has taken the end-of-tiles marker
        self.thread = threading.Thread(target=self._run, args=(path,), daemon=True)
        self.thread.start()

    def _run(self, path: Path) -> None:
        import tifffile

        try:
            with tifffile.TiffWriter(path, bigtiff=True) as tif:
                tiles = self._queued_tiles()
                tile = (OUTPUT_TILE, OUTPUT_TILE)
                tif.write(tiles, shape=self.shape, dtype=self.dtype, tile=tile, compression="zlib")
        except BaseException as exc:  # re-raised in the main thread by `close`
            self.error = exc
            while not self.ended:  # keep taking tiles, so that the producer never blocks
                self.ended = self.tiles.get() is None

    def _queued_tiles(self) -> Iterator[np.ndarray]:
        # Not `iter(get, None)`: that compares with ==, which an array answers element-wise.
        while (tile := self.tiles.get()) is not None:
            yield tile
        self.ended = True

    def store(self, top: int, block: np.ndarray) -> None:
        if self.error is not None:
            raise self.error
        for left in range(0, self.shape[1], OUTPUT_TILE):
            tile = np.zeros((OUTPUT_TILE, OUTPUT_TILE), dtype=self.dtype)
            part = block[:, left : left + OUTPUT_TILE]
            tile[: part.shape[0], : part.shape[1]] = part
            self.tiles.put(tile)

    def close(self) -> None:
        try:
            self.flush()
        finally:
            self.abort()
        if self.error is not None:
            raise self.error

    def abort(self) -> None:
        """End the tiles and wait for the writer (which fails if tiles are missing)."""
        self.tiles.put(None)
        self.thread.join()


@contextmanager
def open_band_writer(path: Path, shape: tuple[int, int], dtype: type) -> Iterator[BandWriter]:
    """A `BandWriter` for a (H, W) array: rows in order, written under a temporary name beside
    `path` and renamed to `path` when the block ends without an error (else removed).

    Args:
        path: A `.zarr` folder (a zarr array, 256 x 256 chunks), or else a tiled (256 x 256),
            zlib-compressed BigTIFF.
        shape: (H, W) of the whole array.
        dtype: Pixel type, e.g. `np.uint8`.
    """
    zarr_output = path.suffix.lower() == ".zarr"
    with atomic_directory(path) if zarr_output else atomic_path(path) as temporary:
        sink = (_ZarrSink if zarr_output else _TiffSink)(temporary, shape, dtype)
        try:
            yield sink
        except BaseException:
            if isinstance(sink, _TiffSink):
                sink.abort()  # the temporary file is then removed
            raise
        sink.close()
