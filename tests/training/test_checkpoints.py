"""Checkpoint safety: random state round trip, atomic writes, no code run from a checkpoint."""

from __future__ import annotations

import os
import pickle
import random
from pathlib import Path

import numpy as np
import pytest
import torch

from seglab.errors import SeglabError
from seglab.training.checkpoints import AtomicCheckpointIO, RandomState, checkpoint_epoch


def draws() -> tuple[float, float, float]:
    return random.random(), float(np.random.rand()), float(torch.rand(()))  # noqa: NPY002


def test_random_state_round_trips_through_a_weights_only_checkpoint(tmp_path: Path) -> None:
    random.seed(1), np.random.seed(2), torch.manual_seed(3)  # noqa: NPY002
    callback = RandomState()
    path = tmp_path / "state.ckpt"
    torch.save({"rng": callback.state_dict()}, path)
    expected = draws()
    random.seed(9), np.random.seed(9), torch.manual_seed(9)  # noqa: NPY002
    assert draws() != expected
    callback.load_state_dict(torch.load(path, weights_only=True)["rng"])
    assert draws() == expected


def test_a_checkpoint_is_replaced_whole_or_not_at_all(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "checkpoints" / "last.ckpt"
    io = AtomicCheckpointIO()
    io.save_checkpoint({"epoch": 0}, path)
    assert checkpoint_epoch(path) == 1

    def full_disk(*args: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", full_disk)
    with pytest.raises(OSError, match="No space left"):
        io.save_checkpoint({"epoch": 1}, path)
    assert checkpoint_epoch(path) == 1  # the previous one, whole
    assert sorted(p.name for p in path.parent.iterdir()) == ["last.ckpt"]


class _RunsCode:
    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (print, ("this must never run",))


def test_a_checkpoint_holding_code_is_refused_without_running_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "last.ckpt"
    torch.save({"epoch": 3, "payload": _RunsCode()}, path)
    with pytest.raises(SeglabError, match="last.ckpt: not a readable training checkpoint"):
        checkpoint_epoch(path)
    assert "never run" not in capsys.readouterr().out
    path.write_bytes(pickle.dumps({"epoch": 3}))  # not a torch file at all
    with pytest.raises(SeglabError, match="cannot be resumed"):
        checkpoint_epoch(path)
