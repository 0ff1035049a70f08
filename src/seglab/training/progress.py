"""The training progress bar: Lightning's, read the way a person counts.

Epochs are counted from 1 of N ("Epoch 1/4", not "Epoch 0"), the logger's version number
(`v_num`) is left out, validation scores appear once a validation has computed them (not as
0.000 before), and `run_left` estimates the time the whole run has left (an upper bound when
early stopping ends it sooner).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import pytorch_lightning as pl
from pytorch_lightning.callbacks import TQDMProgressBar
from pytorch_lightning.callbacks.progress.tqdm_progress import convert_inf
from tqdm import tqdm


def epoch_label(current_epoch: int, max_epochs: int | None) -> str:
    """The bar's description: Lightning's 0-based `current_epoch` counted from 1.

    Example:
        >>> epoch_label(0, 4)
        'Epoch 1/4'
    """
    total = f"/{max_epochs}" if max_epochs is not None and max_epochs > 0 else ""
    return f"Epoch {current_epoch + 1}{total}"


def shown_metrics(metrics: Mapping[str, Any], validated: bool) -> dict[str, Any]:
    """The bar's metrics: no `v_num`, and `val_*` only once a validation has run.

    Example:
        >>> shown_metrics({"v_num": "47c8", "train_loss": 0.5, "val_dice": 0.0}, False)
        {'train_loss': 0.5}
    """
    return {
        key: value
        for key, value in metrics.items()
        if key != "v_num" and (validated or not key.startswith("val_"))
    }


def seconds_left(elapsed: float, done: float, total: float) -> float | None:
    """The time left at the pace so far, when `done` of `total` units took `elapsed` seconds.

    Example:
        >>> seconds_left(30.0, 1.0, 4.0)
        90.0
    """
    if done <= 0 or total <= done:
        return None if done <= 0 else 0.0
    return elapsed * (total - done) / done


class RunProgressBar(TQDMProgressBar):
    """Lightning's progress bar with the changes of this module."""

    def __init__(self) -> None:
        super().__init__()
        self._validated = False
        self._started = time.perf_counter()
        self._first_epoch = 0

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        super().on_train_start(trainer, pl_module)
        # A resumed run starts at its checkpoint's epoch: the pace counts this session only.
        self._started, self._first_epoch = time.perf_counter(), trainer.current_epoch

    def on_train_epoch_start(self, trainer: pl.Trainer, *_: Any) -> None:
        # Lightning's own would first draw its 0-based "Epoch 0": the bar is reset here instead.
        bar = self.train_progress_bar
        bar.reset(total=convert_inf(self.total_train_batches))
        bar.initial = 0
        bar.set_description(epoch_label(trainer.current_epoch, trainer.max_epochs))

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not trainer.sanity_checking:
            self._validated = True
        super().on_validation_end(trainer, pl_module)

    def get_metrics(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule
    ) -> dict[str, int | str | float | dict[str, float]]:
        shown = shown_metrics(super().get_metrics(trainer, pl_module), self._validated)
        left = self._run_left(trainer)
        if left is not None:
            shown["run_left"] = tqdm.format_interval(left)
        return shown

    def _run_left(self, trainer: pl.Trainer) -> float | None:
        bar = self._train_progress_bar
        if bar is None or not bar.total or trainer.max_epochs is None or trainer.max_epochs < 1:
            return None
        done = trainer.current_epoch - self._first_epoch + bar.n / bar.total
        total = trainer.max_epochs - self._first_epoch
        return seconds_left(time.perf_counter() - self._started, done, total)
