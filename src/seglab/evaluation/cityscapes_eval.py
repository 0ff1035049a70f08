"""Cityscapes mIoU the way the benchmark's ``evalPixelLevelSemanticLabeling`` computes it.

The official rules, on one confusion matrix ``M[true, predicted]`` over label ids 0..33 summed
over all images (`label_id_confusion`):

- Every pixel is counted, but the rows of ground-truth labels that are ``ignore_in_eval`` (void,
  parking, rail track, guard rail, bridge, tunnel, polegroup, caravan, trailer) never enter a
  score: a prediction on such a pixel is neither right nor wrong.
- Class IoU (the 19 classes road .. bicycle): ``tp = M[c, c]``; ``fn`` = the rest of row c, also
  the pixels predicted as an ignored label; ``fp`` = column c over the rows of the other
  evaluated classes. A class with ``tp + fp + fn = 0`` (absent from the truth and never predicted
  on an evaluated pixel) has no score (NaN) and is left out of the mean.
- Category IoU (the 7 categories flat .. vehicle; void has no evaluated label): the same with the
  evaluated labels of a category taken together, so confusing car with truck is a hit.
- mIoU and category mIoU: means over the scores that are not NaN.

The instance-level iIoU (`instance_counts`, `cityscapes_iiou`) reads the ``*_instanceIds.png``
files (``label id * 1000 + k`` for each instance of the 8 classes person .. bicycle): every
instance's pixels weigh the class's mean instance size over the instance's size, so that small
objects count as much as large ones; ``fp`` stays the unweighted count of the IoU.

seglab's own multi-class evaluation gives the same class mIoU for a train-id model, because its
ground truth drops the void pixels and its predictions are always evaluated classes. A category
model's ground truth maps parking, guard rail, caravan ... to their category, which the benchmark
ignores; `benchmark_mapping` is the mapping to read the ground truth with for evaluation, and
`scores_from_class_matrix` turns seglab's class confusion matrix into the official scores.

Example:
    >>> truth = np.array([[7, 7], [26, 0]])  # road, road, car, unlabeled
    >>> pred = np.array([[7, 8], [26, 7]])
    >>> scores = cityscapes_scores(label_id_confusion(pred, truth))
    >>> scores.class_iou["road"], scores.miou
    (0.5, 0.5)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from seglab.data.cityscapes import CATEGORIES, CITYSCAPES_LABELS
from seglab.data.labels import CITYSCAPES_KINDS, VOID_MODES, LabelMapping, cityscapes_mapping

_ROWS = sorted((label for label in CITYSCAPES_LABELS if label.id >= 0), key=lambda r: r.id)
NUM_LABEL_IDS = len(_ROWS)  # 34: the values of a *_gtFine_labelIds.png file
_EVALUATED = np.array([not row.ignore_in_eval for row in _ROWS])
_CATEGORY_OF = np.array([row.category_id for row in _ROWS])
CLASS_NAMES = tuple(row.name for row in _ROWS if not row.ignore_in_eval)
_IN_CATEGORY = _CATEGORY_OF[:, None] == np.arange(len(CATEGORIES))[None, :]  # (34, 8)
_GROUPS = _EVALUATED[:, None] & _IN_CATEGORY  # the evaluated labels of each category
_SCORED_CATEGORIES = _GROUPS.any(axis=0)  # all but void, which has no evaluated label
CATEGORY_NAMES = tuple(name for (name, _), scored in zip(CATEGORIES, _SCORED_CATEGORIES) if scored)
# Mean instance size in pixels of each instance class over the training set, the weights of the
# iIoU (the benchmark's constants, `avgClassSize` in evalPixelLevelSemanticLabeling).
MEAN_INSTANCE_SIZE = {
    "person": 3462.4756337644,
    "rider": 3930.4788056518,
    "car": 12794.0202738185,
    "truck": 27855.1264367816,
    "bus": 35732.1511111111,
    "caravan": 36771.8241758242,
    "trailer": 16926.9763313609,
    "train": 67583.7075812274,
    "motorcycle": 6298.7200839748,
    "bicycle": 4672.3249222261,
}
_HAS_INSTANCES = np.array([row.has_instances for row in _ROWS])
_INSTANCE_CLASS = _HAS_INSTANCES & _EVALUATED
_MEAN_SIZE = np.array([MEAN_INSTANCE_SIZE.get(row.name, 0.0) for row in _ROWS])
# Categories whose labels all have instances (human, vehicle); their iIoU counts every label,
# the ignored caravan and trailer too.
_ALL_INSTANCES = np.array(
    [
        all(row.has_instances for row in _ROWS if row.category_id == k)
        for k in range(len(CATEGORIES))
    ]
)
_INSTANCE_GROUPS = _IN_CATEGORY & _ALL_INSTANCES


@dataclass(frozen=True)
class CityscapesScores:
    """Official scores of one confusion matrix (IoUs, or iIoUs from `cityscapes_iiou`).

    Attributes:
        class_iou: IoU of each of the 19 classes by name (NaN: absent from truth and prediction);
            None when the predictions are categories, which say nothing about classes.
        miou: Mean of the class IoUs that are not NaN (NaN when none, or without class scores).
        category_iou: IoU of each of the 7 categories flat .. vehicle by name.
        category_miou: Mean of the category IoUs that are not NaN.
    """

    class_iou: dict[str, float] | None
    miou: float
    category_iou: dict[str, float]
    category_miou: float

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready copy: NaN written None, the class entries left out without classes."""
        out: dict[str, Any] = {}
        if self.class_iou is not None:
            out |= {"miou": _json(self.miou), "class_iou": _json_dict(self.class_iou)}
        out["category_miou"] = _json(self.category_miou)
        out["category_iou"] = _json_dict(self.category_iou)
        return out


def label_id_confusion(pred: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Counts pixels by (true label id, predicted label id), every pixel included.

    Args:
        pred: Predicted label ids 0..33 (not train ids), any integer dtype.
        truth: True label ids 0..33 (a ``*_gtFine_labelIds.png``), same shape.

    Returns:
        ``(34, 34)`` int64 matrix ``M[true, predicted]``; matrices of several images add up.

    Raises:
        ValueError: The shapes differ, or a value is not a label id (as the official script,
            which stops on an unknown id).
    """
    p, t = np.asarray(pred), np.asarray(truth)
    if p.shape != t.shape:
        raise ValueError(f"prediction shape {p.shape} must equal ground truth shape {t.shape}")
    for name, array in (("prediction", p), ("ground truth", t)):
        if not np.issubdtype(array.dtype, np.integer):
            raise ValueError(f"{name} must hold integer label ids, got dtype {array.dtype}")
        if array.size and (array.min() < 0 or array.max() >= NUM_LABEL_IDS):
            bad = array[(array < 0) | (array >= NUM_LABEL_IDS)].ravel()[0]
            raise ValueError(
                f"{name} holds {bad}, not a Cityscapes label id 0..{NUM_LABEL_IDS - 1}; "
                "predictions must be label ids (convert train ids with to_label_ids)"
            )
    flat = t.astype(np.int64).ravel() * NUM_LABEL_IDS + p.astype(np.int64).ravel()
    counts = np.bincount(flat, minlength=NUM_LABEL_IDS**2)
    return counts.reshape(NUM_LABEL_IDS, NUM_LABEL_IDS)


def cityscapes_scores(matrix: np.ndarray, with_classes: bool = True) -> CityscapesScores:
    """The official class and category IoUs of a label-id confusion matrix.

    Args:
        matrix: ``(34, 34)`` counts from `label_id_confusion` (summed over the images).
        with_classes: False for predictions that are categories: class scores are left out.

    Returns:
        The scores; see the module's rules.

    Raises:
        ValueError: The matrix is not ``(34, 34)`` counts.
    """
    m = np.asarray(matrix)
    if m.shape != (NUM_LABEL_IDS, NUM_LABEL_IDS) or (m < 0).any():
        raise ValueError(f"expected a (34, 34) count matrix over label ids, got shape {m.shape}")
    m = m.astype(np.int64)
    evaluated_rows = m[_EVALUATED]
    tp = np.diag(m)
    fp = evaluated_rows.sum(axis=0) - np.where(_EVALUATED, tp, 0)
    fn = m.sum(axis=1) - tp
    class_iou = _iou(tp, fp, fn)[_EVALUATED]
    # Rows and columns of the evaluated labels summed by category; fn keeps the whole row.
    by_rows = _GROUPS.T.astype(np.int64) @ m  # (8, 34): true category x predicted label
    grouped = by_rows @ _GROUPS.astype(np.int64)  # (8, 8)
    cat_tp = np.diag(grouped)
    cat_iou = _iou(cat_tp, grouped.sum(axis=0) - cat_tp, by_rows.sum(axis=1) - cat_tp)
    category_iou = cat_iou[_SCORED_CATEGORIES]
    categories = dict(zip(CATEGORY_NAMES, category_iou.tolist()))
    classes = dict(zip(CLASS_NAMES, class_iou.tolist())) if with_classes else None
    return CityscapesScores(
        class_iou=classes,
        miou=_nan_mean(class_iou) if with_classes else math.nan,
        category_iou=categories,
        category_miou=_nan_mean(category_iou),
    )


@dataclass(frozen=True)
class InstanceCounts:
    """Instance-weighted true positives and false negatives, summed over images.

    Attributes:
        class_tp, class_fn: ``(34,)`` weighted counts by label id.
        category_tp, category_fn: ``(8,)`` weighted counts by category id.
    """

    class_tp: np.ndarray
    class_fn: np.ndarray
    category_tp: np.ndarray
    category_fn: np.ndarray

    def __add__(self, other: InstanceCounts) -> InstanceCounts:
        return InstanceCounts(
            self.class_tp + other.class_tp,
            self.class_fn + other.class_fn,
            self.category_tp + other.category_tp,
            self.category_fn + other.category_fn,
        )


def instance_counts(pred: np.ndarray, instances: np.ndarray) -> InstanceCounts:
    """The instance-weighted hits and misses of one image.

    Args:
        pred: ``(H, W)`` predicted label ids.
        instances: ``(H, W)`` the ``*_instanceIds.png`` values; those above 1000 are instances
            (``label id * 1000 + k``), of an evaluated instance class or ignored.

    Returns:
        The counts; add those of several images with ``+``.

    Raises:
        ValueError: The shapes differ, or an instance's label id is not an instance class.
    """
    p, ids = np.asarray(pred, np.int64).ravel(), np.asarray(instances, np.int64).ravel()
    if np.shape(pred) != np.shape(instances):
        raise ValueError(f"prediction shape {np.shape(pred)} must equal {np.shape(instances)}")
    labels = ids // 1000
    known = np.clip(labels, 0, NUM_LABEL_IDS - 1)
    if ((ids > 1000) & ((labels >= NUM_LABEL_IDS) | (_EVALUATED & ~_HAS_INSTANCES)[known])).any():
        raise ValueError("instance ids must be label id * 1000 + k for an instance class")
    keep = (ids > 1000) & _INSTANCE_CLASS[known]
    found, index = np.unique(ids[keep], return_inverse=True)
    label, pixel_pred = found // 1000, p[keep]
    size = np.bincount(index)
    weight = _MEAN_SIZE[label] / size
    hits = np.bincount(index, weights=pixel_pred == label[index], minlength=found.size)
    category = _CATEGORY_OF[label]
    in_group = _INSTANCE_GROUPS[np.clip(pixel_pred, 0, NUM_LABEL_IDS - 1), category[index]]
    group_hits = np.bincount(index, weights=in_group, minlength=found.size)
    group_weight = np.where(_INSTANCE_GROUPS.any(axis=0)[category], weight, 0.0)

    def total(values: np.ndarray, at: np.ndarray, length: int) -> np.ndarray:
        return np.bincount(at, weights=values, minlength=length)

    return InstanceCounts(
        total(hits * weight, label, NUM_LABEL_IDS),
        total((size - hits) * weight, label, NUM_LABEL_IDS),
        total(group_hits * group_weight, category, len(CATEGORIES)),
        total((size - group_hits) * group_weight, category, len(CATEGORIES)),
    )


def cityscapes_iiou(matrix: np.ndarray, counts: InstanceCounts) -> CityscapesScores:
    """The official instance-level scores: iIoU of the 8 instance classes and of human and
    vehicle, in `CityscapesScores` fields (``class_iou`` holds the class iIoUs, ``miou`` their
    mean).

    Args:
        matrix: ``(34, 34)`` label-id confusion matrix of the same images (for ``fp``).
        counts: Their summed `instance_counts`.
    """
    m = np.asarray(matrix, np.int64)
    fp = m[_EVALUATED].sum(axis=0) - np.where(_EVALUATED, np.diag(m), 0)
    class_iiou = _iou(counts.class_tp, fp, counts.class_fn)[_INSTANCE_CLASS]
    groups = _INSTANCE_GROUPS.astype(np.int64)
    other_rows = _EVALUATED[:, None] & ~_IN_CATEGORY
    category_fp = (other_rows.astype(np.int64).T @ m @ groups).diagonal()
    scored = _INSTANCE_GROUPS.any(axis=0)
    category_iiou = _iou(counts.category_tp, category_fp, counts.category_fn)[scored]
    names = [row.name for row in _ROWS if _INSTANCE_CLASS[row.id]]
    return CityscapesScores(
        class_iou=dict(zip(names, class_iiou.tolist())),
        miou=_nan_mean(class_iiou),
        category_iou=dict(
            zip([n for (n, _), s in zip(CATEGORIES, scored) if s], category_iiou.tolist())
        ),
        category_miou=_nan_mean(category_iiou),
    )


def cityscapes_kind(mapping: LabelMapping) -> tuple[str, str] | None:
    """``(kind, void)`` of a mapping made by `cityscapes_mapping` (e.g. a bundle's), else None."""
    for kind in CITYSCAPES_KINDS:
        for void in VOID_MODES:
            try:
                known = cityscapes_mapping(kind, void, mapping.ignore_index)  # type: ignore[arg-type]
            except ValueError:  # an ignore_index that is one of this kind's class indices
                continue
            if (
                known.names == mapping.names
                and known.void_index == mapping.void_index
                and np.array_equal(known.lut[:NUM_LABEL_IDS], mapping.lut[:NUM_LABEL_IDS])
            ):
                return kind, void
    return None


def benchmark_mapping(mapping: LabelMapping) -> LabelMapping:
    """The mapping to read Cityscapes ground truth with when scoring a model of `mapping`.

    Labels the benchmark ignores in evaluation become void (ignored, or the void class), so that
    the model's confusion matrix follows the official rules; for train ids nothing changes, for
    categories parking, rail track, guard rail, bridge, tunnel, polegroup, caravan and trailer
    leave their category. A mapping not made by `cityscapes_mapping` is returned as it is.
    """
    if cityscapes_kind(mapping) is None:
        return mapping
    lut = mapping.lut.copy()
    lut[np.flatnonzero(~_EVALUATED)] = mapping.fill_index
    return LabelMapping(
        mapping.names, mapping.palette, lut, mapping.ignore_index, mapping.known, mapping.void_index
    )


def class_label_ids(mapping: LabelMapping) -> np.ndarray:
    """The label id that stands for each class of a Cityscapes mapping in the official script.

    A train id becomes its label id (road -> 7); a category its first evaluated label (flat ->
    road, 7: any of its evaluated labels scores the same at category level); the void class
    becomes unlabeled (0).

    Returns:
        ``(C,)`` int64 label ids, indexed by class.

    Raises:
        ValueError: `mapping` is not a Cityscapes mapping.
    """
    if cityscapes_kind(mapping) is None:
        raise ValueError(f"not a Cityscapes label mapping: {mapping!r}")
    lut = mapping.lut[:NUM_LABEL_IDS]
    ids = []
    for index in range(mapping.num_classes):
        members = np.flatnonzero(lut == index)
        evaluated = members[_EVALUATED[members]]
        ids.append(int(evaluated[0] if evaluated.size else members[0]))
    return np.array(ids, np.int64)


def to_label_ids(classes: np.ndarray, mapping: LabelMapping) -> np.ndarray:
    """Predicted class indices (train ids or categories) as label ids (`class_label_ids`).

    Raises:
        ValueError: `mapping` is not a Cityscapes mapping, or a value is not a class index.
    """
    ids = class_label_ids(mapping)
    classes = np.asarray(classes)
    if classes.size and (classes.min() < 0 or classes.max() >= ids.size):
        raise ValueError(f"predictions must hold class indices 0..{ids.size - 1}")
    return ids[classes]


def scores_from_class_matrix(matrix: np.ndarray, mapping: LabelMapping) -> CityscapesScores:
    """The official scores of seglab's ``(C, C)`` class confusion matrix.

    Exact when the ground truth was read with ``benchmark_mapping(mapping)``: each class then
    stands for its label id (`class_label_ids`) in truth and prediction alike. Class scores are
    given for train-id models only.

    Raises:
        ValueError: `mapping` is not a Cityscapes mapping or does not match the matrix.
    """
    kind = cityscapes_kind(mapping)
    m = np.asarray(matrix, np.int64)
    if kind is None or m.shape != (mapping.num_classes, mapping.num_classes):
        raise ValueError(f"expected a {mapping.num_classes}-class matrix of a Cityscapes mapping")
    ids = class_label_ids(mapping)
    labels = np.zeros((NUM_LABEL_IDS, NUM_LABEL_IDS), np.int64)
    np.add.at(labels, (ids[:, None], ids[None, :]), m)
    return cityscapes_scores(labels, with_classes=kind[0] == "train_ids")


def _iou(tp: np.ndarray, fp: np.ndarray, fn: np.ndarray) -> np.ndarray:
    denominator = tp + fp + fn
    out = np.full(tp.shape, np.nan)
    return np.divide(tp, denominator, out=out, where=denominator > 0)


def _nan_mean(values: np.ndarray) -> float:
    kept = values[~np.isnan(values)]
    return float(kept.mean()) if kept.size else math.nan


def _json(value: float) -> float | None:
    return None if math.isnan(value) else float(value)


def _json_dict(scores: dict[str, float]) -> dict[str, float | None]:
    return {name: _json(value) for name, value in scores.items()}
