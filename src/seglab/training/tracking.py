"""MLflow tracking: an embedded SQLite store beside the run folders by default, any server by URI.

MLflow's plain file store is deprecated; the default store is `<runs>/mlflow.db` with artifacts in
`<runs>/mlartifacts/`, where `<runs>` is the parent folder of the run folder (not the current
directory), so `seglab ui --runs <runs>` finds every run written there.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from seglab.errors import SeglabError

if TYPE_CHECKING:
    from pytorch_lightning.loggers import MLFlowLogger

    from seglab.config import TrackingConfig

DB_NAME = "mlflow.db"
ARTIFACTS_NAME = "mlartifacts"


def default_store(runs_root: Path) -> tuple[str, str]:
    """(tracking URI, artifact location) of the embedded store for a folder of runs."""
    root = runs_root.resolve()
    return f"sqlite:///{root / DB_NAME}", (root / ARTIFACTS_NAME).as_uri()


def quiet_mlflow() -> None:
    # Database migrations and MLflow's notices would drown the training progress bar. MLflow
    # sets its logger level when imported, so import it first.
    import mlflow  # noqa: F401

    for name in ("alembic", "mlflow"):
        logging.getLogger(name).setLevel(logging.WARNING)
    logging.getLogger("pytorch_lightning.loggers.mlflow").setLevel(logging.ERROR)


def create_logger(
    config: TrackingConfig,
    run_dir: Path,
    run_id: str | None = None,
    tags: dict[str, str] | None = None,
) -> MLFlowLogger:
    """A Lightning MLflow logger for the run folder `run_dir` (resumes `run_id` when given;
    `tags` such as `mlflow.parentRunId` nest the run under a parent)."""
    from pytorch_lightning.loggers import MLFlowLogger

    quiet_mlflow()
    uri, artifacts = default_store(run_dir.parent)
    artifact_location: str | None = artifacts
    if config.uri:
        uri, artifact_location = config.uri, None
    return MLFlowLogger(
        experiment_name=config.experiment,
        run_name=run_dir.name,
        tracking_uri=uri,
        artifact_location=artifact_location,
        run_id=run_id,
        tags=tags,
        log_model=False,
    )


def log_results(
    logger: MLFlowLogger, metrics: dict[str, float], files: list[Path], folders: dict[str, Path]
) -> None:
    """Log final metrics, files and whole folders (under the given artifact paths) to the run."""
    client, run_id = logger.experiment, logger.run_id
    for key, value in metrics.items():
        client.log_metric(run_id, metric_name(key), float(value))
    for path in files:
        if path.is_file():
            client.log_artifact(run_id, str(path))
    for artifact_path, folder in folders.items():
        if folder.is_dir():
            client.log_artifacts(run_id, str(folder), artifact_path)


def final_metrics(
    val: dict[str, Any], test: dict[str, Any] | None, threshold: float | None = None
) -> dict[str, float]:
    """The scores of a finished run as MLflow metrics: `val_*` and `test_*`, nested tables
    flattened (`per_class.road.iou` becomes `val_per_class_road_iou`), the threshold when there
    is one; counts and undefined (None) scores are left to the evaluation files.

    Example:
        >>> final_metrics({"miou": 0.5, "per_class": {"road": {"iou": 0.75, "dice": None}}}, None)
        {'val_miou': 0.5, 'val_per_class_road_iou': 0.75}
    """
    metrics = {} if threshold is None else {"threshold": float(threshold)}

    def add(prefix: str, scores: dict[str, Any]) -> None:
        for key, value in scores.items():
            if isinstance(value, dict):
                add(f"{prefix}_{key}", value)
            elif isinstance(value, float):
                metrics[f"{prefix}_{key}"] = value

    add("val", val)
    add("test", test or {})
    return metrics


def metric_name(key: str) -> str:
    """MLflow refuses '@' in names: `ap@0.5` is logged as `ap_at_0.5`."""
    return key.replace("@", "_at_")


def flat_params(config: dict[str, Any]) -> dict[str, Any]:
    from seglab.config import flatten

    return {key: ("null" if value is None else value) for key, value in flatten(config).items()}


def launch_ui(runs_root: Path, host: str = "127.0.0.1", port: int = 5000) -> int:
    """Start the MLflow UI on the embedded store of `runs_root`; returns its exit code."""
    runs_root = Path(runs_root)
    if not (runs_root / DB_NAME).is_file():
        raise SeglabError(
            f"{runs_root / DB_NAME}: no tracking store here; train with tracking on first "
            f"(`seglab train ... --out {runs_root}/NAME`) or pass --runs to the right folder"
        )
    uri, artifacts = default_store(runs_root)
    mlflow = shutil.which("mlflow") or str(Path(sys.executable).with_name("mlflow"))
    command = [mlflow, "ui", "--backend-store-uri", uri, "--default-artifact-root", artifacts]
    command += ["--host", host, "--port", str(port)]
    return subprocess.call(command)
