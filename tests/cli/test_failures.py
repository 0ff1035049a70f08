"""How commands end on a full disk and on a bug: one message, no traceback, nothing half-written."""

from __future__ import annotations

import errno
import os
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from seglab.cli import main as cli_main


def _images(folder: Path, n: int) -> Path:
    folder.mkdir()
    for index in range(n):
        image = np.zeros((16, 16), np.uint8)
        image[4:10, 4:10] = 200
        Image.fromarray(image).save(folder / f"img{index}.png")
    return folder


def _run(argv: list[str], monkeypatch: pytest.MonkeyPatch) -> int:
    monkeypatch.setattr(sys, "argv", ["seglab", *argv])
    with pytest.raises(SystemExit) as exit_info:
        cli_main.main()
    return int(exit_info.value.code or 0)


def test_a_full_disk_stops_predict_with_a_message_and_no_partial_mask(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    images = _images(tmp_path / "images", 3)
    out = tmp_path / "out"
    real_fsync = os.fsync
    synced: list[int] = []

    def disk_full_at_the_second_file(fd: int) -> None:
        synced.append(fd)
        if len(synced) >= 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        real_fsync(fd)

    monkeypatch.setattr("seglab.atomic_files.os.fsync", disk_full_at_the_second_file)
    code = _run(["predict", "--model", "otsu", str(images), "--out", str(out)], monkeypatch)
    stderr = capsys.readouterr().err
    assert code == 2 and "No space left on device" in stderr and "free some disk space" in stderr
    assert "Traceback" not in stderr
    left = sorted(p.name for p in out.iterdir())
    assert left == ["img0_mask.png"]  # the one written whole before the disk filled; no temp file
    assert Image.open(out / "img0_mask.png").size == (16, 16)


def test_an_unexpected_error_prints_one_message_and_keeps_the_traceback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    images = _images(tmp_path / "images", 1)

    def bug(*_args: object, **_kwargs: object) -> None:
        raise ZeroDivisionError("a bug in seglab")

    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    monkeypatch.setattr("seglab.inference.files.forward_one", bug)
    code = _run(
        ["predict", "--model", "otsu", str(images), "--out", str(tmp_path / "o")], monkeypatch
    )
    stderr = capsys.readouterr().err
    assert code == 1 and "unexpected ZeroDivisionError: a bug in seglab" in stderr
    assert "Traceback" not in stderr
    (saved,) = tmp_path.glob("seglab-error-*.txt")
    assert str(saved) in stderr.replace("\n", "")
    assert "Traceback" in saved.read_text() and "ZeroDivisionError" in saved.read_text()
