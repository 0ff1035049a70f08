"""Training: `train()` fills a run folder, the one skeleton of every kind of run.

What differs between kinds (data, model arguments, task, loaders, bundle record, validation
and test scoring) comes from the kind's plug, `seglab.training.kinds`; the Lightning modules
are in `seglab.training.tasks`.

The run folder contract is in DESIGN.md: config.yaml, splits.json, train_log.csv, curves.png,
checkpoints/{best,last}.ckpt, model/ (the bundle), threshold.png, eval/test/.
"""

from __future__ import annotations

import logging
import shutil
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import pytorch_lightning as pl
import torch
import yaml

from seglab.atomic_files import atomic_write_text
from seglab.config import (
    Config,
    apply_multiclass_defaults,
    config_to_dict,
    dump_config,
    load_config,
)
from seglab.data.sampling import EpochSampler
from seglab.errors import ConfigError, SeglabError
from seglab.kinds import kind_of
from seglab.models import bundle_kwargs, create_model, model_summary
from seglab.precision import accelerator_device_type, resolve_train_precision
from seglab.training.checkpoints import checkpoint_epoch
from seglab.training.init_weights import load_initial_weights
from seglab.training.kinds import TrainingKind, training_kind
from seglab.training.trainer import (
    check_tracking,
    ddp_child,
    make_trainer,
    tracking_logger,
)

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
    """A copy of `config` with the detected segmentation layout written in (and the multi-class
    loss default it implies), so config.yaml states what the run used. (Classification folders
    have layouts of their own, detected as they are read.)"""
    from seglab.data.layouts import detect_layout

    config = config.model_copy(deep=True)
    detect = config.task == "segmentation" and config.data.layout == "auto"
    if detect and config.data.root is not None:
        config.data.layout = detect_layout(config.data.root)  # type: ignore[assignment]
        apply_multiclass_defaults(config)
    return config


# What a run writes into its folder before its first checkpoint; atomic writes killed midway
# leave `.NAME.*` files beside them. (The bundle and evaluation come after the checkpoints.)
_BEFORE_CHECKPOINT = (
    "config.yaml",
    "splits.json",
    "skipped.json",
    "model_summary.txt",
    "mlflow_run.json",
    "train_log.csv",
    "curves.png",
    "checkpoints",
)


def _prepare_run_dir(config: Config, out: Path, resume: bool) -> None:
    """Check `out` and write its config.yaml: a new or empty folder, or one left by a run that
    stopped before its first checkpoint (its files are replaced); anything else is refused, so
    that no file of the user's, nor a run that can be resumed, is overwritten."""
    last = out / "checkpoints" / "last.ckpt"
    if resume:
        if not last.is_file():
            raise SeglabError(
                f"{out}: no checkpoints/last.ckpt to resume from (the run stopped before its "
                f"first checkpoint); start it afresh with `seglab train --out {out}`"
            )
        return
    if out.exists() and not out.is_dir():
        raise SeglabError(f"{out}: is a file, not a folder; choose another --out")
    entries = sorted(out.iterdir()) if out.is_dir() else []
    if last.is_file():
        raise SeglabError(
            f"{out}: already holds a run; choose another --out, or continue it with --resume {out}"
        )
    foreign = [entry.name for entry in entries if not _run_entry(entry.name)]
    if foreign or (entries and not _written_config(out / "config.yaml")):
        shown = foreign or [entry.name for entry in entries]
        listing = ", ".join(shown[:5]) + (f" and {len(shown) - 5} more" if len(shown) > 5 else "")
        why = "" if foreign else ", but no config.yaml written by seglab"
        raise SeglabError(
            f"{out}: exists, is not empty and is not a seglab run folder (it holds {listing}"
            f"{why}); choose another --out (a new or empty folder), so that nothing there is "
            "overwritten"
        )
    if entries:
        log.warning(
            "%s: replacing the files of a run that stopped before its first checkpoint", out
        )
        for entry in entries:
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()
    out.mkdir(parents=True, exist_ok=True)
    dump_config(config, out / "config.yaml")


def _run_entry(name: str) -> bool:
    """Whether a run writes `name` before its first checkpoint (or is a leftover of that)."""
    names = _BEFORE_CHECKPOINT
    return name in names or any(name.startswith(f".{entry}.") for entry in names)


def _written_config(path: Path) -> bool:
    """Whether `path` is a config.yaml as a run writes it: every key of the resolved config,
    so that it reads back unchanged (a config of the user's usually sets a few keys)."""
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
        return isinstance(raw, dict) and raw == config_to_dict(load_config(path))
    except (OSError, UnicodeDecodeError, yaml.YAMLError, SeglabError):
        return False


def train(
    config: Config,
    out: str | Path,
    resume: bool = False,
    progress: bool = True,
    tags: dict[str, str] | None = None,
    assignment: dict[str, Any] | None = None,
) -> RunResult:
    """Train, validate (tuning the threshold where there is one), write the bundle and, when
    there is a test split, evaluate it.

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
    # A precision this hardware cannot run well, or a tracking store MLflow cannot use, is
    # refused before the run folder exists.
    resolve_train_precision(
        config.train.precision, accelerator_device_type(config.train.accelerator)
    )
    check_tracking(config, run_dir)
    if not resume:
        config = resolve_layout(config)
    kind = kind_of(config)
    plug = training_kind(kind)(config, run_dir, kind)
    if not ddp_child():
        _prepare_run_dir(config, run_dir, resume)
    pl.seed_everything(config.seed, workers=True, verbose=False)
    plug.load(progress, assignment)
    model_kwargs = plug.model_kwargs()
    model, logger = _fit(config, run_dir, plug, model_kwargs, resume, progress, tags)
    if model is None:  # DDP: rank 0 writes the bundle and evaluates
        return RunResult(run_dir, run_dir / "model", config.train.threshold_range[0], {}, None)
    metadata = plug.metadata(model, bundle_kwargs(config.model.name, model, model_kwargs))
    threshold, val_metrics = plug.validate(model, metadata)
    metadata["threshold"] = threshold
    metadata["metrics"] = {"val": val_metrics}
    from seglab.bundle import save_bundle

    bundle_path = save_bundle(model, metadata, run_dir / "model")
    test_metrics = None
    if config.train.evaluate_test:
        test_metrics = plug.evaluate_test(run_dir / "eval" / "test")
    result = RunResult(run_dir, bundle_path, threshold, val_metrics, test_metrics)
    if logger is not None:
        _log_run(logger, result, threshold if kind.thresholded else None)
    return result


def _log_run(logger: Any, result: RunResult, threshold: float | None) -> None:
    """The final scores (and the tuned threshold), run files, bundle and test evaluation into
    the run's MLflow run."""
    from seglab.training.tracking import final_metrics, metric_name

    run_dir = result.run_dir
    files = [run_dir / name for name in RUN_FILES]
    folders = {"model": result.bundle_path, "eval/test": run_dir / "eval" / "test"}
    metrics = final_metrics(result.val_metrics, result.test_metrics, threshold)
    logger.log_results({metric_name(k): v for k, v in metrics.items()}, files, folders)
    logger.finalize("success")


def _new_model(config: Config, model_kwargs: dict[str, Any]) -> torch.nn.Module:
    try:
        return create_model(config.model.name, **model_kwargs)
    except ValueError as exc:  # a bad value in model.params
        raise ConfigError(str(exc)) from None


def _fit(
    config: Config,
    run_dir: Path,
    plug: TrainingKind,
    model_kwargs: dict[str, Any],
    resume: bool,
    progress: bool,
    tags: dict[str, str] | None,
) -> tuple[torch.nn.Module | None, Any]:
    """The model trained (its best checkpoint, on CPU; None on DDP ranks above 0) and the
    tracking logger (None without tracking)."""
    model = _new_model(config, model_kwargs)
    if config.model.init is not None and not resume:
        load_initial_weights(model, config.model.name, model_kwargs, config.model.init)
    shape = plug.input_shape(lambda: _new_model(config, model_kwargs))
    atomic_write_text(run_dir / "model_summary.txt", model_summary(model, shape))
    if config.train.channels_last:
        layout = torch.channels_last_3d if len(shape) == 5 else torch.channels_last
        model = model.to(memory_format=layout)  # type: ignore[call-overload]
    task = plug.task(model)
    train_loader, val_loader = plug.loaders()
    logger = tracking_logger(config, run_dir, resume, tags)
    last = run_dir / "checkpoints" / "last.ckpt"
    start_epoch = checkpoint_epoch(last) if resume else 0
    if isinstance(train_loader.sampler, EpochSampler):
        # Worker processes prefetch the first batches when the loader starts, before Lightning
        # sets the epoch: set it here, or a resumed run would draw epoch 0's order and crops.
        train_loader.sampler.set_epoch(start_epoch)
    trainer, checkpoint = make_trainer(config, run_dir, logger, start_epoch, progress, task.metric)
    with warnings.catch_warnings():
        # Lightning's advice for large GPU jobs is noise for cached CPU training.
        for message in (
            "does not have many workers",
            "is smaller than the logging interval",
            "treespec",
            "exists and is not empty",
        ):
            warnings.filterwarnings("ignore", message=f".*{message}.*")
        # Read with weights_only=True by `checkpoint_epoch` first, and so by Lightning too.
        ckpt_path = last if resume else None
        trainer.fit(task, train_loader, val_loader, ckpt_path=ckpt_path, weights_only=True)
    if trainer.global_rank > 0:
        return None, logger
    best = checkpoint.best_model_path or str(last)
    task.load_state_dict(torch.load(best, map_location="cpu", weights_only=True)["state_dict"])
    model = cast(torch.nn.Module, task.model).cpu().eval()
    return model.to(memory_format=torch.contiguous_format), logger  # type: ignore[call-overload]


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
    last = run_dir / "checkpoints" / "last.ckpt"
    done = checkpoint_epoch(last) if last.is_file() else 0
    if done >= config.train.epochs:
        raise SeglabError(
            f"{run_dir}: has trained {done} epochs, train.epochs is {config.train.epochs}; "
            f"to train further pass --epochs N (or --set train.epochs=N) with N > {done}"
        )
    if overrides:
        dump_config(config, config_path)
    return train(config, run_dir, resume=True, progress=progress)
