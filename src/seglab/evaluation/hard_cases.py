"""The hardest cases of a binary evaluation, drawn as image | truth | prediction | errors.

The raw image sits beside the masks, so the errors panel can be tinted strongly without hiding
what the model saw. Only the few lowest-scoring images are kept while scoring (their masks, not
every prediction), and only they are drawn.

Example:
    >>> cases = HardestCases(12)
    >>> cases.offer(0.41, "img_007 — dice 0.410", image, truth, prediction)
    >>> strips = cases.write(Path("eval/cases"))
"""

from __future__ import annotations

import heapq
import math
from pathlib import Path

import numpy as np

PANEL_LABELS = ("image", "truth", "prediction", "errors")
MAX_PANEL_SIDE = 384  # larger images are subsampled: the report shows a panel ~270 px wide
ERRORS_ALPHA = 0.8  # strong: the raw image is shown next to it
GUTTER_SHARE = 0.04  # white gap between panels, as a share of a panel's width (~1% of the row)


def case_strip(image: np.ndarray, truth: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """The four panels of one image side by side, as ``uint8`` RGB.

    Panels: the image (:func:`seglab.viz.to_display`), the truth and the prediction tinted
    over it (:func:`seglab.viz.mask_overlay`), and the errors (:func:`seglab.viz.confusion_image`:
    true positives, false positives, false negatives). Images larger than ``MAX_PANEL_SIDE``
    are subsampled by a whole factor.

    Args:
        image: Image accepted by ``to_display``, shape ``(H, W[, C])``.
        truth: Ground-truth mask ``(H, W)``; nonzero is foreground.
        pred: Predicted mask of the same shape.

    Returns:
        ``(h, 4 * w + 3 * gutter, 3)`` with ``(h, w)`` the (subsampled) image size.
    """
    from seglab.viz import confusion_image, mask_overlay, to_display

    panels = [
        to_display(image),
        mask_overlay(image, truth),
        mask_overlay(image, pred),
        confusion_image(image, truth, pred, alpha=ERRORS_ALPHA),
    ]
    step = max(1, math.ceil(max(panels[0].shape[:2]) / MAX_PANEL_SIDE))
    panels = [panel[::step, ::step] for panel in panels]
    height, width = panels[0].shape[:2]
    gutter = np.full((height, max(2, round(GUTTER_SHARE * width)), 3), 255, np.uint8)
    row = [panels[0]]
    for panel in panels[1:]:
        row += [gutter, panel]
    return np.concatenate(row, axis=1)


class HardestCases:
    """Keeps the ``size`` lowest-scoring images seen, with their truth and prediction.

    Args:
        size: How many cases to keep.
    """

    def __init__(self, size: int) -> None:
        self.size = size
        # A max-heap on the score (negated), so the easiest kept case is the first to go; the
        # running index breaks ties without comparing arrays.
        self._heap: list[tuple[float, int, str, str, np.ndarray, np.ndarray, np.ndarray]] = []
        self._seen = 0

    def offer(
        self,
        score: float,
        name: str,
        caption: str,
        image: np.ndarray,
        truth: np.ndarray,
        pred: np.ndarray,
    ) -> None:
        """Keeps this image if it is among the ``size`` lowest scores so far (NaN: last)."""
        key = -score if math.isfinite(score) else -math.inf
        self._seen += 1
        item = (key, -self._seen, name, caption, image, np.asarray(truth), np.asarray(pred))
        if len(self._heap) < self.size:
            heapq.heappush(self._heap, item)
        elif self.size and key > self._heap[0][0]:
            heapq.heapreplace(self._heap, item)

    def write(self, folder: Path) -> list[tuple[str, Path]]:
        """Writes ``<folder>/<name>.png`` for each kept case; ``(caption, path)`` pairs, lowest
        score first."""
        from seglab.viz import save_png

        written = []
        for _, _, name, caption, image, truth, pred in sorted(self._heap, reverse=True):
            path = folder / f"{name}.png"
            save_png(path, case_strip(image, truth, pred))
            written.append((caption, path))
        return written
