"""MLflow tracking: an embedded SQLite store beside the run folders by default, any server by URI.

MLflow's plain file store is deprecated; the default store is `<runs>/mlflow.db` with artifacts in
`<runs>/mlartifacts/`, where `<runs>` is the parent folder of the run folder (not the current
directory), so `seglab ui --runs <runs>` finds every run written there.

`check_store` probes the store before a run starts (MLflow itself retries an unreachable
server for minutes, and fails on a corrupt database only once the run folder is written).
"""

from __future__ import annotations

import logging
import os
import socket
import sqlite3
import urllib.error
import urllib.request
from contextlib import closing
from importlib.metadata import entry_points
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from seglab.errors import ConfigError

if TYPE_CHECKING:
    from seglab.config import TrackingConfig
    from seglab.training.tolerant_logger import TolerantMLFlowLogger

DB_NAME = "mlflow.db"
ARTIFACTS_NAME = "mlartifacts"
# How long a tracking server or database host may take to answer the probe of `check_store`.
PROBE_SECONDS = 5.0
# Schemes of the tracking stores MLflow has built in (databases may add "+driver"), besides
# those of installed plugins; database hosts listen on these ports unless the URI says.
_DATABASE_PORTS = {"postgresql": 5432, "mysql": 3306, "mssql": 1433}
_BUILT_IN = ("", "file", "sqlite", "http", "https", "databricks", *_DATABASE_PORTS)
_SQLITE_HEADER = b"SQLite format 3\x00"
# MLflow's HTTP settings unless the user sets them (see `create_logger`).
MLFLOW_HTTP_DEFAULTS = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "20",
}


def default_store(runs_root: Path) -> tuple[str, str]:
    """(tracking URI, artifact location) of the embedded store for a folder of runs."""
    root = runs_root.resolve()
    return f"sqlite:///{root / DB_NAME}", (root / ARTIFACTS_NAME).as_uri()


def check_store(config: TrackingConfig, runs_root: Path, timeout: float | None = None) -> None:
    """Refuse a tracking store that MLflow could not use, before the run starts.

    Checked: the scheme is one MLflow knows; an http(s) server or a database host answers
    within `timeout` seconds (any HTTP answer will do); an SQLite file (the default
    `<runs_root>/mlflow.db` included) is a readable SQLite database.

    Args:
        config: The tracking settings (`uri` None: the embedded store of `runs_root`).
        runs_root: The folder holding the run folder.
        timeout: Seconds to wait for an answer; None: `PROBE_SECONDS`.

    Raises:
        ConfigError: Naming the URI and what is wrong, and suggesting `--no-track`.
    """
    uri = config.uri or default_store(runs_root)[0]
    problem = _store_problem(uri, PROBE_SECONDS if timeout is None else timeout, bool(config.uri))
    if problem:
        setting = "--tracking-uri (tracking.uri)" if config.uri else "the tracking store"
        raise ConfigError(
            f"tracking store {uri}: {problem}; fix {setting}, or train without tracking: "
            "--no-track (tracking.enabled=false)"
        )


def _store_problem(uri: str, timeout: float, explicit: bool) -> str | None:
    try:
        parts = urlsplit(uri)
        scheme = parts.scheme.lower()
        engine = scheme.split("+")[0]
        if len(scheme) == 1:
            return None  # a Windows drive letter: a local folder (MLflow's file store)
        if engine in ("http", "https"):
            return _http_problem(uri, timeout)
        if engine == "sqlite":
            return _sqlite_problem(uri, explicit)
        if engine in _DATABASE_PORTS:
            return _host_problem(parts.hostname, parts.port or _DATABASE_PORTS[engine], timeout)
    except ValueError as exc:  # a port that is not a number, an unparsable address
        return f"not a valid URI ({exc})"
    plugins = {entry.name for entry in entry_points(group="mlflow.tracking_store")}
    if engine in _BUILT_IN or scheme in plugins:
        return None
    return (
        f"unsupported scheme '{scheme}://'; MLflow stores are http(s)://HOST:PORT, "
        "sqlite:///FILE, postgresql://, mysql://, mssql://, databricks or a local folder"
    )


def _http_problem(uri: str, timeout: float) -> str | None:
    url = uri.rstrip("/") + "/health"  # the MLflow server's liveness page
    try:
        with urllib.request.urlopen(url, timeout=timeout):
            return None
    except urllib.error.HTTPError:
        return None  # it answered (a proxy or a login page): MLflow reports what follows
    except (OSError, ValueError) as exc:  # refused, unreachable, timed out, no such host
        reason = getattr(exc, "reason", exc)
        return f"no answer ({reason}; waited up to {timeout:g} s)"


def _host_problem(host: str | None, port: int, timeout: float) -> str | None:
    if not host:
        return None
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return None
    except OSError as exc:
        return f"database host {host}:{port} does not answer ({exc}; waited up to {timeout:g} s)"


def _sqlite_problem(uri: str, explicit: bool) -> str | None:
    # SQLAlchemy's form: sqlite:///relative/file.db or sqlite:////absolute/file.db.
    name = uri.split("?", 1)[0].split(":///", 1)[-1]
    if name in ("", ":memory:"):
        return None
    path = Path(name)
    if path.is_dir():
        return f"{path} is a folder, not an SQLite database file"
    if not path.exists():
        # The default store's folder is created with the run folder; a given one must exist.
        missing = explicit and not path.parent.is_dir()
        return f"the folder {path.parent} does not exist" if missing else None
    try:
        with path.open("rb") as file:
            header = file.read(len(_SQLITE_HEADER))
    except OSError as exc:
        return f"cannot read {path} ({exc.strerror})"
    if not header:
        return None  # SQLite takes an empty file as an empty database
    hint = "move it away (a new store is then created) or point tracking elsewhere"
    if header != _SQLITE_HEADER:
        return f"{path} is not an SQLite database (it begins {header!r}); {hint}"
    try:
        read_only = f"{path.resolve().as_uri()}?mode=ro"
        with closing(sqlite3.connect(read_only, uri=True)) as connection:
            connection.execute("SELECT count(*) FROM sqlite_master").fetchone()
    except sqlite3.Error as exc:
        return f"{path} is a damaged SQLite database ({exc}); {hint}"
    return None


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
) -> TolerantMLFlowLogger:
    """A Lightning MLflow logger for the run folder `run_dir` (resumes `run_id` when given;
    `tags` such as `mlflow.parentRunId` nest the run under a parent). Writes that fail once
    the run has started warn and stop tracking, never the training (`TolerantMLFlowLogger`)."""
    from seglab.training.tolerant_logger import TolerantMLFlowLogger

    quiet_mlflow()
    # MLflow retries a silent server 7 times with growing waits: a server that dies mid-run
    # would stall training for minutes before `TolerantMLFlowLogger` gives up on it.
    for variable, value in MLFLOW_HTTP_DEFAULTS.items():
        os.environ.setdefault(variable, value)
    uri, artifacts = default_store(run_dir.parent)
    artifact_location: str | None = artifacts
    if config.uri:
        uri, artifact_location = config.uri, None
    return TolerantMLFlowLogger(
        experiment_name=config.experiment,
        run_name=run_dir.name,
        tracking_uri=uri,
        artifact_location=artifact_location,
        run_id=run_id,
        tags=tags,
        log_model=False,
    )


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
