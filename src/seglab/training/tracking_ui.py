"""`seglab ui`: the MLflow UI on the embedded tracking store of a runs folder."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from seglab.errors import SeglabError
from seglab.processes import run_until_stopped
from seglab.training.tracking import DB_NAME, default_store

__all__ = ["launch_ui"]


def launch_ui(runs_root: Path, host: str = "127.0.0.1", port: int = 5000) -> int:
    """Serve the MLflow UI on the embedded store of `runs_root` until interrupted; the server
    and its workers stop with `seglab ui` (SIGINT or SIGTERM). Returns the exit code.

    Raises:
        SeglabError: `runs_root` holds no tracking store.
    """
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
    return run_until_stopped(command)
