"""Threshold tuning on the validation set: the threshold with the highest F1 (= Dice) wins."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import numpy as np

from seglab.inference.base import BasePredictor as Predictor
from seglab.objectives.metrics import confusion_counts, summarize, threshold_sweep


class _Labelled(Protocol):
    id: str
    image: np.ndarray
    mask: np.ndarray | None


def threshold_grid(start: float, stop: float, step: float) -> np.ndarray:
    """Thresholds from `start` to `stop` inclusive, rounded so 0.05 steps print cleanly."""
    count = round((stop - start) / step) + 1
    return np.round(start + step * np.arange(count), 6)


def tune_threshold(
    predictor: Predictor,
    samples: list[_Labelled],
    threshold_range: tuple[float, float, float],
    figure: Path | None = None,
) -> tuple[float, dict[str, float]]:
    """Pick the threshold with the best dataset-level F1 on `samples` (ties: closest to 0.5).

    Returns:
        The threshold and the metrics of `samples` at that threshold.
    """
    thresholds = threshold_grid(*threshold_range)
    probabilities = [predictor.predict_proba(s.image) for s in samples]
    truths = [np.asarray(s.mask, dtype=bool) for s in samples]
    flat_p = np.concatenate([p.ravel() for p in probabilities])[None, None]
    flat_t = np.concatenate([t.ravel() for t in truths])[None, None]
    scores = threshold_sweep(flat_p, flat_t, thresholds)
    # Among equal scores prefer the threshold nearest 0.5: it generalises best.
    order = np.lexsort((np.abs(thresholds - 0.5), -scores))
    best = float(thresholds[order[0]])
    if figure is not None:
        from seglab.viz import plot_threshold

        plot_threshold(thresholds, scores, best, figure)
    # float64 comparison, exactly as threshold_sweep compares.
    counts = np.concatenate(
        [
            confusion_counts(p >= np.float64(best), t)
            for p, t in zip(probabilities, truths, strict=True)
        ]
    )
    return best, summarize(counts)
