"""Evaluation: metrics, a per-image table, confusion images and an HTML report for one split."""

from __future__ import annotations

import csv
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from seglab.data.layouts import find_samples
from seglab.data.loading import LoadedSample, load_samples
from seglab.errors import DataError
from seglab.fileutils import atomic_path, atomic_write_json
from seglab.inference import Predictor
from seglab.metrics import METRICS, confusion_counts, summarize

log = logging.getLogger(__name__)

COUNT_COLUMNS = ["tp", "fp", "fn", "tn"]
GALLERY_SIZE = 12


@dataclass
class EvaluationResult:
    """Dataset metrics, one row per image, and the folder the outputs were written to."""

    metrics: dict[str, Any]
    per_image: list[dict[str, Any]]
    out_dir: Path


def evaluate_samples(
    predictor: Predictor,
    samples: list[Any],
    out_dir: str | Path,
    progress: bool = False,
    max_confusion: int = 200,
) -> EvaluationResult:
    """Predict every labelled sample, score it and write the evaluation outputs into `out_dir`.

    Writes `metrics.json`, `per_image.csv`, `confusion/<id>.png` (true positives, false positives
    and false negatives in three colours over the image) and a self-contained `report.html`.
    """
    from seglab.viz import confusion_image, save_png

    out_dir = Path(out_dir)
    labelled = [s for s in samples if s.mask is not None]
    if not labelled:
        raise DataError(out_dir, "no labelled image to evaluate", "evaluation needs masks")
    rows: list[dict[str, Any]] = []
    all_counts = []
    for index, sample in enumerate(_progress(labelled, progress, "evaluating")):
        prediction = predictor.predict(sample.image)
        counts = confusion_counts(prediction.mask, sample.mask)
        all_counts.append(counts)
        row: dict[str, Any] = {"id": sample.id}
        row.update({name: float(fn(counts)[0]) for name, fn in METRICS.items()})
        row.update(dict(zip(COUNT_COLUMNS, (int(c) for c in counts[0]))))
        rows.append(row)
        if index < max_confusion:
            picture = confusion_image(sample.image, sample.mask, prediction.mask)
            save_png(out_dir / "confusion" / f"{sample.id}.png", picture)

    metrics: dict[str, Any] = summarize(np.concatenate(all_counts))
    metrics.update(n_images=len(rows), threshold=predictor.threshold)
    atomic_write_json(out_dir / "metrics.json", metrics)
    _write_csv(out_dir / "per_image.csv", rows)
    _write_report(out_dir, metrics, rows, predictor)
    return EvaluationResult(metrics, rows, out_dir)


def evaluate(
    model: str | Path | Predictor,
    data: str | Path,
    out: str | Path,
    layout: str = "auto",
    split: str = "test",
    skip_bad: bool = False,
    progress: bool = True,
) -> EvaluationResult:
    """Evaluate a model bundle on a data folder (its `split` sub-folder when it has splits).

    Example:
        >>> result = evaluate("runs/demo/run/model", "data/nuclei", "eval/")  # doctest: +SKIP
        >>> result.metrics["dice"]  # doctest: +SKIP
    """
    predictor = model if isinstance(model, Predictor) else Predictor.from_bundle(model)
    found = find_samples(Path(data), layout, skip_bad=skip_bad)
    if split in found.splits:
        files = found.splits[split]
    elif list(found.splits) == ["all"]:
        files = found.splits["all"]
    else:
        raise DataError(
            Path(data),
            f"no '{split}' split here (found: {', '.join(found.splits)})",
            f"pass --split with one of: {', '.join(found.splits)}",
        )
    samples, skipped = load_samples(files, skip_bad=skip_bad, progress=progress)
    for bad in [*found.skipped, *skipped]:
        log.warning("skipped %s: %s", bad.path, bad.reason)
    return evaluate_samples(predictor, samples, out, progress=progress)


def _progress(items: list[LoadedSample], enabled: bool, label: str) -> Any:
    if not enabled:
        return items
    from rich.progress import track

    return track(items, description=label)


def _write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    with atomic_path(path) as temporary, temporary.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        for row in rows:
            writer.writerow({k: f"{v:.6f}" if isinstance(v, float) else v for k, v in row.items()})


def _write_report(
    out_dir: Path, metrics: dict[str, Any], rows: list[dict[str, Any]], predictor: Predictor
) -> None:
    from seglab.report import ReportSection, write_report_html
    from seglab.viz import confusion_legend_html

    worst = sorted(rows, key=lambda r: r["dice"])
    gallery = [
        (f"{r['id']} — Dice {r['dice']:.3f}", out_dir / "confusion" / f"{r['id']}.png")
        for r in worst[:GALLERY_SIZE]
        if (out_dir / "confusion" / f"{r['id']}.png").is_file()
    ]
    sections = [
        ReportSection(
            "Hardest images (lowest Dice first)",
            legend_html=confusion_legend_html(),
            images=gallery,
        ),
        ReportSection("Per-image metrics", table=worst),
    ]
    run_dir = _run_dir_of(out_dir)
    if run_dir is not None:
        figures = [
            (caption, run_dir / name)
            for caption, name in (
                ("Training curves", "curves.png"),
                ("F1 against threshold (validation)", "threshold.png"),
            )
            if (run_dir / name).is_file()
        ]
        if figures:
            sections.append(ReportSection("Training", images=figures))
    summary = {**metrics, "model": predictor.metadata["model"]["name"]}
    write_report_html(out_dir / "report.html", "seglab evaluation", summary, sections)


def _run_dir_of(out_dir: Path) -> Path | None:
    # eval/<split>/ inside a run folder: the run's curves belong in the report.
    candidate = out_dir.resolve().parent.parent
    return candidate if (candidate / "config.yaml").is_file() else None
