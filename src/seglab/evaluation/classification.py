"""Classification metrics and figures (confusion matrix, misclassified examples).

Predicting classes for image files is `seglab.inference.classifier.predict_image_files`.
"""

from __future__ import annotations

import csv
import io
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from seglab.atomic_files import atomic_text_file, atomic_write_bytes, atomic_write_json
from seglab.data.classification import ClassificationData
from seglab.errors import DataError
from seglab.evaluation import EvaluationResult
from seglab.evaluation.report_facts import ReportHeader, finish_header, report_header


def confusion_matrix(labels: np.ndarray, predicted: np.ndarray, num_classes: int) -> np.ndarray:
    """(K, K) counts: row = true class, column = predicted class."""
    flat = labels.astype(np.int64) * num_classes + predicted.astype(np.int64)
    return np.bincount(flat, minlength=num_classes**2).reshape(num_classes, num_classes)


def _ratio(numerator: float, denominator: float) -> float:
    # A class never predicted (or absent) has no precision (recall); 0 is the usual convention.
    return float(numerator / denominator) if denominator else 0.0


def classification_metrics(
    labels: np.ndarray, predicted: np.ndarray, class_names: list[str]
) -> dict[str, Any]:
    """Accuracy, macro F1 and per-class precision, recall, F1 and support."""
    matrix = confusion_matrix(labels, predicted, len(class_names))
    per_class = {}
    for index, name in enumerate(class_names):
        tp = matrix[index, index]
        precision = _ratio(tp, matrix[:, index].sum())
        recall = _ratio(tp, matrix[index].sum())
        per_class[name] = {
            "precision": precision,
            "recall": recall,
            "f1": _ratio(2 * precision * recall, precision + recall),
            "support": int(matrix[index].sum()),
        }
    return {
        "accuracy": _ratio(np.trace(matrix), matrix.sum()),
        "macro_f1": float(np.mean([c["f1"] for c in per_class.values()])),
        "n_images": int(matrix.sum()),
        "per_class": per_class,
    }


def evaluate_classification(
    classifier: Any,
    data: str | Path,
    out: str | Path,
    layout: str = "auto",
    split: str = "test",
    header: ReportHeader | None = None,
) -> EvaluationResult:
    """Score a classifier on the `split` of a classification folder (its only split when it has
    none, e.g. `digits`), as `evaluate_classifier` does; `header` is what its report says was
    evaluated (default: this data folder and split).

    Raises:
        DataError: The folder has no such split.
    """
    from seglab.data.classification import load_classification

    _, found = load_classification(data, layout)
    if split not in found and list(found) != ["all"]:
        raise DataError(
            Path(data),
            f"no '{split}' split here (found: {', '.join(found)})",
            f"pass --split with one of: {', '.join(found)}",
        )
    used = split if split in found else "all"
    header = header or report_header(classifier.metadata, Path(out), data, split)
    header = replace(header, split=used if used == split else "all (the folder has no splits)")
    return evaluate_classifier(classifier, found[used], Path(out), header)


def evaluate_classifier(
    classifier: Any, data: ClassificationData, out_dir: Path, header: ReportHeader | None = None
) -> EvaluationResult:
    """Score `data` and write metrics.json, per_image.csv, the figures and report.html (whose
    header is `header`, by default what the bundle metadata and a run folder tell)."""
    from seglab.evaluation.report import ReportSection, write_report_html
    from seglab.evaluation.report_facts import CLASSIFICATION_HEADLINE, headline

    probabilities = classifier.predict_proba(data.images)
    predicted = probabilities.argmax(1)
    names = classifier.class_names
    metrics = {**classification_metrics(data.labels, predicted, names), "n_images": len(data)}
    atomic_write_json(out_dir / "metrics.json", metrics)
    rows = [
        {
            "id": ident,
            "label": names[truth],
            "predicted": names[guess],
            "correct": int(truth == guess),
            "probability": f"{probs[guess]:.6f}",
        }
        for ident, truth, guess, probs in zip(data.ids, data.labels, predicted, probabilities)
    ]
    with atomic_text_file(out_dir / "per_image.csv") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    matrix = confusion_matrix(data.labels, predicted, len(names))
    atomic_write_bytes(out_dir / "confusion_matrix.png", _matrix_figure(matrix, names))
    wrong = np.flatnonzero(predicted != data.labels)
    atomic_write_bytes(
        out_dir / "misclassified.png", _misclassified_figure(data, predicted, wrong, names)
    )
    table = [{"class": k, **v} for k, v in metrics["per_class"].items()]
    sections = [
        ReportSection("Per class", table=table, decimals=3),
        ReportSection(
            "Figures",
            images=[
                (
                    "Confusion matrix (rows: true, columns: predicted)",
                    out_dir / "confusion_matrix.png",
                ),
                (f"Misclassified examples ({len(wrong)} in all)", out_dir / "misclassified.png"),
            ],
        ),
    ]
    summary = {k: v for k, v in metrics.items() if not isinstance(v, dict)}
    write_report_html(
        out_dir / "report.html",
        "seglab classification",
        summary,
        sections,
        header=finish_header(header, classifier.metadata, out_dir, len(data)),
        headline=headline(metrics, CLASSIFICATION_HEADLINE),
    )
    return EvaluationResult(metrics, rows, out_dir)


def _figure_bytes(figure: Any) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110)
    return buffer.getvalue()


def _matrix_figure(matrix: np.ndarray, names: list[str]) -> bytes:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    size = 2.5 + 0.45 * len(names)
    figure = Figure(figsize=(size, size))
    FigureCanvasAgg(figure)
    axes = figure.subplots()
    axes.imshow(matrix, cmap="Blues")
    for (row, col), count in np.ndenumerate(matrix):
        colour = "white" if count > matrix.max() / 2 else "black"
        axes.text(col, row, str(count), ha="center", va="center", color=colour, fontsize=8)
    axes.set_xticks(range(len(names)), names)
    axes.set_yticks(range(len(names)), names)
    axes.set(xlabel="predicted", ylabel="true", title="Confusion matrix")
    figure.tight_layout()
    return _figure_bytes(figure)


def _misclassified_figure(
    data: ClassificationData, predicted: np.ndarray, wrong: np.ndarray, names: list[str]
) -> bytes:
    """The seed's `show_fx_negatif`: misclassified images with predicted vs true labels."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    shown = wrong[:24]
    columns = 8
    rows = max(1, -(-len(shown) // columns))
    figure = Figure(figsize=(columns * 1.3, rows * 1.5))
    FigureCanvasAgg(figure)
    axes = np.atleast_1d(figure.subplots(rows, columns)).ravel()
    for ax in axes:
        ax.set_axis_off()
    if not len(shown):
        axes[0].text(0, 0.5, "no misclassified image", fontsize=10)
    for ax, index in zip(axes, shown):
        image = data.images[index]
        ax.imshow(image[:, :, 0] if image.shape[2] == 1 else image, cmap="gray")
        ax.set_title(
            f"pred {names[predicted[index]]}\ntrue {names[data.labels[index]]}", fontsize=8
        )
    figure.tight_layout()
    return _figure_bytes(figure)
