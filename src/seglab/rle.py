"""Kaggle DSB2018 run-length encoding, and submission files of one row per nucleus.

Pixels are numbered top to bottom, then left to right (column-major), from 1; a mask is
``start length`` pairs. A submission has one CSV row per nucleus, and one row with empty
``EncodedPixels`` for an image without any.

Example:
    >>> write_submission("submission.csv", [("image_id", labels)])
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from seglab.atomic_files import atomic_text_file
from seglab.errors import DataError
from seglab.postprocess import as_labels, as_mask

SUBMISSION_HEADER = ("ImageId", "EncodedPixels")
_INTEGER = re.compile(r"-?[0-9]+")


def rle_encode(mask: np.ndarray) -> str:
    """Run-length encodes a mask: ``"start length ..."``, starts 1-based, column-major.

    Args:
        mask: Binary mask (nonzero is foreground), shape ``(H, W)``.

    Returns:
        The RLE string; ``""`` for an empty mask.

    Example:
        >>> rle_encode(np.array([[1, 0], [1, 1]]))  # pixels 1, 2 (column 0) and 4
        '1 2 4 1'
    """
    padded = np.concatenate([[False], as_mask(mask).ravel(order="F"), [False]])
    # Position i of `padded` is pixel i (1-based), so a change between i-1 and i marks pixel i.
    changes = np.flatnonzero(padded[1:] != padded[:-1]) + 1
    starts, ends = changes[0::2], changes[1::2]
    return _format_runs(starts, ends - starts)


def _format_runs(starts: np.ndarray, lengths: np.ndarray) -> str:
    return " ".join(f"{start} {length}" for start, length in zip(starts, lengths))


def rle_decode(rle: str, shape: tuple[int, int]) -> np.ndarray:
    """Decodes a run-length string written as :func:`rle_encode` writes it.

    Args:
        rle: ``start length`` pairs, sorted, not overlapping; ``""`` is an empty mask.
        shape: ``(H, W)`` of the image.

    Returns:
        Bool mask of ``shape``.

    Raises:
        ValueError: If the string is malformed; the message names the offending run.

    Example:
        >>> rle_decode("1 2 4 1", (2, 2)).astype(int)
        array([[1, 0],
               [1, 1]])
    """
    height, width = shape
    tokens = rle.split()
    if len(tokens) % 2:
        raise ValueError(f"RLE has an odd number of values ({len(tokens)}); expected pairs")
    # Stricter than int(), which also takes "1_000" and non-ASCII digits.
    bad = next((token for token in tokens if not _INTEGER.fullmatch(token)), None)
    if bad is not None:
        raise ValueError(f"RLE value {bad!r} is not an integer")
    values = [int(token) for token in tokens]
    flat = np.zeros(height * width, dtype=bool)
    end = 1
    for index, (start, length) in enumerate(zip(values[0::2], values[1::2])):
        run = f"run {index} ({start} {length})"
        if start < 1:
            raise ValueError(f"RLE {run}: start must be >= 1 (pixels are numbered from 1)")
        if length < 1:
            raise ValueError(f"RLE {run}: length must be >= 1")
        if start < end:
            raise ValueError(f"RLE {run}: runs overlap or are not sorted by start")
        end = start + length
        if end - 1 > flat.size:
            raise ValueError(f"RLE {run}: runs past the end of the {height}x{width} image")
        flat[start - 1 : end - 1] = True
    return flat.reshape((height, width), order="F")


def labels_to_rles(labels: np.ndarray) -> list[str]:
    """Run-length encodes each instance of a label image (0 is background), by label.

    Returns:
        One string per label present, equal to :func:`rle_encode` of ``labels == label``.

    Example:
        >>> labels_to_rles(np.array([[1, 2], [1, 2]]))
        ['1 2', '3 2']
    """
    flat = as_labels(labels).ravel(order="F")
    if flat.size == 0:
        return []
    # One pass over the image instead of one per label: cut it into runs of equal labels, then
    # group the runs by label (the stable sort keeps each label's runs in pixel order).
    starts = np.flatnonzero(np.diff(flat, prepend=-1))
    lengths = np.diff(starts, append=flat.size)
    order = np.argsort(flat[starts], kind="stable")
    starts, lengths, values = starts[order] + 1, lengths[order], flat[starts][order]
    cuts = np.flatnonzero(np.diff(values)) + 1
    runs = zip(np.split(starts, cuts), np.split(lengths, cuts), np.split(values, cuts))
    return [_format_runs(start, length) for start, length, value in runs if value[0] > 0]


def write_submission(path: str | Path, rows: Iterable[tuple[str, np.ndarray]]) -> int:
    """Writes an ``ImageId,EncodedPixels`` submission CSV atomically.

    Args:
        path: Destination ``.csv``; parent folders are created.
        rows: ``(image_id, labels)`` per test image, ``labels`` an integer label image.

    Returns:
        Number of rows written: one per nucleus, one for each image without any.

    Raises:
        ValueError: If an image id appears twice (nothing is written).

    Example:
        >>> write_submission("submission.csv", [("a", labels_a), ("b", np.zeros((8, 8), int))])
    """
    written = 0
    seen: set[str] = set()
    with atomic_text_file(Path(path)) as file:
        writer = csv.writer(file)
        writer.writerow(SUBMISSION_HEADER)
        for image_id, labels in rows:
            if image_id in seen:
                raise ValueError(f"image id {image_id!r} appears twice in the submission")
            seen.add(image_id)
            # Kaggle scores every test image, so an image without nuclei still needs its row.
            for rle in labels_to_rles(labels) or [""]:
                writer.writerow((image_id, rle))
                written += 1
    return written


def read_submission(path: str | Path) -> dict[str, list[str]]:
    """Reads a submission CSV: image id -> its RLE strings (an empty list: no nucleus).

    Raises:
        DataError: If the file is missing or its header is not ``ImageId,EncodedPixels``.

    Example:
        >>> read_submission("submission.csv")["a"]
        ['1 3', '10 2']
    """
    path = Path(path)
    try:
        with path.open(newline="") as file:
            reader = csv.reader(file)
            header = tuple(next(reader, ()))
            if header != SUBMISSION_HEADER:
                raise DataError(path, f"header is {header}, expected {SUBMISSION_HEADER}")
            result: dict[str, list[str]] = {}
            for image_id, rle, *_ in ([*row, "", ""] for row in reader if row):
                runs = result.setdefault(image_id, [])
                if rle.strip():
                    runs.append(rle.strip())
    except FileNotFoundError:
        raise DataError(path, "submission file not found") from None
    return result
