"""`compare`: models and losses on one split and test set; one table, one chart, one MLflow
parent run with a child run per training.

Every network is trained with its own settings (its own model and its own loss, recorded in its
config.yaml and MLflow params) and the same seed, so the split (written to each run's
splits.json) and the test set are identical; baselines such as `otsu` need no training and are
evaluated on that same test set. With several seeds every run is repeated and the table gives
mean and standard deviation, so a difference can be told from noise.
"""

from __future__ import annotations

import csv
import io
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from seglab.atomic_files import atomic_text_file, atomic_write_bytes, atomic_write_text
from seglab.config import Config, config_to_dict
from seglab.errors import ConfigError

# Columns of comparison.csv besides the run names, in order; absent values stay empty.
SCORE_COLUMNS = [
    "val_loss",
    "miou",
    "dice",
    "iou",
    "f1",
    "precision",
    "recall",
    "pixel_accuracy",
    "dsb_map",
    "ap@0.5",
    "ap@0.75",
]
# Scores drawn in the bar chart, when present (F1 equals Dice; multi-class IoU is mIoU).
CHART_SCORES = ("miou", "dice", "iou", "dsb_map", "ap@0.5", "ap@0.75")


@dataclass
class ComparisonResult:
    """One row per model (or loss) and the folder holding comparison.csv / .md / .png and the
    runs."""

    rows: list[dict[str, Any]]
    out_dir: Path


def compare(
    config: Config,
    models: list[str] | None,
    out: str | Path,
    progress: bool = True,
    losses: list[str] | None = None,
    seeds: int = 1,
) -> ComparisonResult:
    """Train what needs training, evaluate every run on the same test set, tabulate.

    Args:
        config: The shared configuration (data, seed, training); `model.name` and `loss.name`
            are replaced by each entry of `models` and `losses`.
        models: Model or baseline names, e.g. `["otsu", "unet", "unet_extended"]`; None: the
            config's model.
        out: Folder for one run folder per model / loss (and seed) and the comparison files.
        progress: Show progress bars.
        losses: Loss names, e.g. `["dice", "ce_dice", "jaccard"]`; None: the config's loss.
        seeds: Train every network this many times, with seeds `config.seed`, `+1`, ...; the
            table gives the mean and the standard deviation (`<score>_std`).

    Example:
        >>> compare(cfg, None, "runs/losses", losses=["dice", "tversky"], seeds=3)  # doctest: +SKIP
    """
    from seglab.baseline import BASELINES

    models = models if models is not None else [config.model.name]
    _check_arguments(models, losses, seeds)
    out = Path(out)
    parent = parent_run(config, out, _label(models, losses, seeds))
    config = shared_store(config, out)
    rows = []
    for model, loss in _runs(models, losses, BASELINES):
        name = _run_name(model, loss, models, losses)
        rows.append(_compare_one(config, model, loss, out / name, seeds, parent, progress))
    write_outputs(rows, out, "comparison")
    if parent is not None:
        parent.finish([out / f"comparison.{ext}" for ext in ("csv", "md", "png")])
    return ComparisonResult(rows, out)


def _check_arguments(models: list[str], losses: list[str] | None, seeds: int) -> None:
    from seglab.baseline import BASELINES
    from seglab.models import MODELS

    unknown = [m for m in models if m not in MODELS and m not in BASELINES]
    if unknown or not models:
        valid = ", ".join([*BASELINES, *MODELS])
        raise ConfigError(f"--models: unknown {unknown or 'empty list'}; valid: {valid}")
    if losses is not None and not losses:
        raise ConfigError("--losses: empty list")
    if seeds < 1:
        raise ConfigError(f"--seeds: at least 1, got {seeds}")


def _label(models: list[str], losses: list[str] | None, seeds: int) -> str:
    """The parent run's `experiment` parameter, e.g. `compare unet losses=dice,jaccard`."""
    return " ".join(
        part
        for part in (
            "compare",
            ",".join(models),
            f"losses={','.join(losses)}" if losses else "",
            f"seeds={seeds}" if seeds > 1 else "",
        )
        if part
    )


def _compare_one(
    config: Config,
    model: str,
    loss: str | None,
    folder: Path,
    seeds: int,
    parent: _ParentRun | None,
    progress: bool,
) -> dict[str, Any]:
    """Evaluate a baseline, or train a network with every seed, in `folder`: the table's row."""
    from seglab.baseline import BASELINES
    from seglab.models import MODELS

    started = time.perf_counter()
    if model in BASELINES:
        results = [_evaluate_baseline(config, model, folder, progress)]
    else:
        results = [
            _train_network(config, model, loss, config.seed + k, run_dir, parent, progress)
            for k, run_dir in enumerate(_seed_dirs(folder, seeds))
        ]
    trained = model in MODELS
    used = _loss_of(_seed_dirs(folder, seeds)[0]) if trained else None
    row: dict[str, Any] = {"run": folder.name, "model": model, "loss": used, "trained": trained}
    row.update(_aggregate(results))
    row["seeds"] = len(results)
    row["seconds"] = round((time.perf_counter() - started) / len(results), 1)
    if parent is not None and model in BASELINES:
        parent.log_child(model, results[0], folder / "eval" / "test")
    return row


def _runs(
    models: list[str], losses: list[str] | None, baselines: Any
) -> list[tuple[str, str | None]]:
    """(model, loss) pairs: every network with every loss; a baseline once, with no loss."""
    pairs: list[tuple[str, str | None]] = []
    for model in models:
        if model in baselines or losses is None:
            pairs.append((model, None))
        else:
            pairs += [(model, loss) for loss in losses]
    return pairs


def _run_name(model: str, loss: str | None, models: list[str], losses: list[str] | None) -> str:
    if loss is None:
        return model
    return loss if len(models) == 1 else f"{model}-{loss}"


def _seed_dirs(folder: Path, seeds: int) -> list[Path]:
    return [folder] if seeds == 1 else [folder / f"seed{k}" for k in range(seeds)]


def _loss_of(run_dir: Path) -> str:
    """The loss a run trained with, as its config.yaml records it."""
    import yaml

    return str(yaml.safe_load((run_dir / "config.yaml").read_text())["loss"]["name"])


def _flat_scores(metrics: dict[str, Any]) -> dict[str, float]:
    """The comparable scores of one run: SCORE_COLUMNS, Dice per modality, IoU per class."""
    scores = {k: float(metrics[k]) for k in SCORE_COLUMNS if metrics.get(k) is not None}
    for modality, values in metrics.get("per_modality", {}).items():
        for key in ("dice", "dsb_map"):
            if values.get(key) is not None:
                scores[f"{key}_{modality}"] = float(values[key])
    for name, values in metrics.get("per_class", {}).items():
        if values.get("iou") is not None:
            scores[f"iou_{name}"] = float(values["iou"])
    return scores


def _aggregate(results: list[dict[str, Any]]) -> dict[str, float]:
    """Mean of every score over seeds, and its sample standard deviation when seeds > 1."""
    flat = [_flat_scores(metrics) for metrics in results]
    row: dict[str, float] = {}
    for key in dict.fromkeys(k for scores in flat for k in scores):
        values = [scores[key] for scores in flat if key in scores]
        row[key] = statistics.fmean(values)
        if len(results) > 1:
            row[f"{key}_std"] = statistics.stdev(values) if len(values) > 1 else float("nan")
    return row


def _evaluate_baseline(config: Config, name: str, run_dir: Path, progress: bool) -> dict:
    from seglab.baseline import create_baseline
    from seglab.data.splits import load_split_data
    from seglab.evaluation.segmentation import evaluate_samples

    split = load_split_data(config.data, config.seed, progress=progress)
    if not split.samples.get("test"):
        raise ConfigError("compare needs a test split: set data.test_fraction > 0 or add test/")
    baseline = create_baseline(name, instances=config.instances)
    result = evaluate_samples(baseline, split.samples["test"], run_dir / "eval" / "test")
    return result.metrics


def _train_network(
    config: Config,
    model: str,
    loss: str | None,
    seed: int,
    run_dir: Path,
    parent: _ParentRun | None,
    progress: bool,
) -> dict:
    from seglab.config import LossConfig
    from seglab.training.run import train
    from seglab.training.tasks import read_train_log

    settings = config.model_copy(deep=True)
    settings.model.name = model
    settings.seed = seed
    if loss is not None:
        settings.loss = LossConfig(name=loss)
    settings.train.evaluate_test = True
    tags = parent.child_tags() if parent is not None else None
    result = train(settings, run_dir, progress=progress, tags=tags)
    if result.test_metrics is None:
        raise ConfigError("compare needs a test split: set data.test_fraction > 0 or add test/")
    val_losses = [r["val_loss"] for r in read_train_log(run_dir / "train_log.csv")]
    # The checkpoint kept is the one with the lowest validation loss.
    return {**result.test_metrics, "val_loss": min(val_losses)}


class _ParentRun:
    """The MLflow parent run of a comparison; children carry its id as `mlflow.parentRunId`."""

    def __init__(self, config: Config, out: Path, label: str) -> None:
        import mlflow

        from seglab.training.tracking import check_store, default_store, flat_params, quiet_mlflow

        check_store(config.tracking, out.parent)  # an unreachable server would hang the client
        quiet_mlflow()
        uri, default_artifacts = default_store(out.parent)
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
        from seglab.training.tracking import metric_name

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


def parent_run(config: Config, out: Path, label: str) -> _ParentRun | None:
    """The MLflow run that groups a comparison's (or cross-validation's) runs, in the store of
    the runs folder holding `out` (as `train --out runs/NAME` uses `runs/mlflow.db`), so that
    `seglab ui --runs runs` shows them beside every other run; None untracked."""
    return _ParentRun(config, out, label) if config.tracking.enabled else None


def shared_store(config: Config, out: Path) -> Config:
    """`config` for the runs inside `out`: tracked in the store of `out`'s parent (see
    `parent_run`), not in a store of their own inside `out`."""
    from seglab.training.tracking import default_store

    if not config.tracking.enabled or config.tracking.uri:
        return config
    settings = config.model_copy(deep=True)
    settings.tracking.uri = default_store(out.parent)[0]
    return settings


def _columns(rows: list[dict[str, Any]]) -> list[str]:
    columns: list[str] = []
    for row in rows:
        columns += [key for key in row if key not in columns]
    return [c for c in columns if any(row.get(c) is not None for row in rows)]


def _cell(value: Any, column: str = "") -> str:
    if value is None:
        return ""
    if not isinstance(value, float):
        return str(value)
    return f"{value:.1f}" if column == "seconds" else f"{value:.4f}"


def write_outputs(rows: list[dict[str, Any]], out: Path, stem: str) -> None:
    """Writes the table as `<stem>.csv` and `<stem>.md` (and the chart for a comparison)."""
    columns = _columns(rows)
    with atomic_text_file(out / f"{stem}.csv") as f:
        writer = csv.writer(f)
        writer.writerow(columns)
        writer.writerows([[_cell(row.get(c), c) for c in columns] for row in rows])
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(_cell(row.get(c), c) for c in columns) + " |" for row in rows]
    atomic_write_text(out / f"{stem}.md", "\n".join(lines) + "\n")
    if stem == "comparison":
        atomic_write_bytes(out / f"{stem}.png", _bar_chart(rows))


def _bar_chart(rows: list[dict[str, Any]]) -> bytes:
    import numpy as np
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    scores = [c for c in CHART_SCORES if any(row.get(c) is not None for row in rows)]
    if "miou" in scores:
        scores.remove("iou")
    figure = Figure(figsize=(1.6 + 1.4 * len(scores) * len(rows) / 2, 4))
    FigureCanvasAgg(figure)
    axes = figure.subplots()
    width = 0.8 / len(rows)
    positions = np.arange(len(scores))
    for index, row in enumerate(rows):
        values = [row.get(c) or 0.0 for c in scores]
        spread = [row.get(f"{c}_std") or 0.0 for c in scores] if row.get("seeds", 1) > 1 else None
        bars = axes.bar(
            positions + index * width, values, width, yerr=spread, capsize=2, label=row["run"]
        )
        axes.bar_label(bars, fmt="%.3f", fontsize=7)
    axes.set_xticks(positions + width * (len(rows) - 1) / 2, scores)
    axes.set_ylim(0, 1.05)
    axes.set_ylabel("score on the test set")
    seeds = max(int(row.get("seeds", 1)) for row in rows)
    over = f"; mean ± std over {seeds} seeds" if seeds > 1 else ""
    axes.set_title(f"Comparison (same split, same test set{over})")
    axes.legend(loc="lower right", fontsize=8)
    axes.grid(axis="y", alpha=0.3)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110)
    return buffer.getvalue()
