"""Multi-class segmentation metrics from a confusion matrix.

Two stages, as the binary :mod:`seglab.objectives.metrics`:

1. Accumulate a ``(C, C)`` confusion matrix indexed ``[true, predicted]`` from label maps with
   :func:`confusion_matrix` (numpy, for evaluation) or :func:`confusion_matrix_torch` (on the
   tensors' device, for accumulating during training). Pixels whose truth is ``ignore_index``
   (255 by default, Cityscapes' void) are dropped. Matrices of several batches simply add up.
2. Score it: :func:`class_scores` gives per-class IoU, Dice (= F1), precision, recall and support;
   :func:`summarize_multiclass` gives their means over classes ("macro" scores, mIoU), the pixel
   accuracy and a JSON-ready per-class table.

For class c: ``tp = M[c, c]``, ``fp = Σ_t M[t, c] - tp`` (column), ``fn = Σ_p M[c, p] - tp`` (row).

Empty convention: a class absent from both the truth and the prediction has no score (NaN, ``None``
in JSON) and is left out of the means, since nothing can be said about it; a class predicted but
absent from the truth scores 0 on every metric (it has errors and no hit), and so does a class
present but never predicted. This is the usual mIoU of Cityscapes-style benchmarks.

Example:
    >>> matrix = confusion_matrix(pred_labels, true_labels, num_classes=8)  # doctest: +SKIP
    >>> summarize_multiclass(matrix, class_names)["miou"]  # doctest: +SKIP
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from seglab.objectives import IGNORE_INDEX

if TYPE_CHECKING:
    from torch import Tensor

SCORE_NAMES = ("iou", "dice", "f1", "precision", "recall")


def _check_num_classes(num_classes: object) -> int:
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"num_classes must be an integer >= 1, got {num_classes!r}")
    return num_classes


def _range_error(name: str, value: int, num_classes: int, ignore_index: int | None) -> ValueError:
    return ValueError(
        f"{name} holds class index {value}, outside [0, {num_classes}) and not ignore_index "
        f"({ignore_index}); check num_classes and the label mapping"
    )


def confusion_matrix(
    pred: np.ndarray,
    target: np.ndarray,
    num_classes: int,
    ignore_index: int | None = IGNORE_INDEX,
) -> np.ndarray:
    """Counts pixels by (true class, predicted class), ignored pixels left out.

    Args:
        pred: Predicted class indices (the argmax of the logits), any integer dtype.
        target: True class indices, same shape; pixels equal to ``ignore_index`` are dropped.
        num_classes: C; every other value must lie in ``[0, C)``.
        ignore_index: Truth value of pixels that do not count (``None``: every pixel counts).

    Returns:
        int64 matrix ``M`` with ``M[t, p]`` pixels of true class t predicted as p; its total is the
        number of non-ignored pixels.

    Raises:
        ValueError: If the shapes differ, the dtypes are not integer or a value is out of range.

    Shape:
        pred, target: any shape, e.g. ``(H, W)`` or ``(N, H, W)``; output: ``(C, C)``.

    Example:
        >>> confusion_matrix(np.array([0, 1, 1]), np.array([0, 1, 255]), num_classes=2)
        array([[1, 0],
               [0, 1]])
    """
    c = _check_num_classes(num_classes)
    p, t = np.asarray(pred), np.asarray(target)
    if p.shape != t.shape:
        raise ValueError(f"pred shape {p.shape} must equal target shape {t.shape}")
    for name, array in (("pred", p), ("target", t)):
        if not (np.issubdtype(array.dtype, np.integer) or array.dtype == np.bool_):
            raise ValueError(f"{name} must hold integer class indices, got dtype {array.dtype}")
    p, t = p.astype(np.int64).ravel(), t.astype(np.int64).ravel()
    valid = np.ones(t.shape, bool) if ignore_index is None else t != ignore_index
    for name, array in (("target", t), ("pred", p)):
        bad = valid & ((array < 0) | (array >= c))
        if bad.any():
            raise _range_error(name, int(array[bad][0]), c, ignore_index)
    # One bincount over t * C + p; ignored pixels go to an extra bin that is cut off.
    flat = np.where(valid, t * c + p, c * c)
    return np.bincount(flat, minlength=c * c + 1)[: c * c].reshape(c, c)


def confusion_matrix_torch(
    pred: Tensor,
    target: Tensor,
    num_classes: int,
    ignore_index: int | None = IGNORE_INDEX,
) -> Tensor:
    """:func:`confusion_matrix` computed on the tensors' device (int64, ``(C, C)``).

    The range check reads one boolean back to the host; the counting itself stays on the device.

    Args:
        pred: Predicted class indices, e.g. ``logits.argmax(1)``.
        target: True class indices, same shape.
        num_classes: C.
        ignore_index: Truth value of pixels that do not count (``None``: every pixel counts).

    Returns:
        int64 tensor ``M`` on the inputs' device, ``M[t, p]`` as in :func:`confusion_matrix`.

    Raises:
        ValueError: If the shapes differ, the dtypes are not integer or a value is out of range.
    """
    import torch

    c = _check_num_classes(num_classes)
    if pred.shape != target.shape:
        raise ValueError(
            f"pred shape {tuple(pred.shape)} must equal target shape {tuple(target.shape)}"
        )
    for name, tensor in (("pred", pred), ("target", target)):
        if tensor.is_floating_point() or tensor.is_complex():
            raise ValueError(f"{name} must hold integer class indices, got dtype {tensor.dtype}")
    p, t = pred.reshape(-1).long(), target.reshape(-1).long()
    valid = torch.ones_like(t, dtype=torch.bool) if ignore_index is None else t != ignore_index
    bad = valid & ((t < 0) | (t >= c) | (p < 0) | (p >= c))
    if bad.any():
        first = int(bad.nonzero()[0, 0])
        true_value, pred_value = int(t[first]), int(p[first])
        if 0 <= true_value < c:
            raise _range_error("pred", pred_value, c, ignore_index)
        raise _range_error("target", true_value, c, ignore_index)
    flat = torch.where(valid, t * c + p, c * c)
    return torch.bincount(flat, minlength=c * c + 1)[: c * c].reshape(c, c)


def _check_matrix(matrix: np.ndarray) -> np.ndarray:
    m = np.asarray(matrix)
    if m.ndim != 2 or m.shape[0] != m.shape[1] or m.shape[0] == 0:
        raise ValueError(f"confusion matrix must be square (C, C) with C >= 1, got {m.shape}")
    if not np.issubdtype(m.dtype, np.number) or (m < 0).any():
        raise ValueError("confusion matrix must hold counts >= 0")
    return m.astype(np.float64)


def class_scores(matrix: np.ndarray) -> dict[str, np.ndarray]:
    """Per-class scores of a confusion matrix ``[true, predicted]``.

    ``iou = tp / (tp + fp + fn)``, ``dice = f1 = 2 tp / (2 tp + fp + fn)``,
    ``precision = tp / (tp + fp)``, ``recall = tp / (tp + fn)``; NaN for a class with
    ``tp + fp + fn = 0`` (absent from truth and prediction), and 0 for a zero denominator otherwise
    (see the module's empty convention).

    Args:
        matrix: Confusion matrix from :func:`confusion_matrix` (counts; a sum of several is fine).

    Returns:
        ``{"iou", "dice", "f1", "precision", "recall"}``: float64 arrays of shape ``(C,)``, and
        ``"support"``: int64 number of true pixels of each class (the row sums).

    Raises:
        ValueError: If the matrix is not square or holds negative values.

    Example:
        >>> class_scores(np.array([[3, 1], [0, 0]]))["iou"]  # class 1: predicted once, never true
        array([0.75, 0.  ])
    """
    m = _check_matrix(matrix)
    tp = np.diag(m)
    fp = m.sum(axis=0) - tp
    fn = m.sum(axis=1) - tp
    seen = tp + fp + fn > 0

    def ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
        out = np.where(seen, 0.0, np.nan)
        return np.divide(numerator, denominator, out=out, where=denominator > 0)

    dice = ratio(2 * tp, 2 * tp + fp + fn)
    return {
        "iou": ratio(tp, tp + fp + fn),
        "dice": dice,
        "f1": dice.copy(),  # 2PR / (P + R) reduces to 2 tp / (2 tp + fp + fn)
        "precision": ratio(tp, tp + fp),
        "recall": ratio(tp, tp + fn),
        "support": np.asarray(matrix).sum(axis=1).astype(np.int64),
    }


def _json_float(value: float) -> float | None:
    return None if math.isnan(value) else float(value)


def summarize_multiclass(matrix: np.ndarray, class_names: Sequence[str]) -> dict[str, object]:
    """Mean scores over classes, pixel accuracy and a per-class table, ready for JSON.

    Args:
        matrix: Confusion matrix ``[true, predicted]`` of the whole evaluated set.
        class_names: One unique name per class, in class-index order.

    Returns:
        ``miou`` and ``iou`` (the same number), ``dice``, ``f1``, ``precision``, ``recall``: means
        over the classes that have a score (present in the truth or the prediction);
        ``pixel_accuracy``: correct pixels / all counted pixels; ``per_class``:
        ``{name: {iou, dice, f1, precision, recall, support}}``. Values are floats (``support`` an
        int); NaN is written ``None``, also for the means of an empty matrix.

    Raises:
        ValueError: If the matrix is not a square count matrix or the names do not match it.

    Example:
        >>> summary = summarize_multiclass(np.array([[3, 1], [0, 4]]), ["road", "car"])
        >>> summary["miou"], summary["per_class"]["car"]["recall"]
        (0.775, 1.0)
    """
    m = _check_matrix(matrix)
    names = list(class_names)
    if len(names) != len(m) or len(set(names)) != len(names):
        raise ValueError(
            f"class_names must hold {len(m)} unique names (one per matrix row), got {names}"
        )
    scores = class_scores(matrix)
    summary: dict[str, object] = {}
    for key in SCORE_NAMES:
        values = scores[key][~np.isnan(scores[key])]
        summary[key] = float(values.mean()) if values.size else None
    summary = {"miou": summary["iou"], **summary}
    total = m.sum()
    summary["pixel_accuracy"] = float(np.trace(m) / total) if total > 0 else None
    summary["per_class"] = {
        name: {
            **{key: _json_float(scores[key][i]) for key in SCORE_NAMES},
            "support": int(scores["support"][i]),
        }
        for i, name in enumerate(names)
    }
    return summary
