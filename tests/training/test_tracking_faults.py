"""Tracking faults are found before a run starts: an unsupported scheme, a server or database
host that does not answer, a corrupt SQLite store give a ConfigError naming the URI and
suggesting --no-track, before the run folder (config.yaml) is written."""

from __future__ import annotations

import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import pytest

from conftest import tiny_overrides
from seglab.config import TrackingConfig, load_config
from seglab.errors import ConfigError
from seglab.training.run import train
from seglab.training.tracking import DB_NAME, check_store


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A port that accepts connections (into its backlog) and never answers."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        yield int(sock.getsockname()[1])


@pytest.fixture
def http_server() -> Iterator[int]:
    """An HTTP server that answers every request with 404 (as a proxy might)."""

    class NotFound(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_error(404)

        def log_message(self, *args: Any) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), NotFound)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield int(server.server_address[1])
    server.shutdown()
    server.server_close()


def refused(uri: str | None, runs: Path, timeout: float = 5.0) -> str:
    with pytest.raises(ConfigError) as info:
        check_store(TrackingConfig(uri=uri), runs, timeout)
    message = str(info.value)
    assert "--no-track" in message
    return message


def test_an_unsupported_scheme_is_refused(tmp_path: Path) -> None:
    message = refused("bogus://x", tmp_path)
    assert "bogus://x" in message and "unsupported scheme 'bogus://'" in message


def test_a_server_refusing_connections_is_refused_at_once(tmp_path: Path) -> None:
    uri = f"http://127.0.0.1:{closed_port()}"
    start = time.monotonic()
    message = refused(uri, tmp_path)
    assert time.monotonic() - start < 2
    assert uri in message and "no answer" in message and "refused" in message


def test_a_server_that_never_answers_is_refused_after_the_timeout(
    tmp_path: Path, silent_server: int
) -> None:
    start = time.monotonic()
    message = refused(f"http://127.0.0.1:{silent_server}", tmp_path, timeout=0.5)
    assert 0.4 < time.monotonic() - start < 3
    assert "waited up to 0.5 s" in message


def test_any_http_answer_passes_the_probe(tmp_path: Path, http_server: int) -> None:
    check_store(TrackingConfig(uri=f"http://127.0.0.1:{http_server}/"), tmp_path)


def test_a_database_host_that_does_not_answer_is_refused(tmp_path: Path) -> None:
    port = closed_port()
    message = refused(f"postgresql+psycopg2://user@127.0.0.1:{port}/mlflow", tmp_path)
    assert f"database host 127.0.0.1:{port}" in message


def test_the_default_store_is_checked_and_fast(tmp_path: Path) -> None:
    start = time.monotonic()
    check_store(TrackingConfig(), tmp_path / "new")  # no store yet: MLflow creates it
    (tmp_path / DB_NAME).write_bytes(b"")
    check_store(TrackingConfig(), tmp_path)  # SQLite takes an empty file as a database
    with sqlite3.connect(tmp_path / "ok.db") as connection:
        connection.execute("CREATE TABLE runs (id TEXT)")
    connection.close()
    (tmp_path / "ok.db").replace(tmp_path / DB_NAME)
    check_store(TrackingConfig(), tmp_path)
    assert time.monotonic() - start < 1
    for uri in ("file:///tmp/mlruns", "mlruns", "databricks", "sqlite:///:memory:"):
        check_store(TrackingConfig(uri=uri), tmp_path)


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (b"not a database\n", "is not an SQLite database (it begins b'not a database"),
        (b"SQLite format 3\x00" + b"\xff" * 200, "is a damaged SQLite database"),
    ],
)
def test_a_corrupt_store_is_refused(tmp_path: Path, content: bytes, problem: str) -> None:
    (tmp_path / DB_NAME).write_bytes(content)
    message = refused(None, tmp_path)
    assert str(tmp_path / DB_NAME) in message and problem in message
    (tmp_path / "given.db").write_bytes(content)
    assert problem in refused(f"sqlite:///{tmp_path / 'given.db'}", tmp_path / "elsewhere")


def test_a_sqlite_uri_in_a_missing_folder_or_on_a_folder_is_refused(tmp_path: Path) -> None:
    assert "does not exist" in refused(f"sqlite:///{tmp_path / 'no' / 'x.db'}", tmp_path)
    (tmp_path / "folder.db").mkdir()
    assert "is a folder" in refused(f"sqlite:///{tmp_path / 'folder.db'}", tmp_path)


def test_train_refuses_before_writing_the_run_folder(nuclei_dir: Path, tmp_path: Path) -> None:
    (tmp_path / DB_NAME).write_text("not a database")
    for settings, out in [
        ([], tmp_path / "corrupt"),
        (["tracking.uri=bogus://x"], tmp_path / "bogus"),
        ([f"tracking.uri=http://127.0.0.1:{closed_port()}"], tmp_path / "unreachable"),
    ]:
        overrides = [*tiny_overrides(nuclei_dir), "tracking.enabled=true", *settings]
        with pytest.raises(ConfigError, match="--no-track"):
            train(load_config(None, overrides), out, progress=False)
        assert not out.exists()


def test_train_turns_a_failure_of_the_store_into_a_config_error(
    nuclei_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from seglab.training import tracking

    class BrokenLogger:
        def log_hyperparams(self, params: dict[str, Any]) -> None:
            raise RuntimeError("attempt to write a readonly database")

    monkeypatch.setattr(tracking, "create_logger", lambda *args, **kwargs: BrokenLogger())
    overrides = [*tiny_overrides(nuclei_dir), "tracking.enabled=true"]
    with pytest.raises(ConfigError, match=r"RuntimeError: attempt to write a readonly database"):
        train(load_config(None, overrides), tmp_path / "run", progress=False)


def test_cli_train_with_an_unreachable_server_exits_2_without_a_run_folder(
    nuclei_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "run"
    uri = f"http://127.0.0.1:{closed_port()}"
    start = time.monotonic()
    args = ["train", "--data", str(nuclei_dir), "--epochs", "1", "--out", str(out)]
    result = subprocess.run(
        [sys.executable, "-m", "seglab", *args, "--tracking-uri", uri, "--no-progress"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    # Measured: ~10 s, nearly all of it importing torch and Lightning; before, it hung for
    # minutes in MLflow's retries.
    assert time.monotonic() - start < 60
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert uri in result.stderr and "--no-track" in result.stderr
    assert not out.exists()


def test_compare_refuses_an_unreachable_store_before_any_run(
    nuclei_dir: Path, tmp_path: Path
) -> None:
    from seglab.training.compare import compare

    overrides = [
        *tiny_overrides(nuclei_dir),
        "tracking.enabled=true",
        f"tracking.uri=http://127.0.0.1:{closed_port()}",
    ]
    with pytest.raises(ConfigError, match="--no-track"):
        compare(load_config(None, overrides), None, tmp_path / "cmp", False, ["dice", "bce"])
    assert not (tmp_path / "cmp" / "dice").exists()
