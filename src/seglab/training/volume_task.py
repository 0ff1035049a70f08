"""What a volume run trains and records: its classes, loss, Lightning task and bundle metadata.

Binary volumes (no `data.num_classes`) train one sigmoid channel with `loss.name` (default
`dice_bce`), Dice as the epoch metric, and get a tuned threshold. With `data.num_classes: C` the
labels are class indices 0..C-1 (`data.ignore_index` for unlabelled voxels) and the run is the
2D multi-class one in 3D: C softmax channels, a multi-class loss (default `ce_dice`, set by
`seglab.config.apply_multiclass_defaults`), mIoU as the epoch metric, argmax prediction. The
classes are named `class_0` .. `class_{C-1}` with the default palette (`index_mapping`, as the
folders layout names class-index masks), recorded in the bundle's `labels`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from seglab.config import Config, config_to_dict
from seglab.data.labels import LabelMapping, index_mapping
from seglab.data.volume_cache import CachedVolume
from seglab.errors import ConfigError
from seglab.training.tasks import MulticlassSegmentationTask, SegmentationTask

__all__ = [
    "class_voxel_counts",
    "create_volume_loss",
    "create_volume_task",
    "volume_mapping",
    "volume_metadata",
]

log = logging.getLogger(__name__)


def volume_mapping(config: Config) -> LabelMapping | None:
    """The classes of a multi-class volume run (`data.num_classes`), None for a binary one.

    Raises:
        ConfigError: A label mapping file (volumes hold class indices), or an ignore_index
            that is a class index.
    """
    data = config.data
    if data.labels.lower().endswith((".yaml", ".yml")):
        raise ConfigError(
            f"'data.labels': {data.labels}: volume labels are class indices 0..C-1, not mapped "
            "values; unset data.labels and set data.num_classes=C"
        )
    if data.num_classes is None:
        return None
    if data.num_classes >= data.ignore_index:
        raise ConfigError(
            f"'data.num_classes': {data.num_classes} classes need an ignore_index above the "
            f"last class index, and data.ignore_index is {data.ignore_index}"
        )
    return index_mapping(data.num_classes, data.ignore_index)


def class_voxel_counts(
    volumes: Sequence[CachedVolume], num_classes: int, ignore_index: int
) -> np.ndarray:
    """Voxels of each class over the cached volumes (ignored voxels not counted), shape (C,)."""
    counts = np.zeros(num_classes, np.int64)
    for volume in volumes:
        labels = np.asarray(volume.labels).ravel()
        counts += np.bincount(labels[labels != ignore_index], minlength=num_classes)[:num_classes]
    return counts


def create_volume_loss(
    config: Config, train: Sequence[CachedVolume], mapping: LabelMapping | None
) -> torch.nn.Module:
    """`loss.name` with its parameters; class weights of `weighted_bce` / `weighted_ce` that
    are not set come from the training volumes.

    Raises:
        ConfigError: A bad value in `loss.params`.
    """
    from seglab.objectives.losses import (
        class_weights_from_fraction,
        create_loss,
        inverse_frequency_weights,
    )

    params: dict[str, Any] = dict(config.loss.params)
    try:
        if mapping is not None:
            if config.loss.name == "weighted_ce" and "weights" not in params:
                counts = class_voxel_counts(train, mapping.num_classes, mapping.ignore_index)
                params["weights"] = [float(w) for w in inverse_frequency_weights(counts)]
                log.info("weighted_ce class weights from the training volumes: %s", params)
            return create_loss(
                config.loss.name, mode="multiclass", ignore_index=mapping.ignore_index, **params
            )
        if config.loss.name == "weighted_bce" and "pos_weight" not in params:
            fraction = float(np.mean([v.positive / np.prod(v.shape) for v in train]))
            params["pos_weight"], params["neg_weight"] = class_weights_from_fraction(fraction)
            log.info("weighted_bce weights from the training volumes: %s", params)
        return create_loss(config.loss.name, **params)
    except ValueError as exc:  # a bad value in loss.params
        raise ConfigError(str(exc)) from None


def create_volume_task(
    config: Config,
    model: torch.nn.Module,
    train: Sequence[CachedVolume],
    mapping: LabelMapping | None,
    tile: int,
) -> SegmentationTask:
    """The Lightning task: `SegmentationTask` (Dice), or `MulticlassSegmentationTask` (mIoU).

    Validation volumes larger than `tile` (the patch's longest side) are predicted by cubic
    sliding window, so validation memory depends on the patch, not on the volume."""
    loss = create_volume_loss(config, train, mapping)
    options: dict[str, Any] = {
        "lr": config.train.lr,
        "weight_decay": config.train.weight_decay,
        "scheduler": config.train.scheduler,
        "channels_last": config.train.channels_last,
        "tile": tile,
    }
    if mapping is None:
        return SegmentationTask(model, loss, **options)
    return MulticlassSegmentationTask(
        model, loss, mapping.num_classes, mapping.ignore_index, **options
    )


def volume_metadata(
    config: Config,
    model_kwargs: dict[str, Any],
    channels: int,
    patch: tuple[int, int, int],
    mapping: LabelMapping | None,
) -> dict[str, Any]:
    """The bundle's `seglab.json` content (threshold and metrics filled in later): 3D, the
    training patch as the tile, and for multi-class runs the classes (`"task": "multiclass"`)."""
    from seglab.bundle import make_metadata

    metadata = make_metadata(
        model_name=config.model.name,
        model_kwargs=model_kwargs,
        preprocessing={
            "normalize": config.data.normalize,
            "percentiles": list(config.data.percentiles),
            "input_size": None,
            "channels": channels,
            "views": ["raw"],
            # Predicted tile by tile at the training patch size, the context the model learnt.
            "tile": list(patch),
        },
        threshold=0.5,
        metrics={},
        config=config_to_dict(config),
        outputs=None if mapping is None else list(mapping.names),
        labels=None if mapping is None else mapping.to_dict(),
    )
    metadata["spatial_dims"] = 3
    return metadata
