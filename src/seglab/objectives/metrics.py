"""Binary segmentation metrics from confusion counts.

Two stages, as in segmentation_models.pytorch:

1. Count true positives, false positives, false negatives and true negatives per image:
   :func:`confusion_counts` (numpy, for evaluation) or :func:`confusion_counts_torch` (stays on
   the tensor's device, for accumulating during training). Columns are ``(tp, fp, fn, tn)``.
2. Score the counts with :func:`dice`, :func:`iou`, :func:`precision`, :func:`recall`,
   :func:`f1` or :func:`pixel_accuracy`. Each scores every row of a ``(..., 4)`` array, so the
   same function gives per-image scores (one row per image) and dataset-level "micro" scores
   (counts summed over images first). :func:`summarize` returns both.

Empty convention: when a ratio's denominator is 0, the score is 1.0 if the image has neither
predicted nor true foreground (``tp + fp + fn == 0``) and 0.0 otherwise. An empty prediction of
an empty mask therefore scores 1 on every metric, while a false alarm on an empty mask (or a
missed mask) scores 0 on dice, iou, precision, recall and f1.

Example:
    >>> counts = confusion_counts(pred_masks, true_masks)  # (N, 4)
    >>> summarize(counts)["dice"]
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import Tensor


def _as_masks(name: str, array: np.ndarray) -> np.ndarray:
    """Returns a boolean ``(N, pixels)`` view of a 0/1 mask of shape ``(H, W)`` or ``(N, ...)``."""
    a = np.asarray(array)
    if a.ndim < 2:
        raise ValueError(f"{name} must have shape (H, W) or (N, H, W), got {a.shape}")
    if a.dtype != np.bool_:
        bad = a[(a != 0) & (a != 1)]
        if bad.size:
            raise ValueError(
                f"{name} must be a binary mask (bool or 0/1 values), found {bad[0].item()!r}; "
                "threshold probabilities (or divide 0/255 masks by 255) first"
            )
        a = a.astype(bool)
    return a.reshape(1 if a.ndim == 2 else len(a), -1)


def confusion_counts(pred: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Per-image confusion counts of binary masks.

    Args:
        pred: Predicted mask, bool or 0/1 values.
        target: Ground-truth mask, bool or 0/1 values.

    Returns:
        int64 counts with columns ``(tp, fp, fn, tn)``, one row per image.

    Shape:
        pred, target: ``(N, H, W)`` (any ``(N, *spatial)``) or a single ``(H, W)`` image;
        output: ``(N, 4)``, ``(1, 4)`` for a single image.
    """
    if np.shape(pred) != np.shape(target):
        raise ValueError(f"pred shape {np.shape(pred)} must equal target shape {np.shape(target)}")
    p, t = _as_masks("pred", pred), _as_masks("target", target)
    tp = np.count_nonzero(p & t, axis=1)
    fp = np.count_nonzero(p, axis=1) - tp
    fn = np.count_nonzero(t, axis=1) - tp
    tn = p.shape[1] - tp - fp - fn
    return np.stack([tp, fp, fn, tn], axis=1).astype(np.int64)


def confusion_counts_torch(pred: Tensor, target: Tensor) -> Tensor:
    """Per-image confusion counts computed on the tensors' device, without a host sync.

    Nonzero values count as foreground; threshold probabilities before calling.

    Args:
        pred: Predicted mask (bool, or 0/1 of any dtype).
        target: Ground-truth mask (bool, or 0/1 of any dtype).

    Returns:
        int64 counts with columns ``(tp, fp, fn, tn)``, one row per image.

    Shape:
        pred, target: ``(N, 1, H, W)`` or ``(N, H, W)`` (any ``(N, *spatial)``); output: ``(N, 4)``.
    """
    if pred.shape != target.shape or pred.ndim < 3:
        raise ValueError(
            "pred and target must have the same shape (N, 1, H, W) or (N, H, W), "
            f"got {tuple(pred.shape)} and {tuple(target.shape)}"
        )
    p = pred.reshape(len(pred), -1).bool()
    t = target.reshape(len(target), -1).bool()
    tp = (p & t).sum(dim=1)
    fp = p.sum(dim=1) - tp
    fn = t.sum(dim=1) - tp
    tn = p.shape[1] - tp - fp - fn
    return torch.stack([tp, fp, fn, tn], dim=1)


# --- scores from counts -----------------------------------------------------------------------


def _columns(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    c = np.asarray(counts)
    if c.shape[-1:] != (4,):
        raise ValueError(
            f"counts must have shape (..., 4) with columns (tp, fp, fn, tn), got {c.shape}"
        )
    c = c.astype(np.float64)
    return c[..., 0], c[..., 1], c[..., 2], c[..., 3]


def _ratio(numerator: np.ndarray, denominator: np.ndarray, errors: np.ndarray) -> np.ndarray:
    """``numerator / denominator``, or the empty convention where the denominator is 0."""
    out = np.where(errors == 0, 1.0, 0.0)  # errors = tp + fp + fn, foreground seen by anyone
    return np.divide(numerator, denominator, out=out, where=denominator > 0)


def dice(counts: np.ndarray) -> np.ndarray:
    """Dice coefficient ``2 tp / (2 tp + fp + fn)`` of each row; 1.0 when ``tp + fp + fn == 0``.

    Args:
        counts: Confusion counts ``(tp, fp, fn, tn)``.

    Shape:
        counts: ``(..., 4)``; output: ``(...)``.
    """
    tp, fp, fn, _ = _columns(counts)
    return _ratio(2 * tp, 2 * tp + fp + fn, tp + fp + fn)


def iou(counts: np.ndarray) -> np.ndarray:
    """Intersection over union ``tp / (tp + fp + fn)`` of each row; 1.0 when both masks are empty.

    Args:
        counts: Confusion counts ``(tp, fp, fn, tn)``.

    Shape:
        counts: ``(..., 4)``; output: ``(...)``.
    """
    tp, fp, fn, _ = _columns(counts)
    return _ratio(tp, tp + fp + fn, tp + fp + fn)


def precision(counts: np.ndarray) -> np.ndarray:
    """Precision ``tp / (tp + fp)`` of each row.

    With no predicted foreground: 1.0 if there is no true foreground either, else 0.0.

    Args:
        counts: Confusion counts ``(tp, fp, fn, tn)``.

    Shape:
        counts: ``(..., 4)``; output: ``(...)``.
    """
    tp, fp, fn, _ = _columns(counts)
    return _ratio(tp, tp + fp, tp + fp + fn)


def recall(counts: np.ndarray) -> np.ndarray:
    """Recall ``tp / (tp + fn)`` of each row.

    With no true foreground: 1.0 if there is no predicted foreground either, else 0.0.

    Args:
        counts: Confusion counts ``(tp, fp, fn, tn)``.

    Shape:
        counts: ``(..., 4)``; output: ``(...)``.
    """
    tp, fp, fn, _ = _columns(counts)
    return _ratio(tp, tp + fn, tp + fp + fn)


def f1(counts: np.ndarray) -> np.ndarray:
    """F1 score of each row, identical to :func:`dice` (same empty convention).

    For binary masks the harmonic mean of precision and recall, 2 P R / (P + R), simplifies to
    ``2 tp / (2 tp + fp + fn)``: F1 and the Dice coefficient are the same number.

    Args:
        counts: Confusion counts ``(tp, fp, fn, tn)``.

    Shape:
        counts: ``(..., 4)``; output: ``(...)``.
    """
    return dice(counts)


def pixel_accuracy(counts: np.ndarray) -> np.ndarray:
    """Fraction of correctly classified pixels ``(tp + tn) / (tp + fp + fn + tn)`` of each row.

    An image with no pixels scores 1.0 (the empty convention).

    Args:
        counts: Confusion counts ``(tp, fp, fn, tn)``.

    Shape:
        counts: ``(..., 4)``; output: ``(...)``.
    """
    tp, fp, fn, tn = _columns(counts)
    return _ratio(tp + tn, tp + fp + fn + tn, tp + fp + fn)


METRICS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "dice": dice,
    "iou": iou,
    "precision": precision,
    "recall": recall,
    "f1": f1,
    "pixel_accuracy": pixel_accuracy,
}


def summarize(counts: np.ndarray) -> dict[str, float]:
    """Dataset-level and mean per-image scores of a set of images.

    Args:
        counts: Per-image confusion counts from :func:`confusion_counts`.

    Returns:
        ``{name: micro score}`` for every metric of ``METRICS`` (counts summed over the images,
        then scored), followed by ``{name + "_per_image": mean of the per-image scores}``; plain
        floats, ready for JSON.

    Shape:
        counts: ``(N, 4)`` with N >= 1.
    """
    c = np.asarray(counts)
    if c.ndim != 2 or c.shape[1] != 4 or len(c) == 0:
        raise ValueError(f"counts must have shape (N, 4) with N >= 1, got {c.shape}")
    total = c.sum(axis=0)
    summary = {name: float(score(total)) for name, score in METRICS.items()}
    summary |= {f"{name}_per_image": float(score(c).mean()) for name, score in METRICS.items()}
    return summary


def threshold_sweep(
    probabilities: np.ndarray, target: np.ndarray, thresholds: np.ndarray
) -> np.ndarray:
    """Dataset-level (micro) F1, equal to Dice, of the masks ``probabilities >= t`` for each t.

    One pass over the pixels whatever the number of thresholds: each pixel is binned by how many
    thresholds it reaches, and cumulative sums of the bins give the counts at every threshold.
    The result is exact; values are compared in float64.

    Args:
        probabilities: Foreground probabilities in [0, 1].
        target: Ground-truth mask, bool or 0/1 values.
        thresholds: Thresholds to try, in any order.

    Returns:
        F1 at each threshold, in the order of ``thresholds`` (empty convention of :func:`dice`).

    Shape:
        probabilities, target: ``(N, H, W)`` or ``(H, W)``; thresholds: ``(T,)``; output: ``(T,)``.
    """
    probs = np.asarray(probabilities)
    if probs.shape != np.shape(target):
        raise ValueError(
            f"probabilities shape {probs.shape} must equal target shape {np.shape(target)}"
        )
    truth = _as_masks("target", target)
    probs = probs.reshape(truth.shape)
    t = np.asarray(thresholds, dtype=np.float64)
    if t.ndim != 1 or t.size == 0:
        raise ValueError(f"thresholds must be a non-empty 1-D array, got shape {t.shape}")
    order = np.argsort(t)
    sorted_t = t[order]
    n = len(t)
    # bins[k] = pixels reaching exactly k of the sorted thresholds; a pixel is predicted positive
    # at the j-th smallest threshold iff it falls in a bin k > j.
    positives, negatives = np.zeros(n + 1, np.int64), np.zeros(n + 1, np.int64)
    for p, y in zip(probs, truth, strict=True):  # one image at a time bounds the memory used
        if np.isnan(p).any():
            raise ValueError("probabilities contain NaN")
        bins = np.searchsorted(sorted_t, p.astype(np.float64), side="right")
        positives += np.bincount(bins[y], minlength=n + 1)
        negatives += np.bincount(bins[~y], minlength=n + 1)
    tp = np.cumsum(positives[::-1])[::-1][1:]
    fp = np.cumsum(negatives[::-1])[::-1][1:]
    fn = positives.sum() - tp
    scores = np.empty(n)
    scores[order] = dice(np.stack([tp, fp, fn, np.zeros_like(tp)], axis=1))  # tn not needed
    return scores
