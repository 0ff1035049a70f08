"""Object-level scores of label images: the Kaggle Data Science Bowl 2018 metric.

Pixel metrics (:mod:`seglab.objectives.metrics`) cannot tell one nucleus from two touching
ones; these scores count objects. Inputs are label images of shape ``(H, W)``: 0 is background
and every other value is one instance (values need not be consecutive, so ``{5, 9}`` is two
instances).

Two stages, as in :mod:`seglab.objectives.metrics`:

1. :func:`iou_matrix` gives the IoU of every (true, predicted) pair and :func:`match_counts`
   turns it into ``(tp, fp, fn)`` at each IoU threshold of ``IOU_THRESHOLDS`` (0.50 to 0.95 in
   steps of 0.05). A true and a predicted object match when their IoU is strictly greater than
   the threshold.
2. :func:`score_image` scores one image: at each threshold ``tp / (tp + fp + fn)`` (Kaggle calls
   it "precision"), averaged over the thresholds. :func:`summarize_instances` and
   :func:`per_threshold_table` summarize a set of images.

Empty convention (ours: the Kaggle stage-1 scorer never met an image without nuclei): an image
with neither true nor predicted instances scores 1 at every threshold (nothing to find, nothing
wrongly found); an image where exactly one side is empty scores 0. Likewise any ratio of
:func:`summarize_instances` whose denominator is 0 is 1.0 if ``tp + fp + fn == 0``, else 0.0.

Example:
    >>> scores = [score_image(truth, pred) for truth, pred in zip(truths, preds)]
    >>> summarize_instances(scores)["dsb_map"]
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

# np.round: np.arange accumulates error (0.6000000000000001), and with a strict ">" an IoU of
# exactly 3/5 must sit on the threshold 0.6, not below it.
IOU_THRESHOLDS = np.round(np.arange(0.5, 1.0, 0.05), 2)


def _check_labels(name: str, labels: np.ndarray) -> np.ndarray:
    a = np.asarray(labels)
    if a.ndim != 2:
        raise ValueError(f"{name} must be a label image of shape (H, W), got {a.shape}")
    if a.dtype != np.bool_ and not np.issubdtype(a.dtype, np.integer):
        raise ValueError(
            f"{name} must hold integer instance labels, got dtype {a.dtype}; "
            "label a binary mask first (skimage.measure.label)"
        )
    if a.size and a.min() < 0:
        raise ValueError(f"{name} has negative labels (min {a.min()}); 0 is background")
    return a


def _compact(labels: np.ndarray) -> tuple[np.ndarray, int]:
    """Flat indices ``0..n`` (0 background, then instances by increasing label) and ``n``."""
    flat = labels.ravel()
    if flat.size == 0:
        return np.zeros(0, np.intp), 0
    if int(flat.max()) <= 2 * flat.size:
        # A lookup table costs one pass over the pixels; np.unique sorts them (~50x slower on a
        # 1024x1024 image). Label values far above the pixel count (hashes, say) take the sort.
        flat = flat.astype(np.intp)
        present = np.bincount(flat) > 0
        present[0] = False
        lut = np.cumsum(present)
        return lut[flat], int(lut[-1])
    ids, inverse = np.unique(flat, return_inverse=True)
    if ids[0] != 0:
        return inverse + 1, ids.size  # no background pixel: keep index 0 for it anyway
    return inverse, ids.size - 1


def iou_matrix(true_labels: np.ndarray, pred_labels: np.ndarray) -> np.ndarray:
    """IoU of every pair of a true and a predicted instance, from one joint histogram.

    Args:
        true_labels: Ground-truth label image, 0 background.
        pred_labels: Predicted label image of the same shape.

    Returns:
        float64 IoU; row ``i`` is the ``i``-th smallest nonzero true label, column ``j`` the
        ``j``-th smallest nonzero predicted label.

    Shape:
        true_labels, pred_labels: ``(H, W)``; output: ``(n_true, n_pred)``.

    Raises:
        ValueError: If the shapes differ, or a label image is not 2-D, non-negative integers.
    """
    t = _check_labels("true_labels", true_labels)
    p = _check_labels("pred_labels", pred_labels)
    if t.shape != p.shape:
        raise ValueError(f"true_labels shape {t.shape} must equal pred_labels shape {p.shape}")
    ti, n_true = _compact(t)
    pi, n_pred = _compact(p)
    # Row 0 / column 0 of the joint histogram are background, so its margins are the areas.
    joint = np.bincount(ti * (n_pred + 1) + pi, minlength=(n_true + 1) * (n_pred + 1))
    joint = joint.reshape(n_true + 1, n_pred + 1)
    inter = joint[1:, 1:].astype(np.float64)
    union = joint[1:, :].sum(axis=1)[:, None] + joint[:, 1:].sum(axis=0)[None, :] - inter
    return inter / union  # union >= area of an instance >= 1 pixel


def match_counts(iou: np.ndarray, thresholds: np.ndarray = IOU_THRESHOLDS) -> np.ndarray:
    """True positives, false positives and false negatives at each IoU threshold.

    Args:
        iou: IoU of every (true, predicted) pair, from :func:`iou_matrix`.
        thresholds: IoU thresholds, each in ``[0.5, 1]``; a pair matches when IoU > threshold.

    Returns:
        int64 counts with columns ``(tp, fp, fn)``, one row per threshold.

    Shape:
        iou: ``(n_true, n_pred)``; output: ``(T, 3)``.

    Raises:
        ValueError: If ``iou`` is not 2-D or a threshold is outside ``[0.5, 1]``.
    """
    m = np.asarray(iou, np.float64)
    t = np.asarray(thresholds, np.float64).reshape(-1)
    if m.ndim != 2:
        raise ValueError(f"iou must have shape (n_true, n_pred), got {m.shape}")
    if t.size == 0 or not np.all((t >= 0.5) & (t <= 1.0)):
        raise ValueError(f"thresholds must be a non-empty list in [0.5, 1], got {t.tolist()}")
    # No assignment step needed: IoU(a, b) > 0.5 means a and b share more than half of b's
    # pixels (and of a's). Instances of one label image are disjoint, so no two of them can both
    # hold more than half of the same object: above 0.5 every match is one-to-one.
    n_true, n_pred = m.shape
    candidates = m[m > t.min()]
    tp = (candidates[None, :] > t[:, None]).sum(axis=1)
    return np.stack([tp, n_pred - tp, n_true - tp], axis=1).astype(np.int64)


@dataclass
class InstanceScore:
    """Scores of one image. ``precision`` follows the empty convention of the module."""

    counts: np.ndarray  # (T, 3) int: tp, fp, fn at each threshold
    precision: np.ndarray  # (T,) tp / (tp + fp + fn) at each threshold
    score: float  # mean of precision over the thresholds: the DSB 2018 image score
    n_true: int
    n_pred: int


def _ratio(numerator: ArrayLike, denominator: ArrayLike, errors: ArrayLike) -> np.ndarray:
    """``numerator / denominator``, or the empty convention where the denominator is 0."""
    num = np.asarray(numerator, np.float64)
    den = np.asarray(denominator, np.float64)
    out = np.where(np.asarray(errors) == 0, 1.0, 0.0)  # errors = tp + fp + fn
    return np.divide(num, den, out=out, where=den > 0)


def score_image(
    true_labels: np.ndarray, pred_labels: np.ndarray, thresholds: np.ndarray = IOU_THRESHOLDS
) -> InstanceScore:
    """Scores a predicted label image against the ground truth (DSB 2018 image score).

    Args:
        true_labels: Ground-truth label image, 0 background.
        pred_labels: Predicted label image of the same shape.
        thresholds: IoU thresholds, each in ``[0.5, 1]``.

    Returns:
        Counts, precision per threshold and their mean ``score`` in ``[0, 1]``.

    Shape:
        true_labels, pred_labels: ``(H, W)``.
    """
    iou = iou_matrix(true_labels, pred_labels)
    counts = match_counts(iou, thresholds)
    tp, fp, fn = counts.T
    precision = _ratio(tp, tp + fp + fn, tp + fp + fn)
    return InstanceScore(
        counts=counts,
        precision=precision,
        score=float(precision.mean()),
        n_true=int(iou.shape[0]),
        n_pred=int(iou.shape[1]),
    )


def _stack(scores: list[InstanceScore], thresholds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-image counts ``(N, T, 3)`` and precisions ``(N, T)``, checked against thresholds."""
    if not scores:
        raise ValueError("no image scores to summarize")
    n = len(thresholds)
    for i, s in enumerate(scores):
        if s.counts.shape != (n, 3):
            raise ValueError(
                f"score {i} has counts of shape {s.counts.shape}, expected ({n}, 3): "
                "score and summarize with the same thresholds"
            )
    return np.stack([s.counts for s in scores]), np.stack([s.precision for s in scores])


def _index_of(thresholds: np.ndarray, value: float) -> int:
    hits = np.flatnonzero(np.isclose(thresholds, value))
    if hits.size == 0:
        raise ValueError(f"threshold {value} is not among {np.asarray(thresholds).tolist()}")
    return int(hits[0])


def summarize_instances(
    scores: list[InstanceScore], thresholds: np.ndarray = IOU_THRESHOLDS
) -> dict[str, float]:
    """Summarizes the instance scores of a set of images.

    Args:
        scores: One :func:`score_image` result per image, all with ``thresholds``.
        thresholds: The thresholds the scores were computed with; must include 0.5 and 0.75.

    Returns:
        Plain numbers, ready for JSON: ``dsb_map`` (mean image score), ``ap@0.5`` and ``ap@0.75``
        (mean image precision at that threshold); ``precision@t``, ``recall@t`` and ``f1@t`` for
        t in 0.5 and 0.75 from the tp, fp, fn summed over images (empty convention of the
        module); ``n_true_instances`` and ``n_pred_instances``.

    Raises:
        ValueError: If ``scores`` is empty or does not match ``thresholds``.
    """
    t = np.asarray(thresholds, np.float64).reshape(-1)
    counts, precision = _stack(scores, t)
    total = counts.sum(axis=0)  # (T, 3)
    summary: dict[str, float] = {"dsb_map": float(np.mean([s.score for s in scores]))}
    for value, name in ((0.5, "0.5"), (0.75, "0.75")):
        k = _index_of(t, value)
        tp, fp, fn = (int(c) for c in total[k])
        errors = tp + fp + fn
        summary[f"ap@{name}"] = float(precision[:, k].mean())
        summary[f"precision@{name}"] = float(_ratio(tp, tp + fp, errors))
        summary[f"recall@{name}"] = float(_ratio(tp, tp + fn, errors))
        summary[f"f1@{name}"] = float(_ratio(2 * tp, 2 * tp + fp + fn, errors))
    summary["n_true_instances"] = sum(s.n_true for s in scores)
    summary["n_pred_instances"] = sum(s.n_pred for s in scores)
    return summary


def per_threshold_table(
    scores: list[InstanceScore], thresholds: np.ndarray = IOU_THRESHOLDS
) -> list[dict[str, float]]:
    """One row per threshold: ``threshold``, summed ``tp``, ``fp``, ``fn`` and ``precision``.

    Args:
        scores: One :func:`score_image` result per image, all with ``thresholds``.
        thresholds: The thresholds the scores were computed with.

    Returns:
        Rows in the order of ``thresholds``; ``precision`` is the mean over images of
        ``tp / (tp + fp + fn)``, so the mean of that column is ``dsb_map``.
    """
    t = np.asarray(thresholds, np.float64).reshape(-1)
    counts, precision = _stack(scores, t)
    total = counts.sum(axis=0)
    mean_precision = precision.mean(axis=0)
    return [
        {
            "threshold": float(t[k]),
            "tp": int(total[k, 0]),
            "fp": int(total[k, 1]),
            "fn": int(total[k, 2]),
            "precision": float(mean_precision[k]),
        }
        for k in range(len(t))
    ]
