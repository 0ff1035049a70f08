"""Pictures for people: display conversion, mask and confusion overlays, training/threshold plots.

Everything here returns or writes ``uint8`` RGB and never needs a display: plots are drawn on a
``matplotlib`` Agg canvas without ``pyplot``, so they run on headless servers and leave the
backend of an interactive session (a notebook, say) untouched.

Example:
    >>> rgb = confusion_image(image, truth=mask, pred=probs > 0.5)
    >>> save_png("out/confusion/img_001.png", rgb)
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from seglab.atomic_files import atomic_write_bytes
from seglab.png import encode_png

if TYPE_CHECKING:
    from matplotlib.figure import Figure

# Okabe–Ito palette: distinguishable under the common forms of colour blindness.
TP_COLOR = (0, 158, 115)  # bluish green
FP_COLOR = (213, 94, 0)  # vermillion
FN_COLOR = (0, 114, 178)  # blue
MASK_COLOR = (230, 159, 0)  # orange

Color = tuple[int, int, int]


def to_display(image: np.ndarray) -> np.ndarray:
    """Converts an image of any supported dtype to ``uint8`` RGB for display.

    ``uint8`` is kept as is and ``bool`` maps to 0/255. Other dtypes (``uint16``, float, ...)
    are stretched linearly between their 1st and 99th percentile, jointly over channels so that
    colours keep their balance; when those coincide (a mostly flat image) the min and max are used,
    and a constant image gives zeros. NaN shows as black.

    Args:
        image: Array of shape ``(H, W)``, ``(H, W, 1)`` or ``(H, W, 3)``.

    Returns:
        A new ``uint8`` array of shape ``(H, W, 3)``.

    Raises:
        ValueError: If the shape is not one of the above.
    """
    image = np.asarray(image)
    if image.ndim == 2:
        image = image[..., None]
    if image.ndim != 3 or image.shape[2] not in (1, 3):
        raise ValueError(
            f"expected an image of shape (H, W), (H, W, 1) or (H, W, 3), got {image.shape}"
        )
    if image.dtype == np.uint8:
        out = image.copy()
    elif image.dtype == np.bool_:
        out = image.astype(np.uint8) * 255
    else:
        out = _stretch(image.astype(np.float64))
    return np.repeat(out, 3, axis=2) if out.shape[2] == 1 else out


def _stretch(values: np.ndarray) -> np.ndarray:
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return np.zeros(values.shape, np.uint8)
    lo, hi = np.percentile(finite, [1.0, 99.0])
    if hi <= lo:
        lo, hi = finite.min(), finite.max()
    if hi <= lo:
        return np.zeros(values.shape, np.uint8)
    values = np.nan_to_num(values, nan=lo, posinf=hi, neginf=lo)
    return np.rint(np.clip((values - lo) / (hi - lo), 0.0, 1.0) * 255.0).astype(np.uint8)


def _as_mask(mask: np.ndarray, shape: tuple[int, ...], name: str) -> np.ndarray:
    mask = np.asarray(mask)
    if mask.ndim == 3 and mask.shape[2] == 1:
        mask = mask[..., 0]
    if mask.shape != shape:
        raise ValueError(f"{name} has shape {mask.shape}, expected {shape} to match the image")
    return mask > 0


def _check_alpha(alpha: float) -> None:
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")


def _blend(rgb: np.ndarray, where: np.ndarray, color: Color, alpha: float) -> None:
    rgb[where] = rgb[where] * (1.0 - alpha) + np.asarray(color, np.float64) * alpha


def _outline(mask: np.ndarray) -> np.ndarray:
    # Edge padding: the image border is not a mask boundary, so objects cut by it stay open
    # instead of being framed, and a full mask has no outline at all.
    p = np.pad(mask, 1, mode="edge")
    interior = p[:-2, 1:-1] & p[2:, 1:-1] & p[1:-1, :-2] & p[1:-1, 2:]
    return mask & ~interior


def mask_overlay(
    image: np.ndarray, mask: np.ndarray, color: Color = MASK_COLOR, alpha: float = 0.45
) -> np.ndarray:
    """Tints the mask over the image and draws its outline in full colour.

    Args:
        image: Image accepted by :func:`to_display`, shape ``(H, W[, C])``.
        mask: Mask of shape ``(H, W)`` or ``(H, W, 1)``; nonzero is foreground.
        color: RGB colour of the tint and the outline.
        alpha: Opacity of the tint, in ``[0, 1]``.

    Returns:
        ``uint8`` RGB of shape ``(H, W, 3)``; pixels outside the mask equal ``to_display(image)``.
    """
    _check_alpha(alpha)
    base = to_display(image)
    fg = _as_mask(mask, base.shape[:2], "mask")
    rgb = base.astype(np.float64)
    _blend(rgb, fg, color, alpha)
    rgb[_outline(fg)] = color
    return np.rint(rgb).astype(np.uint8)


def confusion_image(
    image: np.ndarray, truth: np.ndarray, pred: np.ndarray, alpha: float = 0.55
) -> np.ndarray:
    """Shows where a prediction agrees with the ground truth, pixel by pixel.

    True positives are tinted with ``TP_COLOR``, false positives with ``FP_COLOR`` and false
    negatives with ``FN_COLOR``; true negatives keep the image. Each tinted pixel is
    ``(1 - alpha) * image + alpha * colour``, rounded.

    Args:
        image: Image accepted by :func:`to_display`, shape ``(H, W[, C])``.
        truth: Ground-truth mask ``(H, W)`` or ``(H, W, 1)``; nonzero is foreground.
        pred: Binary prediction of the same shape (threshold probabilities first).
        alpha: Opacity of the tint, in ``[0, 1]``.

    Returns:
        ``uint8`` RGB of shape ``(H, W, 3)``.
    """
    _check_alpha(alpha)
    base = to_display(image)
    t = _as_mask(truth, base.shape[:2], "truth")
    p = _as_mask(pred, base.shape[:2], "pred")
    rgb = base.astype(np.float64)
    _blend(rgb, t & p, TP_COLOR, alpha)
    _blend(rgb, ~t & p, FP_COLOR, alpha)
    _blend(rgb, t & ~p, FN_COLOR, alpha)
    return np.rint(rgb).astype(np.uint8)


def save_png(path: str | Path, rgb: np.ndarray) -> None:
    """Writes a ``uint8`` image ``(H, W)``, ``(H, W, 3)`` or ``(H, W, 4)`` as PNG, atomically."""
    rgb = np.asarray(rgb)
    if rgb.dtype != np.uint8 or not (rgb.ndim == 2 or (rgb.ndim == 3 and rgb.shape[2] in (3, 4))):
        raise ValueError(
            f"expected uint8 (H, W[, 3|4]), got {rgb.dtype} {rgb.shape}; see to_display"
        )
    atomic_write_bytes(path, encode_png(rgb))


def new_figure(width: float, height: float) -> Figure:
    """A matplotlib figure of ``width`` x ``height`` inches, drawn off-screen."""
    # Figure + explicit Agg canvas instead of pyplot: no global backend switch, no figure registry
    # to leak, nothing that needs a display.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=110, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def save_figure(fig: Figure, path: str | Path) -> None:
    """Writes the figure as a PNG, atomically."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    atomic_write_bytes(path, buf.getvalue())


def _column(history: Sequence[dict[str, float]], key: str) -> np.ndarray:
    values = [row.get(key) for row in history]
    return np.array([math.nan if v is None else float(v) for v in values], np.float64)


def plot_curves(history: list[dict[str, float]], path: str | Path, metric: str = "dice") -> Figure:
    """Plots loss and a metric (Dice by default) per epoch, train against validation, to a PNG.

    The metric's axis spans 0–1; the loss's (no fixed range) is fitted to the data and says so.

    Keys missing from a row, ``None`` and NaN are skipped, so a series logged every few epochs
    still draws as one line and an absent one (say ``train_dice``) is left out. The epoch of the
    lowest ``val_loss`` is marked with a dotted vertical line on both panels.

    Args:
        history: One row per epoch with ``epoch`` (the row index if absent) and any of
            ``train_loss``, ``val_loss``, ``train_<metric>``, ``val_<metric>``; other keys are
            ignored.
        path: Destination PNG.
        metric: The second panel's metric, in [0, 1], e.g. "dice" or "accuracy".

    Returns:
        The figure drawn (loss panel first).

    Raises:
        ValueError: If ``history`` is empty.
    """
    from matplotlib.ticker import MaxNLocator

    if not history:
        raise ValueError("history is empty: nothing to plot")
    epochs = np.array([row.get("epoch", i) for i, row in enumerate(history)], np.float64)
    val_loss = _column(history, "val_loss")
    best = int(np.nanargmin(val_loss)) if np.isfinite(val_loss).any() else None

    fig = new_figure(10.0, 4.0)
    # Shared x: a panel with nothing logged (no Dice, say) still spans the epochs of the other.
    axes = fig.subplots(1, 2, sharex=True)
    panels = (("loss", "Loss"), (metric, metric.replace("_", " ").capitalize()))
    for ax, (key, label) in zip(axes, panels, strict=True):
        ax.set(title=label, xlabel="Epoch", ylabel=f"{label} (axis fitted)")
        if key == metric:
            ax.set(ylim=(0.0, 1.0), ylabel=label)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(True, alpha=0.3)
        drawn = False
        for split, marker in (("train", "o"), ("val", "s")):
            y = _column(history, f"{split}_{key}")
            ok = np.isfinite(y) & np.isfinite(epochs)
            if ok.any():
                ax.plot(epochs[ok], y[ok], marker=marker, markersize=4, label=split)
                drawn = True
        if not drawn:
            ax.text(
                0.5, 0.5, f"no {label} logged", ha="center", va="center", transform=ax.transAxes
            )
            continue
        if best is not None:
            best_label = f"best val_loss (epoch {epochs[best]:g})"
            ax.axvline(epochs[best], color="0.35", linestyle=":", label=best_label)
        ax.legend()
    fig.suptitle("Training curves")
    save_figure(fig, path)
    return fig


def plot_threshold(
    thresholds: np.ndarray,
    scores: np.ndarray,
    best: float,
    path: str | Path,
    metric_name: str = "F1 (= Dice)",
) -> Figure:
    """Plots a score against the probability threshold and marks the chosen threshold.

    The score's axis spans 0–1: a curve that is flat near its top looks flat.

    Args:
        thresholds: Thresholds tried, shape ``(T,)``, in any order.
        scores: Score at each threshold, shape ``(T,)``; NaN entries are skipped.
        best: The chosen threshold; its score is read off the curve (interpolated between grid
            points if it is not one of them).
        path: Destination PNG.
        metric_name: Name of the score for the axis label and the annotation.

    Returns:
        The figure drawn.

    Raises:
        ValueError: If the arrays are not 1-D of equal length or hold no finite score.
    """
    t = np.asarray(thresholds, np.float64)
    s = np.asarray(scores, np.float64)
    if t.ndim != 1 or t.shape != s.shape:
        raise ValueError(f"thresholds {t.shape} and scores {s.shape} must be 1-D of equal length")
    ok = np.isfinite(t) & np.isfinite(s)
    if not ok.any():
        raise ValueError("no finite score to plot")
    order = np.argsort(t[ok])
    t, s = t[ok][order], s[ok][order]
    best_score = float(np.interp(best, t, s))

    fig = new_figure(6.5, 4.0)
    ax = fig.subplots()
    ax.plot(t, s, marker="o", markersize=3)
    ax.axvline(best, color="0.35", linestyle="--")
    ax.plot([best], [best_score], marker="o", markersize=8, color="black", zorder=3)
    # The curve peaks at the chosen threshold, so the foot of the line is free; the label goes on
    # the side with more room so it never runs off the axes.
    right = best <= (t[0] + t[-1]) / 2
    ax.annotate(
        f"threshold = {best:.3f}\n{metric_name} = {best_score:.4f}",
        xy=(best, 0.05),
        xycoords=("data", "axes fraction"),
        xytext=(8 if right else -8, 0),
        textcoords="offset points",
        ha="left" if right else "right",
        va="bottom",
        bbox={"boxstyle": "round", "facecolor": "white", "alpha": 0.9},
    )
    ax.set(title=f"{metric_name} vs threshold", xlabel="Probability threshold", ylabel=metric_name)
    ax.set_ylim(0.0, 1.0)
    ax.grid(True, alpha=0.3)
    save_figure(fig, path)
    return fig


def confusion_legend_html() -> str:
    """Returns an HTML snippet naming the colours of :func:`confusion_image`, inline-styled."""
    items = (
        (TP_COLOR, "true positive", "predicted and in the mask"),
        (FP_COLOR, "false positive", "predicted, not in the mask"),
        (FN_COLOR, "false negative", "in the mask, missed"),
    )
    swatch = (
        "display:inline-block;width:0.9em;height:0.9em;margin-right:0.35em;"
        "vertical-align:-0.1em;border-radius:2px;background:rgb{}"
    )
    spans = "".join(
        f'<span style="margin-right:1.4em"><span style="{swatch.format(color)}"></span>'
        f"<b>{name}</b> — {meaning}</span>"
        for color, name, meaning in items
    )
    return f'<div class="seglab-legend" style="margin:0.5em 0">{spans}</div>'


def instance_overlay(
    image: np.ndarray,
    true_labels: np.ndarray,
    pred_labels: np.ndarray,
    iou_threshold: float = 0.5,
    alpha: float = 0.5,
) -> np.ndarray:
    """Shows which nuclei were found, which were invented and which were missed.

    A predicted instance matched to a true one (IoU > ``iou_threshold``) is tinted with
    ``TP_COLOR``, an unmatched predicted instance with ``FP_COLOR``, and an unmatched true instance
    with ``FN_COLOR`` where no prediction covers it; matched true instances are shown through their
    prediction. Each tinted pixel is ``(1 - alpha) * image + alpha * colour``, rounded. The
    outline of every coloured instance (its pixels with a 4-neighbour of another label) is drawn
    in full colour, so touching instances stay apart; missed ones are outlined last, in full.

    Args:
        image: Image accepted by :func:`to_display`, shape ``(H, W[, C])``.
        true_labels: Ground-truth label image ``(H, W)``, 0 background, one value per instance.
        pred_labels: Predicted label image of the same shape.
        iou_threshold: A pair matches when its IoU is strictly greater (the DSB 2018 rule).
        alpha: Opacity of the tint, in ``[0, 1]``.

    Returns:
        ``uint8`` RGB of shape ``(H, W, 3)``; background of both equals ``to_display(image)``.
    """
    # Imported here rather than at the top so that viz's import block, and so the import cost and
    # cycles of every other viz user, stay as they were; instance_metrics needs only numpy.
    from seglab.objectives.instance_metrics import iou_matrix

    _check_alpha(alpha)
    base = to_display(image)
    true, pred = np.asarray(true_labels), np.asarray(pred_labels)
    if true.shape != base.shape[:2]:
        raise ValueError(f"true_labels has shape {true.shape}, expected {base.shape[:2]}")
    matched = iou_matrix(true, pred) > iou_threshold  # also checks pred's shape and dtypes
    true_ids, pred_ids = np.unique(true[true > 0]), np.unique(pred[pred > 0])
    tp = np.isin(pred, pred_ids[matched.any(axis=0)])
    fp = (pred > 0) & ~tp
    fn = np.isin(true, true_ids[~matched.any(axis=1)])
    rgb = base.astype(np.float64)
    _blend(rgb, tp, TP_COLOR, alpha)
    _blend(rgb, fp, FP_COLOR, alpha)
    _blend(rgb, fn & (pred == 0), FN_COLOR, alpha)
    for labels, regions in ((pred, ((tp, TP_COLOR), (fp, FP_COLOR))), (true, ((fn, FN_COLOR),))):
        # Edge padding, as in _outline: the image border is not an instance boundary.
        p = np.pad(labels, 1, mode="edge")
        edge = (p[:-2, 1:-1] != labels) | (p[2:, 1:-1] != labels)
        edge |= (p[1:-1, :-2] != labels) | (p[1:-1, 2:] != labels)
        for where, color in regions:
            rgb[where & edge] = color
    return np.rint(rgb).astype(np.uint8)
