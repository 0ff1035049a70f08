"""`compare`: models on one split and test set; one table, one chart, one MLflow parent run.

Every network is trained with its own settings and the same seed, so the split (written to each
run's splits.json) and the test set are identical; baselines such as `otsu` need no training and
are evaluated on that same test set.
"""

from __future__ import annotations

import csv
import io
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from seglab.config import Config, config_to_dict
from seglab.errors import ConfigError
from seglab.fileutils import atomic_path, atomic_write_bytes, atomic_write_text

# Columns of comparison.csv besides the model name, in order; absent values stay empty.
SCORE_COLUMNS = ["dice", "iou", "precision", "recall", "dsb_map", "ap@0.5", "ap@0.75"]


@dataclass
class ComparisonResult:
    """One row per model and the folder holding comparison.csv / .md / .png and the runs."""

    rows: list[dict[str, Any]]
    out_dir: Path


def compare(
    config: Config, models: list[str], out: str | Path, progress: bool = True
) -> ComparisonResult:
    """Train what needs training, evaluate every model on the same test set, tabulate.

    Args:
        config: The shared configuration (data, seed, training); `model.name` is replaced by
            each entry of `models`.
        models: Model or baseline names, e.g. `["otsu", "unet", "unet_extended"]`.
        out: Folder for one run folder per model and the comparison files.
        progress: Show progress bars.
    """
    from seglab.baseline import BASELINES
    from seglab.models import MODELS

    unknown = [m for m in models if m not in MODELS and m not in BASELINES]
    if unknown or not models:
        valid = ", ".join([*BASELINES, *MODELS])
        raise ConfigError(f"--models: unknown {unknown or 'empty list'}; valid: {valid}")
    out = Path(out)
    parent = _parent_run(config, out, "compare " + ",".join(models))
    rows = []
    for name in models:
        started = time.perf_counter()
        if name in BASELINES:
            metrics = _evaluate_baseline(config, name, out / name, progress)
        else:
            metrics = _train_network(config, name, out / name, parent, progress)
        row = {"model": name, "trained": name in MODELS}
        row.update({key: metrics.get(key) for key in SCORE_COLUMNS})
        for modality, values in metrics.get("per_modality", {}).items():
            row[f"dice_{modality}"] = values.get("dice")
            row[f"dsb_map_{modality}"] = values.get("dsb_map")
        row["seconds"] = round(time.perf_counter() - started, 1)
        rows.append(row)
        if parent is not None and name in BASELINES:
            parent.log_child(name, metrics, out / name / "eval" / "test")
    _write_outputs(rows, out, "comparison")
    if parent is not None:
        parent.finish([out / f"comparison.{ext}" for ext in ("csv", "md", "png")])
    return ComparisonResult(rows, out)


def _evaluate_baseline(config: Config, name: str, run_dir: Path, progress: bool) -> dict:
    from seglab.baseline import create_baseline
    from seglab.data.splits import load_split_data
    from seglab.evaluation import evaluate_samples

    split = load_split_data(config.data, config.seed, progress=progress)
    if not split.samples.get("test"):
        raise ConfigError("compare needs a test split: set data.test_fraction > 0 or add test/")
    baseline = create_baseline(name, instances=config.instances)
    result = evaluate_samples(baseline, split.samples["test"], run_dir / "eval" / "test")
    return result.metrics


def _train_network(
    config: Config, name: str, run_dir: Path, parent: _ParentRun | None, progress: bool
) -> dict:
    from seglab.training import train

    settings = config.model_copy(deep=True)
    settings.model.name = name
    settings.train.evaluate_test = True
    tags = parent.child_tags() if parent is not None else None
    result = train(settings, run_dir, progress=progress, tags=tags)
    if result.test_metrics is None:
        raise ConfigError("compare needs a test split: set data.test_fraction > 0 or add test/")
    return result.test_metrics


class _ParentRun:
    """The MLflow parent run of a comparison; children carry its id as `mlflow.parentRunId`."""

    def __init__(self, config: Config, out: Path, label: str) -> None:
        import mlflow

        from seglab.tracking import default_store, flat_params, quiet_mlflow

        quiet_mlflow()
        uri, default_artifacts = default_store(out)
        artifacts: str | None = default_artifacts
        if config.tracking.uri:
            uri, artifacts = config.tracking.uri, None
        self.client = mlflow.MlflowClient(uri)
        experiment = self.client.get_experiment_by_name(config.tracking.experiment)
        self.experiment_id = (
            experiment.experiment_id
            if experiment is not None
            else self.client.create_experiment(config.tracking.experiment, artifacts)
        )
        run = self.client.create_run(self.experiment_id, run_name=out.name)
        self.run_id = run.info.run_id
        params = flat_params(config_to_dict(config))
        params["experiment"] = label
        for key, value in params.items():
            self.client.log_param(self.run_id, key, value)

    def child_tags(self) -> dict[str, str]:
        return {"mlflow.parentRunId": self.run_id}

    def log_child(self, name: str, metrics: dict[str, Any], folder: Path) -> None:
        from seglab.tracking import metric_name

        run = self.client.create_run(self.experiment_id, run_name=name, tags=self.child_tags())
        self.client.log_param(run.info.run_id, "model.name", name)
        for key, value in metrics.items():
            if isinstance(value, int | float):
                self.client.log_metric(run.info.run_id, metric_name(key), float(value))
        self.client.log_artifacts(run.info.run_id, str(folder), "eval/test")
        self.client.set_terminated(run.info.run_id)

    def finish(self, files: list[Path]) -> None:
        for path in files:
            self.client.log_artifact(self.run_id, str(path))
        self.client.set_terminated(self.run_id)


def _parent_run(config: Config, out: Path, label: str) -> _ParentRun | None:
    return _ParentRun(config, out, label) if config.tracking.enabled else None


def _columns(rows: list[dict[str, Any]]) -> list[str]:
    columns: list[str] = []
    for row in rows:
        columns += [key for key in row if key not in columns]
    return [c for c in columns if any(row.get(c) is not None for row in rows)]


def _cell(value: Any) -> str:
    if value is None:
        return ""
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def _write_outputs(rows: list[dict[str, Any]], out: Path, stem: str) -> None:
    columns = _columns(rows)
    with atomic_path(out / f"{stem}.csv") as temporary, temporary.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(columns)
        writer.writerows([[_cell(row.get(c)) for c in columns] for row in rows])
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(_cell(row.get(c)) for c in columns) + " |" for row in rows]
    atomic_write_text(out / f"{stem}.md", "\n".join(lines) + "\n")
    if stem == "comparison":
        atomic_write_bytes(out / f"{stem}.png", _bar_chart(rows))


def _bar_chart(rows: list[dict[str, Any]]) -> bytes:
    import numpy as np
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    candidates = ("dice", "iou", "dsb_map", "ap@0.5", "ap@0.75")
    scores = [c for c in candidates if any(row.get(c) is not None for row in rows)]
    figure = Figure(figsize=(1.6 + 1.4 * len(scores) * len(rows) / 2, 4))
    FigureCanvasAgg(figure)
    axes = figure.subplots()
    width = 0.8 / len(rows)
    positions = np.arange(len(scores))
    for index, row in enumerate(rows):
        values = [row.get(c) or 0.0 for c in scores]
        bars = axes.bar(positions + index * width, values, width, label=row["model"])
        axes.bar_label(bars, fmt="%.3f", fontsize=7)
    axes.set_xticks(positions + width * (len(rows) - 1) / 2, scores)
    axes.set_ylim(0, 1.05)
    axes.set_ylabel("score on the test set")
    axes.set_title("Model comparison (same split, same test set)")
    axes.legend(loc="lower right", fontsize=8)
    axes.grid(axis="y", alpha=0.3)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110)
    return buffer.getvalue()
