"""Tests of seglab.objectives.multiclass_metrics: hand-counted matrices, scores, identities,
JSON output."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from seglab.objectives.multiclass_metrics import (
    class_scores,
    confusion_matrix,
    confusion_matrix_torch,
    summarize_multiclass,
)

NAN = float("nan")

# Truth and prediction of two 2x3 images, 3 classes, 255 = ignored.
TRUTH = np.array([[[0, 0, 1], [2, 255, 1]], [[0, 1, 1], [255, 2, 2]]])
PRED = np.array([[[0, 1, 1], [2, 2, 0]], [[0, 1, 2], [0, 2, 1]]])
# Pixel by pixel (true -> pred), ignored pixels skipped:
#   image 0: 0->0, 0->1, 1->1, 2->2, 1->0          image 1: 0->0, 1->1, 1->2, 2->2, 2->1
MATRIX = np.array(
    [
        [2, 1, 0],  # true 0: 0->0 twice, 0->1 once
        [1, 2, 1],  # true 1: 1->0, 1->1 twice, 1->2
        [0, 1, 2],  # true 2: 2->1, 2->2 twice
    ]
)

# A 5-class matrix [true, predicted] exercising every empty case:
#   class 2: neither true nor predicted -> NaN; class 3: predicted once, never true -> 0;
#   class 4: one true pixel, never predicted -> 0.
M5 = np.array(
    [
        [5, 1, 0, 1, 0],
        [2, 3, 0, 0, 0],
        [0, 0, 0, 0, 0],
        [0, 0, 0, 0, 0],
        [1, 0, 0, 0, 0],
    ]
)
# class 0: tp 5, fp = column 8 - 5 = 3, fn = row 7 - 5 = 2
# class 1: tp 3, fp = column 4 - 3 = 1, fn = row 5 - 3 = 2
# class 3: tp 0, fp 1, fn 0;  class 4: tp 0, fp 0, fn 1
M5_SCORES = {
    "iou": [5 / 10, 3 / 6, NAN, 0.0, 0.0],
    "dice": [10 / 15, 6 / 9, NAN, 0.0, 0.0],
    "precision": [5 / 8, 3 / 4, NAN, 0.0, 0.0],
    "recall": [5 / 7, 3 / 5, NAN, 0.0, 0.0],
}


def test_confusion_matrix_golden() -> None:
    np.testing.assert_array_equal(confusion_matrix(PRED, TRUTH, 3), MATRIX)
    assert confusion_matrix(PRED, TRUTH, 3).dtype == np.int64


def test_any_leading_shape_and_integer_dtype_give_the_same_matrix() -> None:
    flat = confusion_matrix(PRED.ravel().astype(np.uint8), TRUTH.ravel().astype(np.uint8), 3)
    np.testing.assert_array_equal(flat, MATRIX)
    per_image = confusion_matrix(PRED[0], TRUTH[0], 3) + confusion_matrix(PRED[1], TRUTH[1], 3)
    np.testing.assert_array_equal(per_image, MATRIX)


def test_ignore_index_none_and_other_values() -> None:
    truth = np.array([0, 1, 1, 2])
    pred = np.array([0, 1, 2, 2])
    # ignore_index=1 drops the two pixels of class 1: left 0->0 and 2->2
    np.testing.assert_array_equal(
        confusion_matrix(pred, truth, 3, ignore_index=1), [[1, 0, 0], [0, 0, 0], [0, 0, 1]]
    )
    np.testing.assert_array_equal(
        confusion_matrix(pred, truth, 3, ignore_index=None), [[1, 0, 0], [0, 1, 1], [0, 0, 1]]
    )
    with pytest.raises(ValueError, match=r"target holds class index 255.*ignore_index \(None\)"):
        confusion_matrix(PRED, TRUTH, 3, ignore_index=None)


@pytest.mark.parametrize(
    ("pred", "target", "message"),
    [
        (np.array([0, 3]), np.array([0, 1]), "pred holds class index 3"),
        (np.array([0, 1]), np.array([-1, 1]), "target holds class index -1"),
        (np.array([0.0, 1.0]), np.array([0, 1]), "integer class indices"),
        (np.array([0, 1]), np.array([[0, 1]]), "shape"),
    ],
)
def test_confusion_matrix_rejects_bad_input(
    pred: np.ndarray, target: np.ndarray, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        confusion_matrix(pred, target, 3)
    with pytest.raises(ValueError, match=message):
        confusion_matrix_torch(torch.from_numpy(pred), torch.from_numpy(target), 3)


def test_prediction_at_ignored_pixels_is_not_checked() -> None:
    # A network's argmax is always in range, but whatever it says at a void pixel does not count.
    np.testing.assert_array_equal(confusion_matrix(np.array([7]), np.array([255]), 3), 0)


@pytest.mark.parametrize("num_classes", [0, 2.0, True])
def test_bad_num_classes_raise(num_classes: object) -> None:
    with pytest.raises(ValueError, match="num_classes"):
        confusion_matrix(PRED, TRUTH, num_classes)  # type: ignore[arg-type]


@st.composite
def label_maps(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray, int]:
    c = draw(st.integers(1, 6))
    shape = draw(hnp.array_shapes(min_dims=1, max_dims=3, max_side=5))
    values = st.one_of(st.integers(0, c - 1), st.just(255))
    target = draw(hnp.arrays(np.int64, shape, elements=values))
    pred = draw(hnp.arrays(np.int64, shape, elements=st.integers(0, c - 1)))
    return pred, target, c


@settings(max_examples=60, deadline=None)
@given(label_maps())
def test_matrix_total_is_the_number_of_valid_pixels_and_torch_agrees(
    maps: tuple[np.ndarray, np.ndarray, int],
) -> None:
    pred, target, c = maps
    matrix = confusion_matrix(pred, target, c)
    assert matrix.sum() == np.count_nonzero(target != 255)
    np.testing.assert_array_equal(
        matrix.sum(axis=1), np.bincount(target[target != 255], minlength=c)
    )
    on_torch = confusion_matrix_torch(torch.from_numpy(pred), torch.from_numpy(target), c)
    assert on_torch.dtype == torch.int64
    np.testing.assert_array_equal(on_torch.numpy(), matrix)


@settings(max_examples=60, deadline=None)
@given(label_maps())
def test_score_identities(maps: tuple[np.ndarray, np.ndarray, int]) -> None:
    pred, target, c = maps
    scores = class_scores(confusion_matrix(pred, target, c))
    iou, dice = scores["iou"], scores["dice"]
    defined = ~np.isnan(iou)
    np.testing.assert_allclose(dice[defined], 2 * iou[defined] / (1 + iou[defined]))
    np.testing.assert_array_equal(scores["f1"], dice)
    for key in ("iou", "dice", "precision", "recall"):
        assert np.array_equal(np.isnan(scores[key]), ~defined)
        assert ((scores[key][defined] >= 0) & (scores[key][defined] <= 1)).all()
    p, r = scores["precision"], scores["recall"]
    both = defined & (p + r > 0)
    np.testing.assert_allclose(dice[both], 2 * p[both] * r[both] / (p[both] + r[both]))


@settings(max_examples=40, deadline=None)
@given(label_maps())
def test_perfect_prediction_scores_one(maps: tuple[np.ndarray, np.ndarray, int]) -> None:
    _, target, c = maps
    summary = summarize_multiclass(confusion_matrix(target, target, c), [str(i) for i in range(c)])
    if (target != 255).any():
        for key in ("miou", "dice", "f1", "precision", "recall", "pixel_accuracy"):
            assert summary[key] == 1.0
    else:  # nothing counted: no score at all
        assert summary["miou"] is None and summary["pixel_accuracy"] is None


def test_class_scores_golden_with_empty_classes() -> None:
    scores = class_scores(M5)
    for key, expected in M5_SCORES.items():
        np.testing.assert_allclose(scores[key], expected, err_msg=key)
    np.testing.assert_allclose(scores["f1"], M5_SCORES["dice"])
    np.testing.assert_array_equal(scores["support"], [7, 5, 0, 0, 1])
    assert scores["support"].dtype == np.int64


def test_summarize_golden() -> None:
    names = ["road", "car", "bus", "train", "bike"]
    summary = summarize_multiclass(M5, names)
    # Means over the 4 classes with a score (bus has none):
    #   miou (0.5 + 0.5 + 0 + 0) / 4 = 0.25; dice (2/3 + 2/3) / 4 = 1/3
    #   precision (5/8 + 3/4) / 4 = 11/32; recall (5/7 + 3/5) / 4 = 23/70
    #   pixel accuracy: diagonal 8 of 13 pixels
    expected = {
        "miou": 0.25, "iou": 0.25, "dice": 1 / 3, "f1": 1 / 3,
        "precision": 11 / 32, "recall": 23 / 70, "pixel_accuracy": 8 / 13,
    }  # fmt: skip
    assert list(summary) == [*expected, "per_class"]
    for key, value in expected.items():
        assert summary[key] == pytest.approx(value), key
    per_class = summary["per_class"]
    assert isinstance(per_class, dict)
    assert list(per_class) == names
    assert per_class["bus"] == dict.fromkeys(("iou", "dice", "f1", "precision", "recall")) | {
        "support": 0
    }
    assert per_class["road"]["recall"] == pytest.approx(5 / 7)
    assert per_class["train"] == {
        "iou": 0.0, "dice": 0.0, "f1": 0.0, "precision": 0.0, "recall": 0.0, "support": 0
    }  # fmt: skip
    text = json.dumps(summary, allow_nan=False)  # plain floats, ints and None only
    assert json.loads(text) == summary


def test_summarize_of_an_empty_matrix_has_no_scores() -> None:
    summary = summarize_multiclass(np.zeros((2, 2), np.int64), ["a", "b"])
    assert all(summary[key] is None for key in ("miou", "dice", "pixel_accuracy"))


@pytest.mark.parametrize(
    ("matrix", "names", "message"),
    [
        (MATRIX, ["a", "b"], "3 unique names"),
        (MATRIX, ["a", "a", "b"], "3 unique names"),
        (np.zeros((2, 3)), ["a", "b"], "square"),
        (-np.eye(2), ["a", "b"], ">= 0"),
    ],
)
def test_summarize_rejects_bad_input(matrix: np.ndarray, names: list[str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        summarize_multiclass(matrix, names)


def test_module_does_not_import_torch() -> None:
    code = "import sys, seglab.objectives.multiclass_metrics; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_package_reexports_resolve_without_torch() -> None:
    code = (
        "import sys, seglab.objectives as o\n"
        "from seglab.objectives.multiclass_metrics import IGNORE_INDEX\n"
        "assert o.summarize_multiclass and o.score_image\n"
        "assert IGNORE_INDEX is o.IGNORE_INDEX == 255\n"
        "print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
