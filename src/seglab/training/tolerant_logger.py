"""`TolerantMLFlowLogger`: training outlives its tracking store.

A tracking server that stops answering, or a database that fails, in the middle of a run must
not end the training: the first failed write is reported once as a warning, and the run goes
on without tracking; its metrics stay in the run folder (`train_log.csv`, `eval/`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from pytorch_lightning.loggers import MLFlowLogger

log = logging.getLogger(__name__)


class TolerantMLFlowLogger(MLFlowLogger):
    """An `MLFlowLogger` whose writes after the run started never raise.

    Attributes:
        failure: Why tracking stopped (`"<error type>: <message>"`), or None while it works.
    """

    failure: str | None = None

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        self._tolerate(super().log_metrics, metrics, step)

    def finalize(self, status: str = "success") -> None:
        self._tolerate(super().finalize, status)

    def log_results(
        self, metrics: dict[str, float], files: list[Path], folders: dict[str, Path]
    ) -> None:
        """Final metrics (by their MLflow names), files and whole folders (under the given
        artifact paths)."""
        self._tolerate(self._log_results, metrics, files, folders)

    def _log_results(
        self, metrics: dict[str, float], files: list[Path], folders: dict[str, Path]
    ) -> None:
        client, run_id = self.experiment, self.run_id
        for key, value in metrics.items():
            client.log_metric(run_id, key, float(value))
        for path in files:
            if path.is_file():
                client.log_artifact(run_id, str(path))
        for artifact_path, folder in folders.items():
            if folder.is_dir():
                client.log_artifacts(run_id, str(folder), artifact_path)

    def _tolerate(self, write: Callable[..., None], *args: Any) -> None:
        if self.failure is not None:
            return
        try:
            write(*args)
        except Exception as exc:  # MLflow, SQLAlchemy and HTTP errors of many types
            self.failure = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
            log.warning(
                "tracking store %s failed (%s); training goes on without tracking, its metrics "
                "are kept in the run folder (train_log.csv, eval/)",
                self._tracking_uri,
                self.failure,
            )
