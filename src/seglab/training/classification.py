"""Image classification (seed 004) on the segmentation engine: same config, run folder, bundle,
tracking and reports.

Run folder: config.yaml, splits.json, train_log.csv (loss and accuracy), curves.png,
checkpoints/, model/ (bundle with task "classification"), eval/test/ (metrics.json,
per_image.csv, confusion_matrix.png, misclassified.png, report.html).
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, TensorDataset

from seglab.atomic_files import atomic_write_json, atomic_write_text
from seglab.config import Config, config_to_dict
from seglab.data.classification import (
    ClassificationData,
    load_classification,
    stratified_split,
)
from seglab.data.sampling import EpochSampler
from seglab.errors import ConfigError, DataError
from seglab.evaluation.classification import classification_metrics, evaluate_classifier
from seglab.inference.classifier import Classifier, to_tensor
from seglab.models import create_model, model_summary
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


def train_classification(
    config: Config,
    run_dir: Path,
    resume: bool = False,
    progress: bool = True,
    tags: dict[str, str] | None = None,
    indices: dict[str, np.ndarray] | None = None,
) -> Any:
    """Train a classifier into `run_dir`; evaluate it on the test split when there is one.

    Args:
        config: A config with `task: classification`.
        run_dir: The run folder (prepared by `seglab.training.run.train`).
        resume: Continue from `checkpoints/last.ckpt`.
        progress: Show progress bars.
        tags: MLflow tags (e.g. the parent run of a cross-validation).
        indices: Explicit split indices into the pooled data (cross-validation).
    """
    from seglab.bundle import make_metadata, save_bundle
    from seglab.training.run import RunResult
    from seglab.training.trainer import checkpoint_epoch, make_trainer, tracking_logger

    layout, splits = classification_splits(config, indices)
    atomic_write_json(
        run_dir / "splits.json", {"layout": layout, **{k: v.ids for k, v in splits.items()}}
    )
    train, val = splits["train"], splits["val"]
    _, height, width, channels = train.images.shape
    kwargs = {
        "in_channels": channels,
        "num_classes": len(train.class_names),
        "image_size": [height, width],
        **config.model.params,
    }
    try:
        model = create_model(config.model.name, **kwargs)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    atomic_write_text(
        run_dir / "model_summary.txt", model_summary(model, (1, channels, height, width))
    )
    task = ClassificationTask(
        model, config.train.lr, config.train.weight_decay, config.train.scheduler
    )
    train_loader = DataLoader(
        TensorDataset(to_tensor(train.images), torch.from_numpy(train.labels)),
        batch_size=config.data.batch_size,
        sampler=EpochSampler(len(train.labels), config.seed, keyed=False),
    )
    val_loader = DataLoader(
        TensorDataset(to_tensor(val.images), torch.from_numpy(val.labels)),
        batch_size=max(config.data.batch_size, 256),
    )
    logger = tracking_logger(config, run_dir, resume, tags)
    last = run_dir / "checkpoints" / "last.ckpt"
    start = checkpoint_epoch(last) if resume else 0
    trainer, checkpoint = make_trainer(config, run_dir, logger, start, progress, "accuracy")
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*does not have many workers.*")
        warnings.filterwarnings("ignore", message=".*treespec.*")
        warnings.filterwarnings("ignore", message=".*exists and is not empty.*")
        trainer.fit(task, train_loader, val_loader, ckpt_path=last if resume else None)
    best = checkpoint.best_model_path or str(last)
    task.load_state_dict(torch.load(best, map_location="cpu", weights_only=True)["state_dict"])
    model = task.model.cpu().eval()

    classifier = Classifier(model, {"class_names": train.class_names})
    predicted = classifier.predict_proba(val.images).argmax(1)
    val_metrics = classification_metrics(val.labels, predicted, train.class_names)
    metadata = make_metadata(
        model_name=config.model.name,
        model_kwargs=kwargs,
        preprocessing={"normalize": "scale", "channels": channels, "image_size": [height, width]},
        threshold=0.5,
        metrics={"val": val_metrics},
        config=config_to_dict(config),
        class_names=train.class_names,
    )
    metadata["task"] = "classification"
    bundle = save_bundle(model, metadata, run_dir / "model")
    test_metrics = None
    if config.train.evaluate_test and "test" in splits:
        classifier = Classifier(model, metadata)
        test_metrics = evaluate_classifier(classifier, splits["test"], run_dir / "eval" / "test")
    if logger is not None:
        from seglab.training.run import RUN_FILES
        from seglab.training.tracking import final_metrics, log_results

        final = final_metrics(val_metrics, test_metrics)
        files = [run_dir / name for name in RUN_FILES]
        log_results(logger, final, files, {"model": bundle, "eval/test": run_dir / "eval/test"})
        logger.finalize("success")
    return RunResult(run_dir, bundle, 0.5, val_metrics, test_metrics)
