"""Training: `train()` fills a run folder (the Lightning modules are in
`seglab.training.tasks`).

The run folder contract is in DESIGN.md: config.yaml, splits.json, train_log.csv, curves.png,
checkpoints/{best,last}.ckpt, model/ (the bundle), threshold.png, eval/test/.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import pytorch_lightning as pl
import torch

from seglab.atomic_files import atomic_write_json, atomic_write_text
from seglab.config import (
    Config,
    apply_multiclass_defaults,
    config_to_dict,
    dump_config,
    load_config,
)
from seglab.data.labels import LabelMapping
from seglab.data.splits import cache_split_data
from seglab.errors import ConfigError, SeglabError
from seglab.inference.base import DEFAULT_TILE
from seglab.kinds import kind_of
from seglab.models import create_model, model_spatial_dims, model_summary
from seglab.objectives.losses import ChannelwiseLoss
from seglab.precision import accelerator_device_type, resolve_train_precision
from seglab.training.inputs import build_loss, make_loaders, resolve_crop, resolve_views
from seglab.training.tasks import MulticlassSegmentationTask, SegmentationTask
from seglab.training.trainer import checkpoint_epoch, ddp_child, make_trainer, tracking_logger
from seglab.training.tuning import tune_threshold

log = logging.getLogger(__name__)

# Files of the run folder logged as MLflow artifacts (the bundle and evaluation go as folders).
RUN_FILES = (
    "config.yaml",
    "splits.json",
    "train_log.csv",
    "curves.png",
    "threshold.png",
    "model_summary.txt",
)


@dataclass
class RunResult:
    """What `train` produced: the run folder, the bundle, and the tuned validation metrics."""

    run_dir: Path
    bundle_path: Path
    threshold: float
    val_metrics: dict[str, float]
    test_metrics: dict[str, float] | None


def resolve_layout(config: Config) -> Config:
    """A copy of `config` with the detected layout written in (and the multi-class loss default
    it implies), so config.yaml states what the run used."""
    from seglab.data.layouts import detect_layout

    config = config.model_copy(deep=True)
    if config.data.layout == "auto" and config.data.root is not None:
        config.data.layout = detect_layout(config.data.root)  # type: ignore[assignment]
        apply_multiclass_defaults(config)
    return config


def _prepare_run_dir(config: Config, out: Path, resume: bool) -> None:
    if resume:
        if not (out / "checkpoints" / "last.ckpt").is_file():
            raise SeglabError(f"{out}: no checkpoints/last.ckpt to resume from")
        return
    if (out / "config.yaml").exists():
        raise SeglabError(
            f"{out}: already holds a run; choose another --out, or continue it with --resume {out}"
        )
    out.mkdir(parents=True, exist_ok=True)
    dump_config(config, out / "config.yaml")


def train(
    config: Config,
    out: str | Path,
    resume: bool = False,
    progress: bool = True,
    tags: dict[str, str] | None = None,
    assignment: dict[str, Any] | None = None,
) -> RunResult:
    """Train, tune the threshold, write the bundle and (when there is a test split) evaluate.

    Args:
        config: The resolved configuration.
        out: The run folder to create (or to continue, with `resume`).
        resume: Continue the run in `out` from `checkpoints/last.ckpt`.
        progress: Show progress bars.
        tags: MLflow tags of the run (e.g. its parent run in a comparison).
        assignment: Explicit splits (cross-validation folds): split name -> sample ids for
            segmentation, or -> index array into the pooled data for classification.

    Example:
        >>> cfg = load_config("exp.yaml", ["train.epochs=3"])  # doctest: +SKIP
        >>> result = train(cfg, "runs/exp")  # doctest: +SKIP
    """
    run_dir = Path(out)
    for name in ("pytorch_lightning.utilities.rank_zero", "lightning_fabric.utilities.rank_zero"):
        logging.getLogger(name).setLevel(logging.WARNING)
    # A precision this hardware cannot run well is refused before the run folder exists.
    resolve_train_precision(
        config.train.precision, accelerator_device_type(config.train.accelerator)
    )
    if not resume and config.task == "segmentation":
        config = resolve_layout(config)
    if not ddp_child():
        _prepare_run_dir(config, run_dir, resume)
    pl.seed_everything(config.seed, workers=True, verbose=False)
    kind = kind_of(config)
    if kind.classification:
        from seglab.training.classification import train_classification

        result: RunResult = train_classification(
            config, run_dir, resume, progress, tags, assignment
        )
        return result
    if kind.volumes:
        from seglab.training.volumes import train_volumes

        volume_result: RunResult = train_volumes(config, run_dir, resume, progress, tags)
        return volume_result
    if model_spatial_dims(config.model.name) == 3:
        raise ConfigError(
            f"'model.name': {config.model.name} is a volume model; set data.layout=volumes"
        )
    borders = config.data.target == "boundary"
    cache = config.data.cache_dir or run_dir.parent / "cache"
    split_data = cache_split_data(config.data, config.seed, cache, borders, progress, assignment)
    atomic_write_json(run_dir / "splits.json", split_data.splits_json())
    if split_data.skipped:
        atomic_write_json(
            run_dir / "skipped.json",
            [{"path": str(s.path), "reason": s.reason} for s in split_data.skipped],
        )
        log.warning("skipped %d bad samples, listed in skipped.json", len(split_data.skipped))

    prepared = split_data.samples
    channels = max(s.channels for s in prepared["train"])
    mapping = split_data.mapping
    views = resolve_views(config)
    outputs = output_names(config, mapping)
    model_kwargs = {
        "in_channels": channels * len(views),
        "num_classes": len(outputs),
        **config.model.params,
    }
    try:
        model = create_model(config.model.name, **model_kwargs)
        loss = build_loss(config, prepared["train"], mapping)
        if borders:
            loss = ChannelwiseLoss(loss)
    except ValueError as exc:  # a bad value in model.params or loss.params
        raise ConfigError(str(exc)) from None
    sample_shape = prepared["train"][0].shape
    side = resolve_crop(config.data.crop, [tuple(s.shape) for s in prepared["train"]])
    summary_shape = (1, channels * len(views), side or sample_shape[0], side or sample_shape[1])
    atomic_write_text(run_dir / "model_summary.txt", model_summary(model, summary_shape))
    if config.train.channels_last:
        model = model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]

    train_settings = config.train
    task: SegmentationTask
    if mapping is not None:
        task = MulticlassSegmentationTask(
            model,
            loss,
            mapping.num_classes,
            mapping.ignore_index,
            train_settings.lr,
            train_settings.weight_decay,
            train_settings.scheduler,
            train_settings.channels_last,
        )
    else:
        task = SegmentationTask(
            model,
            loss,
            train_settings.lr,
            train_settings.weight_decay,
            train_settings.scheduler,
            train_settings.channels_last,
        )
    ignore_index = mapping.ignore_index if mapping is not None else None
    train_loader, val_loader = make_loaders(
        config, prepared["train"], prepared["val"], channels, views, ignore_index
    )

    logger = tracking_logger(config, run_dir, resume, tags)
    last_ckpt = run_dir / "checkpoints" / "last.ckpt"
    start_epoch = checkpoint_epoch(last_ckpt) if resume else 0
    trainer, checkpoint = make_trainer(config, run_dir, logger, start_epoch, progress, task.metric)
    with warnings.catch_warnings():
        # Lightning's advice for large GPU jobs is noise for in-memory CPU training.
        warnings.filterwarnings("ignore", message=".*does not have many workers.*")
        warnings.filterwarnings("ignore", message=".*is smaller than the logging interval.*")
        warnings.filterwarnings("ignore", message=".*treespec.*")
        warnings.filterwarnings("ignore", message=".*exists and is not empty.*")
        trainer.fit(task, train_loader, val_loader, ckpt_path=last_ckpt if resume else None)
    if trainer.global_rank > 0:  # DDP: rank 0 writes the bundle and evaluates
        return RunResult(run_dir, run_dir / "model", config.train.threshold_range[0], {}, None)

    best = checkpoint.best_model_path or str(last_ckpt)
    state = torch.load(best, map_location="cpu", weights_only=True)["state_dict"]
    task.load_state_dict(state)
    model = task.model.cpu()

    preprocessing = {
        "normalize": config.data.normalize,
        "percentiles": list(config.data.percentiles),
        "input_size": list(config.data.size) if config.data.size else None,
        "channels": channels,
        "views": views,
        # Inputs are reflect-padded to a multiple of this before the network sees them.
        "divisor": cast(int, model.divisor),
        # Larger inputs are predicted by sliding window; at least the training image size.
        "tile": max(
            DEFAULT_TILE,
            *(s.shape[0] for s in prepared["train"]),
            *(s.shape[1] for s in prepared["train"]),
        ),
    }
    return _finish(
        config, run_dir, model, model_kwargs, preprocessing, prepared["val"], split_data, logger
    )


def output_names(config: Config, mapping: LabelMapping | None) -> list[str]:
    """What each logit channel means: the classes, or the foreground (and nucleus borders)."""
    if mapping is not None:
        return list(mapping.names)
    return ["foreground", "borders"] if config.data.target == "boundary" else ["foreground"]


def _finish(
    config: Config,
    run_dir: Path,
    model: torch.nn.Module,
    model_kwargs: dict[str, Any],
    preprocessing: dict[str, Any],
    val: list[Any],
    split_data: Any,
    logger: Any,
) -> RunResult:
    from seglab.bundle import make_metadata, save_bundle
    from seglab.evaluation.segmentation import evaluate_samples
    from seglab.inference import Predictor

    mapping = split_data.mapping
    metadata = make_metadata(
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
    predictor = Predictor(model, metadata, device="cpu")
    if mapping is not None:
        # Classes come from the argmax: no threshold to tune; score the validation split.
        threshold = 0.5
        val_metrics = evaluate_samples(predictor, val, run_dir / "eval" / "val").metrics
    else:
        threshold, val_metrics = tune_threshold(
            predictor, val, config.train.threshold_range, run_dir / "threshold.png"
        )
    metadata["threshold"] = threshold
    metadata["metrics"] = {"val": val_metrics}
    bundle_path = save_bundle(model, metadata, run_dir / "model")

    test_metrics = None
    test = split_data.samples.get("test")
    if config.train.evaluate_test and test:
        predictor.threshold = threshold
        test_metrics = evaluate_samples(predictor, test, run_dir / "eval" / "test").metrics

    if logger is not None:
        from seglab.training.tracking import final_metrics, log_results

        files = [run_dir / name for name in RUN_FILES]
        folders = {"model": bundle_path, "eval/test": run_dir / "eval" / "test"}
        final = final_metrics(val_metrics, test_metrics, threshold)
        log_results(logger, final, files, folders)
        logger.finalize("success")
    return RunResult(run_dir, bundle_path, threshold, val_metrics, test_metrics)


def resume(
    run_dir: str | Path, overrides: list[str] | None = None, progress: bool = True
) -> RunResult:
    """Continue the run in `run_dir` from its last checkpoint, with its own config.

    `overrides` may change the config, e.g. `["train.epochs=50"]` to train longer; the run's
    `config.yaml` is updated to match.
    """
    run_dir = Path(run_dir)
    config_path = run_dir / "config.yaml"
    if not config_path.is_file():
        raise SeglabError(f"{config_path}: missing; is {run_dir} a seglab run folder?")
    config = load_config(config_path, overrides)
    if overrides:
        dump_config(config, config_path)
    return train(config, run_dir, resume=True, progress=progress)
