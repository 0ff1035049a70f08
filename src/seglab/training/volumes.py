"""Training on volumes (layout "volumes"): a 3D U-Net on random patches, validated on whole volumes.

`seglab.training.run.train` calls `train_volumes` for `data.layout: volumes`, after writing
`config.yaml`; the run folder follows the same contract as 2D runs (splits.json, train_log.csv,
curves.png, checkpoints/, threshold.png, model/, eval/test/). What differs from 2D:

- Batches are patches (`seglab.data.patches`): `data.patches_per_volume` per training volume per
  epoch, a `data.foreground_share` of them centred on foreground, each axis flipped with
  probability `data.augment.hflip` (the 2D horizontal-flip setting, applied to all three axes).
- `data.patch` is `[D, H, W]`; null takes 64 per axis (at most the largest training volume's
  extent, rounded up to the model's divisor); "auto" takes the largest cube that fits half the
  free memory of the device at `data.batch_size` (`seglab.planner.plan_patch`), logged.
- Validation runs on whole volumes (batch 1; the U-Net pads them to its divisor): cheap for the
  volumes this is meant for, and exactly what the validation loss and Dice should measure.
- Every volume is decoded once into the cache beside the runs (`data.cache_dir`, else
  `cache/`; `seglab.data.volume_cache`): patches, validation and test scoring read from its
  memory-maps, so resident memory is bounded by the patches in flight, not by the volumes.
- The threshold is tuned on the validation volumes as in 2D
  (`seglab.training.tuning.tune_threshold`),
  predicted by sliding window with the training patch as the tile, as the bundle predicts later.
- With `data.num_classes: C` the labels are class indices and the run is multi-class
  (`seglab.training.volume_task`): C softmax channels, mIoU as the epoch metric, no threshold
  (argmax);
  the validation and test volumes are scored per class into `eval/val/` and `eval/test/`.
"""

from __future__ import annotations

import logging
import time
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import torch
from torch.utils.data import DataLoader

from seglab.atomic_files import atomic_write_json, atomic_write_text
from seglab.config import Config
from seglab.data.layouts import Sample
from seglab.data.patches import PatchDataset, VolumeDataset, choose_patch
from seglab.data.sampling import EpochSampler
from seglab.data.splits import assign_splits
from seglab.data.volume_cache import (
    CachedVolume,
    LabelledVolumes,
    PreparedVolume,
    VolumePreparation,
    cache_volumes,
)
from seglab.data.volumes import find_volumes
from seglab.errors import ConfigError, DataError
from seglab.evaluation.volumes import evaluate_volume_samples
from seglab.inference.predictor import torch_forward
from seglab.inference.volumes import VolumePredictor
from seglab.models import create_model, model_spatial_dims, model_summary
from seglab.training.volume_task import create_volume_task, volume_mapping, volume_metadata

if TYPE_CHECKING:
    from seglab.training.run import RunResult

__all__ = ["train_volumes", "volume_splits"]

log = logging.getLogger(__name__)


def volume_splits(config: Config) -> dict[str, list[Sample]]:
    """The volume files of each split: train/val/test folders, or seeded fractions.

    Raises:
        ConfigError: `data.root` is not set, or there is no train split.
        DataError: The folder is not in the `volumes` layout, or has no labels.
    """
    if config.data.root is None:
        raise ConfigError("'data.root' is not set; pass --data DIR or set data.root in the config")
    found = {
        split: [Sample(stem, image, (labels,) if labels else ()) for stem, image, labels in entries]
        for split, entries in find_volumes(config.data.root).items()
    }
    for split, samples in found.items():
        if any(not s.masks for s in samples):
            raise DataError(
                Path(config.data.root),
                f"the {split} volumes have no labels/ folder",
                "training needs ROOT/images/<stem>.tif and ROOT/labels/<stem>.tif",
            )
    return assign_splits(found, config.data, config.seed)


def _check_model(config: Config) -> None:
    volume_mapping(config)  # a label mapping file or a bad ignore_index fails before training
    if model_spatial_dims(config.model.name) != 3:
        raise ConfigError(
            f"'model.name': {config.model.name} is a 2D model; data.layout=volumes needs a 3D "
            "model: set model.name=unet3d (and model.params, e.g. {n_filters: 2})"
        )


def _loaders(
    config: Config,
    train: list[CachedVolume],
    val: list[CachedVolume],
    patch: tuple[int, int, int],
    channels: int,
) -> tuple[DataLoader, DataLoader]:
    from seglab.training.trainer import loader_options

    data = config.data
    multiclass = data.num_classes is not None

    def sources(volumes: list[CachedVolume]) -> list[PreparedVolume]:
        return [PreparedVolume(v, channels, data.normalize, data.percentiles) for v in volumes]

    patches = PatchDataset.from_volumes(
        sources(train),
        patch,
        data.patches_per_volume,
        data.foreground_share,
        flip=data.augment.hflip,
        seed=config.seed,
        multiclass=multiclass,
        pad_label=data.ignore_index if multiclass else 0,
    )
    train_loader = DataLoader(
        patches,
        batch_size=min(data.batch_size, len(patches)),
        sampler=EpochSampler(len(patches), config.seed),
        drop_last=len(patches) > data.batch_size,
        **loader_options(config),
    )
    whole = VolumeDataset.from_volumes(sources(val), multiclass)
    val_loader = DataLoader(whole, batch_size=1, **loader_options(config))
    return train_loader, val_loader


def _cached_splits(config: Config, run_dir: Path, progress: bool) -> dict[str, list[CachedVolume]]:
    """Split the volumes (written to splits.json) and decode into the cache (`data.cache_dir`,
    else `cache/` beside the run) those not there yet; open them all."""
    data = config.data
    files = volume_splits(config)
    atomic_write_json(
        run_dir / "splits.json",
        {
            "layout": "volumes",
            **{name: [str(s.image) for s in group] for name, group in files.items()},
        },
    )
    cache = data.cache_dir or run_dir.parent / "cache"
    preparation = VolumePreparation(data.num_classes, data.ignore_index, data.percentiles)
    volumes = {
        name: cache_volumes(group, cache, preparation, progress, f"caching {name}")
        for name, group in files.items()
    }
    for name in ("train", "val"):
        if not volumes.get(name):
            raise DataError(
                Path(str(data.root)),
                f"the {name} split has no volume",
                "add volumes, or lower data.val_fraction / data.test_fraction",
            )
    return volumes


def _model_and_patch(
    config: Config, run_dir: Path, channels: int, train: list[CachedVolume]
) -> tuple[torch.nn.Module, dict[str, Any], tuple[int, int, int]]:
    """The model, its keyword arguments and the training patch (model_summary.txt written)."""
    data = config.data
    model_kwargs = {"in_channels": channels, "num_classes": data.num_classes or 1}
    model_kwargs.update(config.model.params)
    try:
        model = create_model(config.model.name, **model_kwargs)
    except ValueError as exc:  # a bad value in model.params
        raise ConfigError(str(exc)) from None
    patch = choose_patch(
        data.patch,
        lambda: create_model(config.model.name, **model_kwargs),
        channels,
        data.batch_size,
        [v.shape for v in train],
    )
    atomic_write_text(run_dir / "model_summary.txt", model_summary(model, (1, channels, *patch)))
    return model, model_kwargs, patch


def train_volumes(
    config: Config,
    run_dir: Path,
    resume: bool = False,
    progress: bool = True,
    tags: dict[str, str] | None = None,
) -> RunResult:
    """Train a 3D model on a `volumes` folder into `run_dir` (already holding config.yaml).

    Args:
        config: The resolved configuration (`data.layout` "volumes", a 3D `model.name`).
        run_dir: The run folder.
        resume: Continue from `checkpoints/last.ckpt`.
        progress: Show progress bars.
        tags: MLflow tags of the run.

    Returns:
        The run folder, bundle, tuned threshold and validation / test metrics.

    Raises:
        ConfigError: A 2D model, or bad `data.patch`, model or loss parameters.
        DataError: Missing, unreadable or unlabelled volumes, or an empty train or val split.

    Example:
        >>> config = load_config(None, ["data.root=data/blobs3d", "data.layout=volumes",
        ...     "model.name=unet3d", "model.params={n_filters: 1}"])  # doctest: +SKIP
        >>> train(config, "runs/blobs")  # doctest: +SKIP
    """
    from seglab.training.trainer import checkpoint_epoch, make_trainer, tracking_logger

    _check_model(config)
    volumes = _cached_splits(config, run_dir, progress)
    channels = max(v.channels for v in volumes["train"])
    model, model_kwargs, patch = _model_and_patch(config, run_dir, channels, volumes["train"])
    task = create_volume_task(config, model, volumes["train"], volume_mapping(config), max(patch))
    if config.train.channels_last:
        task.model.to(memory_format=torch.channels_last_3d)
    train_loader, val_loader = _loaders(config, volumes["train"], volumes["val"], patch, channels)
    logger = tracking_logger(config, run_dir, resume, tags)
    last = run_dir / "checkpoints" / "last.ckpt"
    start_epoch = checkpoint_epoch(last) if resume else 0
    trainer, checkpoint = make_trainer(
        config, run_dir, logger, start_epoch, progress, metric=task.metric
    )
    started = time.perf_counter()
    with warnings.catch_warnings():
        # Lightning's advice for large GPU jobs is noise for in-memory CPU training.
        for message in ("does not have many workers", "smaller than the logging interval"):
            warnings.filterwarnings("ignore", message=f".*{message}.*")
        warnings.filterwarnings("ignore", message=".*exists and is not empty.*")
        warnings.filterwarnings("ignore", message=".*treespec.*")
        trainer.fit(task, train_loader, val_loader, ckpt_path=last if resume else None)
    log.info("trained for %.1f s", time.perf_counter() - started)
    best = checkpoint.best_model_path or str(last)
    task.load_state_dict(torch.load(best, map_location="cpu", weights_only=True)["state_dict"])
    model = task.model.cpu().to(memory_format=torch.contiguous_format)
    return _finish(config, run_dir, model, model_kwargs, channels, patch, volumes, logger)


class _FlatVolumePredictor:
    """Foreground probabilities of a volume as one `(1, D * H * W)` row (see `_finish`)."""

    def __init__(self, predictor: VolumePredictor) -> None:
        self.predictor = predictor

    def predict_proba(self, volume: np.ndarray) -> np.ndarray:
        return self.predictor.predict_proba(volume).reshape(1, -1)


def _validate(
    config: Config, run_dir: Path, predictor: VolumePredictor, val: list[CachedVolume]
) -> tuple[float, dict[str, Any]]:
    """The threshold and validation metrics: tuned for a binary model; for a multi-class one
    the argmax needs no threshold and the volumes are scored per class into `eval/val/`."""
    from seglab.training.tuning import tune_threshold

    if predictor.multiclass:
        result = evaluate_volume_samples(predictor, LabelledVolumes(val), run_dir / "eval" / "val")
        return 0.5, result.metrics
    # tune_threshold needs only `predict_proba(image)` and samples' `.image` / `.mask`; it
    # scores the rows of an (N, ...) mask as N images, so each volume is flattened to one.
    return tune_threshold(
        cast(Any, _FlatVolumePredictor(predictor)),
        cast(Any, LabelledVolumes(val, flat=True)),
        config.train.threshold_range,
        run_dir / "threshold.png",
    )


def _finish(
    config: Config,
    run_dir: Path,
    model: torch.nn.Module,
    model_kwargs: dict[str, Any],
    channels: int,
    patch: tuple[int, int, int],
    volumes: dict[str, list[CachedVolume]],
    logger: Any,
) -> RunResult:
    from seglab.bundle import save_bundle
    from seglab.training.run import RUN_FILES, RunResult

    mapping = volume_mapping(config)
    metadata = volume_metadata(config, model_kwargs, channels, patch, mapping)
    predictor = VolumePredictor(torch_forward(model, "cpu", mapping is not None), metadata)
    threshold, val_metrics = _validate(config, run_dir, predictor, volumes["val"])
    metadata["threshold"] = predictor.threshold = threshold
    metadata["metrics"] = {"val": val_metrics}
    bundle_path = save_bundle(model, metadata, run_dir / "model")

    test_metrics = None
    if config.train.evaluate_test and volumes.get("test"):
        out = run_dir / "eval" / "test"
        test_metrics = evaluate_volume_samples(
            predictor, LabelledVolumes(volumes["test"]), out
        ).metrics
    if logger is not None:
        from seglab.training.tracking import final_metrics, log_results

        final = final_metrics(val_metrics, test_metrics, threshold)
        folders = {"model": bundle_path, "eval/test": run_dir / "eval" / "test"}
        log_results(logger, final, [run_dir / name for name in RUN_FILES], folders)
        logger.finalize("success")
    return RunResult(run_dir, bundle_path, threshold, val_metrics, test_metrics)
