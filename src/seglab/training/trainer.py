"""The Lightning trainer, loaders and tracking shared by the 2D, volume and classification
training paths: `make_trainer`, `loader_options`, `check_tracking`, `tracking_logger`,
and `ddp_child`."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch

from seglab.atomic_files import atomic_write_json
from seglab.config import Config, config_to_dict
from seglab.errors import ConfigError, SeglabError
from seglab.precision import accelerator_device_type, resolve_train_precision
from seglab.training.checkpoints import AtomicCheckpointIO, RandomState
from seglab.training.progress import RunProgressBar
from seglab.training.tasks import CompileTimer, EpochLog

log = logging.getLogger(__name__)


def loader_workers(config: Config) -> int:
    """`data.num_workers`, with "auto" resolved: on a CPU none, since the network uses every
    core and a cached crop reads in a small fraction of a training step (measured by
    benchmarks/data_scale.py); on a GPU one process per core beside the training one, at
    most 8."""
    workers = config.data.num_workers
    if workers != "auto":
        return int(workers)
    if accelerator_device_type(config.train.accelerator) == "cpu":
        return 0
    return max(0, min(8, (os.cpu_count() or 1) - 1))


def loader_options(config: Config) -> dict[str, Any]:
    """DataLoader settings shared by every task: worker processes kept between epochs,
    page-locked batches when training on a GPU (copied to it without blocking the host), and
    a generator of the loader's own for its worker seeds: drawn from the global one, they would
    shift dropout's draws whenever a loader starts (on resume, not in an uninterrupted run)."""
    workers = loader_workers(config)
    return {
        "num_workers": workers,
        "persistent_workers": workers > 0,
        "pin_memory": accelerator_device_type(config.train.accelerator) == "cuda",
        "generator": torch.Generator().manual_seed(config.seed),
    }


def make_trainer(
    config: Config,
    run_dir: Path,
    logger: Any,
    start_epoch: int,
    progress: bool,
    metric: str = "dice",
) -> tuple[pl.Trainer, pl.callbacks.ModelCheckpoint]:
    checkpoint = pl.callbacks.ModelCheckpoint(
        dirpath=run_dir / "checkpoints",
        filename="best",
        monitor="val_loss",
        save_last=True,
        enable_version_counter=False,
    )
    callbacks = [checkpoint, *_callbacks(config, run_dir, start_epoch, progress, metric)]
    processes = config.train.devices * config.train.num_nodes
    strategy = config.train.strategy
    if strategy == "auto" and processes > 1:
        strategy = "ddp"
    device_type = accelerator_device_type(config.train.accelerator)
    precision = resolve_train_precision(config.train.precision, device_type)
    deterministic = config.train.deterministic
    log.info("training on %s in precision %s", device_type, precision)
    trainer = pl.Trainer(
        max_epochs=config.train.epochs,
        max_steps=config.train.max_steps or -1,
        accelerator=config.train.accelerator,
        devices=config.train.devices,
        num_nodes=config.train.num_nodes,
        strategy=strategy,
        precision=precision,  # type: ignore[arg-type]
        # Some CUDA kernels (max-pool and interpolation backward) have no deterministic
        # version: there "warn" uses deterministic ones where they exist instead of failing.
        deterministic="warn" if deterministic and device_type == "cuda" else deterministic,
        # cuDNN autotuning picks the fastest convolution per shape, at the cost of bit-exact
        # reruns: on when determinism is not asked for.
        benchmark=not deterministic,
        callbacks=callbacks,
        plugins=[AtomicCheckpointIO()],
        # The training samplers shard themselves (see seglab.data.sampling.EpochSampler);
        # validation loaders are whole on every process, whose summed tallies keep the ratios.
        use_distributed_sampler=False,
        logger=logger or False,
        default_root_dir=run_dir,
        enable_progress_bar=progress,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        log_every_n_steps=1,
    )
    return trainer, checkpoint


def _callbacks(
    config: Config, run_dir: Path, start_epoch: int, progress: bool, metric: str
) -> list[pl.Callback]:
    """The training log, the random state kept in checkpoints, and early stopping, the compile
    timer and the bar when asked for."""
    callbacks: list[pl.Callback] = [EpochLog(run_dir, start_epoch, metric), RandomState()]
    if config.train.patience > 0:
        # Checked after each validation only: a run that `train.max_steps` ends mid-epoch
        # has no validation loss at the end of that epoch.
        stopping = pl.callbacks.EarlyStopping(
            monitor="val_loss", patience=config.train.patience, check_on_train_epoch_end=False
        )
        callbacks.append(stopping)
    if config.train.compile:
        callbacks.append(CompileTimer())
    if progress:
        callbacks.append(RunProgressBar())
    return callbacks


def ddp_child() -> bool:
    """Whether this process is a DDP process other than rank 0 (started by Lightning's launcher,
    torchrun or SLURM): the run folder and tracking belong to rank 0."""
    ranks = (os.environ.get(name, "0") for name in ("RANK", "LOCAL_RANK", "NODE_RANK"))
    return any(rank.isdigit() and int(rank) > 0 for rank in ranks)


def check_tracking(config: Config, run_dir: Path) -> None:
    """Refuse an unsupported, unreachable or corrupt tracking store (see
    `seglab.training.tracking.check_store`) before anything of the run is written."""
    if not config.tracking.enabled or ddp_child():
        return
    from seglab.training.tracking import check_store

    check_store(config.tracking, run_dir.parent)


def tracking_logger(
    config: Config, run_dir: Path, resume: bool, tags: dict[str, str] | None
) -> Any:
    if not config.tracking.enabled or ddp_child():
        return None
    from seglab.training.tracking import create_logger, default_store, flat_params

    id_file = run_dir / "mlflow_run.json"
    run_id = json.loads(id_file.read_text())["run_id"] if resume and id_file.is_file() else None
    logger = create_logger(config.tracking, run_dir, run_id, tags)
    if run_id is None:
        try:
            logger.log_hyperparams(flat_params(config_to_dict(config)))
        except SeglabError:
            raise
        # What `check_tracking` could not foresee (a database of another program, a server
        # refusing writes) fails here, as MLflow, SQLAlchemy or HTTP errors of many types.
        except Exception as exc:
            uri = config.tracking.uri or default_store(run_dir.parent)[0]
            raise ConfigError(
                f"tracking store {uri}: {type(exc).__name__}: {exc}; fix it, "
                "or train without tracking: --no-track (tracking.enabled=false)"
            ) from exc
        atomic_write_json(id_file, {"run_id": logger.run_id, "tracking_uri": logger._tracking_uri})
    return logger
