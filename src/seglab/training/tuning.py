"""Threshold tuning on the validation set: the threshold with the highest F1 (= Dice) wins."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import numpy as np

from seglab.inference.base import BasePredictor as Predictor
from seglab.objectives.metrics import confusion_counts, dice, summarize


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
    # One image at a time (validation sets can be larger than memory): its confusion counts at
    # every threshold, compared in float64 as the predictor thresholds.
    per_image = np.stack(
        [
            np.concatenate(
                [
                    confusion_counts(probabilities >= np.float64(t), np.asarray(s.mask, bool))
                    for t in thresholds
                ]
            )
            for s in samples
            for probabilities in [predictor.predict_proba(s.image)]
        ]
    )  # (N, T, 4)
    scores = dice(per_image.sum(0))
    # Among equal scores prefer the threshold nearest 0.5: it generalises best.
    order = np.lexsort((np.abs(thresholds - 0.5), -scores))
    best = float(thresholds[order[0]])
    if figure is not None:
        from seglab.viz import plot_threshold

        plot_threshold(thresholds, scores, best, figure)
    return best, summarize(per_image[:, order[0]])
