"""A run killed with SIGKILL and resumed ends exactly as the uninterrupted run (CPU, fp32)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from conftest import tiny_overrides
from seglab.config import load_config
from seglab.training.checkpoints import checkpoint_epoch
from seglab.training.run import resume, train
from seglab.training.tasks import read_train_log

EPOCHS = 5
# Dropout draws from torch's global generator, loader workers prefetch before Lightning sets
# the epoch, and crops and flips are random: each would break exactness if its state were lost.
SETTINGS = [
    f"train.epochs={EPOCHS}",
    "train.precision=32",
    "train.evaluate_test=false",
    "model.params.dropout=0.3",
    "data.num_workers=2",
    "data.crop=24",
]


def scores(run: Path) -> list[dict[str, float]]:
    return [
        {k: v for k, v in row.items() if k != "seconds"}
        for row in read_train_log(run / "train_log.csv")
    ]


def kill_after_first_checkpoint(overrides: list[str], out: Path) -> None:
    command = [sys.executable, "-m", "seglab", "train", "--out", str(out), "--no-progress"]
    for override in overrides:
        command += ["--set", override]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    last = out / "checkpoints" / "last.ckpt"
    deadline = time.monotonic() + 300
    while not last.is_file() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    _, stderr = process.communicate()
    assert process.returncode == -signal.SIGKILL, stderr.decode(errors="replace")[-2000:]


@pytest.mark.slow
def test_a_killed_and_resumed_run_ends_as_the_uninterrupted_one(
    nuclei_dir: Path, tmp_path: Path
) -> None:
    overrides = tiny_overrides(nuclei_dir, *SETTINGS)
    straight = train(load_config(None, overrides), tmp_path / "straight", progress=False).run_dir

    killed = tmp_path / "killed"
    kill_after_first_checkpoint(overrides, killed)
    last = killed / "checkpoints" / "last.ckpt"
    assert 1 <= checkpoint_epoch(last) < EPOCHS
    resume(killed, progress=False)

    assert scores(killed) == scores(straight)
    assert [row["epoch"] for row in read_train_log(killed / "train_log.csv")] == [1, 2, 3, 4, 5]
    weights = [
        torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
        for run in (straight, killed)
    ]
    assert weights[0].keys() == weights[1].keys()
    for name in weights[0]:
        assert torch.equal(weights[0][name], weights[1][name]), name
