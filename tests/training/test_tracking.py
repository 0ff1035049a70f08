"""The MLflow UI command starts a real MLflow server on the local store."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from seglab.errors import SeglabError
from seglab.training.tracking import default_store
from seglab.training.tracking_ui import launch_ui


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_default_store_is_inside_the_runs_folder(tmp_path: Path) -> None:
    uri, artifacts = default_store(tmp_path / "runs")
    assert uri == f"sqlite:///{(tmp_path / 'runs' / 'mlflow.db').resolve()}"
    assert artifacts.startswith("file://") and artifacts.endswith("runs/mlartifacts")


def test_ui_without_store_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(SeglabError, match=r"mlflow\.db"):
        launch_ui(tmp_path)


def _processes_serving(port: int) -> list[str]:
    """Command lines of the processes whose arguments name `port` (the UI and its workers)."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            words = (entry / "cmdline").read_bytes().decode(errors="replace").split("\0")
        except OSError:
            continue
        if "mlflow" in " ".join(words) and str(port) in words:
            found.append(" ".join(words))
    return found


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_ui_serves_the_local_store_and_stops_with_its_workers(
    stop: signal.Signals, tmp_path: Path
) -> None:
    import mlflow

    uri, _ = default_store(tmp_path)
    mlflow.MlflowClient(uri).create_experiment("ui-check")
    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "seglab", "ui", "--runs", str(tmp_path), "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        url = f"http://127.0.0.1:{port}/api/2.0/mlflow/experiments/search?max_results=10"
        deadline = time.monotonic() + 90
        while True:
            try:
                with urllib.request.urlopen(url, timeout=5) as response:
                    names = [e["name"] for e in json.load(response)["experiments"]]
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise
                time.sleep(1)
        assert "ui-check" in names
        assert _processes_serving(port)
        os.kill(server.pid, stop)  # seglab only: it must stop the server and workers itself
        assert server.wait(timeout=60) == (143 if stop == signal.SIGTERM else 130)
        assert _processes_serving(port) == []
        with pytest.raises(OSError):
            urllib.request.urlopen(url, timeout=5)
    finally:
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait(timeout=30)


def test_final_metrics_flatten_class_tables_and_drop_undefined_scores() -> None:
    from seglab.training.tracking import final_metrics

    val = {"miou": 0.5, "n_images": 3, "per_class": {"road": {"iou": 0.75, "dice": None}}}
    test = {"miou": 0.25, "confusion": "confusion_matrix.csv"}
    # Multi-class runs used to crash here: MLflow was handed the per-class table as a metric.
    assert final_metrics(val, test, 0.4) == {
        "threshold": 0.4,
        "val_miou": 0.5,
        "val_per_class_road_iou": 0.75,
        "test_miou": 0.25,
    }
