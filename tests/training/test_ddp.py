"""More than one process on Lightning's DDP: two CPU processes (gloo) give the metrics of one.

The command line is run for real: Lightning's launcher starts the second process by running the
same `seglab train` command again, which must leave the run folder to rank 0.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import seglab
from seglab.data.synthetic import write_synthetic


def _train(data: Path, out: Path, *extra: str) -> dict[str, float]:
    # fp32: this is about DDP, and on a bf16 CPU "auto" precision's rounding alone moves this
    # tiny, unstable case (lr 0.01, 32 images) to another val Dice.
    settings = [f"data.root={data}", "train.patience=0", "train.lr=0.01", "train.precision=32"]
    settings += extra
    sets = [arg for item in settings for arg in ("--set", item)]
    seglab("train", "--epochs", "12", "--no-track", "--no-progress", "--out", str(out), *sets)
    metadata = json.loads((out / "model" / "seglab.json").read_text())
    return dict(metadata["metrics"]["val"])


@pytest.mark.slow
def test_two_cpu_processes_match_one_process(tmp_path: Path) -> None:
    data = tmp_path / "circles"
    write_synthetic("circles", data, 32, size=32, seed=0)
    one = _train(data, tmp_path / "one", "data.batch_size=8", "train.accelerator=cpu")
    # Two processes of 4 images: DDP averages their gradients, as one batch of 8 would.
    two = _train(
        data, tmp_path / "two", "data.batch_size=4", "train.accelerator=cpu", "train.devices=2"
    )
    # The data order and batch-norm statistics differ (each process normalises its own half
    # batch), so the runs agree within a tolerance, not exactly.
    assert two["dice"] == pytest.approx(one["dice"], abs=0.05)
    assert min(one["dice"], two["dice"]) > 0.9
    # Rank 0 alone writes the run folder: one log row per epoch.
    rows = (tmp_path / "two" / "train_log.csv").read_text().strip().splitlines()
    assert len(rows) == 1 + 12
