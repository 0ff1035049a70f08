"""Evaluation of a volume model: metrics per volume and overall, slice figures, an HTML report.

Writes the same outputs as the 2D `seglab.evaluation.segmentation` (`metrics.json`,
`per_image.csv` with one row per volume, `report.html`), with orthogonal slice figures in place
of confusion images: the axial, coronal and sagittal planes through the centroid of the true
foreground (the volume's centre when it has none), each shown as the image, the truth over it,
and the prediction coloured by agreement (true positives, false positives, false negatives).

Example:
    >>> result = evaluate_volumes("runs/blobs/model", "data/blobs3d", "eval/")  # doctest: +SKIP
    >>> result.metrics["dice"]  # doctest: +SKIP
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from seglab.atomic_files import atomic_write_json
from seglab.data.labelled_volumes import LabelledVolume, load_labelled_volumes
from seglab.data.layouts import Sample
from seglab.data.volumes import find_volumes
from seglab.errors import DataError
from seglab.evaluation.segmentation import EvaluationResult, training_sections, write_csv
from seglab.inference.volumes import VolumePredictor, load_volume_predictor
from seglab.objectives.metrics import METRICS, confusion_counts, summarize

__all__ = [
    "LabelledVolume",
    "evaluate_volume_samples",
    "evaluate_volumes",
    "load_labelled_volumes",
    "orthogonal_slices",
    "volume_counts",
]

log = logging.getLogger(__name__)

COUNT_COLUMNS = ["tp", "fp", "fn", "tn"]
GALLERY_SIZE = 12
PLANES = ("axial", "coronal", "sagittal")
# Panels of small volumes are enlarged (nearest neighbour) to at least this many pixels.
MIN_PANEL_SIDE = 128


def volume_counts(
    prediction: np.ndarray, truth: np.ndarray, ignore_index: int | None = None
) -> np.ndarray:
    """Foreground confusion counts `(1, 4)` of one volume: (tp, fp, fn, tn).

    Foreground is any value > 0 (a bool mask, or any class but 0); voxels whose truth is
    `ignore_index` are not counted.
    """
    if ignore_index is None:
        return _one_row(prediction > 0, truth > 0)
    scored = truth != ignore_index
    return _one_row(prediction[scored] > 0, truth[scored] > 0)


def _one_row(prediction: np.ndarray, truth: np.ndarray) -> np.ndarray:
    # confusion_counts scores each slice of a (D, H, W) array as an image; a volume is one row.
    return confusion_counts(prediction.reshape(1, -1), truth.reshape(1, -1))


def _class_counts(
    prediction: np.ndarray, truth: np.ndarray, num_classes: int, ignore_index: int
) -> np.ndarray:
    """One-vs-rest confusion counts `(C, 4)` of every class, ignored voxels left out."""
    scored = truth != ignore_index
    predicted, true = prediction[scored], truth[scored]
    return np.concatenate([_one_row(predicted == c, true == c) for c in range(num_classes)])


def _plane_slices(centre: Sequence[int]) -> list[tuple[Any, ...]]:
    z, y, x = centre
    return [
        (z, slice(None), slice(None)),
        (slice(None), y, slice(None)),
        (slice(None), slice(None), x),
    ]


def orthogonal_slices(image: np.ndarray, truth: np.ndarray, prediction: np.ndarray) -> np.ndarray:
    """A figure of the axial, coronal and sagittal planes of a volume, one row each.

    The planes cross at the centroid of the true foreground (the volume's centre without one).
    Each row shows the image, the truth over the image (`mask_overlay`) and the prediction
    against the truth (`confusion_image`), separated by white gaps.

    Args:
        image: `(D, H, W)` or `(D, H, W, C)` volume (channel 0 shown unless C is 3).
        truth: `(D, H, W)` truth; values > 0 are foreground.
        prediction: `(D, H, W)` prediction; values > 0 are foreground.

    Returns:
        `uint8` RGB figure.
    """
    from seglab.viz import confusion_image, mask_overlay, to_display

    if image.ndim == 4 and image.shape[-1] != 3:
        image = image[..., 0]
    foreground = np.argwhere(truth > 0)
    middle = foreground.mean(0).round() if len(foreground) else np.array(truth.shape) // 2
    centre = [int(c) for c in middle]
    scale = max(1, -(-MIN_PANEL_SIDE // max(truth.shape)))
    rows = []
    for box in _plane_slices(centre):
        picture, true, predicted = image[box], truth[box] > 0, prediction[box] > 0
        panels = [
            to_display(picture),
            mask_overlay(picture, true),
            confusion_image(picture, true, predicted),
        ]
        panels = [p.repeat(scale, 0).repeat(scale, 1) for p in panels]
        gap = np.full((panels[0].shape[0], 4, 3), 255, np.uint8)
        rows.append(np.concatenate([panels[0], gap, panels[1], gap, panels[2]], axis=1))
    width = max(row.shape[1] for row in rows)
    padded = [
        np.pad(r, ((0, 4), (0, width - r.shape[1]), (0, 0)), constant_values=255) for r in rows
    ]
    return np.concatenate(padded, axis=0)[:-4]


def evaluate_volume_samples(
    predictor: VolumePredictor,
    volumes: Sequence[LabelledVolume],
    out_dir: str | Path,
    progress: bool = False,
    ignore_index: int = 255,
) -> EvaluationResult:
    """Predict and score every volume, and write the evaluation outputs into `out_dir`.

    Writes `metrics.json` (micro scores over all voxels, `*_per_image` means over volumes, and
    for multi-class models `miou` and `per_class`), `per_image.csv` (one row per volume),
    `slices/<id>.png` (see `orthogonal_slices`) and `report.html`.

    Raises:
        DataError: There is no volume to evaluate.
    """
    from seglab.viz import save_png

    out_dir = Path(out_dir)
    if not volumes:
        raise DataError(out_dir, "no labelled volume to evaluate", "evaluation needs labels")
    rows: list[dict[str, Any]] = []
    all_counts, per_class = [], []
    items: Any = volumes
    if progress:
        from rich.progress import track

        items = track(volumes, description="evaluating volumes")
    for volume in items:
        prediction = predictor.predict(volume.image)
        ignored = ignore_index if predictor.multiclass else None
        counts = volume_counts(prediction.mask, volume.mask, ignored)
        all_counts.append(counts)
        row: dict[str, Any] = {"id": volume.id, "shape": "x".join(map(str, volume.mask.shape))}
        row.update({name: float(fn(counts)[0]) for name, fn in METRICS.items()})
        if predictor.multiclass:
            classes = _class_counts(
                prediction.mask, volume.mask, predictor.num_classes, ignore_index
            )
            per_class.append(classes)
            row.update(
                {f"dice_class_{c}": float(v) for c, v in enumerate(METRICS["dice"](classes))}
            )
        row.update(dict(zip(COUNT_COLUMNS, (int(c) for c in counts[0]))))
        rows.append(row)
        truth = volume.mask if ignored is None else np.where(volume.mask == ignored, 0, volume.mask)
        figure = orthogonal_slices(volume.image, truth, prediction.mask)
        save_png(out_dir / "slices" / f"{volume.id}.png", figure)

    metrics: dict[str, Any] = summarize(np.concatenate(all_counts))
    metrics.update(n_images=len(rows), threshold=predictor.threshold, spatial_dims=3)
    metrics.update(tile=list(predictor.tile), overlap=predictor.overlap, tta=predictor.tta)
    if per_class:
        metrics.update(_class_summary(np.sum(per_class, axis=0), predictor.metadata))
    atomic_write_json(out_dir / "metrics.json", metrics)
    write_csv(out_dir / "per_image.csv", rows)
    _write_report(out_dir, metrics, rows, predictor)
    return EvaluationResult(metrics, rows, out_dir)


def _class_summary(counts: np.ndarray, metadata: dict[str, Any]) -> dict[str, Any]:
    names = metadata.get("class_names") or [str(c) for c in range(len(counts))]
    dice, iou = METRICS["dice"](counts), METRICS["iou"](counts)
    present = counts[:, 0] + counts[:, 1] + counts[:, 2] > 0  # in the truth or the prediction
    per_class = {
        str(name): {"dice": float(d), "iou": float(i)} for name, d, i in zip(names, dice, iou)
    }
    miou = float(iou[present].mean()) if present.any() else 1.0
    return {"miou": miou, "per_class": per_class}


def evaluate_volumes(
    model: str | Path | VolumePredictor,
    data: str | Path,
    out: str | Path,
    split: str = "test",
    progress: bool = True,
    ignore_index: int = 255,
) -> EvaluationResult:
    """Evaluate a volume bundle on a `volumes` folder (its `split` sub-folder when it has splits).

    Args:
        model: A volume bundle folder, or a `VolumePredictor`.
        data: Folder in the `volumes` layout, with `labels/`.
        out: Output folder.
        split: Sub-folder to evaluate when the data has train/val/test folders.
        progress: Show a progress bar.
        ignore_index: Label of unlabelled voxels (multi-class models).

    Raises:
        DataError: No such split, or the volumes have no labels.
    """
    predictor = model if isinstance(model, VolumePredictor) else load_volume_predictor(model)
    found = find_volumes(data)
    if split in found:
        entries = found[split]
    elif list(found) == ["all"]:
        entries = found["all"]
    else:
        raise DataError(
            Path(data),
            f"no '{split}' split here (found: {', '.join(found)})",
            f"pass --split with one of: {', '.join(found)}",
        )
    if any(labels is None for _, _, labels in entries):
        raise DataError(
            Path(data), "no labels/ folder: nothing to compare with", "use seglab predict instead"
        )
    samples = [Sample(stem, image, (labels,)) for stem, image, labels in entries if labels]
    num_classes = predictor.num_classes if predictor.multiclass else None
    volumes = load_labelled_volumes(samples, num_classes, ignore_index)
    return evaluate_volume_samples(predictor, volumes, out, progress, ignore_index)


def _write_report(
    out_dir: Path, metrics: dict[str, Any], rows: list[dict[str, Any]], predictor: VolumePredictor
) -> None:
    from seglab.evaluation.report import ReportSection, write_report_html
    from seglab.viz import confusion_legend_html

    worst = sorted(rows, key=lambda r: r["dice"])
    gallery = [
        (f"{r['id']} — dice {r['dice']:.3f}", out_dir / "slices" / f"{r['id']}.png")
        for r in worst[:GALLERY_SIZE]
    ]
    sections = [
        ReportSection(
            "Orthogonal slices (lowest Dice first)",
            text="Rows: axial, coronal and sagittal planes through the centroid of the true "
            "foreground. Columns: the image, the truth (orange), the prediction against the "
            "truth.",
            legend_html=confusion_legend_html(),
            images=gallery,
        ),
        ReportSection("Per-volume metrics", table=worst),
    ]
    sections += training_sections(out_dir)
    summary = {k: v for k, v in metrics.items() if isinstance(v, int | float | str)}
    summary["model"] = predictor.metadata["model"]["name"]
    write_report_html(out_dir / "report.html", "seglab volume evaluation", summary, sections)
