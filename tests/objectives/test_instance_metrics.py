"""Tests of seglab.objectives.instance_metrics (and viz.instance_overlay): hand-built label
images with golden values computed by hand, the empty convention, and properties of the IoU and
the score."""

from __future__ import annotations

import hypothesis.extra.numpy as hnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.optimize import linear_sum_assignment

from seglab.objectives.instance_metrics import (
    IOU_THRESHOLDS,
    InstanceScore,
    iou_matrix,
    match_counts,
    per_threshold_table,
    score_image,
    summarize_instances,
)
from seglab.viz import FN_COLOR, FP_COLOR, TP_COLOR, instance_overlay


def _labels(shape: tuple[int, int], *boxes: tuple[int, int, int, int, int]) -> np.ndarray:
    """A label image with ``(label, row0, row1, col0, col1)`` boxes, later ones on top."""
    out = np.zeros(shape, np.int32)
    for label, r0, r1, c0, c1 in boxes:
        out[r0:r1, c0:c1] = label
    return out


# Two nuclei: A is 2x3 = 6 px at rows 0-1, cols 0-2; B is 2x2 = 4 px at rows 3-4, cols 4-5.
TWO = _labels((6, 8), (1, 0, 2, 0, 3), (2, 3, 5, 4, 6))
# One 1x5 nucleus; a 1x3 prediction inside it has IoU 3 / 5 = 0.6 exactly.
BAR = _labels((3, 7), (1, 1, 2, 0, 5))
BAR_3 = _labels((3, 7), (1, 1, 2, 0, 3))


def test_thresholds_are_the_kaggle_ten() -> None:
    assert IOU_THRESHOLDS.tolist() == [0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95]


def test_iou_matrix_golden() -> None:
    # True: A (6 px, cols 0-2) and B (4 px). Pred 1: cols 1-3 of rows 0-1 (6 px), overlaps A on
    # cols 1-2 = 4 px, union 6 + 6 - 4 = 8 -> 1/2. Pred 2: B exactly -> 1. No other overlap.
    pred = _labels((6, 8), (1, 0, 2, 1, 4), (2, 3, 5, 4, 6))
    np.testing.assert_array_equal(iou_matrix(TWO, pred), [[0.5, 0.0], [0.0, 1.0]])


def test_perfect_match_scores_one() -> None:
    s = score_image(TWO, TWO)
    assert s.score == 1.0
    assert (s.counts == [2, 0, 0]).all()
    assert (s.n_true, s.n_pred) == (2, 2)


def test_one_missed_nucleus_of_two() -> None:
    # A found exactly (IoU 1 > every t), B missed: tp 1, fp 0, fn 1 -> 1 / 2 at every threshold.
    s = score_image(TWO, np.where(TWO == 1, 1, 0))
    assert (s.counts == [1, 0, 1]).all()
    np.testing.assert_allclose(s.precision, 0.5)
    assert s.score == pytest.approx(0.5)


def test_split_in_equal_halves_never_matches() -> None:
    # One 2x4 = 8 px nucleus split into two 2x2 predictions: each IoU 4 / 8 = 0.5, not > 0.5.
    # tp 0, fp 2, fn 1 at every threshold -> 0.
    truth = _labels((2, 4), (1, 0, 2, 0, 4))
    pred = _labels((2, 4), (1, 0, 2, 0, 2), (2, 0, 2, 2, 4))
    np.testing.assert_array_equal(iou_matrix(truth, pred), [[0.5, 0.5]])
    s = score_image(truth, pred)
    assert (s.counts == [0, 2, 1]).all()
    assert s.score == 0.0


def test_uneven_split() -> None:
    # 2x5 = 10 px nucleus split into 2x3 = 6 px (IoU 0.6) and 2x2 = 4 px (IoU 0.4).
    # t = 0.5, 0.55: tp 1, fp 1, fn 0 -> 1/2; t >= 0.6: tp 0, fp 2, fn 1 -> 0.
    # score = (1/2 + 1/2) / 10 = 0.1.
    truth = _labels((2, 5), (1, 0, 2, 0, 5))
    pred = _labels((2, 5), (1, 0, 2, 0, 3), (2, 0, 2, 3, 5))
    s = score_image(truth, pred)
    assert s.counts.tolist() == [[1, 1, 0]] * 2 + [[0, 2, 1]] * 8
    assert s.score == pytest.approx(0.1)


def test_two_nuclei_merged_into_one() -> None:
    # True 2x3 = 6 px and 2x2 = 4 px side by side, one 2x5 prediction over both:
    # IoU 6 / 10 = 0.6 and 4 / 10 = 0.4. t = 0.5, 0.55: tp 1, fp 0, fn 1 -> 1/2;
    # t >= 0.6: tp 0, fp 1, fn 2 -> 0. score = (1/2 + 1/2) / 10 = 0.1.
    truth = _labels((2, 5), (1, 0, 2, 0, 3), (2, 0, 2, 3, 5))
    pred = _labels((2, 5), (1, 0, 2, 0, 5))
    s = score_image(truth, pred)
    assert s.counts.tolist() == [[1, 0, 1]] * 2 + [[0, 1, 2]] * 8
    assert s.score == pytest.approx(0.1)


def test_iou_exactly_on_a_threshold_does_not_count() -> None:
    # IoU 3 / 5 = 0.6: > 0.5 and > 0.55 (precision 1), not > 0.6 (tp 0, fp 1, fn 1 -> 0).
    # score = 2 / 10.
    assert iou_matrix(BAR, BAR_3)[0, 0] == 0.6
    s = score_image(BAR, BAR_3)
    np.testing.assert_array_equal(s.precision, [1, 1, 0, 0, 0, 0, 0, 0, 0, 0])
    assert s.score == pytest.approx(0.2)


def test_iou_of_three_quarters() -> None:
    # 1x4 nucleus, 1x3 prediction inside: IoU 3 / 4 = 0.75, counts at 0.5 ... 0.7 (5 of 10).
    s = score_image(_labels((1, 4), (1, 0, 1, 0, 4)), _labels((1, 4), (1, 0, 1, 0, 3)))
    assert s.score == pytest.approx(0.5)
    assert s.precision[IOU_THRESHOLDS.tolist().index(0.75)] == 0.0


@pytest.mark.parametrize(
    ("truth", "pred", "expected"),
    [
        (np.zeros((4, 4), int), np.zeros((4, 4), int), 1.0),  # nothing to find, nothing found
        (TWO, np.zeros_like(TWO), 0.0),  # all missed: tp 0, fn 2
        (np.zeros_like(TWO), TWO, 0.0),  # all invented: tp 0, fp 2
    ],
    ids=["both-empty", "pred-empty", "truth-empty"],
)
def test_empty_convention(truth: np.ndarray, pred: np.ndarray, expected: float) -> None:
    s = score_image(truth, pred)
    assert s.score == expected
    np.testing.assert_array_equal(s.precision, expected)
    assert s.counts.shape == (10, 3)


def test_non_sequential_labels_give_the_same_result() -> None:
    truth = np.select([TWO == 1, TWO == 2], [5, 9], 0).astype(np.uint16)
    pred = np.where(TWO == 1, 9, 0)  # A found (under another label), B missed
    s = score_image(truth, pred)
    assert (s.counts == [1, 0, 1]).all()
    assert s.score == pytest.approx(0.5)
    huge = score_image(truth.astype(np.int64) * 10**12, pred)  # labels far above the pixel count
    np.testing.assert_array_equal(huge.counts, s.counts)
    # Rows follow increasing labels: 5 (A, matched) then 9 (B, missed).
    np.testing.assert_array_equal(iou_matrix(truth, pred), [[1.0], [0.0]])


def test_image_without_background_pixel() -> None:
    full = np.full((2, 2), 3)
    assert score_image(full, full).score == 1.0
    np.testing.assert_array_equal(iou_matrix(full, np.zeros_like(full)), np.zeros((1, 0)))


@pytest.mark.parametrize(
    ("truth", "pred", "message"),
    [
        (np.zeros((2, 2), int), np.zeros((2, 3), int), "must equal"),
        (np.zeros((2, 2), float), np.zeros((2, 2), int), "integer"),
        (np.array([[0, -1]]), np.zeros((1, 2), int), "negative"),
        (np.zeros((1, 2, 2), int), np.zeros((1, 2, 2), int), r"\(H, W\)"),
    ],
)
def test_bad_label_images_raise(truth: np.ndarray, pred: np.ndarray, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        iou_matrix(truth, pred)


def test_thresholds_below_one_half_are_refused() -> None:
    # Below 0.5 a match is no longer one-to-one, so counting pairs would be wrong.
    with pytest.raises(ValueError, match="0.5"):
        match_counts(np.ones((1, 1)), np.array([0.3, 0.5]))


# --- properties -------------------------------------------------------------------------------

label_images = hnp.arrays(
    np.int32,
    st.tuples(st.integers(1, 8), st.integers(1, 8)),
    elements=st.integers(0, 6),
)


@st.composite
def label_pairs(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray]:
    a = draw(label_images)
    b = draw(hnp.arrays(np.int32, a.shape, elements=st.integers(0, 6)))
    return a, b


@settings(max_examples=60, deadline=None)
@given(label_images)
def test_prediction_equal_to_truth_scores_one(x: np.ndarray) -> None:
    assert score_image(x, x).score == 1.0


@settings(max_examples=60, deadline=None)
@given(label_pairs())
def test_iou_matrix_matches_pair_loop_and_is_symmetric(pair: tuple[np.ndarray, np.ndarray]) -> None:
    a, b = pair
    m = iou_matrix(a, b)
    ids_a, ids_b = np.unique(a[a > 0]), np.unique(b[b > 0])
    slow = np.array(
        [[((a == i) & (b == j)).sum() / ((a == i) | (b == j)).sum() for j in ids_b] for i in ids_a]
    ).reshape(len(ids_a), len(ids_b))
    np.testing.assert_allclose(m, slow)
    np.testing.assert_array_equal(m, iou_matrix(b, a).T)


@settings(max_examples=60, deadline=None)
@given(label_pairs())
def test_score_in_range_symmetric_and_counts_a_one_to_one_matching(
    pair: tuple[np.ndarray, np.ndarray],
) -> None:
    a, b = pair
    s = score_image(a, b)
    assert 0.0 <= s.score <= 1.0
    assert s.score == pytest.approx(score_image(b, a).score)  # fp and fn swap, ratio unchanged
    m = iou_matrix(a, b)
    for t, (tp, fp, fn) in zip(IOU_THRESHOLDS, s.counts, strict=True):
        # The largest one-to-one matching of pairs above t has as many pairs as there are pairs.
        rows, cols = linear_sum_assignment(m > t, maximize=True)
        assert tp == (m > t)[rows, cols].sum()
        assert (tp + fp, tp + fn) == (s.n_pred, s.n_true)


@settings(max_examples=60, deadline=None)
# Offsets up to 10**12 push labels past the pixel count, onto the sorting path of the IoU.
@given(label_pairs(), st.permutations(range(1, 7)), st.integers(0, 10**12))
def test_relabelling_changes_nothing(
    pair: tuple[np.ndarray, np.ndarray], perm: list[int], offset: int
) -> None:
    a, b = pair
    lut = np.array([0, *(p * 7 + offset for p in perm)])  # injective, keeps 0 as background
    s, r = score_image(a, b), score_image(lut[a], b)
    np.testing.assert_array_equal(s.counts, r.counts)
    assert s.score == r.score


# --- summaries --------------------------------------------------------------------------------

# Image 1: A found, B missed -> tp 1, fp 0, fn 1 at every t; precision 1/2; score 1/2.
IMAGE_1 = (TWO, np.where(TWO == 1, 1, 0))
# Image 2: BAR found with IoU 0.6 plus two invented nuclei (rows 0 and 2, disjoint from BAR).
# t = 0.5, 0.55: tp 1, fp 2, fn 0 -> 1/3; t >= 0.6: tp 0, fp 3, fn 1 -> 0; score 2/30 = 1/15.
IMAGE_2 = (BAR, BAR_3 + _labels((3, 7), (5, 0, 1, 6, 7), (6, 2, 3, 6, 7)))


def _two_scores() -> list[InstanceScore]:
    return [score_image(*IMAGE_1), score_image(*IMAGE_2)]


def test_summarize_instances_golden() -> None:
    # At 0.5: tp 1 + 1 = 2, fp 0 + 2 = 2, fn 1 + 0 = 1. At 0.75: tp 1, fp 0 + 3, fn 1 + 1.
    expected = {
        "dsb_map": (1 / 2 + 1 / 15) / 2,  # 17/60
        "ap@0.5": (1 / 2 + 1 / 3) / 2,  # 5/12
        "ap@0.75": (1 / 2 + 0) / 2,
        "precision@0.5": 2 / 4,
        "recall@0.5": 2 / 3,
        "f1@0.5": 4 / (4 + 2 + 1),
        "precision@0.75": 1 / 4,
        "recall@0.75": 1 / 3,
        "f1@0.75": 2 / (2 + 3 + 2),
        "n_true_instances": 3,
        "n_pred_instances": 4,
    }
    summary = summarize_instances(_two_scores())
    assert summary == pytest.approx(expected)
    assert all(type(v) in (float, int) for v in summary.values())
    assert type(summary["n_true_instances"]) is int


def test_summarize_instances_empty_convention() -> None:
    # No instance anywhere: every ratio is 0/0 -> 1. Truth but no prediction: tp = fp = 0 -> 0.
    empty = np.zeros((3, 3), int)
    assert summarize_instances([score_image(empty, empty)])["precision@0.5"] == 1.0
    missed = summarize_instances([score_image(TWO, np.zeros_like(TWO))])
    assert (missed["precision@0.5"], missed["recall@0.5"], missed["f1@0.75"]) == (0.0, 0.0, 0.0)


def test_summarize_instances_refuses_bad_input() -> None:
    with pytest.raises(ValueError, match="no image"):
        summarize_instances([])
    with pytest.raises(ValueError, match="same thresholds"):
        summarize_instances(_two_scores(), thresholds=np.array([0.5, 0.75]))
    three = np.array([0.5, 0.6, 0.7])
    with pytest.raises(ValueError, match="0.75"):
        summarize_instances([score_image(*IMAGE_1, thresholds=three)], thresholds=three)


def test_per_threshold_table_golden() -> None:
    table = per_threshold_table(_two_scores())
    assert [row["threshold"] for row in table] == IOU_THRESHOLDS.tolist()
    # 0.5: summed (1 + 1, 0 + 2, 1 + 0), mean precision (1/2 + 1/3) / 2.
    assert table[0] == pytest.approx(
        {"threshold": 0.5, "tp": 2, "fp": 2, "fn": 1, "precision": 5 / 12}
    )
    # 0.95: (1 + 0, 0 + 3, 1 + 1), (1/2 + 0) / 2.
    assert table[-1] == pytest.approx(
        {"threshold": 0.95, "tp": 1, "fp": 3, "fn": 2, "precision": 1 / 4}
    )
    mean = np.mean([row["precision"] for row in table])
    assert mean == pytest.approx(summarize_instances(_two_scores())["dsb_map"])


# --- viz.instance_overlay ---------------------------------------------------------------------


def test_instance_overlay_colours() -> None:
    # Three 3x3 instances on a flat grey 100: matched (cols 0-2), missed (4-6), invented (8-10).
    truth = _labels((5, 12), (1, 1, 4, 0, 3), (2, 1, 4, 4, 7))
    pred = _labels((5, 12), (7, 1, 4, 0, 3), (3, 1, 4, 8, 11))
    out = instance_overlay(np.full((5, 12), 100, np.uint8), truth, pred, alpha=0.4)
    assert out.shape == (5, 12, 3)
    assert out.dtype == np.uint8
    # Centres are interior: 0.6 * 100 + 0.4 * colour, rounded.
    assert out[2, 1].tolist() == [60, 123, 106]  # TP (0, 158, 115): 60 + 63.2, 60 + 46
    assert out[2, 5].tolist() == [60, 106, 131]  # FN (0, 114, 178): 60 + 45.6, 60 + 71.2
    assert out[2, 9].tolist() == [145, 98, 60]  # FP (213, 94, 0): 60 + 85.2, 60 + 37.6
    assert out[1, 1].tolist() == list(TP_COLOR)  # outlines in full colour
    assert out[1, 5].tolist() == list(FN_COLOR)
    assert out[3, 10].tolist() == list(FP_COLOR)
    assert out[0, 0].tolist() == [100, 100, 100]  # background untouched


def test_instance_overlay_keeps_touching_instances_apart_and_respects_threshold() -> None:
    # Two touching 3x3 predictions, both exact: the shared border pixels are outlined.
    truth = _labels((3, 6), (1, 0, 3, 0, 3), (2, 0, 3, 3, 6))
    out = instance_overlay(np.zeros((3, 6), np.uint8), truth, truth, alpha=0.5)
    assert out[1, 2].tolist() == list(TP_COLOR)
    assert out[1, 3].tolist() == list(TP_COLOR)
    assert out[1, 1].tolist() == np.rint(np.array(TP_COLOR) * 0.5).tolist()
    # IoU 0.6 matches at 0.5 but not at 0.6 (strict >): then the truth shows as missed.
    black = np.zeros((3, 7), np.uint8)
    at_half = instance_overlay(black, BAR, BAR_3, iou_threshold=0.5)
    at_six = instance_overlay(black, BAR, BAR_3, iou_threshold=0.6)
    assert at_half[1, 0].tolist() == list(TP_COLOR)
    assert at_half[1, 4].tolist() == [0, 0, 0]  # matched truth shows through its prediction
    assert at_six[1, 4].tolist() == list(FN_COLOR)


def test_instance_overlay_refuses_mismatched_labels() -> None:
    with pytest.raises(ValueError, match="true_labels"):
        instance_overlay(np.zeros((4, 4)), TWO, TWO)
