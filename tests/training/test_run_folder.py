"""`--out` of training: a folder that is not a seglab run is refused (nothing of the user's is
overwritten), and a run that stopped before its first checkpoint does not block a fresh one."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from conftest import tiny_overrides
from seglab.config import load_config
from seglab.errors import SeglabError
from seglab.training.run import resume, train


def one_epoch(data: Path) -> Any:
    return load_config(None, tiny_overrides(data, "train.epochs=1", "train.evaluate_test=false"))


def test_cli_refuses_a_folder_of_the_users_and_deletes_nothing(
    nuclei_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "u"
    (out / "model").mkdir(parents=True)
    (out / "model" / "mine.txt").write_text("x\n")
    (out / "train_log.csv").write_text("my own log\n")
    args = ["train", "--data", str(nuclei_dir), "--epochs", "1", "--out", str(out)]
    result = subprocess.run(
        [sys.executable, "-m", "seglab", *args, "--no-track", "--no-progress"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert "is not a seglab run folder" in result.stderr and "model" in result.stderr
    assert "another --out" in result.stderr
    assert (out / "model" / "mine.txt").read_text() == "x\n"
    assert (out / "train_log.csv").read_text() == "my own log\n"
    assert sorted(p.name for p in out.iterdir()) == ["model", "train_log.csv"]


def test_a_config_of_the_users_is_not_taken_for_a_failed_run(
    nuclei_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "experiment"
    out.mkdir()
    (out / "config.yaml").write_text("train:\n  epochs: 3\n")
    with pytest.raises(SeglabError, match="no config.yaml written by seglab"):
        train(one_epoch(nuclei_dir), out, progress=False)
    assert (out / "config.yaml").read_text() == "train:\n  epochs: 3\n"


def test_a_file_or_a_resumable_run_is_refused(nuclei_dir: Path, tmp_path: Path) -> None:
    (tmp_path / "file").write_text("data")
    with pytest.raises(SeglabError, match="is a file, not a folder"):
        train(one_epoch(nuclei_dir), tmp_path / "file", progress=False)
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    (run / "checkpoints" / "last.ckpt").write_bytes(b"a checkpoint")
    with pytest.raises(SeglabError, match="already holds a run.*--resume"):
        train(one_epoch(nuclei_dir), run, progress=False)
    assert (run / "checkpoints" / "last.ckpt").read_bytes() == b"a checkpoint"


def test_an_empty_folder_is_used(nuclei_dir: Path, tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    result = train(one_epoch(nuclei_dir), tmp_path / "empty", progress=False)
    assert (result.run_dir / "checkpoints" / "last.ckpt").is_file()


def test_a_run_that_failed_before_its_first_checkpoint_is_replaced(
    nuclei_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from seglab.training import tracking

    class BrokenStore:
        def log_hyperparams(self, params: dict[str, Any]) -> None:
            raise RuntimeError("the store went away")

    out = tmp_path / "run"
    failing = load_config(None, [*tiny_overrides(nuclei_dir), "tracking.enabled=true"])
    with monkeypatch.context() as patch:
        patch.setattr(tracking, "create_logger", lambda *args, **kwargs: BrokenStore())
        with pytest.raises(SeglabError, match="the store went away"):
            train(failing, out, progress=False)
    left = sorted(p.name for p in out.iterdir())
    assert "config.yaml" in left and "checkpoints" not in left
    with pytest.raises(SeglabError, match="stopped before its first checkpoint.*seglab train"):
        resume(out, progress=False)
    (out / ".config.yaml.0123abcd.tmp").write_text("a write cut short")
    result = train(one_epoch(nuclei_dir), out, progress=False)
    assert (result.run_dir / "checkpoints" / "last.ckpt").is_file()
    assert not (out / ".config.yaml.0123abcd.tmp").exists()
    assert load_config(out / "config.yaml").train.epochs == 1


def test_a_training_killed_before_its_first_checkpoint_can_start_again(
    nuclei_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "killed"
    args = ["train", "--data", str(nuclei_dir), "--epochs", "50", "--out", str(out)]
    child = subprocess.Popen(
        [sys.executable, "-m", "seglab", *args, "--no-track", "--no-progress"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 120
    while not (out / "config.yaml").is_file() and child.poll() is None:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=30)
    # The data, model and trainer take seconds to set up after config.yaml is written.
    assert not (out / "checkpoints" / "last.ckpt").exists()
    result = train(one_epoch(nuclei_dir), out, progress=False)
    assert (result.run_dir / "checkpoints" / "last.ckpt").is_file()
