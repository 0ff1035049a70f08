"""Checkpoints a run can be resumed from exactly, and safely.

- `RandomState` stores the generators of Python, NumPy and torch (CPU, and CUDA where it is
  used) in every checkpoint and puts them back on resume, so that dropout and anything else
  drawing from them continue as in an uninterrupted run. (Crops, flips and augmentations draw
  from generators keyed by `(seed, epoch, index)`, see `seglab.data.sampling`, and need no
  state.)
- `AtomicCheckpointIO` writes each checkpoint to a temporary file renamed over the old one,
  so a run killed while saving keeps its previous `last.ckpt` whole.
- `checkpoint_epoch` reads a checkpoint with `weights_only=True` before Lightning does: a
  file holding code (a pickle from someone else) or a truncated one is refused, never run.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any, cast

import numpy as np
import pytorch_lightning as pl
import torch
from pytorch_lightning.plugins import TorchCheckpointIO

from seglab.errors import SeglabError

__all__ = ["AtomicCheckpointIO", "RandomState", "checkpoint_epoch"]


class RandomState(pl.Callback):
    """Saves and restores the global random generators with the checkpoints (only tensors
    and plain values, so the checkpoint still loads with `weights_only=True`)."""

    def state_dict(self) -> dict[str, Any]:
        version, mt_state, gauss = random.getstate()
        legacy = cast(tuple[Any, ...], np.random.get_state(legacy=True))  # noqa: NPY002
        name, keys, position, has_gauss, cached = legacy
        state: dict[str, Any] = {
            "python": [version, list(mt_state), gauss],
            "numpy": [
                name,
                torch.from_numpy(np.asarray(keys, np.int64)),
                position,
                has_gauss,
                cached,
            ],
            "torch": torch.get_rng_state(),
        }
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            state["cuda"] = torch.cuda.get_rng_state_all()
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        version, mt_state, gauss = state_dict["python"]
        random.setstate((version, tuple(mt_state), gauss))
        name, keys, position, has_gauss, cached = state_dict["numpy"]
        legacy = (name, keys.numpy().astype(np.uint32), position, has_gauss, cached)
        np.random.set_state(legacy)  # noqa: NPY002 (the global generator is what is restored)
        torch.set_rng_state(state_dict["torch"])
        if "cuda" in state_dict and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state_dict["cuda"])


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning's torch checkpoint IO, writing through a temporary file and a rename."""

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: str | Path, storage_options: Any = None
    ) -> None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f".{path.name}.partial")
        try:
            torch.save(checkpoint, partial)
            partial.replace(path)
        finally:
            partial.unlink(missing_ok=True)


def checkpoint_epoch(path: Path) -> int:
    """The number of epochs a Lightning checkpoint has trained.

    Raises:
        SeglabError: The file is not a readable checkpoint (truncated, corrupt, or holding
            anything but tensors and plain values: it is never unpickled as code).
    """
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
        return int(checkpoint.get("epoch", -1)) + 1
    except Exception as exc:
        raise SeglabError(
            f"{path}: not a readable training checkpoint ({type(exc).__name__}: "
            f"{str(exc).splitlines()[0] if str(exc) else 'no detail'}); the run cannot be "
            "resumed from it: start a fresh run with another --out"
        ) from None
