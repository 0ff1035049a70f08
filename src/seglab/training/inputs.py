"""What a 2D training run feeds the trainer: input views, the crop side, the loaders and the loss
(`seglab.training.run.train` assembles them)."""

from __future__ import annotations

import logging
from typing import Any

import torch
from torch.utils.data import DataLoader

from seglab.config import Config
from seglab.data.dataset import SegmentationDataset, class_pixel_counts, foreground_fraction
from seglab.data.labels import LabelMapping
from seglab.data.sampling import EpochSampler
from seglab.data.transforms import build_augmentation
from seglab.errors import ConfigError, SeglabError
from seglab.objectives.losses import class_weights_from_fraction, create_loss
from seglab.training.trainer import loader_options

log = logging.getLogger(__name__)


def resolve_views(config: Config) -> list[str]:
    """The input views of the run: the config's, else the model's default."""
    from seglab.data.views import DEFAULT_EXTENDED_VIEWS, VIEWS

    if config.data.views is not None:
        views = list(config.data.views)
    elif config.model.name == "unet_extended":
        views = list(DEFAULT_EXTENDED_VIEWS)
    else:
        views = ["raw"]
    unknown = [v for v in views if v not in VIEWS]
    if unknown or not views:
        raise ConfigError(
            f"'data.views': unknown {unknown or 'empty list'}; valid: {', '.join(VIEWS)}"
        )
    return views


# Crops of this side when images differ in size or are large ("auto"): 256 holds several
# nuclei at DSB2018's resolutions and a street scene's objects at Cityscapes' half size.
DEFAULT_CROP = 256
# Whole images of one size up to this side train as they are ("auto").
WHOLE_IMAGE_SIDE = 512


def resolve_crop(crop: int | str | None, shapes: list[tuple[int, int]]) -> int | None:
    """The training crop side of `data.crop` for training images of `shapes`.

    Example:
        >>> resolve_crop("auto", [(128, 128), (128, 128)]), resolve_crop("auto", [(520, 696)])
        (None, 256)
    """
    if crop != "auto":
        return None if crop is None else int(crop)
    if len(set(shapes)) == 1 and max(shapes[0]) <= WHOLE_IMAGE_SIDE:
        return None
    smallest = min(min(shape) for shape in shapes)
    return max(16, min(DEFAULT_CROP, smallest // 16 * 16))


def check_batch_fits(batch_size: int, channels: int, crop: int) -> None:
    """Refuse a crop whose training batch (float32 images and targets, before any activation)
    alone would not fit in the free RAM, saying what it would need."""
    from seglab.planner import available_ram_bytes

    needed = batch_size * crop * crop * (channels + 1) * 4
    try:
        free = available_ram_bytes()
    except OSError:
        return
    if needed > free:
        raise ConfigError(
            f"'data.crop': {crop}×{crop} crops in batches of {batch_size} need at least "
            f"{needed / 2**30:.1f} GiB before any activation; {free / 2**30:.1f} GiB is free. "
            "Use a smaller data.crop or data.batch_size (`seglab plan` suggests both)"
        )


def make_loaders(
    config: Config,
    train: list[Any],
    val: list[Any],
    channels: int,
    views: list[str],
    ignore_index: int | None = None,
) -> tuple[DataLoader, DataLoader]:
    data = config.data
    crop = resolve_crop(data.crop, [tuple(s.shape) for s in train])
    if crop is not None:
        check_batch_fits(data.batch_size, channels * len(views), crop)
    log.info("training on %s", f"random {crop}x{crop} crops" if crop else "whole images")
    train_set = SegmentationDataset(
        train,
        data,
        channels,
        crop,
        build_augmentation(data.augment, seed=config.seed),
        config.seed,
        views,
        ignore_index,
        rotate90=data.augment.rotate90,
    )
    val_set = SegmentationDataset(val, data, channels, views=views, ignore_index=ignore_index)
    if not train_set.same_size():
        raise SeglabError(
            "training images have different sizes; set data.crop=N (or auto) to train on "
            "random crops, or data.size=[H,W] to resize them"
        )
    batch_size = min(data.batch_size, len(train_set))
    train_loader = DataLoader(
        train_set,
        batch_size=batch_size,
        sampler=EpochSampler(len(train_set), config.seed),
        drop_last=len(train_set) > data.batch_size,
        **loader_options(config),
    )
    # Whole validation images come in batches only when they are as small as the training
    # samples: a batch of 8 Cityscapes images (2048x1024) held 3.7 GiB (benchmarks/data_scale.py).
    val_batch = data.batch_size if val_set.same_size() and crop is None else 1
    val_loader = DataLoader(val_set, batch_size=val_batch, **loader_options(config))
    return train_loader, val_loader


def build_loss(config: Config, train: list[Any], mapping: LabelMapping | None) -> torch.nn.Module:
    params = dict(config.loss.params)
    if mapping is not None:
        from seglab.objectives.losses import inverse_frequency_weights

        if config.loss.name == "weighted_ce" and "weights" not in params:
            counts = class_pixel_counts(train, mapping.num_classes)
            params["weights"] = [float(w) for w in inverse_frequency_weights(counts)]
            log.info("weighted_ce class weights from the training masks: %s", params["weights"])
        return create_loss(
            config.loss.name, mode="multiclass", ignore_index=mapping.ignore_index, **params
        )
    if config.loss.name == "weighted_bce" and "pos_weight" not in params:
        fraction = foreground_fraction(train)
        params["pos_weight"], params["neg_weight"] = class_weights_from_fraction(fraction)
        log.info("weighted_bce weights from the training masks: %s", params)
    return create_loss(config.loss.name, **params)
