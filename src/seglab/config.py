"""Validated configuration: a tree of pydantic models, loaded from YAML and `--set a.b=c` overrides.

Unknown keys and wrong types are errors that name the key and list the valid ones. The resolved
config is written into every run folder and every model bundle, so a run can be repeated from it.
"""

from __future__ import annotations

import copy
import functools
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from seglab.errors import ConfigError
from seglab.precision import TrainPrecision


class _Section(BaseModel):
    # Unknown keys are typos far more often than intentions: reject them.
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class AugmentConfig(_Section):
    """Probabilities (0 disables) and strengths of the training-only 2D augmentations."""

    hflip: float = Field(0.5, ge=0, le=1)
    vflip: float = Field(0.5, ge=0, le=1)
    rotate90: float = Field(0.5, ge=0, le=1)
    brightness_contrast: float = Field(0.3, ge=0, le=1)
    brightness_limit: float = Field(0.2, ge=0, le=1)
    contrast_limit: float = Field(0.2, ge=0, le=1)
    noise: float = Field(0.0, ge=0, le=1)
    noise_std: float = Field(0.03, ge=0, le=1, description="fraction of the [0, 1] range")
    blur: float = Field(0.0, ge=0, le=1)
    blur_limit: int = Field(5, ge=3)
    affine: float = Field(0.0, ge=0, le=1)
    affine_scale: float = Field(0.1, ge=0, le=0.5)
    affine_rotate: float = Field(15.0, ge=0, le=180, description="degrees")
    # Inverting intensities teaches one model both fluorescence (bright nuclei on dark) and
    # bright-field (dark nuclei on bright) images, where seed 003's U-Net failed.
    invert: float = Field(0.0, ge=0, le=1)


class DataConfig(_Section):
    """Where the data is and how it becomes batches."""

    root: Path | None = None
    # Segmentation: folders, dsb2018, cityscapes (multi-class), volumes (3D). Classification:
    # idx (MNIST files), class_folders, digits (scikit-learn's 8x8 digits, shipped offline).
    layout: Literal[
        "auto", "folders", "dsb2018", "cityscapes", "volumes", "idx", "class_folders", "digits"
    ] = "auto"
    # Used only when the data has no train/val/test sub-folders.
    val_fraction: float = Field(0.15, ge=0, lt=1)
    test_fraction: float = Field(0.15, ge=0, lt=1)
    # [H, W] resizes every image once at load (the seeds' 128x128); null keeps native sizes.
    size: tuple[int, int] | None = None
    # With native sizes, train on random crops of this side (images smaller are padded by
    # reflection). "auto": whole images when all are one size of at most 512x512, else crops
    # of 256 (or of the smallest image side, when that is smaller). null: whole images.
    crop: int | Literal["auto"] | None = "auto"
    # "scale": divide by the dtype maximum; "percentile": stretch each image between its
    # percentiles, which makes dim and bright acquisitions look alike to the model.
    normalize: Literal["scale", "percentile"] = "scale"
    percentiles: tuple[float, float] = (1.0, 99.0)
    # "boundary" adds a second output channel for nucleus borders, learnt from per-nucleus masks
    # (as the DSB2018 winners did); the watershed is then seeded by "foreground minus borders".
    target: Literal["mask", "boundary"] = "mask"
    # Pre-processed copies stacked as input channels (see seglab.data.views); null means the
    # model's default: ["raw"], or ["raw", "clahe", "invert"] for unet_extended.
    views: list[str] | None = None
    # Multi-class segmentation (softmax over C channels): masks hold class indices 0..C-1.
    # null means binary (mask > 0 is foreground), except for the cityscapes layout, whose
    # classes come from `labels`.
    num_classes: int | None = Field(None, ge=2)
    # Label mapping of multi-class masks: "categories" (Cityscapes' 8 groups, as seed 001),
    # "train_ids" (the 19 Cityscapes benchmark classes), or a YAML file mapping mask values to
    # class names (see seglab.data.labels).
    labels: str = "categories"
    # Void pixels: "ignore" (the Cityscapes benchmark convention: no loss, not scored) or
    # "class" (a trained class of its own, as seed 001).
    void: Literal["ignore", "class"] = "ignore"
    # Label value of ignored pixels in class-index masks.
    ignore_index: int = Field(255, ge=0, le=255)
    # Volumes: the training patch [D, H, W] ("auto": the largest that fits, see `seglab plan`).
    patch: list[int] | Literal["auto"] | None = None
    # Random patches drawn from each training volume per epoch.
    patches_per_volume: int = Field(8, ge=1)
    # Share of patches centred on a foreground voxel (nnU-Net uses 1/3).
    foreground_share: float = Field(0.33, ge=0, le=1)
    batch_size: int = Field(8, ge=1)
    # Loader processes. "auto": none when training on a CPU (the network needs every core and
    # reading a cached crop takes a small fraction of a step; see benchmarks/data_scale.py),
    # else one per spare core, at most 8.
    num_workers: int | Literal["auto"] = "auto"
    # The on-disk cache of decoded samples; null: `cache/` beside the run folders.
    cache_dir: Path | None = None
    skip_bad: bool = False
    augment: AugmentConfig = AugmentConfig()

    @field_validator("crop")
    @classmethod
    def _crop_side(cls, value: int | str | None) -> int | str | None:
        if isinstance(value, int) and value < 8:
            raise ValueError("crop must be at least 8 pixels, 'auto' or null")
        return value

    @field_validator("num_workers")
    @classmethod
    def _workers(cls, value: int | str) -> int | str:
        if isinstance(value, int) and value < 0:
            raise ValueError("num_workers must be >= 0 or 'auto'")
        return value

    @field_validator("percentiles")
    @classmethod
    def _ordered(cls, value: tuple[float, float]) -> tuple[float, float]:
        low, high = value
        if not 0 <= low < high <= 100:
            raise ValueError("percentiles must satisfy 0 <= low < high <= 100")
        return value


class InstanceConfig(_Section):
    """From a probability map to one label per nucleus (see `seglab.postprocess`)."""

    # "watershed" splits touching nuclei (distance transform, seeded markers); "components"
    # labels connected components as they are.
    method: Literal["watershed", "components"] = "watershed"
    # Objects smaller than this (pixels) are noise, not nuclei.
    min_area: int = Field(10, ge=0)
    fill_holes: bool = True
    # Minimum distance (pixels) between two watershed seeds; below a nucleus radius.
    min_distance: int = Field(3, ge=1)
    # A distance-map peak must rise this many pixels above the saddle to a higher one to seed
    # a nucleus of its own. Lower splits more touching nuclei, and over-splits some elongated
    # ones: on synthetic nuclei 0.5 gave DSB mAP 0.630 against 0.569 for 1.0 (see README).
    min_dynamic: float = Field(0.5, ge=0)


class ModelConfig(_Section):
    """Architecture name (see `seglab.models.MODELS`) and its constructor arguments."""

    name: str = "unet"
    # Seed 000 uses n_filters=4 (2.16 M parameters) without batch-norm; n_filters=2 trains ~4x
    # faster on a CPU, and batch-norm reaches val Dice 0.94 in 2 epochs on synthetic nuclei
    # where the plain seed network needed 10+.
    params: dict[str, Any] = Field(default_factory=lambda: {"n_filters": 2, "batch_norm": True})


class LossConfig(_Section):
    """Loss name (see `seglab.objectives.losses.LOSSES`) and its arguments."""

    name: str = "bce_dice"
    params: dict[str, Any] = Field(default_factory=dict)


class TrainConfig(_Section):
    """Optimisation and the Lightning trainer."""

    epochs: int = Field(30, ge=1)
    # Stop after this many optimiser steps (benchmarks, smoke tests); null: `epochs` epochs.
    max_steps: int | None = Field(None, ge=1)
    lr: float = Field(1e-3, gt=0)
    weight_decay: float = Field(0.0, ge=0)
    scheduler: Literal["none", "cosine", "plateau"] = "none"
    # Early stopping on val loss, as seed 004 (patience 5); 0 disables it.
    patience: int = Field(5, ge=0)
    accelerator: Literal["auto", "cpu", "gpu", "mps"] = "auto"
    # Processes per node (GPUs, or CPU processes) and nodes: more than one process trains with
    # Lightning's DDP (gloo on CPUs, NCCL on GPUs); multi-node jobs start through torchrun or
    # SLURM. "ddp_spawn" starts the processes from the calling one (notebooks, tests).
    devices: int = Field(1, ge=1)
    num_nodes: int = Field(1, ge=1)
    strategy: Literal["auto", "ddp", "ddp_spawn"] = "auto"
    # "auto": bf16 autocast where the hardware has bf16 (CPUs with avx512_bf16/amx_bf16: ~2x
    # faster than fp32; recent GPUs), fp16 autocast on older GPUs, fp32 elsewhere (emulated bf16
    # is ~20x slower). See seglab.precision.
    precision: TrainPrecision = "auto"
    # torch.compile the model (opt-in): the first step pays the compilation (~40 s on 2 cores
    # for the seed U-Net), reported in the log and to MLflow as compile_seconds.
    compile: bool = False
    # channels_last is the fastest fp32 layout for convolutions on x86 CPUs.
    channels_last: bool = True
    deterministic: bool = True
    # Thresholds tried on the validation set after training: start, stop (inclusive), step.
    threshold_range: tuple[float, float, float] = (0.05, 0.95, 0.05)
    # Evaluate the tuned model on the test split at the end of training, when there is one.
    evaluate_test: bool = True

    @field_validator("precision", mode="before")
    @classmethod
    def _precision_text(cls, value: object) -> object:
        # YAML and --set read `precision: 32` as a number.
        return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


class TrackingConfig(_Section):
    """MLflow tracking: an embedded SQLite store next to the run folders unless `uri` is given."""

    enabled: bool = True
    uri: str | None = None
    experiment: str = "seglab"


class Config(_Section):
    """The whole configuration of a run."""

    # "classification" (seed 004: one label per image) runs on the same engine, run folder,
    # tracking and reports; its model defaults to `cnn` and its loss is cross-entropy.
    task: Literal["segmentation", "classification"] = "segmentation"
    seed: int = 0
    data: DataConfig = DataConfig()
    model: ModelConfig = ModelConfig()
    loss: LossConfig = LossConfig()
    train: TrainConfig = TrainConfig()
    tracking: TrackingConfig = TrackingConfig()
    instances: InstanceConfig = InstanceConfig()


def _describe_error(error: Any, section: type[BaseModel]) -> str:
    location = [str(part) for part in error["loc"]]
    key = ".".join(location)
    if error["type"] == "extra_forbidden":
        parent: Any = section
        for part in location[:-1]:
            fields = getattr(parent, "model_fields", {})
            field = fields.get(part)
            parent = field.annotation if field is not None else None
        valid = sorted(getattr(parent, "model_fields", {}))
        return f"unknown key '{key}'; valid keys here: {', '.join(valid)}"
    return f"'{key}': {error['msg']} (got {error.get('input')!r})"


def validate_config(raw: dict[str, Any]) -> Config:
    """Build a `Config` from a plain dict, turning validation errors into a `ConfigError`."""
    try:
        config = Config.model_validate(raw)
    except ValidationError as exc:
        lines = [_describe_error(error, Config) for error in exc.errors()]
        raise ConfigError("invalid configuration:\n  " + "\n  ".join(lines)) from None
    _apply_task_defaults(config)
    _check_component_params(config)
    return config


def is_multiclass(data: DataConfig) -> bool:
    """Whether the masks hold classes (softmax over C channels) rather than a binary foreground:
    the cityscapes layout, a `data.num_classes`, or a YAML label mapping."""
    return (
        data.layout == "cityscapes"
        or data.num_classes is not None
        or data.labels.endswith((".yaml", ".yml"))
    )


def apply_multiclass_defaults(config: Config) -> None:
    """Multi-class segmentation trains with the seeds' "Total loss" (CE + 3 Dice), unless set."""
    multiclass = config.task == "segmentation" and is_multiclass(config.data)
    if multiclass and "name" not in config.loss.model_fields_set:
        config.loss = LossConfig(name="ce_dice")


def _apply_task_defaults(config: Config) -> None:
    """Classification runs default to the seed-004 CNN and cross-entropy, and multi-class
    segmentation to ce_dice, unless set."""
    apply_multiclass_defaults(config)
    if config.task == "segmentation" and config.data.layout == "volumes":
        if "name" not in config.model.model_fields_set:
            config.model.name = "unet3d"
        if config.model.name == "unet3d" and "params" not in config.model.model_fields_set:
            config.model.params = {}  # the 2D U-Net defaults (n_filters, batch_norm) do not apply
    if config.task != "classification":
        return
    if "name" not in config.model.model_fields_set:
        config.model.name = "cnn"
    if "params" not in config.model.model_fields_set:
        # The default params are the U-Net's; classifiers start from their own defaults.
        config.model.params = {}
    if "name" not in config.loss.model_fields_set:
        config.loss = LossConfig(name="ce")


def _check_component_params(config: Config) -> None:
    # Imported here: the registries import torch, which `seglab --help` must not pay for.
    from seglab.models import MODELS, model_parameters, model_task
    from seglab.objectives.losses import LOSSES, LossMode, loss_parameters

    if config.model.name in MODELS and model_task(config.model.name) != config.task:
        raise ConfigError(
            f"'model.name': {config.model.name} is a {model_task(config.model.name)} model but "
            f"task is {config.task}; set task={model_task(config.model.name)} or pick a "
            f"{config.task} model"
        )
    registries: list[tuple[str, dict[str, Any], Any, ModelConfig | LossConfig]] = [
        ("model", MODELS, model_parameters, config.model)
    ]
    if config.task == "classification":
        if config.loss.name != "ce":
            raise ConfigError("'loss.name': classification trains with cross-entropy: use ce")
        if config.loss.params:
            raise ConfigError("'loss.params': ce takes no parameters")
    else:
        # With layout auto the masks' kind (binary or cityscapes) is known once the data is
        # found: a multi-class loss name is checked as such here, and train() checks the rest.
        mode: LossMode = (
            "multiclass"
            if is_multiclass(config.data)
            or (config.data.layout == "auto" and config.loss.name in LOSSES["multiclass"])
            else "binary"
        )
        get_loss_params = functools.partial(loss_parameters, mode=mode)
        registries.append(("loss", LOSSES[mode], get_loss_params, config.loss))

    for kind, registry, get_params, section in registries:
        if section.name not in registry:
            raise ConfigError(
                f"'{kind}.name': unknown {kind} '{section.name}'; valid: {', '.join(registry)}"
            )
        accepted = get_params(section.name)
        for key in section.params:
            if key not in accepted:
                raise ConfigError(
                    f"unknown key '{kind}.params.{key}' for {kind} '{section.name}'; "
                    f"valid keys: {', '.join(accepted) or '(none)'}"
                )


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Return a copy of `raw` with `key.sub=value` overrides applied (values parsed as YAML)."""
    result = copy.deepcopy(raw)
    for item in overrides:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"override '{item}' is not of the form key.sub=value")
        try:
            value = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ConfigError(f"override '{item}': value is not valid YAML ({exc})") from None
        node = result
        parts = key.strip().split(".")
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError(f"override '{item}': '{part}' is a value, not a section")
            node = child
        node[parts[-1]] = value
    return result


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> Config:
    """Load a YAML config (or the defaults when `path` is None) and apply `overrides`.

    Example:
        >>> cfg = load_config(None, ["train.epochs=3", "model.params.n_filters=1"])
        >>> cfg.train.epochs
        3
    """
    raw: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        try:
            loaded = yaml.safe_load(path.read_text())
        except FileNotFoundError:
            raise ConfigError(f"{path}: config file not found") from None
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: not valid YAML ({exc})") from None
        if loaded is not None and not isinstance(loaded, dict):
            raise ConfigError(f"{path}: expected a mapping of sections at the top level")
        raw = loaded or {}
    return validate_config(apply_overrides(raw, overrides or []))


def config_to_dict(config: Config) -> dict[str, Any]:
    """Plain JSON/YAML-friendly dict (paths as strings, tuples as lists)."""
    return config.model_dump(mode="json")


def dump_config(config: Config, path: str | Path) -> None:
    """Write the resolved config as YAML, atomically."""
    from seglab.atomic_files import atomic_write_text

    atomic_write_text(Path(path), yaml.safe_dump(config_to_dict(config), sort_keys=False))


def flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """`{"a": {"b": 1}}` -> `{"a.b": 1}`; used to log the whole config as MLflow params."""
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat
