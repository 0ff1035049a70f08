"""Training on volumes (layout "volumes"): a 3D U-Net on random patches, validated on whole volumes.

`VolumeTraining` is the `TrainingKind` of `data.layout: volumes`; the run folder follows the
same contract as 2D runs (splits.json, train_log.csv,
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
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
from torch.utils.data import DataLoader

from seglab.atomic_files import atomic_write_json
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
from seglab.kinds import Kind
from seglab.models import model_spatial_dims
from seglab.training.tasks import TallyTask
from seglab.training.volume_task import create_volume_task, volume_mapping, volume_metadata

__all__ = ["VolumeTraining", "volume_splits"]

log = logging.getLogger(__name__)


def volume_splits(
    config: Config, assignment: dict[str, list[str]] | None = None
) -> dict[str, list[Sample]]:
    """The volume files of each split: train/val/test folders, or seeded fractions; or the
    stems of `assignment` (split name -> volume stems, e.g. cross-validation folds).

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
    if assignment is not None:
        by_stem = {sample.id: sample for group in found.values() for sample in group}
        return {name: [by_stem[stem] for stem in stems] for name, stems in assignment.items()}
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


def _cached_splits(
    config: Config, run_dir: Path, progress: bool, assignment: dict[str, list[str]] | None
) -> dict[str, list[CachedVolume]]:
    """Split the volumes (written to splits.json) and decode into the cache (`data.cache_dir`,
    else `cache/` beside the run) those not there yet; open them all."""
    data = config.data
    files = volume_splits(config, assignment)
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
    _check_one_channel_count([v for group in volumes.values() for v in group])
    return volumes


def _check_one_channel_count(volumes: list[CachedVolume]) -> None:
    """Refuse volumes of different channel counts: a 4D (X, Y, Z, 2) NIfTI among 1-channel
    volumes would otherwise make a 2-channel model fed copies of the single channel."""
    by_count: dict[int, list[CachedVolume]] = {}
    for volume in volumes:
        by_count.setdefault(volume.channels, []).append(volume)
    if len(by_count) < 2:
        return
    listed = "; ".join(
        f"{count} channel{'s' * (count > 1)}: {len(group)} volumes, e.g. {group[0].path}"
        for count, group in sorted(by_count.items())
    )
    raise DataError(
        volumes[0].path.parent,
        f"the volumes have different channel counts ({listed})",
        "give every volume the same channels (a 4D file holds channels on its last axis), "
        "or move the odd ones out of the folder",
    )


class _FlatVolumePredictor:
    """Foreground probabilities of a volume as one `(1, D * H * W)` row (see `validate`)."""

    def __init__(self, predictor: VolumePredictor) -> None:
        self.predictor = predictor

    def predict_proba(self, volume: np.ndarray) -> np.ndarray:
        return self.predictor.predict_proba(volume).reshape(1, -1)


class VolumeTraining:
    """The `TrainingKind` of volumes, binary (`data.num_classes` unset) or multi-class."""

    def __init__(self, config: Config, run_dir: Path, kind: Kind) -> None:
        _check_model(config)
        self.config, self.run_dir, self.kind = config, run_dir, kind
        self.mapping = volume_mapping(config)
        self.predictor: VolumePredictor

    def load(self, progress: bool, assignment: dict[str, Any] | None) -> None:
        self.volumes = _cached_splits(self.config, self.run_dir, progress, assignment)
        self.channels = max(v.channels for v in self.volumes["train"])

    def model_kwargs(self) -> dict[str, Any]:
        return {
            "in_channels": self.channels,
            "num_classes": self.config.data.num_classes or 1,
            **self.config.model.params,
        }

    def input_shape(self, new_model: Callable[[], torch.nn.Module]) -> tuple[int, ...]:
        data = self.config.data
        shapes = [v.shape for v in self.volumes["train"]]
        self.patch = choose_patch(data.patch, new_model, self.channels, data.batch_size, shapes)
        return (1, self.channels, *self.patch)

    def task(self, model: torch.nn.Module) -> TallyTask:
        train = self.volumes["train"]
        return create_volume_task(self.config, model, train, self.mapping, max(self.patch))

    def loaders(self) -> tuple[DataLoader, DataLoader]:
        volumes = self.volumes
        return _loaders(self.config, volumes["train"], volumes["val"], self.patch, self.channels)

    def metadata(self, model: torch.nn.Module, model_kwargs: dict[str, Any]) -> dict[str, Any]:
        return volume_metadata(self.config, model_kwargs, self.channels, self.patch, self.mapping)

    def validate(
        self, model: torch.nn.Module, metadata: dict[str, Any]
    ) -> tuple[float, dict[str, Any]]:
        """Binary: the threshold tuned on the validation volumes; multi-class: the argmax needs
        none and the volumes are scored per class into `eval/val/`."""
        from seglab.training.tuning import tune_threshold

        forward = torch_forward(model, "cpu", self.mapping is not None)
        self.predictor = predictor = VolumePredictor(forward, metadata)
        val = self.volumes["val"]
        if not self.kind.thresholded:
            out = self.run_dir / "eval" / "val"
            return 0.5, evaluate_volume_samples(predictor, LabelledVolumes(val), out).metrics
        # tune_threshold needs only `predict_proba(image)` and samples' `.image` / `.mask`; it
        # scores the rows of an (N, ...) mask as N images, so each volume is flattened to one.
        threshold, metrics = tune_threshold(
            cast(Any, _FlatVolumePredictor(predictor)),
            cast(Any, LabelledVolumes(val, flat=True)),
            self.config.train.threshold_range,
            self.run_dir / "threshold.png",
        )
        predictor.threshold = threshold
        return threshold, metrics

    def evaluate_test(self, out: Path) -> dict[str, Any] | None:
        test = self.volumes.get("test")
        if not test:
            return None
        return evaluate_volume_samples(self.predictor, LabelledVolumes(test), out).metrics
