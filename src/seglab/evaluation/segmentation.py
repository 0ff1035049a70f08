"""Evaluation: metrics, a per-image table, confusion images and an HTML report for one split."""

from __future__ import annotations

import csv
import logging
import shutil
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from seglab.atomic_files import atomic_text_file, atomic_write_json
from seglab.data.layouts import find_samples
from seglab.data.loading import LoadedSample, load_samples
from seglab.errors import DataError
from seglab.evaluation import EvaluationResult
from seglab.evaluation.hard_cases import PANEL_LABELS, HardestCases
from seglab.evaluation.report_facts import ReportHeader, finish_header, report_header, run_dir_of
from seglab.objectives.instance_metrics import (
    InstanceScore,
    per_threshold_table,
    score_image,
    summarize_instances,
)
from seglab.objectives.metrics import METRICS, confusion_counts, summarize

log = logging.getLogger(__name__)

COUNT_COLUMNS = ["tp", "fp", "fn", "tn"]
GALLERY_SIZE = 12
HARD_CASES = 8  # image | truth | prediction | errors rows: one per image, each ~300 px tall


def evaluate_samples(
    predictor: Any,
    samples: list[Any],
    out_dir: str | Path,
    progress: bool = False,
    max_confusion: int = 200,
    cityscapes: bool = False,
    header: ReportHeader | None = None,
) -> EvaluationResult:
    """Predict every labelled sample, score it and write the evaluation outputs into `out_dir`.

    Writes `metrics.json`, `per_image.csv`, `confusion/<id>.png` (true positives, false positives
    and false negatives in three colours over the image), `cases/<id>.png` (image | truth |
    prediction | errors of the lowest-Dice images) and a self-contained `report.html`, whose
    header is `header` (by default what the bundle metadata and a run folder tell,
    `report_facts.report_header`).
    Samples with one mask per object (dsb2018) also get instance metrics (Kaggle DSB2018 mAP,
    `per_threshold.csv`, `instances/<id>.png`); every result is also split by imaging modality.
    Multi-class models are scored by `seglab.evaluation.multiclass` (mIoU, per-class scores,
    confusion matrix, palette panels); `cityscapes` (masks read with `benchmark_mapping` from
    Cityscapes label ids) adds the official Cityscapes scores beside.
    """
    out_dir = Path(out_dir)
    labelled = [s for s in samples if s.mask is not None]
    if not labelled:
        raise DataError(out_dir, "no labelled image to evaluate", "evaluation needs masks")
    clear_previous_evaluation(out_dir)
    if predictor.kind.multiclass:
        from seglab.evaluation.multiclass import evaluate_multiclass_samples

        scores, table = evaluate_multiclass_samples(
            predictor, labelled, out_dir, progress, cityscapes=cityscapes, header=header
        )
        return EvaluationResult(scores, table, out_dir)
    rows: list[dict[str, Any]] = []
    all_counts = []
    instance_scores = []
    cases = HardestCases(HARD_CASES)
    for index, sample in enumerate(_progress(labelled, progress, "evaluating")):
        row, counts, score = _score_sample(predictor, sample, out_dir, index < max_confusion, cases)
        rows.append(row)
        all_counts.append(counts)
        if score is not None:
            instance_scores.append(score)

    metrics: dict[str, Any] = summarize(np.concatenate(all_counts))
    if instance_scores:
        metrics.update(summarize_instances(instance_scores))
    metrics.update(n_images=len(rows), threshold=predictor.threshold)
    metrics["per_modality"] = _per_modality(rows, all_counts, instance_scores)
    per_threshold = per_threshold_table(instance_scores) if instance_scores else []
    if per_threshold:
        write_csv(out_dir / "per_threshold.csv", per_threshold)
    atomic_write_json(out_dir / "metrics.json", metrics)
    write_csv(out_dir / "per_image.csv", rows)
    strips = cases.write(out_dir / "cases")
    header = finish_header(header, predictor.metadata, out_dir, len(rows))
    _write_report(out_dir, metrics, rows, per_threshold, header, strips)
    return EvaluationResult(metrics, rows, out_dir)


# What an evaluation writes besides metrics.json, per_image.csv and report.html (replaced).
PICTURE_FOLDERS = ("confusion", "instances", "panels", "cases")


def clear_previous_evaluation(out_dir: Path) -> None:
    """Delete the pictures and tables of an earlier evaluation into `out_dir` (one with a
    `metrics.json`), so that none of its images is mistaken for one of this evaluation's."""
    if not (out_dir / "metrics.json").is_file():
        return
    for name in PICTURE_FOLDERS:
        shutil.rmtree(out_dir / name, ignore_errors=True)
    for name in ("per_threshold.csv", "confusion_matrix.csv", "confusion_matrix.png"):
        (out_dir / name).unlink(missing_ok=True)


def _score_sample(
    predictor: Any, sample: Any, out_dir: Path, pictures: bool, cases: HardestCases
) -> tuple[dict[str, Any], np.ndarray, InstanceScore | None]:
    """Predict and score one sample: its per-image row, confusion counts and instance score
    (None without instances); with `pictures`, its confusion (and instance) image too, and
    offered to `cases`."""
    from seglab.data.views import detect_modality
    from seglab.viz import confusion_image, instance_overlay, save_png

    with_instances = getattr(sample, "instances", None) is not None
    prediction = predictor.predict(sample.image, instances=with_instances)
    counts = confusion_counts(prediction.mask, sample.mask)
    row: dict[str, Any] = {"id": sample.id, "modality": detect_modality(sample.image)}
    row.update({name: float(fn(counts)[0]) for name, fn in METRICS.items()})
    score = score_image(sample.instances, prediction.instances) if with_instances else None
    if score is not None:
        row.update(_instance_columns(score))
    row.update(dict(zip(COUNT_COLUMNS, (int(c) for c in counts[0]))))
    if pictures:
        caption = f"{sample.id} — dice {row['dice']:.3f} ({row['modality']})"
        cases.offer(row["dice"], sample.id, caption, sample.image, sample.mask, prediction.mask)
        picture = confusion_image(sample.image, sample.mask, prediction.mask)
        save_png(out_dir / "confusion" / f"{sample.id}.png", picture)
        if with_instances:
            overlay = instance_overlay(sample.image, sample.instances, prediction.instances)
            save_png(out_dir / "instances" / f"{sample.id}.png", overlay)
    return row, counts, score


def evaluate(
    model: str | Path | Any,
    data: str | Path,
    out: str | Path,
    layout: str = "auto",
    split: str = "test",
    skip_bad: bool = False,
    progress: bool = True,
    bundle: str | Path | None = None,
) -> EvaluationResult:
    """Evaluate a model on a data folder (its `split` sub-folder when it has splits).

    `model` is a bundle folder, a baseline name ("otsu") or a predictor object (then `bundle`
    names its folder in the report, when it has one). Volume models
    are scored on a `volumes` folder (`evaluation.volumes.evaluate_volumes`), classifiers on
    a classification folder or `digits` (`evaluation.classification.evaluate_classification`).

    Example:
        >>> result = evaluate("runs/demo/run/model", "data/nuclei", "eval/")  # doctest: +SKIP
        >>> result.metrics["dice"]  # doctest: +SKIP
    """
    from seglab.inference.loading import load_predictor
    from seglab.pretrained import bundle_path

    predictor = load_predictor(model) if isinstance(model, str | Path) else model
    if bundle is None and isinstance(model, str | Path) and bundle_path(model).is_dir():
        bundle = bundle_path(model)
    header = report_header(predictor.metadata, Path(out), data, split, bundle)
    if predictor.kind.volumes:
        from seglab.evaluation.volumes import evaluate_volumes

        return evaluate_volumes(predictor, data, out, split=split, progress=progress, header=header)
    if predictor.kind.classification:
        from seglab.evaluation.classification import evaluate_classification

        return evaluate_classification(predictor, data, out, layout, split, header=header)
    found = find_samples(Path(data), layout, skip_bad=skip_bad, require_masks=False)
    files, used = _split_files(found.splits, split, Path(data))
    header = replace(header, split=used)
    labelled = [f for f in files if f.masks]
    if not labelled:
        raise DataError(
            Path(data),
            "no ground truth: these images have no masks",
            "evaluate needs labelled data; use `seglab predict` for unlabelled images",
        )
    if len(labelled) < len(files):
        log.warning("%d images without masks are not evaluated", len(files) - len(labelled))
    mapping, cityscapes = _ground_truth_mapping(predictor)
    samples, skipped = load_samples(labelled, skip_bad=skip_bad, progress=progress, mapping=mapping)
    for bad in [*found.skipped, *skipped]:
        log.warning("skipped %s: %s", bad.path, bad.reason)
    return evaluate_samples(
        predictor, samples, out, progress=progress, cityscapes=cityscapes, header=header
    )


def _split_files(splits: dict[str, Any], split: str, data: Path) -> tuple[Any, str]:
    """The files of `split`, or of the only split ("all") of a folder without splits, and how
    the report names it."""
    if split in splits:
        return splits[split], split
    if list(splits) == ["all"]:
        return splits["all"], "all (the folder has no splits)"
    raise DataError(
        data,
        f"no '{split}' split here (found: {', '.join(splits)})",
        f"pass --split with one of: {', '.join(splits)}",
    )


def _ground_truth_mapping(predictor: Any) -> tuple[Any, bool]:
    """How the masks are read for evaluation (None: binary masks), and whether the model is a
    Cityscapes one: its ground truth then leaves out the labels the benchmark ignores
    (`benchmark_mapping`)."""
    if not predictor.kind.multiclass:
        return None, False
    from seglab.data.labels import LabelMapping
    from seglab.evaluation.cityscapes_eval import benchmark_mapping, cityscapes_kind

    mapping = LabelMapping.from_dict(predictor.metadata["labels"])
    return benchmark_mapping(mapping), cityscapes_kind(mapping) is not None


def _instance_columns(score: Any) -> dict[str, float]:
    # IOU_THRESHOLDS start at 0.50 in steps of 0.05: index 0 is 0.5, index 5 is 0.75.
    return {
        "dsb_score": float(score.score),
        "ap@0.5": float(score.precision[0]),
        "ap@0.75": float(score.precision[5]),
        "n_true": int(score.n_true),
        "n_pred": int(score.n_pred),
    }


def _per_modality(
    rows: list[dict[str, Any]], counts: list[np.ndarray], scores: list[Any]
) -> dict[str, dict[str, Any]]:
    """Dice (and DSB mAP) per imaging modality, so a model failing on one kind shows up."""
    groups: dict[str, list[int]] = {}
    for index, row in enumerate(rows):
        groups.setdefault(row["modality"], []).append(index)
    result = {}
    for modality, indices in sorted(groups.items()):
        summary = summarize(np.concatenate([counts[i] for i in indices]))
        entry: dict[str, Any] = {
            "n_images": len(indices),
            "dice": summary["dice"],
            "iou": summary["iou"],
        }
        if scores:
            entry["dsb_map"] = summarize_instances([scores[i] for i in indices])["dsb_map"]
        result[modality] = entry
    return result


def _progress(items: list[LoadedSample], enabled: bool, label: str) -> Any:
    if not enabled:
        return items
    from rich.progress import track

    return track(items, description=label)


def write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    """Writes ``rows`` (dicts with the same keys) as a CSV, floats with 6 decimals, atomically."""
    with atomic_text_file(path) as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        for row in rows:
            writer.writerow({k: f"{v:.6f}" if isinstance(v, float) else v for k, v in row.items()})


def _gallery(out_dir: Path, folder: str, rows: list[dict[str, Any]], key: str) -> list[Any]:
    return [
        (f"{r['id']} — {key} {r[key]:.3f} ({r['modality']})", out_dir / folder / f"{r['id']}.png")
        for r in rows[:GALLERY_SIZE]
        if (out_dir / folder / f"{r['id']}.png").is_file()
    ]


# The per-image columns the report shows (the page width allows about eight); per_image.csv
# has them all.
REPORT_COLUMNS = ("id", "modality", "dice", "iou", "precision", "recall", "dsb_score", "ap@0.5")


def per_image_section(
    rows: list[dict[str, Any]],
    title: str = "Per-image metrics",
    preferred: Sequence[str] = REPORT_COLUMNS,
) -> Any:
    """The per-image table of a report: the `preferred` columns its rows have, sortable, 3
    decimals, with a link to the full table (per_image.csv)."""
    from seglab.evaluation.report import ReportSection

    columns = [c for c in preferred if rows and c in rows[0]]
    return ReportSection(title, table=rows, columns=columns, sortable=True, decimals=3)


def summary_of(metrics: dict[str, Any]) -> dict[str, Any]:
    """The scalar metrics of a report's full table; F1 is left out where it equals Dice (it
    always does for a binary mask: it is the same formula)."""
    return {
        k: v
        for k, v in metrics.items()
        if not isinstance(v, dict | list) and v is not None and not k.startswith("f1")
    }


def _write_report(
    out_dir: Path,
    metrics: dict[str, Any],
    rows: list[dict[str, Any]],
    per_threshold: list[dict[str, Any]],
    header: ReportHeader,
    strips: list[tuple[str, Path]],
) -> None:
    from seglab.evaluation.report import ReportSection, write_report_html
    from seglab.evaluation.report_facts import BINARY_HEADLINE, headline
    from seglab.viz import confusion_legend_html

    worst = sorted(rows, key=lambda r: r["dice"])
    modality_table = [{"modality": k, **v} for k, v in metrics["per_modality"].items()]
    sections = [
        ReportSection(
            "Hardest images (lowest Dice first)",
            legend_html=confusion_legend_html(),
            strips=strips,
            strip_labels=PANEL_LABELS,
        ),
        ReportSection("Per imaging modality", table=modality_table, decimals=3),
    ]
    if per_threshold:
        by_instances = sorted(rows, key=lambda r: r["dsb_score"])
        sections += [
            ReportSection(
                "Instances (lowest DSB score first)",
                text="Predicted nuclei matched to a true one (IoU > 0.5) in green, false "
                "nuclei in vermilion, missed nuclei in blue.",
                images=_gallery(out_dir, "instances", by_instances, "dsb_score"),
            ),
            ReportSection(
                "Kaggle DSB2018 precision per IoU threshold",
                table=per_threshold,
                table_csv="per_threshold.csv",
                decimals=3,
            ),
        ]
    sections.append(per_image_section(worst))
    sections += training_sections(out_dir)
    write_report_html(
        out_dir / "report.html",
        "seglab evaluation",
        summary_of(metrics),
        sections,
        header=header,
        headline=headline(metrics, BINARY_HEADLINE),
    )


def training_sections(out_dir: Path) -> list[Any]:
    """The run's training figures (curves, threshold) as a report section, when `out_dir` is
    a run folder's eval/<split>/."""
    from seglab.evaluation.report import ReportSection

    run_dir = run_dir_of(out_dir)
    if run_dir is None:
        return []
    figures = [
        (caption, run_dir / name)
        for caption, name in (
            ("Training curves", "curves.png"),
            ("F1 against threshold (validation)", "threshold.png"),
        )
        if (run_dir / name).is_file()
    ]
    return [ReportSection("Training", images=figures)] if figures else []
