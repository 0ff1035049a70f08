"""Run-length encoding (column-major, 1-based) and Kaggle submission files (`seglab.rle`)."""

from __future__ import annotations

from pathlib import Path

import hypothesis.extra.numpy as hnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from seglab.errors import DataError
from seglab.rle import labels_to_rles, read_submission, rle_decode, rle_encode, write_submission

# Pixels are numbered down each column, then across: in a 3x3 image column 0 holds 1, 2, 3,
# column 1 holds 4, 5, 6 and column 2 holds 7, 8, 9.
KNOWN_RLES = [
    # Column 0 (1, 2, 3), the bottom of column 1 (6) and the top of column 2 (7): the run 6-7
    # crosses a column boundary.
    ([[1, 0, 1], [1, 0, 0], [1, 1, 0]], "1 3 6 2"),
    # The middle row is pixel 2 of each column: 2, 5, 8.
    ([[0, 0, 0], [1, 1, 1], [0, 0, 0]], "2 1 5 1 8 1"),
    # 2x3, top row: 1, 3, 5 (row-major order would give "1 3").
    ([[1, 1, 1], [0, 0, 0]], "1 1 3 1 5 1"),
    # The last two pixels of a 3x3 image: 8, 9.
    ([[0, 0, 0], [0, 0, 1], [0, 0, 1]], "8 2"),
    ([[1, 1], [1, 1]], "1 4"),
]

masks = hnp.arrays(bool, hnp.array_shapes(min_dims=2, max_dims=2, min_side=1, max_side=16))
label_images = hnp.arrays(
    np.int32,
    hnp.array_shapes(min_dims=2, max_dims=2, min_side=1, max_side=16),
    elements=st.integers(0, 5),
)


@pytest.mark.parametrize(("mask", "rle"), KNOWN_RLES)
def test_rle_known_strings(mask: list[list[int]], rle: str) -> None:
    assert rle_encode(np.array(mask)) == rle
    np.testing.assert_array_equal(rle_decode(rle, np.shape(mask)), np.array(mask, bool))


def test_rle_empty_mask() -> None:
    assert rle_encode(np.zeros((4, 5), bool)) == ""
    assert not rle_decode("", (4, 5)).any()
    assert rle_decode(" ", (4, 5)).shape == (4, 5)
    assert labels_to_rles(np.zeros((4, 5), np.int32)) == []
    assert rle_encode(np.zeros((0, 3), bool)) == ""
    assert labels_to_rles(np.zeros((0, 3), np.int32)) == []
    assert rle_decode("", (0, 3)).shape == (0, 3)


@pytest.mark.parametrize(
    ("rle", "problem"),
    [
        ("1 2 3", "odd number"),
        ("1 x", "not an integer"),
        ("1.5 2", "not an integer"),
        ("1_0 2", "not an integer"),
        ("0 2", "start must be >= 1"),
        ("-1 2", "start must be >= 1"),
        ("1 0", "length must be >= 1"),
        ("8 3", "past the end"),  # pixels 8, 9, 10 of a 9-pixel image
        ("5 2 1 1", "not sorted"),
        ("1 3 2 2", "overlap"),
    ],
)
def test_rle_decode_rejects_malformed(rle: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        rle_decode(rle, (3, 3))


def test_rle_decode_accepts_adjacent_runs() -> None:
    np.testing.assert_array_equal(rle_decode("1 2 3 1", (3, 1)), np.ones((3, 1), bool))


@settings(max_examples=200, deadline=None)
@given(masks)
def test_rle_round_trip(mask: np.ndarray) -> None:
    np.testing.assert_array_equal(rle_decode(rle_encode(mask), mask.shape), mask)


@settings(max_examples=200, deadline=None)
@given(label_images)
def test_labels_to_rles_decode_to_instances(labels: np.ndarray) -> None:
    present = [label for label in np.unique(labels) if label > 0]
    rles = labels_to_rles(labels)
    assert len(rles) == len(present)
    for label, rle in zip(present, rles):
        assert rle == rle_encode(labels == label)
        np.testing.assert_array_equal(rle_decode(rle, labels.shape), labels == label)


def test_submission_round_trip(tmp_path: Path) -> None:
    two = np.zeros((6, 5), np.int32)
    two[0:2, 0:2] = 1  # pixels 1, 2 and 7, 8
    two[4:6, 3] = 7  # pixels 23, 24
    one = np.zeros((3, 3), np.int32)
    one[1, 1] = 2  # pixel 5
    path = tmp_path / "out" / "submission.csv"
    rows = [("two", two), ("none", np.zeros((4, 4), np.int32)), ("one", one)]
    assert write_submission(path, rows) == 4
    assert path.read_text().splitlines() == [
        "ImageId,EncodedPixels",
        "two,1 2 7 2",
        "two,23 2",
        "none,",
        "one,5 1",
    ]
    assert read_submission(path) == {"two": ["1 2 7 2", "23 2"], "none": [], "one": ["5 1"]}
    assert not [p for p in path.parent.iterdir() if p.name.startswith(".")]


def test_write_submission_rejects_duplicate_ids(tmp_path: Path) -> None:
    path = tmp_path / "submission.csv"
    labels = np.ones((2, 2), np.int32)
    with pytest.raises(ValueError, match="twice"):
        write_submission(path, [("a", labels), ("a", labels)])
    assert list(tmp_path.iterdir()) == []


def test_read_submission_errors(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="not found"):
        read_submission(tmp_path / "missing.csv")
    bad = tmp_path / "bad.csv"
    bad.write_text("id,rle\na,1 2\n")
    with pytest.raises(DataError, match="header"):
        read_submission(bad)


def test_rejects_non_2d_input() -> None:
    with pytest.raises(ValueError, match=r"\(H, W\)"):
        rle_encode(np.zeros((2, 2, 2), bool))
    with pytest.raises(ValueError, match="integer"):
        labels_to_rles(np.zeros((2, 2), np.float32))
