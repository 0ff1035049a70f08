"""Evaluation of a volume model: metrics per volume and overall, slice figures, an HTML report.

Writes the same outputs as the 2D `seglab.evaluation.segmentation` (`metrics.json`,
`per_image.csv` with one row per volume, `report.html`), with orthogonal slice figures in place
of confusion images: the axial, coronal and sagittal planes through the centroid of the true
foreground (the volume's centre when it has none), each shown as the image, the truth over it,
and the prediction coloured by agreement (true positives, false positives, false negatives).

Multi-class models are scored as multi-class images are (`seglab.evaluation.multiclass`: one
confusion matrix summed over the volumes, `miou` and `per_class` in metrics.json, the confusion
matrix figure), with the three planes in the class palette as panels (`volume_panels`).

Example:
    >>> result = evaluate_volumes("runs/blobs/model", "data/blobs3d", "eval/")  # doctest: +SKIP
    >>> result.metrics["dice"]  # doctest: +SKIP
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from seglab.atomic_files import atomic_write_json
from seglab.data.labelled_volumes import LabelledVolume, load_labelled_volumes
from seglab.data.layouts import Sample
from seglab.data.volumes import find_volumes
from seglab.errors import DataError
from seglab.evaluation import EvaluationResult
from seglab.evaluation.report_facts import ReportHeader, finish_header, report_header
from seglab.evaluation.segmentation import training_sections, write_csv
from seglab.inference.volumes import VolumePredictor, load_volume_predictor
from seglab.objectives.metrics import METRICS, confusion_counts, summarize

__all__ = [
    "LabelledVolume",
    "evaluate_volume_samples",
    "evaluate_volumes",
    "load_labelled_volumes",
    "orthogonal_slices",
    "plane_centre",
    "volume_counts",
    "volume_panels",
]

log = logging.getLogger(__name__)

COUNT_COLUMNS = ["tp", "fp", "fn", "tn"]
GALLERY_SIZE = 12
PLANES = ("axial", "coronal", "sagittal")
VOLUME_SCORES = ("dice", "iou", "precision", "recall")  # the per-volume columns the report shows
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


def _plane_slices(centre: Sequence[int]) -> list[tuple[Any, ...]]:
    z, y, x = centre
    return [
        (z, slice(None), slice(None)),
        (slice(None), y, slice(None)),
        (slice(None), slice(None), x),
    ]


def plane_centre(truth: np.ndarray, ignore_index: int | None = None) -> list[int]:
    """Where the planes of the figures cross: the centroid `(z, y, x)` of the true foreground
    (values > 0 other than `ignore_index`), rounded; the volume's centre without one."""
    foreground = truth > 0 if ignore_index is None else (truth > 0) & (truth != ignore_index)
    total = int(np.count_nonzero(foreground))
    if not total:
        return [side // 2 for side in truth.shape]
    centre = []
    for axis, side in enumerate(truth.shape):
        # Voxels per index along this axis: no (N, 3) list of coordinates of a large volume.
        profile = foreground.sum(axis=tuple(a for a in range(truth.ndim) if a != axis))
        centre.append(int(np.round(float(profile @ np.arange(side)) / total)))
    return centre


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
    centre = plane_centre(truth)
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


def _stack_planes(planes: list[np.ndarray], fill: int) -> np.ndarray:
    """Planes one above the other, the narrower ones padded on the right with `fill`."""
    width = max(plane.shape[1] for plane in planes)
    padded = [
        np.pad(
            plane,
            ((0, 0), (0, width - plane.shape[1])) + ((0, 0),) * (plane.ndim - 2),
            constant_values=fill,
        )
        for plane in planes
    ]
    return np.concatenate(padded, axis=0)


def volume_panels(
    image: np.ndarray,
    truth: np.ndarray,
    prediction: np.ndarray,
    palette: Sequence[tuple[int, int, int]],
    class_names: Sequence[str],
    ignore_index: int | None,
    path: str | Path,
    title: str | None = None,
) -> None:
    """`segmentation_panels` of a volume: image | truth | prediction in the class palette, each
    the axial, coronal and sagittal planes (top to bottom) through the centroid of the truth.

    Args:
        image: `(D, H, W)` or `(D, H, W, C)` volume (channel 0 shown unless C is 3).
        truth: `(D, H, W)` class indices; `ignore_index` voxels are drawn white.
        prediction: `(D, H, W)` predicted class indices.
        palette: RGB colour of each class.
        class_names: Name of each class.
        ignore_index: Label of ignored voxels (None: no such label).
        path: Destination PNG.
        title: Title above the panels.
    """
    from seglab.evaluation.multiclass_figures import segmentation_panels
    from seglab.viz import to_display

    if image.ndim == 4 and image.shape[-1] != 3:
        image = image[..., 0]
    boxes = _plane_slices(plane_centre(truth, ignore_index))
    fill = 0 if ignore_index is None else ignore_index  # the padding of narrow planes
    segmentation_panels(
        _stack_planes([to_display(image[box]) for box in boxes], 255),
        _stack_planes([np.asarray(truth[box]) for box in boxes], fill),
        _stack_planes([np.asarray(prediction[box]) for box in boxes], fill),
        palette,
        class_names,
        ignore_index,
        path,
        title=title,
    )


def evaluate_volume_samples(
    predictor: VolumePredictor,
    volumes: Sequence[LabelledVolume],
    out_dir: str | Path,
    progress: bool = False,
    header: ReportHeader | None = None,
) -> EvaluationResult:
    """Predict and score every volume, and write the evaluation outputs into `out_dir`.

    Binary models: `metrics.json` (micro scores over all voxels, `*_per_image` means over
    volumes), `per_image.csv` (one row per volume), `slices/<id>.png` (see `orthogonal_slices`)
    and `report.html`. Multi-class models: the outputs of `evaluate_multiclass_samples` (`miou`,
    `per_class`, the confusion matrix), with `volume_panels` as `panels/<id>.png`. Both record
    the prediction settings (tile, overlap, tta) in metrics.json.

    Raises:
        DataError: There is no volume to evaluate.
    """
    out_dir = Path(out_dir)
    if not volumes:
        raise DataError(out_dir, "no labelled volume to evaluate", "evaluation needs labels")
    settings = {"spatial_dims": 3, "tile": list(predictor.tile)}
    settings.update(overlap=predictor.overlap, tta=predictor.tta)
    if predictor.multiclass:
        from seglab.evaluation.multiclass import evaluate_multiclass_samples

        scores, table = evaluate_multiclass_samples(
            predictor,
            volumes,
            out_dir,
            progress,
            panels=volume_panels,
            extra=settings,
            header=header,
        )
        return EvaluationResult(scores, table, out_dir)
    rows: list[dict[str, Any]] = []
    all_counts = []
    items: Any = volumes
    if progress:
        from rich.progress import track

        items = track(volumes, description="evaluating volumes")
    for volume in items:
        row, counts = _score_volume(predictor, volume, out_dir)
        rows.append(row)
        all_counts.append(counts)

    metrics: dict[str, Any] = summarize(np.concatenate(all_counts))
    metrics.update(n_images=len(rows), threshold=predictor.threshold, **settings)
    atomic_write_json(out_dir / "metrics.json", metrics)
    write_csv(out_dir / "per_image.csv", rows)
    header = finish_header(header, predictor.metadata, out_dir, len(rows))
    _write_report(out_dir, metrics, rows, header)
    return EvaluationResult(metrics, rows, out_dir)


def _score_volume(
    predictor: VolumePredictor, volume: LabelledVolume, out_dir: Path
) -> tuple[dict[str, Any], np.ndarray]:
    """Predict and score one volume: its row and confusion counts; writes its slice figure."""
    from seglab.viz import save_png

    prediction = predictor.predict(volume.image)
    counts = volume_counts(prediction.mask, volume.mask)
    row: dict[str, Any] = {"id": volume.id, "shape": "x".join(map(str, volume.mask.shape))}
    row.update({name: float(fn(counts)[0]) for name, fn in METRICS.items()})
    row.update(dict(zip(COUNT_COLUMNS, (int(c) for c in counts[0]))))
    figure = orthogonal_slices(volume.image, volume.mask, prediction.mask)
    save_png(out_dir / "slices" / f"{volume.id}.png", figure)
    return row, counts


def evaluate_volumes(
    model: str | Path | VolumePredictor,
    data: str | Path,
    out: str | Path,
    split: str = "test",
    progress: bool = True,
    header: ReportHeader | None = None,
) -> EvaluationResult:
    """Evaluate a volume bundle on a `volumes` folder (its `split` sub-folder when it has splits).

    Args:
        model: A volume bundle folder, or a `VolumePredictor`.
        data: Folder in the `volumes` layout, with `labels/`.
        out: Output folder.
        split: Sub-folder to evaluate when the data has train/val/test folders.
        progress: Show a progress bar.
        header: What the report says was evaluated (default: the data folder, split and
            bundle given here, `report_facts.report_header`).

    Multi-class labels must be class indices below the bundle's number of classes, or its
    ignore index (unlabelled voxels, not scored).

    Raises:
        DataError: No such split, the volumes have no labels, or labels are out of range.
    """
    predictor = model if isinstance(model, VolumePredictor) else load_volume_predictor(model)
    bundle = None if isinstance(model, VolumePredictor) else model
    header = header or report_header(predictor.metadata, Path(out), data, split, bundle)
    found = find_volumes(data)
    if split in found:
        entries = found[split]
    elif list(found) == ["all"]:
        entries = found["all"]
        header = replace(header, split="all (the folder has no splits)")
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
    if predictor.multiclass:
        from seglab.evaluation.multiclass import labels_of

        ignore_index = labels_of(predictor.metadata)[2]
        volumes = load_labelled_volumes(samples, predictor.num_classes, ignore_index)
    else:
        volumes = load_labelled_volumes(samples)
    return evaluate_volume_samples(predictor, volumes, out, progress, header)


def _write_report(
    out_dir: Path, metrics: dict[str, Any], rows: list[dict[str, Any]], header: ReportHeader
) -> None:
    from seglab.evaluation.report import ReportSection, write_report_html
    from seglab.evaluation.report_facts import PIXEL_GROUP, headline
    from seglab.evaluation.segmentation import per_image_section, summary_of
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
            gallery_width=360,  # three planes by three panels: small at the default width
        ),
        per_image_section(worst, "Per-volume metrics", ("id", "shape", *VOLUME_SCORES)),
    ]
    sections += training_sections(out_dir)
    write_report_html(
        out_dir / "report.html",
        "seglab volume evaluation",
        summary_of(metrics),
        sections,
        header=header,
        headline=headline(metrics, (PIXEL_GROUP,)),
    )
