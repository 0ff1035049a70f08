"""Evaluation of a multi-class model: confusion matrix, per-class scores, figures and report.

Writes into the output folder what the binary evaluation writes (`metrics.json`, `per_image.csv`,
`report.html`), with `miou` and `per_class` in the metrics, `confusion_matrix.csv` / `.png`
(rows: true class, normalised per row) and `panels/<id>.png` (image | truth | prediction in the
class palette | wrong pixels) for a gallery of the hardest images. Volumes are scored by the
same code, with their orthogonal planes as panels (`seglab.evaluation.volumes.volume_panels`).

``miou`` is the mean IoU over the classes present in the truth or the prediction, the Cityscapes
benchmark's rule. On Cityscapes ground truth read with
`seglab.evaluation.cityscapes_eval.benchmark_mapping` (as `seglab evaluate` does) it is the
official class mIoU of a train-id model and the official category mIoU of a category model, void
ignored; for any Cityscapes model the metrics then also hold the official scores of
``evalPixelLevelSemanticLabeling``: ``cityscapes_miou`` (train-id models),
``cityscapes_category_miou`` and their per-class and per-category IoUs (``cityscapes``).
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from seglab.atomic_files import atomic_text_file, atomic_write_json
from seglab.evaluation.report_facts import ReportHeader, finish_header

GALLERY_SIZE = 12
# Draws image | truth | prediction | errors: `segmentation_panels`'s signature (image, truth,
# prediction, palette, class_names, ignore_index, path, title).
PanelWriter = Callable[..., None]


def labels_of(metadata: dict[str, Any]) -> tuple[list[str], list[tuple[int, int, int]], int]:
    """Class names, palette (one RGB triple per class) and ignore index of a multi-class
    bundle."""
    labels = metadata["labels"]
    palette = [(int(r), int(g), int(b)) for r, g, b in labels["palette"]]
    return list(labels["names"]), palette, int(labels["ignore_index"])


def evaluate_multiclass_samples(
    predictor: Any,
    samples: Sequence[Any],
    out_dir: Path,
    progress: bool = False,
    max_panels: int = 200,
    panels: PanelWriter | None = None,
    extra: dict[str, Any] | None = None,
    cityscapes: bool = False,
    header: ReportHeader | None = None,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Predict every labelled sample, accumulate one confusion matrix, write the outputs.

    Args:
        predictor: A multi-class predictor (`predictor.multiclass` is True).
        samples: Decoded samples (`id`, `image`, `mask`) whose `mask` holds class indices
            (ignored pixels: the bundle's ignore index); images or volumes.
        out_dir: Output folder.
        progress: Show a progress bar.
        max_panels: Write panels (image | truth | prediction | errors) for at most this many
            images.
        panels: Draws the panels of one sample (default: `segmentation_panels`, for images).
        extra: Entries added to metrics.json (e.g. the prediction settings).
        cityscapes: Masks read with `benchmark_mapping`: add the official Cityscapes scores.
        header: What the report says was evaluated (default: `report_facts.report_header`).

    Returns:
        The metrics (as written to metrics.json) and the per-image rows.
    """
    from seglab.evaluation.multiclass_figures import plot_confusion_matrix, segmentation_panels
    from seglab.objectives.multiclass_metrics import confusion_matrix, summarize_multiclass

    draw = panels or segmentation_panels
    names, palette, ignore_index = labels_of(predictor.metadata)
    style = (palette, names, ignore_index)  # how `draw` colours and names the classes
    total = np.zeros((len(names), len(names)), np.int64)
    rows: list[dict[str, Any]] = []
    for index, sample in enumerate(_progress(samples, progress)):
        prediction = predictor.predict(sample.image)
        matrix = confusion_matrix(prediction.mask, sample.mask, len(names), ignore_index)
        total += matrix
        scores: dict[str, Any] = summarize_multiclass(matrix, names)
        rows.append(_image_row(sample.id, scores, names))
        if index < max_panels:
            path = out_dir / "panels" / f"{sample.id}.png"
            title = f"{sample.id} — mIoU {scores['miou']:.3f}"
            draw(sample.image, sample.mask, prediction.mask, *style, path, title=title)
    metrics: dict[str, Any] = summarize_multiclass(total, names)
    metrics["n_images"] = len(rows)
    metrics.update(_official_scores(total, predictor.metadata["labels"]) if cityscapes else {})
    metrics.update(extra or {})
    atomic_write_json(out_dir / "metrics.json", metrics)
    _write_rows(out_dir / "per_image.csv", rows)
    _write_rows(out_dir / "confusion_matrix.csv", _matrix_rows(total, names))
    plot_confusion_matrix(total, names, out_dir / "confusion_matrix.png")
    header = finish_header(header, predictor.metadata, out_dir, len(rows))
    _write_report(out_dir, metrics, rows, predictor, header)
    return metrics, rows


def _official_scores(matrix: np.ndarray, labels: dict[str, Any]) -> dict[str, Any]:
    from seglab.data.labels import LabelMapping
    from seglab.evaluation.cityscapes_eval import scores_from_class_matrix

    official = scores_from_class_matrix(matrix, LabelMapping.from_dict(labels)).to_dict()
    means = {
        f"cityscapes_{key}": official[key] for key in ("miou", "category_miou") if key in official
    }
    return means | {"cityscapes": official}


def _image_row(name: str, scores: dict[str, Any], names: list[str]) -> dict[str, Any]:
    row = {"id": name, "miou": scores["miou"], "pixel_accuracy": scores["pixel_accuracy"]}
    return row | {f"iou_{n}": scores["per_class"][n]["iou"] for n in names}


def _matrix_rows(matrix: np.ndarray, names: list[str]) -> list[dict[str, Any]]:
    return [
        {"true \\ predicted": name, **{n: int(v) for n, v in zip(names, matrix[i])}}
        for i, name in enumerate(names)
    ]


def _progress(items: Sequence[Any], enabled: bool) -> Any:
    if not enabled:
        return items
    from rich.progress import track

    return track(items, description="evaluating")


def _write_rows(path: Path, rows: list[dict[str, Any]]) -> None:
    with atomic_text_file(path) as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        for row in rows:
            writer.writerow({k: _format(v) for k, v in row.items()})


def _format(value: Any) -> Any:
    if value is None:
        return ""
    return f"{value:.6f}" if isinstance(value, float) else value


def _write_report(
    out_dir: Path,
    metrics: dict[str, Any],
    rows: list[dict[str, Any]],
    predictor: Any,
    header: ReportHeader,
) -> None:
    from seglab.evaluation.multiclass_figures import legend_html
    from seglab.evaluation.report import ReportSection, write_report_html
    from seglab.evaluation.report_facts import MULTICLASS_HEADLINE, headline
    from seglab.evaluation.segmentation import per_image_section, summary_of, training_sections

    names, palette, _ = labels_of(predictor.metadata)
    worst = sorted(rows, key=lambda r: r["miou"] if r["miou"] is not None else 1.0)
    # F1 is Dice (the same formula): the table shows it once.
    per_class = [
        {"class": name, **{k: v for k, v in scores.items() if k != "f1"}}
        for name, scores in metrics["per_class"].items()
    ]
    gallery = [
        (f"{r['id']} — mIoU {r['miou']:.3f}", out_dir / "panels" / f"{r['id']}.png")
        for r in worst[:GALLERY_SIZE]
        if (out_dir / "panels" / f"{r['id']}.png").is_file() and r["miou"] is not None
    ]
    sections = [
        ReportSection("Per class", table=per_class, decimals=3),
        *_official_sections(metrics.get("cityscapes")),
        ReportSection(
            "Confusion matrix (rows: true class, normalised per row)",
            images=[("confusion matrix", out_dir / "confusion_matrix.png")],
        ),
        ReportSection(
            "Hardest images (lowest mIoU first): image | truth | prediction | errors",
            legend_html=legend_html(names, palette),
            images=gallery,
        ),
        # The widest tables fit the page with eight columns; per_image.csv has every class.
        per_image_section(worst, preferred=list(rows[0])[:8] if rows else []),
    ]
    sections += training_sections(out_dir)
    write_report_html(
        out_dir / "report.html",
        "seglab evaluation",
        summary_of(metrics),
        sections,
        header=header,
        headline=headline(metrics, MULTICLASS_HEADLINE),
    )


def _official_sections(official: dict[str, Any] | None) -> list[Any]:
    """The Cityscapes benchmark's class and category IoUs, when they were computed."""
    from seglab.evaluation.report import ReportSection

    if official is None:
        return []
    text = (
        "IoU by the rules of the official evalPixelLevelSemanticLabeling: ground-truth labels "
        "ignored in evaluation do not count; empty scores (absent classes) are left out of "
        "the means."
    )
    tables = [("class", "class_iou"), ("category", "category_iou")]
    return [
        ReportSection(
            f"Cityscapes benchmark, per {name}",
            text=text,
            table=[{name: key, "iou": value} for key, value in official[entry].items()],
        )
        for name, entry in tables
        if entry in official
    ]
