"""Tests of seglab.evaluation.multiclass_figures: pure helpers by hand, then the PNG files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from PIL import Image

from seglab.data.labels import colorize
from seglab.evaluation.multiclass_figures import (
    ERROR_COLOR,
    IGNORE_COLOR,
    class_errors,
    legend_html,
    plot_confusion_matrix,
    row_normalize,
    segmentation_panels,
)

PALETTE = [(128, 64, 128), (70, 70, 70), (0, 0, 142)]
NAMES = ["flat", "construction", "vehicle"]


def png_size(path: Path) -> tuple[int, int]:
    """Width and height of a file that must be a complete, valid PNG."""
    with Image.open(path) as image:
        assert image.format == "PNG"
        image.verify()  # reads to the end: a truncated file fails here
    with Image.open(path) as image:
        return image.size


def test_row_normalize_golden() -> None:
    # rows: 3/4, 1/4, 0 | empty (class absent from the truth) | 1/5, 1/5, 3/5
    matrix = np.array([[3, 1, 0], [0, 0, 0], [1, 1, 3]])
    expected = [[0.75, 0.25, 0.0], [np.nan] * 3, [0.2, 0.2, 0.6]]
    np.testing.assert_allclose(row_normalize(matrix), expected)


square_counts = st.integers(1, 8).flatmap(
    lambda n: hnp.arrays(np.int64, (n, n), elements=st.integers(0, 50))
)


@settings(max_examples=40, deadline=None)
@given(square_counts)
def test_non_empty_rows_sum_to_one(matrix: np.ndarray) -> None:
    rows = row_normalize(matrix)
    full = matrix.sum(axis=1) > 0
    np.testing.assert_allclose(rows[full].sum(axis=1), 1.0)
    assert np.isnan(rows[~full]).all()
    np.testing.assert_allclose(rows[full] * matrix[full].sum(axis=1, keepdims=True), matrix[full])


@pytest.mark.parametrize("matrix", [np.zeros((2, 3)), -np.eye(2), np.array([["a"]])])
def test_row_normalize_rejects_bad_matrices(matrix: np.ndarray) -> None:
    with pytest.raises(ValueError, match="matrix"):
        row_normalize(matrix)


def test_colorize_golden() -> None:
    labels = np.array([[0, 1], [2, 255]], dtype=np.uint8)
    rgb = colorize(labels, PALETTE, ignore_index=255, ignore_color=IGNORE_COLOR)
    assert rgb.dtype == np.uint8 and rgb.shape == (2, 2, 3)
    assert rgb.tolist() == [[[128, 64, 128], [70, 70, 70]], [[0, 0, 142], list(IGNORE_COLOR)]]
    red = colorize(labels, PALETTE, ignore_index=255, ignore_color=(255, 0, 0))
    assert red[1, 1].tolist() == [255, 0, 0]


def test_colorize_rejects_labels_without_colour() -> None:
    with pytest.raises(ValueError, match="label 255 has no colour"):
        colorize(np.array([[0, 255]]), PALETTE, ignore_index=None)
    with pytest.raises(ValueError, match="label 3 has no colour"):
        colorize(np.array([[3]]), PALETTE)
    with pytest.raises(ValueError, match="2-D integer map"):
        colorize(np.zeros((2, 2)), PALETTE)
    with pytest.raises(ValueError, match="palette"):
        colorize(np.zeros((2, 2), int), [(0, 0)])  # type: ignore[list-item]
    with pytest.raises(ValueError, match=r"\[0, 255\]"):
        colorize(np.zeros((2, 2), int), [(0, 0, 300)])


def test_legend_html_escapes_names_and_shows_each_colour() -> None:
    text = legend_html(["road", "<car> & co"], [(128, 64, 128), (0, 0, 142)])
    assert text.startswith('<div class="seglab-legend"')
    assert "background:rgb(128,64,128)" in text and "background:rgb(0,0,142)" in text
    assert "&lt;car&gt; &amp; co" in text and "<car>" not in text
    assert text.count("background:rgb") == 2
    with pytest.raises(ValueError, match="only 1 colours"):
        legend_html(["a", "b"], [(0, 0, 0)])


@pytest.mark.parametrize("num_classes", [3, 8, 20])
def test_plot_confusion_matrix_writes_a_png_that_grows_with_the_classes(
    tmp_path: Path, num_classes: int
) -> None:
    rng = np.random.default_rng(0)
    matrix = rng.integers(0, 100, (num_classes, num_classes)) + 1000 * np.eye(
        num_classes, dtype=int
    )
    matrix[1] = 0  # a class absent from the truth: an empty row
    path = tmp_path / "out" / "confusion.png"
    plot_confusion_matrix(matrix, [f"class {i}" for i in range(num_classes)], path)
    width, height = png_size(path)
    # 110 dpi; the side is max(5, 1.6 + 0.5 C) inches, plus 1.2 inches of colour bar in width.
    side = max(5.0, 1.6 + 0.5 * num_classes)
    assert (width, height) == (round(110 * (side + 1.2)), round(110 * side))
    assert [p.name for p in path.parent.iterdir()] == ["confusion.png"]  # no temporary file left


def test_plot_confusion_matrix_rejects_mismatched_names(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="2 class names for a 3x3 matrix"):
        plot_confusion_matrix(np.eye(3, dtype=int), ["a", "b"], tmp_path / "c.png")
    assert not (tmp_path / "c.png").exists()


def test_segmentation_panels_writes_a_png(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    image = rng.integers(0, 256, (40, 60, 3), dtype=np.uint8)
    truth = rng.integers(0, 3, (40, 60))
    truth[:5] = 255
    prediction = rng.integers(0, 3, (40, 60))
    path = tmp_path / "panels.png"
    segmentation_panels(image, truth, prediction, PALETTE, NAMES, 255, path, title="img 7")
    width, height = png_size(path)
    # 4 panels of 3 inches at 110 dpi; height 3 * 40 / 60 + 1.4 inches for titles and legend
    assert (width, height) == (1320, round(110 * (3 * 40 / 60 + 1.4)))


def test_class_errors_marks_wrong_pixels_over_the_faded_image() -> None:
    image = np.array([[0, 100, 200, 50]], np.uint8)
    truth = np.array([[0, 1, 255, 2]])
    prediction = np.array([[0, 2, 1, 2]])
    errors = class_errors(image, truth, prediction, ignore_index=255)
    # Right pixels: 0.4 * value + 0.6 * 255 -> 153 (0) and 173 (50); pixel 1 is wrong;
    # pixel 2 is ignored, whatever was predicted.
    assert errors[0].tolist() == [[153] * 3, list(ERROR_COLOR), [255] * 3, [173] * 3]
    assert class_errors(image, truth, prediction, None)[0, 2].tolist() == list(ERROR_COLOR)


def test_segmentation_panels_rejects_mismatched_shapes(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="same height and width"):
        segmentation_panels(
            np.zeros((4, 4)), np.zeros((4, 4), int), np.zeros((4, 5), int), PALETTE, NAMES, 255,
            tmp_path / "p.png",
        )  # fmt: skip
    with pytest.raises(ValueError, match="only 3 colours"):
        segmentation_panels(
            np.zeros((4, 4)), np.zeros((4, 4), int), np.zeros((4, 4), int), PALETTE,
            [*NAMES, "sky"], 255, tmp_path / "p.png",
        )  # fmt: skip
    assert not (tmp_path / "p.png").exists()
