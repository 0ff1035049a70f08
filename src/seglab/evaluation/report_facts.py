"""What a report is about (its header) and which metrics it leads with (its headline).

Every evaluator (binary, multi-class, volumes, classification) builds its header with
:func:`report_header` and its headline with :func:`headline`, so all reports open the same way:
the data, the bundle, the model and how it was trained, then the few scores that matter, each
with one line saying what it measures.

Example:
    >>> header = report_header(predictor.metadata, Path("eval"), data="data/nuclei", split="test")
    >>> groups = headline(metrics, BINARY_HEADLINE)
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any

import seglab

MISSING = "—"  # shown for a fact the evaluation does not know; never guessed


def _now() -> str:
    return datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")


@dataclass(frozen=True)
class ReportHeader:
    """The facts a report opens with; ``None`` is unknown and shows as "—".

    Attributes:
        data: The data folder that was evaluated, as given.
        split: Its split (sub-folder), e.g. "test".
        n_images: Number of images (volumes) scored.
        bundle: The model bundle folder.
        model: Architecture and its arguments, e.g. "unet (n_filters=16)".
        loss: Training loss, with its arguments.
        epochs: Epochs the model was trained for (the configured maximum).
        threshold: Probability threshold of binary predictions.
        version: seglab version that wrote the report.
        date: When the report was written.
    """

    data: str | None = None
    split: str | None = None
    n_images: int | None = None
    bundle: str | None = None
    model: str | None = None
    loss: str | None = None
    epochs: int | None = None
    threshold: float | None = None
    version: str = seglab.__version__
    date: str = field(default_factory=_now)

    def rows(self) -> list[tuple[str, str]]:
        """``(label, text)`` pairs in display order, unknown facts as "—"."""
        threshold = None if self.threshold is None else f"{self.threshold:.3f}"
        facts: list[tuple[str, object]] = [
            ("Data", self.data),
            ("Split", self.split),
            ("Images", self.n_images),
            ("Bundle", self.bundle),
            ("Model", self.model),
            ("Loss", self.loss),
            ("Epochs", self.epochs),
            ("Threshold", threshold),
            ("seglab", self.version),
            ("Date", self.date),
        ]
        return [(label, MISSING if value is None else str(value)) for label, value in facts]


def _with_arguments(name: object, arguments: object) -> str | None:
    if not name:
        return None
    if not isinstance(arguments, dict) or not arguments:
        return str(name)
    return f"{name} ({', '.join(f'{k}={v}' for k, v in arguments.items())})"


def run_dir_of(out_dir: Path) -> Path | None:
    """The run folder whose evaluation `out_dir` is, or None."""
    # Training evaluates into <run>/eval/<split>/, next to the run's config.yaml and model/.
    candidate = out_dir.resolve().parent.parent
    return candidate if (candidate / "config.yaml").is_file() else None


def report_header(
    metadata: dict[str, Any],
    out_dir: Path,
    data: str | Path | None = None,
    split: str | None = None,
    bundle: str | Path | None = None,
    n_images: int | None = None,
) -> ReportHeader:
    """The header of a report from the bundle's metadata (``seglab.json``) and what the caller
    knows.

    Inside a run folder (``out_dir`` is ``<run>/eval/<split>``, as ``seglab train`` writes it)
    the data folder, split and bundle default to the run's: its config's ``data.root``, the
    folder name and ``<run>/model``.

    Args:
        metadata: Bundle metadata; its ``model``, ``config`` and ``threshold`` are read.
        out_dir: Where the evaluation writes.
        data: The data folder evaluated.
        split: The split evaluated.
        bundle: The bundle folder.
        n_images: Number of images scored.
    """
    config = metadata.get("config") or {}
    run_dir = run_dir_of(out_dir)
    if run_dir is not None:
        data = data if data is not None else (config.get("data") or {}).get("root")
        split = split if split is not None else out_dir.resolve().name
        if bundle is None and (run_dir / "model").is_dir():
            bundle = run_dir / "model"
    model = metadata.get("model") or {}
    loss = config.get("loss") or {}
    # Only a trained binary model's threshold is used (and tuned); others ignore theirs.
    threshold = metadata.get("threshold") if metadata.get("task") == "binary" and config else None
    return ReportHeader(
        data=None if data is None else str(data),
        split=split,
        n_images=n_images,
        bundle=None if bundle is None else str(bundle),
        model=_with_arguments(model.get("name"), (config.get("model") or {}).get("params")),
        loss=_with_arguments(loss.get("name"), loss.get("params")),
        epochs=(config.get("train") or {}).get("epochs"),
        threshold=float(threshold) if isinstance(threshold, int | float) else None,
    )


def finish_header(
    header: ReportHeader | None, metadata: dict[str, Any], out_dir: Path, n_images: int
) -> ReportHeader:
    """``header`` (or one built from ``metadata`` when ``None``) with its image count."""
    return replace(header or report_header(metadata, out_dir), n_images=n_images)


@dataclass(frozen=True)
class HeadlineMetric:
    """One headline score: its key in metrics.json, its name and what it measures."""

    key: str
    name: str
    meaning: str


@dataclass(frozen=True)
class HeadlineGroup:
    """Scores shown together (pixel scores, instance scores), with a note on how to read them."""

    title: str
    metrics: tuple[HeadlineMetric, ...]
    note: str = ""


PIXEL_GROUP = HeadlineGroup(
    "Pixels",
    (
        HeadlineMetric(
            "dice", "Dice (= F1)", "overlap of predicted and true foreground, 2TP/(2TP+FP+FN)"
        ),
        HeadlineMetric(
            "iou", "IoU", "intersection over union of the masks, TP/(TP+FP+FN); below Dice"
        ),
        HeadlineMetric("precision", "Precision", "share of predicted foreground that is true"),
        HeadlineMetric("recall", "Recall", "share of true foreground that was found"),
    ),
    "Counted over all pixels of the split together: large objects weigh most.",
)
INSTANCE_GROUP = HeadlineGroup(
    "Instances (objects)",
    (
        HeadlineMetric(
            "dsb_map", "DSB mAP", "Kaggle DSB2018 score: object matches averaged over IoU 0.50–0.95"
        ),
        HeadlineMetric("ap@0.5", "AP@0.5", "objects matched at IoU > 0.5: found roughly"),
        HeadlineMetric("ap@0.75", "AP@0.75", "objects matched at IoU > 0.75: outlined closely"),
    ),
    "Counted per object, then averaged over images: two touching nuclei predicted as one blob "
    "barely lower Dice but cost both matches, so mAP is usually well below Dice.",
)
BINARY_HEADLINE = (PIXEL_GROUP, INSTANCE_GROUP)
MULTICLASS_HEADLINE = (
    HeadlineGroup(
        "Classes",
        (
            HeadlineMetric("miou", "mIoU", "IoU of each class, averaged over the classes"),
            HeadlineMetric(
                "pixel_accuracy", "Pixel accuracy", "share of labelled pixels given the right class"
            ),
        ),
        "mIoU weighs every class the same; pixel accuracy is dominated by the large classes.",
    ),
)
CLASSIFICATION_HEADLINE = (
    HeadlineGroup(
        "Images",
        (
            HeadlineMetric("accuracy", "Accuracy", "share of images given the right class"),
            HeadlineMetric("macro_f1", "Macro F1", "F1 of each class, averaged over the classes"),
        ),
        "Macro F1 weighs every class the same, so a rare class done badly shows up.",
    ),
)


def headline(
    metrics: dict[str, Any], groups: tuple[HeadlineGroup, ...]
) -> list[tuple[HeadlineGroup, list[tuple[HeadlineMetric, float]]]]:
    """The groups whose scores are in ``metrics``, each with its ``(metric, value)`` pairs;
    scores absent (no instances, say) or not numbers are left out."""
    shown = []
    for group in groups:
        values = [
            (m, float(metrics[m.key]))
            for m in group.metrics
            if isinstance(metrics.get(m.key), int | float)
        ]
        if values:
            shown.append((group, values))
    return shown
