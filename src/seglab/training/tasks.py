"""Lightning pieces of training: the segmentation and classification modules and the
`EpochLog` callback."""

from __future__ import annotations

import csv
import logging
import statistics
import time
from pathlib import Path
from typing import Any, cast

import numpy as np
import pytorch_lightning as pl
import torch

from seglab.atomic_files import atomic_text_file
from seglab.data.transforms import round_up
from seglab.inference.base import DEFAULT_TILE
from seglab.objectives.metrics import confusion_counts_torch
from seglab.precision import channels_last_format

log = logging.getLogger(__name__)


def log_columns(metric: str = "dice") -> list[str]:
    """Columns of train_log.csv for a task whose epoch metric is `metric`."""
    return ["epoch", "train_loss", "val_loss", f"train_{metric}", f"val_{metric}", "lr", "seconds"]


class TallyTask(pl.LightningModule):
    """Shared training loop: a loss per batch, and a tally summed on the device over the epoch
    (no per-step host sync) from which subclasses compute the epoch metric."""

    metric = ""

    def __init__(
        self,
        model: torch.nn.Module,
        lr: float,
        weight_decay: float,
        scheduler: str,
        tally_size: int,
    ) -> None:
        super().__init__()
        self.tally_size = tally_size
        self.model = model
        self.lr = lr
        self.weight_decay = weight_decay
        self.scheduler = scheduler
        self.tally = {stage: torch.zeros(self.tally_size) for stage in ("train", "val")}

    def _loss_and_tally(self, batch: Any) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    def _epoch_metric(self, tally: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def _step(self, batch: Any, stage: str) -> torch.Tensor:
        loss, tally = self._loss_and_tally(batch)
        self.tally[stage] = self.tally[stage].to(tally.device) + tally
        self.log(
            f"{stage}_loss",
            loss,
            on_step=False,
            on_epoch=True,
            batch_size=len(batch[0]),
            sync_dist=True,  # the mean over every DDP process (a no-op with one)
        )
        return loss

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        return self._step(batch, "train")

    def validation_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        return self._step(batch, "val")

    def on_train_epoch_start(self) -> None:
        self.tally["train"] = torch.zeros(self.tally_size)

    def on_validation_epoch_start(self) -> None:
        self.tally["val"] = torch.zeros(self.tally_size)

    def on_validation_epoch_end(self) -> None:
        # Validation ends each training epoch, after the last training batch, so both tallies
        # are complete here (callbacks' on_train_epoch_end runs before the module's).
        stages = ["val"] if self.trainer.sanity_checking else ["train", "val"]
        for stage in stages:
            tally = self.tally[stage].to(self.device)
            if self.trainer.world_size > 1:  # DDP: every process tallied its share of the data
                tally = self.trainer.strategy.reduce(tally, reduce_op="sum")
            value = self._epoch_metric(tally).float()
            self.log(f"{stage}_{self.metric}", value, prog_bar=stage == "val")
        self.log("lr", self.trainer.optimizers[0].param_groups[0]["lr"])

    def configure_optimizers(self) -> Any:
        return make_optimizer(self, self.lr, self.weight_decay, self.scheduler)


class SegmentationTask(TallyTask):
    """Binary segmentation: one logit channel, a loss on logits, Dice from summed counts.

    The epoch Dice is the dataset-level (micro) Dice of the summed confusion counts, not a mean
    of batch Dice values.
    """

    metric = "dice"

    def __init__(
        self,
        model: torch.nn.Module,
        loss: torch.nn.Module,
        lr: float = 1e-3,
        weight_decay: float = 0.0,
        scheduler: str = "none",
        channels_last: bool = True,
        tally_size: int = 4,
        tile: int = DEFAULT_TILE,
    ) -> None:
        super().__init__(model, lr, weight_decay, scheduler, tally_size)
        self.loss = loss
        self.channels_last = channels_last
        # Validation images larger than this are predicted by sliding window, as in inference.
        self.tile = tile

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if self.channels_last:
            images = images.contiguous(memory_format=channels_last_format(images.ndim))
        if not self.training and max(images.shape[2:]) > self.tile:
            return self._tiled(images)
        return self.model(images)

    def _tiled(self, images: torch.Tensor) -> torch.Tensor:
        """Logits of whole images (or volumes) larger than the tile, blended from overlapping
        square (cubic) tiles, so validation memory depends on the tile, not on the input."""
        from seglab.inference.sliding_window import sliding_window_predict

        def run(batch: np.ndarray) -> np.ndarray:
            tiles = torch.from_numpy(batch).to(images.device)
            return self.model(tiles).float().cpu().numpy()

        side = round_up(self.tile, cast(int, self.model.divisor))
        logits = [
            sliding_window_predict(
                image.float().cpu().numpy(), run, (side,) * (images.ndim - 2), 0.5, 2
            )
            for image in images
        ]
        return torch.from_numpy(np.stack(logits)).to(images.device)

    def _loss_and_tally(self, batch: Any) -> tuple[torch.Tensor, torch.Tensor]:
        images, masks = batch
        # Under mixed precision the convolutions give bf16/fp16 logits; losses run in fp32.
        logits = self(images).float()
        with torch.no_grad():
            # Channel 0 is the foreground (channel 1, when present, the borders).
            counts = confusion_counts_torch(logits[:, :1] > 0, masks[:, :1] > 0.5).sum(0)
        return self.loss(logits, masks), counts

    def _epoch_metric(self, tally: torch.Tensor) -> torch.Tensor:
        tp, fp, fn, _ = tally.double().unbind()
        total = 2 * tp + fp + fn
        return torch.where(total > 0, 2 * tp / total.clamp(min=1), torch.ones_like(tp))


class MulticlassSegmentationTask(SegmentationTask):
    """C-class segmentation: C logit channels, (N, H, W) integer targets whose ignored pixels
    carry `ignore_index`; the epoch metric is the mIoU of the summed confusion matrix (classes
    absent from both truth and prediction left out of the mean)."""

    metric = "miou"

    def __init__(
        self,
        model: torch.nn.Module,
        loss: torch.nn.Module,
        num_classes: int,
        ignore_index: int,
        lr: float = 1e-3,
        weight_decay: float = 0.0,
        scheduler: str = "none",
        channels_last: bool = True,
        tile: int = DEFAULT_TILE,
    ) -> None:
        super().__init__(
            model, loss, lr, weight_decay, scheduler, channels_last, num_classes**2, tile
        )
        self.num_classes = num_classes
        self.ignore_index = ignore_index

    def _loss_and_tally(self, batch: Any) -> tuple[torch.Tensor, torch.Tensor]:
        from seglab.objectives.multiclass_metrics import confusion_matrix_torch

        images, labels = batch
        logits = self(images).float()
        with torch.no_grad():
            matrix = confusion_matrix_torch(
                logits.argmax(1), labels, self.num_classes, self.ignore_index
            )
        # float64: float32 counts stop being exact past 2**24 pixels per cell.
        return self.loss(logits, labels), matrix.flatten().double()

    def _epoch_metric(self, tally: torch.Tensor) -> torch.Tensor:
        matrix = tally.double().reshape(self.num_classes, self.num_classes)
        hits = matrix.diagonal()
        union = matrix.sum(0) + matrix.sum(1) - hits
        scored = union > 0
        if not bool(scored.any()):
            return torch.ones((), dtype=matrix.dtype)
        return (hits[scored] / union[scored]).mean()


class ClassificationTask(TallyTask):
    """Image classification: cross-entropy on logits, accuracy from summed correct counts."""

    metric = "accuracy"

    def __init__(
        self,
        model: torch.nn.Module,
        lr: float = 1e-3,
        weight_decay: float = 0.0,
        scheduler: str = "none",
    ) -> None:
        super().__init__(model, lr, weight_decay, scheduler, tally_size=2)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.model(images)

    def _loss_and_tally(self, batch: Any) -> tuple[torch.Tensor, torch.Tensor]:
        images, labels = batch
        logits = self(images).float()
        with torch.no_grad():
            hits = (logits.argmax(1) == labels).sum().to(torch.float32)
            tally = torch.stack([hits, torch.tensor(float(len(labels)), device=hits.device)])
        return torch.nn.functional.cross_entropy(logits, labels), tally

    def _epoch_metric(self, tally: torch.Tensor) -> torch.Tensor:
        hits, total = tally.unbind()
        return hits / total.clamp(min=1)


def make_optimizer(
    module: pl.LightningModule, lr: float, weight_decay: float, scheduler: str
) -> Any:
    """Adam, with an optional cosine or plateau learning-rate schedule.

    The fused implementation (one kernel over every parameter) where the parameters allow it:
    on the seed U-Net its step took 3.4 ms instead of 11.5 ms on a 2-core CPU.
    """
    parameters = list(module.parameters())
    fused = all(p.device.type in ("cpu", "cuda") and p.is_floating_point() for p in parameters)
    optimizer = torch.optim.Adam(parameters, lr=lr, weight_decay=weight_decay, fused=fused or None)
    if scheduler == "cosine":
        epochs = module.trainer.max_epochs or 1
        cosine = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs)
        return {"optimizer": optimizer, "lr_scheduler": cosine}
    if scheduler == "plateau":
        plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, factor=0.5, patience=2)
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": plateau, "monitor": "val_loss"},
        }
    return optimizer


class CompileTimer(pl.Callback):
    """Compiles the task's model with `torch.compile` when fitting starts and reports what the
    compilation cost: the first training step (compiled then) against the median of the next
    ones, logged and sent to the loggers as `compile_seconds`."""

    measured_steps = 5

    def __init__(self) -> None:
        self.seconds: list[float] | None = []  # None once reported
        self.started = 0.0

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        model = pl_module.model
        assert isinstance(model, torch.nn.Module)
        model.compile()  # in place: state_dict keys and bundles stay those of the plain model

    def on_train_batch_start(self, trainer: pl.Trainer, *args: Any) -> None:
        self.started = time.perf_counter()

    def on_train_batch_end(self, trainer: pl.Trainer, *args: Any) -> None:
        if self.seconds is None:
            return
        self.seconds.append(time.perf_counter() - self.started)
        if len(self.seconds) > self.measured_steps:
            self._report(trainer)

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._report(trainer)  # fewer steps than measured_steps in the whole fit

    def _report(self, trainer: pl.Trainer) -> None:
        if not self.seconds:
            return
        first = self.seconds[0]
        steady = statistics.median(self.seconds[1:]) if len(self.seconds) > 1 else 0.0
        log.info(
            "torch.compile: first step %.1f s (compilation included), then %.3f s per step",
            first,
            steady,
        )
        for logger in trainer.loggers:
            logger.log_metrics({"compile_seconds": first - steady}, step=0)
        self.seconds = None


class EpochLog(pl.Callback):
    """Writes `train_log.csv` after every epoch and redraws `curves.png` at most every
    `redraw_seconds` while training, and once when training ends (or fails)."""

    # One matplotlib redraw costs 0.4-0.7 s on a 2-core CPU: 5 % of a short epoch.
    redraw_seconds = 60.0

    def __init__(self, run_dir: Path, start_epoch: int = 0, metric: str = "dice") -> None:
        self.metric = metric
        self.columns = log_columns(metric)
        self.csv_path = run_dir / "train_log.csv"
        self.curves_path = run_dir / "curves.png"
        self.rows = [r for r in read_train_log(self.csv_path) if r["epoch"] <= start_epoch]
        self.started = time.perf_counter()
        self.drawn_at = time.perf_counter()
        self.drawn_rows = -1

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.started = time.perf_counter()

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not trainer.is_global_zero:
            return
        metrics = trainer.callback_metrics
        row: dict[str, float] = {"epoch": trainer.current_epoch + 1}
        for key in self.columns[1:-1]:
            row[key] = float(metrics[key]) if key in metrics else float("nan")
        row["seconds"] = round(time.perf_counter() - self.started, 3)
        self.rows.append(row)
        with atomic_text_file(self.csv_path) as handle:
            writer = csv.DictWriter(handle, fieldnames=self.columns)
            writer.writeheader()
            writer.writerows(self.rows)
        if time.perf_counter() - self.drawn_at >= self.redraw_seconds:
            self._draw()

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.is_global_zero and self.drawn_rows != len(self.rows):
            self._draw()

    def on_exception(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException
    ) -> None:
        self.on_fit_end(trainer, pl_module)

    def _draw(self) -> None:
        from seglab.viz import plot_curves

        if self.rows:
            plot_curves(self.rows, self.curves_path, self.metric)
        self.drawn_at, self.drawn_rows = time.perf_counter(), len(self.rows)


def read_train_log(path: Path) -> list[dict[str, float]]:
    """The rows of `train_log.csv`: scores as floats, the epoch as the whole number it is (so a
    resumed run writes `2`, not `2.0`)."""
    if not path.is_file():
        return []
    with path.open(newline="") as handle:
        return [
            {k: int(float(v)) if k == "epoch" else float(v) for k, v in row.items()}
            for row in csv.DictReader(handle)
        ]
