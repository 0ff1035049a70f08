"""The training progress bar: epochs from 1 of N, no `v_num`, validation scores once computed,
the time the run has left."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from conftest import tiny_overrides
from seglab.training.progress import epoch_label, seconds_left, shown_metrics


def test_epochs_are_counted_from_one_of_n() -> None:
    assert [epoch_label(e, 3) for e in range(3)] == ["Epoch 1/3", "Epoch 2/3", "Epoch 3/3"]
    assert epoch_label(4, None) == "Epoch 5"


def test_the_version_number_never_shows_and_validation_scores_wait_for_a_validation() -> None:
    metrics = {"v_num": "47c8", "train_loss": 0.5, "val_dice": 0.0, "val_loss": 0.0}
    assert shown_metrics(metrics, validated=False) == {"train_loss": 0.5}
    assert shown_metrics(metrics, validated=True) == {
        "train_loss": 0.5,
        "val_dice": 0.0,
        "val_loss": 0.0,
    }


def test_time_left_is_the_pace_so_far_times_what_remains() -> None:
    # 1.5 of 4 epochs in 30 s: 20 s an epoch, 2.5 epochs left = 50 s.
    assert seconds_left(30.0, 1.5, 4.0) == pytest.approx(50.0)
    assert seconds_left(10.0, 0.0, 4.0) is None  # no pace yet
    assert seconds_left(10.0, 4.0, 4.0) == 0.0


def test_a_training_bar_reads_epoch_1_of_n(
    nuclei_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from seglab.config import load_config
    from seglab.training.run import train

    config = load_config(None, tiny_overrides(nuclei_dir, "train.epochs=2"))
    train(config, tmp_path / "run", progress=True)
    captured = capsys.readouterr()
    bars = [b for b in re.split(r"[\r\n]", captured.out + captured.err) if "Epoch" in b]
    assert any("Epoch 1/2" in b for b in bars) and any("Epoch 2/2" in b for b in bars), bars
    assert not any(re.search(r"Epoch [0-9]+:", b) or "v_num" in b for b in bars), bars
    assert any("run_left" in b for b in bars)
    # No validation score before the first validation has computed one.
    first_validated = next(i for i, b in enumerate(bars) if "val_" in b)
    assert first_validated > 0 and all("Epoch 1/2" in b for b in bars[:first_validated])
