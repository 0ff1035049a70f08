"""2D segmentation runs: binary (a tuned threshold) or multi-class (classes by argmax).

Images are decoded once into the cache beside the runs (`seglab.data.splits.cache_split_data`)
and trained whole or by random crops (`data.crop`, `seglab.training.inputs`). A binary run
tunes its threshold on the validation images (threshold.png); a multi-class one scores them
per class into `eval/val/`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import torch
from torch.utils.data import DataLoader

from seglab.atomic_files import atomic_write_json
from seglab.config import Config, config_to_dict
from seglab.data.dataset import check_classes_present
from seglab.data.labels import LabelMapping
from seglab.data.splits import SplitData, cache_split_data
from seglab.errors import ConfigError
from seglab.inference.base import DEFAULT_TILE
from seglab.kinds import Kind
from seglab.models import model_spatial_dims
from seglab.objectives.losses import ChannelwiseLoss
from seglab.training.inputs import build_loss, make_loaders, resolve_crop, resolve_views
from seglab.training.tasks import MulticlassSegmentationTask, SegmentationTask

__all__ = ["ImageTraining", "output_names"]

log = logging.getLogger(__name__)


def output_names(config: Config, mapping: LabelMapping | None) -> list[str]:
    """What each logit channel means: the classes, or the foreground (and nucleus borders)."""
    if mapping is not None:
        return list(mapping.names)
    return ["foreground", "borders"] if config.data.target == "boundary" else ["foreground"]


class ImageTraining:
    """The `TrainingKind` of binary and multi-class 2D segmentation."""

    def __init__(self, config: Config, run_dir: Path, kind: Kind) -> None:
        if model_spatial_dims(config.model.name) == 3:
            raise ConfigError(
                f"'model.name': {config.model.name} is a volume model; set data.layout=volumes"
            )
        self.config, self.run_dir, self.kind = config, run_dir, kind
        self.views = resolve_views(config)
        self.split_data: SplitData
        self.predictor: Any = None

    def load(self, progress: bool, assignment: dict[str, Any] | None) -> None:
        config, run_dir = self.config, self.run_dir
        cache = config.data.cache_dir or run_dir.parent / "cache"
        borders = config.data.target == "boundary"
        self.split_data = cache_split_data(
            config.data, config.seed, cache, borders, progress, assignment
        )
        atomic_write_json(run_dir / "splits.json", self.split_data.splits_json())
        skipped = self.split_data.skipped
        if skipped:
            listed = [{"path": str(s.path), "reason": s.reason} for s in skipped]
            atomic_write_json(run_dir / "skipped.json", listed)
            log.warning("skipped %d bad samples, listed in skipped.json", len(skipped))
        self.train = self.split_data.samples["train"]
        # A model's own in_channels (e.g. from `--init`) wins: images are converted to it.
        wanted = config.model.params.get("in_channels")
        found = max(s.channels for s in self.train)
        self.channels = wanted // len(self.views) if wanted else found
        if self.mapping is not None:
            check_classes_present(self.train, self.mapping.names)

    @property
    def mapping(self) -> LabelMapping | None:
        return self.split_data.mapping

    def model_kwargs(self) -> dict[str, Any]:
        return {
            "in_channels": self.channels * len(self.views),
            "num_classes": len(output_names(self.config, self.mapping)),
            **self.config.model.params,
        }

    def input_shape(self, new_model: Callable[[], torch.nn.Module]) -> tuple[int, ...]:
        height, width = self.train[0].shape
        side = resolve_crop(self.config.data.crop, [tuple(s.shape) for s in self.train])
        return (1, self.channels * len(self.views), side or height, side or width)

    def task(self, model: torch.nn.Module) -> SegmentationTask:
        settings = self.config.train
        try:
            loss = build_loss(self.config, self.train, self.mapping)
        except ValueError as exc:  # a bad value in loss.params
            raise ConfigError(str(exc)) from None
        if self.config.data.target == "boundary":
            loss = ChannelwiseLoss(loss)
        options = (settings.lr, settings.weight_decay, settings.scheduler, settings.channels_last)
        if self.mapping is None:
            return SegmentationTask(model, loss, *options)
        mapping = self.mapping
        return MulticlassSegmentationTask(
            model, loss, mapping.num_classes, mapping.ignore_index, *options
        )

    def loaders(self) -> tuple[DataLoader, DataLoader]:
        ignore_index = None if self.mapping is None else self.mapping.ignore_index
        val = self.split_data.samples["val"]
        return make_loaders(self.config, self.train, val, self.channels, self.views, ignore_index)

    def metadata(self, model: torch.nn.Module, model_kwargs: dict[str, Any]) -> dict[str, Any]:
        from seglab.bundle import make_metadata

        config, mapping = self.config, self.mapping
        preprocessing = {
            "normalize": config.data.normalize,
            "percentiles": list(config.data.percentiles),
            "input_size": list(config.data.size) if config.data.size else None,
            "channels": self.channels,
            "views": self.views,
            # Inputs are reflect-padded to a multiple of this before the network sees them.
            "divisor": cast(int, model.divisor),
            # Larger inputs are predicted by sliding window; at least the training image size.
            "tile": max(DEFAULT_TILE, *(side for s in self.train for side in s.shape)),
        }
        return make_metadata(
            model_name=config.model.name,
            model_kwargs=model_kwargs,
            preprocessing=preprocessing,
            threshold=0.5,
            metrics={},
            config=config_to_dict(config),
            instances=config.instances.model_dump(),
            outputs=output_names(config, mapping),
            labels=mapping.to_dict() if mapping is not None else None,
        )

    def validate(
        self, model: torch.nn.Module, metadata: dict[str, Any]
    ) -> tuple[float, dict[str, Any]]:
        from seglab.evaluation.segmentation import evaluate_samples
        from seglab.inference import Predictor
        from seglab.training.tuning import tune_threshold

        self.predictor = Predictor(model, metadata, device="cpu")
        val = self.split_data.samples["val"]
        if not self.kind.thresholded:
            return 0.5, evaluate_samples(self.predictor, val, self.run_dir / "eval" / "val").metrics
        threshold, metrics = tune_threshold(
            self.predictor, val, self.config.train.threshold_range, self.run_dir / "threshold.png"
        )
        self.predictor.threshold = threshold
        return threshold, metrics

    def evaluate_test(self, out: Path) -> dict[str, Any] | None:
        from seglab.evaluation.segmentation import evaluate_samples

        test = self.split_data.samples.get("test")
        return evaluate_samples(self.predictor, test, out).metrics if test else None
