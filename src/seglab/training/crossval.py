"""`cross_validate`: k folds (stratified for classification), mean ± std of every metric.

Each fold trains on the other k − 1 folds and is scored on its own (which also drives early
stopping and, for segmentation, threshold tuning). The test split, if any, joins the pool:
cross-validation estimates generalisation from all labelled data.
"""

from __future__ import annotations

import io
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from seglab.atomic_files import atomic_write_bytes
from seglab.config import Config
from seglab.errors import ConfigError
from seglab.kinds import Kind, kind_of
from seglab.training.compare import parent_run, shared_store, write_outputs


@dataclass
class CrossValidationResult:
    """One row per fold, the mean and std of every metric, and the output folder."""

    folds: list[dict[str, Any]]
    mean: dict[str, float]
    std: dict[str, float]
    out_dir: Path


def fold_assignments(config: Config, k: int) -> list[dict[str, Any]]:
    """For each fold, {"train": ..., "val": ...}: indices into the pooled images
    (classification), else sample ids (volume stems for volumes)."""
    if k < 2:
        raise ConfigError(f"--folds must be at least 2, got {k}")
    kind = kind_of(config)
    if kind.classification:
        from seglab.data.classification import load_classification, stratified_folds

        _, found = load_classification(config.data.root, config.data.layout)
        labels = np.concatenate([d.labels for d in found.values()])
        folds = stratified_folds(labels, k, config.seed)
    else:
        ids = _sample_ids(config, kind)
        if len(ids) < k:
            raise ConfigError(f"{len(ids)} samples cannot make {k} folds")
        order = np.random.default_rng(config.seed).permutation(len(ids))
        folds = [ids[part] for part in np.array_split(order, k)]
    assignments: list[dict[str, Any]] = []
    for index, held_out in enumerate(folds):
        rest = np.concatenate([f for j, f in enumerate(folds) if j != index])
        if kind.classification:
            assignments.append({"train": rest, "val": held_out})
        else:
            assignments.append({"train": list(rest), "val": list(held_out)})
    return assignments


def _sample_ids(config: Config, kind: Kind) -> np.ndarray:
    """The ids of every sample of a segmentation data set, sorted."""
    if config.data.root is None:
        raise ConfigError("'data.root' is not set; pass --data DIR")
    root = Path(config.data.root)
    if kind.volumes:
        from seglab.data.volumes import find_volumes

        stems = [stem for entries in find_volumes(root).values() for stem, _, _ in entries]
        return np.array(sorted(stems))
    from seglab.data.layouts import find_samples

    found = find_samples(root, config.data.layout)
    return np.array(sorted(s.id for split in found.splits.values() for s in split))


def cross_validate(
    config: Config, k: int, out: str | Path, progress: bool = True
) -> CrossValidationResult:
    """Train one run per fold into `out/fold-<i>` and summarise (cv.csv, cv.md, cv.png).

    Example:
        >>> cfg = load_config(None, ["task=classification"])  # doctest: +SKIP
        >>> cross_validate(cfg, 5, "runs/cv").mean["accuracy"]  # doctest: +SKIP
    """
    from seglab.training.run import resolve_layout, train

    out = Path(out)
    settings = resolve_layout(config)
    settings.train.evaluate_test = False
    parent = parent_run(settings, out, f"cv {k} folds")
    settings = shared_store(settings, out)
    tags = parent.child_tags() if parent is not None else None
    rows: list[dict[str, Any]] = []
    for index, assignment in enumerate(fold_assignments(settings, k), start=1):
        result = train(
            settings, out / f"fold-{index}", progress=progress, tags=tags, assignment=assignment
        )
        scores = {key: v for key, v in result.val_metrics.items() if isinstance(v, float)}
        rows.append({"fold": index, **scores})
    keys = [key for key in rows[0] if key != "fold"]
    mean = {key: statistics.fmean(r[key] for r in rows) for key in keys}
    std = {key: statistics.stdev(r[key] for r in rows) for key in keys}
    table: list[dict[str, Any]] = [*rows, {"fold": "mean", **mean}, {"fold": "std", **std}]
    write_outputs(table, out, "cv")
    atomic_write_bytes(out / "cv.png", _folds_chart(rows, keys))
    if parent is not None:
        for key in keys:
            parent.client.log_metric(parent.run_id, f"{key}_mean", mean[key])
            parent.client.log_metric(parent.run_id, f"{key}_std", std[key])
        parent.finish([out / "cv.csv", out / "cv.md", out / "cv.png"])
    return CrossValidationResult(rows, mean, std, out)


def _folds_chart(rows: list[dict[str, Any]], keys: list[str]) -> bytes:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    shown = [k for k in keys if not k.endswith("_per_image")][:8]
    figure = Figure(figsize=(1.5 + 1.1 * len(shown), 4))
    FigureCanvasAgg(figure)
    axes = figure.subplots()
    for position, key in enumerate(shown):
        values = [r[key] for r in rows]
        axes.bar(
            position,
            statistics.fmean(values),
            0.6,
            color="0.8",
            yerr=statistics.stdev(values),
            capsize=4,
        )
        axes.scatter([position] * len(values), values, s=14, zorder=3)
    axes.set_xticks(range(len(shown)), shown, rotation=30, ha="right")
    axes.set_ylim(0, 1.05)
    axes.set_title(f"{len(rows)}-fold cross-validation: mean ± std, one dot per fold")
    axes.grid(axis="y", alpha=0.3)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110)
    return buffer.getvalue()
