"""Image classification (seed 004) on the segmentation engine: same config, run folder, bundle,
tracking and reports.

Run folder: config.yaml, splits.json, train_log.csv (loss and accuracy), curves.png,
checkpoints/, model/ (bundle with task "classification"), eval/test/ (metrics.json,
per_image.csv, confusion_matrix.png, misclassified.png, report.html).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, TensorDataset

from seglab.atomic_files import atomic_write_json
from seglab.config import Config, config_to_dict
from seglab.data.classification import (
    ClassificationData,
    load_classification,
    stratified_split,
)
from seglab.data.sampling import EpochSampler
from seglab.errors import DataError
from seglab.evaluation.classification import classification_metrics, evaluate_classifier
from seglab.inference.classifier import Classifier, to_tensor
from seglab.kinds import Kind
from seglab.training.tasks import ClassificationTask

log = logging.getLogger(__name__)


def classification_splits(
    config: Config, indices: dict[str, np.ndarray] | None = None
) -> tuple[str, dict[str, ClassificationData]]:
    """Load the data and split it: its own folders, else stratified and seeded; or `indices`
    into the pooled data (cross-validation folds)."""
    layout, found = load_classification(config.data.root, config.data.layout)
    if indices is not None:
        pooled = _pool(list(found.values()))
        return layout, {name: pooled.subset(idx) for name, idx in indices.items()}
    if "all" in found:
        data = found["all"]
        parts = stratified_split(
            data.labels, config.data.val_fraction, config.data.test_fraction, config.seed
        )
        return layout, {name: data.subset(idx) for name, idx in parts.items()}
    if "train" not in found:
        raise DataError(Path(str(config.data.root)), f"no train split (found {', '.join(found)})")
    if "val" not in found:
        train = found["train"]
        parts = stratified_split(train.labels, config.data.val_fraction or 0.15, 0.0, config.seed)
        found = {**found, "train": train.subset(parts["train"]), "val": train.subset(parts["val"])}
    return layout, found


def _pool(parts: list[ClassificationData]) -> ClassificationData:
    return ClassificationData(
        images=np.concatenate([p.images for p in parts]),
        labels=np.concatenate([p.labels for p in parts]),
        class_names=parts[0].class_names,
        ids=[i for p in parts for i in p.ids],
    )


class ClassificationTraining:
    """The `TrainingKind` of image classification: one label per image, scored by accuracy."""

    def __init__(self, config: Config, run_dir: Path, kind: Kind) -> None:
        self.config, self.run_dir = config, run_dir

    def load(self, progress: bool, assignment: dict[str, Any] | None) -> None:
        layout, self.splits = classification_splits(self.config, assignment)
        ids = {name: part.ids for name, part in self.splits.items()}
        atomic_write_json(self.run_dir / "splits.json", {"layout": layout, **ids})
        self.train = self.splits["train"]
        _, self.height, self.width, self.channels = self.train.images.shape

    def model_kwargs(self) -> dict[str, Any]:
        return {
            "in_channels": self.channels,
            "num_classes": len(self.train.class_names),
            "image_size": [self.height, self.width],
            **self.config.model.params,
        }

    def input_shape(self, new_model: Callable[[], torch.nn.Module]) -> tuple[int, ...]:
        return (1, self.channels, self.height, self.width)

    def task(self, model: torch.nn.Module) -> ClassificationTask:
        settings = self.config.train
        return ClassificationTask(model, settings.lr, settings.weight_decay, settings.scheduler)

    def loaders(self) -> tuple[DataLoader, DataLoader]:
        train, val = self.train, self.splits["val"]
        batch_size = self.config.data.batch_size
        train_loader = DataLoader(
            TensorDataset(to_tensor(train.images), torch.from_numpy(train.labels)),
            batch_size=batch_size,
            sampler=EpochSampler(len(train.labels), self.config.seed, keyed=False),
        )
        val_loader = DataLoader(
            TensorDataset(to_tensor(val.images), torch.from_numpy(val.labels)),
            batch_size=max(batch_size, 256),
        )
        return train_loader, val_loader

    def metadata(self, model: torch.nn.Module, model_kwargs: dict[str, Any]) -> dict[str, Any]:
        from seglab.bundle import make_metadata

        preprocessing = {
            "normalize": "scale",
            "channels": self.channels,
            "image_size": [self.height, self.width],
        }
        metadata = make_metadata(
            model_name=self.config.model.name,
            model_kwargs=model_kwargs,
            preprocessing=preprocessing,
            threshold=0.5,
            metrics={},
            config=config_to_dict(self.config),
            class_names=self.train.class_names,
        )
        metadata["task"] = "classification"
        return metadata

    def validate(
        self, model: torch.nn.Module, metadata: dict[str, Any]
    ) -> tuple[float, dict[str, Any]]:
        self.classifier = Classifier(model.eval(), metadata)
        val = self.splits["val"]
        predicted = self.classifier.predict_proba(val.images).argmax(1)
        return 0.5, classification_metrics(val.labels, predicted, self.train.class_names)

    def evaluate_test(self, out: Path) -> dict[str, Any] | None:
        test = self.splits.get("test")
        return None if test is None else evaluate_classifier(self.classifier, test, out).metrics
