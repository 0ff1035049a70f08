"""Figures for multi-class segmentation: confusion matrix, image | truth | prediction | errors.

Drawn like :mod:`seglab.viz`: on a ``matplotlib`` Agg canvas without ``pyplot`` (no display
needed, an interactive session's backend left alone) and written atomically as PNG. The
arithmetic is in pure functions (:func:`row_normalize`, `seglab.data.labels.colorize`) that
tests can check by hand.

Example:
    >>> plot_confusion_matrix(matrix, names, "eval/confusion.png")  # doctest: +SKIP
    >>> segmentation_panels(image, truth, pred, palette, names, 255, "0001.png")  # doctest: +SKIP
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from seglab.data.labels import colorize
from seglab.viz import FP_COLOR, Color, new_figure, save_figure, to_display

# White: no colour of the Cityscapes palette, and it reads as "no label" on the white page.
IGNORE_COLOR: Color = (255, 255, 255)
ERROR_COLOR = FP_COLOR  # vermilion, as the binary report's errors
FADE = 0.6  # right pixels keep 40% of the image, faded to white, so the errors stand out


def class_errors(
    image: np.ndarray, truth: np.ndarray, prediction: np.ndarray, ignore_index: int | None
) -> np.ndarray:
    """The pixels given the wrong class, in ``ERROR_COLOR`` over the image faded to white.

    Each right pixel is ``(1 - FADE) * image + FADE * 255``, rounded; ignored pixels (label
    ``ignore_index``) are ``IGNORE_COLOR``.

    Args:
        image: Image accepted by :func:`seglab.viz.to_display`, shape ``(H, W[, C])``.
        truth: True class indices ``(H, W)``.
        prediction: Predicted class indices ``(H, W)``.
        ignore_index: Label of ignored pixels (``None``: no such label).

    Returns:
        ``uint8`` RGB of shape ``(H, W, 3)``.
    """
    truth, prediction = np.asarray(truth), np.asarray(prediction)
    rgb = np.rint(to_display(image) * (1.0 - FADE) + 255.0 * FADE).astype(np.uint8)
    ignored = truth == ignore_index if ignore_index is not None else np.zeros(truth.shape, bool)
    rgb[(prediction != truth) & ~ignored] = ERROR_COLOR
    rgb[ignored] = IGNORE_COLOR
    return rgb


def row_normalize(matrix: np.ndarray) -> np.ndarray:
    """Divides each row of a confusion matrix ``[true, predicted]`` by its total.

    Row t then reads "of the pixels of true class t, the fraction predicted as p": its diagonal
    cell is the recall of class t. A row with no pixel (class absent from the truth) is NaN.

    Args:
        matrix: Counts of shape ``(C, C)``.

    Returns:
        float64 array of shape ``(C, C)``; each non-empty row sums to 1.

    Raises:
        ValueError: If the matrix is not square or holds negative values.

    Example:
        >>> row_normalize(np.array([[3, 1], [0, 0]]))
        array([[0.75, 0.25],
               [ nan,  nan]])
    """
    m = np.asarray(matrix)
    if m.ndim != 2 or m.shape[0] != m.shape[1] or not np.issubdtype(m.dtype, np.number):
        raise ValueError(f"expected a square (C, C) matrix of counts, got {m.dtype} {m.shape}")
    if (m < 0).any():
        raise ValueError("a confusion matrix holds counts >= 0")
    m = m.astype(np.float64)
    totals = m.sum(axis=1, keepdims=True)
    return np.divide(m, totals, out=np.full_like(m, np.nan), where=totals > 0)


def legend_html(class_names: Sequence[str], palette: Sequence[Color]) -> str:
    """An HTML snippet of colour swatches naming each class, inline-styled for reports.

    Args:
        class_names: Name of each class; HTML special characters are escaped.
        palette: RGB colour of each class (at least as many as names).

    Returns:
        A ``<div class="seglab-legend">`` with one swatch and name per class.

    Raises:
        ValueError: If the palette has fewer colours than there are names.
    """
    if len(palette) < len(class_names):
        raise ValueError(f"{len(class_names)} class names but only {len(palette)} colours")
    swatch = (
        "display:inline-block;width:0.9em;height:0.9em;margin-right:0.35em;"
        "vertical-align:-0.1em;border:1px solid #888;border-radius:2px;background:rgb({},{},{})"
    )
    spans = "".join(
        f'<span style="margin-right:1.2em;white-space:nowrap">'
        f'<span style="{swatch.format(*(int(v) for v in color))}"></span>{html.escape(name)}</span>'
        for name, color in zip(class_names, palette)
    )
    return f'<div class="seglab-legend" style="margin:0.5em 0">{spans}</div>'


def _unit_rgb(color: Color) -> tuple[float, float, float]:
    red, green, blue = (float(v) / 255 for v in color)
    return red, green, blue


def plot_confusion_matrix(matrix: np.ndarray, class_names: Sequence[str], path: str | Path) -> None:
    """Draws the row-normalised confusion matrix (recall per true class) as an annotated PNG.

    Each cell shows the percentage of the row's pixels; cells with no pixel at all are left
    blank so that the errors stand out, and a class absent from the truth has an empty grey row.
    The number of true pixels of each class is written after its name. The figure grows with the
    number of classes and stays readable up to about 20.

    Args:
        matrix: Counts ``[true, predicted]`` of shape ``(C, C)``, e.g. from
            :func:`seglab.objectives.multiclass_metrics.confusion_matrix`.
        class_names: One name per class.
        path: Destination PNG.

    Raises:
        ValueError: If the matrix is not a square count matrix or the names do not match it.
    """
    fractions = row_normalize(matrix)
    counts = np.asarray(matrix)
    n = len(counts)
    if len(class_names) != n:
        raise ValueError(f"{len(class_names)} class names for a {n}x{n} matrix")
    side = max(5.0, 1.6 + 0.5 * n)
    font = 9 if n <= 10 else 7 if n <= 16 else 6
    fig = new_figure(side + 1.2, side)
    ax = fig.subplots()
    image = ax.imshow(np.ma.masked_invalid(fractions), cmap="Blues", vmin=0.0, vmax=1.0)
    ax.set_facecolor("0.85")
    fig.colorbar(image, ax=ax, shrink=0.8, label="fraction of the true class")
    for t in range(n):
        for p in range(n):
            if counts[t, p] == 0 or np.isnan(fractions[t, p]):
                continue
            value = fractions[t, p]
            ax.text(
                p,
                t,
                f"{100 * value:.0f}" if n > 10 else f"{100 * value:.1f}",
                ha="center",
                va="center",
                fontsize=font,
                color="white" if value > 0.55 else "black",
            )
    support = counts.sum(axis=1)
    ax.set_xticks(range(n), list(class_names), rotation=45, ha="right", fontsize=font + 1)
    ax.set_yticks(
        range(n),
        [f"{name} ({int(s):,})" for name, s in zip(class_names, support)],
        fontsize=font + 1,
    )
    ax.set(xlabel="Predicted class", ylabel="True class (pixels)")
    ax.set_title("Confusion matrix, % of each true class (diagonal = recall)")
    save_figure(fig, path)


def segmentation_panels(
    image: np.ndarray,
    truth: np.ndarray,
    prediction: np.ndarray,
    palette: Sequence[Color],
    class_names: Sequence[str],
    ignore_index: int | None,
    path: str | Path,
    title: str | None = None,
) -> None:
    """Writes image | ground truth | prediction | errors (:func:`class_errors`) side by side,
    with a legend of the classes.

    Args:
        image: Image accepted by :func:`seglab.viz.to_display`, shape ``(H, W[, C])``.
        truth: True class indices ``(H, W)``; ``ignore_index`` pixels are drawn white.
        prediction: Predicted class indices ``(H, W)`` (the argmax of the logits).
        palette: RGB colour of each class.
        class_names: Name of each class, in class-index order.
        ignore_index: Label of ignored pixels (``None``: no such label).
        path: Destination PNG.
        title: Title above the panels (e.g. the image's name and its mIoU).

    Raises:
        ValueError: If the shapes differ, the palette is too short or a label has no colour.
    """
    shown = to_display(image)
    truth_rgb = colorize(truth, palette, ignore_index, IGNORE_COLOR)
    pred_rgb = colorize(prediction, palette, ignore_index, IGNORE_COLOR)
    if not shown.shape[:2] == truth_rgb.shape[:2] == pred_rgb.shape[:2]:
        raise ValueError(
            f"image {shown.shape[:2]}, truth {truth_rgb.shape[:2]} and prediction "
            f"{pred_rgb.shape[:2]} must have the same height and width"
        )
    if len(palette) < len(class_names):
        raise ValueError(f"{len(class_names)} class names but only {len(palette)} colours")
    errors = class_errors(image, truth, prediction, ignore_index)
    height, width = shown.shape[:2]
    panel_width = 3.0
    fig = new_figure(4 * panel_width, panel_width * height / width + 1.4)
    axes = fig.subplots(1, 4)
    panels = (shown, truth_rgb, pred_rgb, errors)
    labels = ("Image", "Ground truth", "Prediction", "Errors (wrong class)")
    for ax, rgb, label in zip(axes, panels, labels):
        ax.imshow(rgb, interpolation="nearest")
        ax.set_title(label)
        ax.set_axis_off()
    handles = _legend_handles(palette, class_names, ignore_index, truth)
    fig.legend(
        handles=handles,
        loc="outside lower center",
        ncols=min(len(handles), 10),
        fontsize=8,
        frameon=False,
    )
    if title:
        fig.suptitle(title)
    save_figure(fig, path)


def _legend_handles(
    palette: Sequence[Color],
    class_names: Sequence[str],
    ignore_index: int | None,
    truth: np.ndarray,
) -> list[Any]:
    """A patch of each class's colour, and one for ignored pixels when the truth has any."""
    from matplotlib.patches import Patch

    handles = [
        Patch(facecolor=_unit_rgb(color), edgecolor="0.5", label=name)
        for name, color in zip(class_names, palette)
    ]
    if ignore_index is not None and (np.asarray(truth) == ignore_index).any():
        handles.append(Patch(facecolor=_unit_rgb(IGNORE_COLOR), edgecolor="0.5", label="ignored"))
    return handles
