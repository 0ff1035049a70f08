"""Tests of seglab.objectives.metrics: hand-computed counts and scores, the empty convention,
properties."""

from __future__ import annotations

import hypothesis.extra.numpy as hnp
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from seglab.objectives.metrics import (
    METRICS,
    confusion_counts,
    confusion_counts_torch,
    dice,
    f1,
    iou,
    pixel_accuracy,
    precision,
    recall,
    summarize,
    threshold_sweep,
)

# Image A: tp = 1 (0,0), fp = 1 (0,1), fn = 1 (1,0), tn = 3.
PRED_A = [[1, 1, 0], [0, 0, 0]]
TRUE_A = [[1, 0, 0], [1, 0, 0]]
# Image B: tp = 3 (row 0), fp = 1 (1,0), fn = 0, tn = 2.
PRED_B = [[1, 1, 1], [1, 0, 0]]
TRUE_B = [[1, 1, 1], [0, 0, 0]]
PRED = np.array([PRED_A, PRED_B], dtype=bool)
TRUE = np.array([TRUE_A, TRUE_B], dtype=np.uint8)
COUNTS = np.array([[1, 1, 1, 3], [3, 1, 0, 2]])

PER_IMAGE = {
    # A: 2 / (2 + 1 + 1); B: 6 / (6 + 1 + 0)
    "dice": [1 / 2, 6 / 7],
    # A: 1 / 3; B: 3 / 4
    "iou": [1 / 3, 3 / 4],
    # A: 1 / 2; B: 3 / 4
    "precision": [1 / 2, 3 / 4],
    # A: 1 / 2; B: 3 / 3
    "recall": [1 / 2, 1.0],
    "f1": [1 / 2, 6 / 7],
    # A: (1 + 3) / 6; B: (3 + 2) / 6
    "pixel_accuracy": [4 / 6, 5 / 6],
}
# Summed counts: tp = 4, fp = 2, fn = 1, tn = 5.
MICRO = {
    "dice": 8 / 11,  # 8 / (8 + 2 + 1)
    "iou": 4 / 7,  # 4 / (4 + 2 + 1)
    "precision": 4 / 6,
    "recall": 4 / 5,
    "f1": 8 / 11,
    "pixel_accuracy": 9 / 12,
}
MEAN_PER_IMAGE = {
    "dice": (1 / 2 + 6 / 7) / 2,  # 19/28
    "iou": (1 / 3 + 3 / 4) / 2,  # 13/24
    "precision": (1 / 2 + 3 / 4) / 2,  # 5/8
    "recall": (1 / 2 + 1) / 2,  # 3/4
    "f1": (1 / 2 + 6 / 7) / 2,
    "pixel_accuracy": (4 / 6 + 5 / 6) / 2,  # 3/4
}


def test_confusion_counts_golden() -> None:
    counts = confusion_counts(PRED, TRUE)
    assert counts.dtype == np.int64
    np.testing.assert_array_equal(counts, COUNTS)


def test_single_image_gives_one_row() -> None:
    np.testing.assert_array_equal(confusion_counts(np.array(PRED_A), np.array(TRUE_A)), [COUNTS[0]])


def test_torch_counts_golden() -> None:
    pred, true = torch.from_numpy(PRED), torch.from_numpy(TRUE)
    np.testing.assert_array_equal(confusion_counts_torch(pred, true).numpy(), COUNTS)
    counts = confusion_counts_torch(pred[:, None], true[:, None])  # (N, 1, H, W)
    assert counts.dtype == torch.int64
    np.testing.assert_array_equal(counts.numpy(), COUNTS)


@pytest.mark.parametrize("name", METRICS)
def test_scores_golden(name: str) -> None:
    np.testing.assert_allclose(METRICS[name](COUNTS), PER_IMAGE[name])
    np.testing.assert_allclose(METRICS[name](COUNTS.sum(axis=0)), MICRO[name])


def test_summarize_golden() -> None:
    summary = summarize(COUNTS)
    expected = MICRO | {f"{name}_per_image": value for name, value in MEAN_PER_IMAGE.items()}
    assert summary.keys() == expected.keys()
    assert summary == pytest.approx(expected)
    assert all(type(value) is float for value in summary.values())


# Rows: both empty; empty truth with false positives; empty prediction with true foreground.
EMPTY = np.array([[0, 0, 0, 9], [0, 2, 0, 7], [0, 0, 3, 6]])


@pytest.mark.parametrize(
    ("score", "expected"),
    [
        (dice, [1, 0, 0]),
        (iou, [1, 0, 0]),
        (precision, [1, 0, 0]),
        (recall, [1, 0, 0]),
        (f1, [1, 0, 0]),
        (pixel_accuracy, [1, 7 / 9, 6 / 9]),
    ],
)
def test_empty_convention(score, expected: list[float]) -> None:
    np.testing.assert_allclose(score(EMPTY), expected)


def test_image_without_pixels_scores_one() -> None:
    assert pixel_accuracy(np.array([0, 0, 0, 0])) == 1.0


@pytest.mark.parametrize(
    ("pred", "target", "match"),
    [
        (np.zeros((2, 3, 3)), np.zeros((2, 3, 4)), "shape"),
        (np.zeros(4), np.zeros(4), "shape"),
        (np.full((3, 3), 0.7), np.zeros((3, 3)), "binary mask"),
        (np.zeros((3, 3)), np.full((3, 3), 255), "binary mask"),
    ],
)
def test_bad_masks_raise(pred: np.ndarray, target: np.ndarray, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        confusion_counts(pred, target)


def test_bad_inputs_raise() -> None:
    with pytest.raises(ValueError, match="shape"):
        confusion_counts_torch(torch.zeros(3, 3), torch.zeros(3, 3))
    with pytest.raises(ValueError, match=r"\(\.\.\., 4\)"):
        dice(np.zeros((2, 3)))
    with pytest.raises(ValueError, match="N >= 1"):
        summarize(np.zeros((0, 4)))
    with pytest.raises(ValueError, match="thresholds"):
        threshold_sweep(np.zeros((2, 2)), np.zeros((2, 2)), np.array([]))
    with pytest.raises(ValueError, match="NaN"):
        threshold_sweep(np.full((2, 2), np.nan), np.zeros((2, 2)), np.array([0.5]))


def test_threshold_sweep_golden() -> None:
    probs = np.array([[0.9, 0.6, 0.4], [0.2, 0.6, 0.1]])
    truth = np.array([[1, 1, 0], [1, 0, 0]], dtype=bool)
    # t = 0.5: tp = 2 (0.9, 0.6), fp = 1 (0.6), fn = 1 (0.2) -> 4 / (4 + 1 + 1) = 4 / 6
    # t = 0.6: same pixels (p >= t is inclusive) -> 4 / 6
    # t = 0.61: tp = 1, fp = 0, fn = 2 -> 2 / 4
    # t = 0.0: all positive, tp = 3, fp = 3 -> 6 / (6 + 3)
    # t = 0.95: nothing predicted, fn = 3 -> 0
    # t = 0.2: tp = 3, fp = 2 (0.4, 0.6) -> 6 / (6 + 2)
    scores = threshold_sweep(probs, truth, np.array([0.5, 0.6, 0.61, 0.0, 0.95, 0.2]))
    np.testing.assert_allclose(scores, [4 / 6, 4 / 6, 2 / 4, 6 / 9, 0.0, 6 / 8])


# --- properties ---------------------------------------------------------------------------------


@st.composite
def mask_pairs(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray]:
    shape = draw(st.tuples(st.integers(1, 4), st.integers(1, 6), st.integers(1, 6)))
    return draw(hnp.arrays(bool, shape)), draw(hnp.arrays(bool, shape))


@settings(max_examples=50, deadline=None)
@given(mask_pairs())
def test_dice_iou_identity(masks: tuple[np.ndarray, np.ndarray]) -> None:
    counts = confusion_counts(*masks)
    for rows in (counts, counts.sum(axis=0)):
        d, j = dice(rows), iou(rows)
        np.testing.assert_allclose(d, 2 * j / (1 + j))


@settings(max_examples=50, deadline=None)
@given(mask_pairs())
def test_perfect_prediction_scores_one(masks: tuple[np.ndarray, np.ndarray]) -> None:
    counts = confusion_counts(masks[1], masks[1])
    assert all(np.all(score(counts) == 1.0) for score in METRICS.values())
    assert all(value == 1.0 for value in summarize(counts).values())


@settings(max_examples=50, deadline=None)
@given(mask_pairs())
def test_dice_and_iou_are_symmetric(masks: tuple[np.ndarray, np.ndarray]) -> None:
    pred, target = masks
    forward, backward = confusion_counts(pred, target), confusion_counts(target, pred)
    np.testing.assert_array_equal(dice(forward), dice(backward))
    np.testing.assert_array_equal(iou(forward), iou(backward))
    # precision and recall swap roles
    np.testing.assert_array_equal(precision(forward), recall(backward))


@settings(max_examples=50, deadline=None)
@given(mask_pairs())
def test_scores_in_unit_interval_and_f1_is_dice(masks: tuple[np.ndarray, np.ndarray]) -> None:
    counts = confusion_counts(*masks)
    assert counts.sum() == masks[0].size
    for score in METRICS.values():
        values = score(counts)
        assert values.shape == (len(counts),)
        assert np.all((values >= 0) & (values <= 1))
    precision_, recall_ = precision(counts), recall(counts)
    harmonic = np.divide(
        2 * precision_ * recall_,
        precision_ + recall_,
        out=np.zeros_like(precision_),
        where=precision_ + recall_ > 0,
    )
    # Harmonic mean of precision and recall = Dice, except on empty images (convention: 1).
    nonempty = counts[:, :3].sum(axis=1) > 0
    np.testing.assert_allclose(harmonic[nonempty], dice(counts)[nonempty])
    np.testing.assert_array_equal(f1(counts), dice(counts))


@settings(max_examples=50, deadline=None)
@given(mask_pairs())
def test_torch_counts_equal_numpy_counts(masks: tuple[np.ndarray, np.ndarray]) -> None:
    pred, target = masks
    expected = confusion_counts(pred, target)
    got = confusion_counts_torch(torch.from_numpy(pred)[:, None], torch.from_numpy(target)[:, None])
    np.testing.assert_array_equal(got.numpy(), expected)
    as_float = confusion_counts_torch(torch.from_numpy(pred).float(), torch.from_numpy(target))
    np.testing.assert_array_equal(as_float.numpy(), expected)


# Probabilities and thresholds from a small grid, so that ties (p == t) are common.
GRID = st.sampled_from([0.0, 0.1, 0.25, 0.5, 0.7, 0.75, 0.9, 1.0])


@settings(max_examples=50, deadline=None)
@given(
    mask_pairs(),
    st.data(),
    st.lists(st.one_of(GRID, st.floats(0, 1)), min_size=1, max_size=12),
)
def test_threshold_sweep_equals_brute_force(
    masks: tuple[np.ndarray, np.ndarray], data: st.DataObject, thresholds: list[float]
) -> None:
    target = masks[1]
    dtype = data.draw(st.sampled_from([np.float32, np.float64]))
    probs = data.draw(hnp.arrays(dtype, target.shape, elements=st.one_of(GRID, st.floats(0, 1))))
    t = np.array(thresholds)
    brute = [dice(confusion_counts(probs >= value, target).sum(axis=0)) for value in t]
    np.testing.assert_array_equal(threshold_sweep(probs, target, t), brute)
