"""The sections of the configuration (`data`, `model`, `loss`, `train`, ...), one pydantic model
each; `seglab.config` assembles them into `Config` and re-exports them.

Every number is checked where it is declared: a non-finite float, an empty range or a size of
zero is a `ConfigError` naming the key, not a traceback from deep inside training.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from seglab.precision import TrainPrecision


class Section(BaseModel):
    # Unknown keys are typos far more often than intentions: reject them.
    # No float may be inf or nan (YAML reads `.inf` and `.nan` as floats).
    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)


# An image side in pixels.
Side = Annotated[int, Field(ge=1)]


class AugmentConfig(Section):
    """Probabilities (0 disables) and strengths of the training-only 2D augmentations."""

    hflip: float = Field(0.5, ge=0, le=1, description="probability of a horizontal flip")
    vflip: float = Field(
        0.5, ge=0, le=1, description="probability of a vertical flip (0 for street scenes)"
    )
    rotate90: float = Field(0.5, ge=0, le=1, description="probability of a random 90° rotation")
    brightness_contrast: float = Field(
        0.3, ge=0, le=1, description="probability of a random brightness/contrast change"
    )
    brightness_limit: float = Field(
        0.2, ge=0, le=1, description="largest brightness shift, a fraction of the range"
    )
    contrast_limit: float = Field(0.2, ge=0, le=1, description="largest contrast change (±)")
    noise: float = Field(0.0, ge=0, le=1, description="probability of Gaussian noise")
    noise_std: float = Field(
        0.03, ge=0, le=1, description="noise standard deviation, a fraction of the [0, 1] range"
    )
    blur: float = Field(0.0, ge=0, le=1, description="probability of a Gaussian blur")
    blur_limit: int = Field(5, ge=3, description="largest blur kernel side (pixels)")
    affine: float = Field(0.0, ge=0, le=1, description="probability of a random scale and rotation")
    affine_scale: float = Field(0.1, ge=0, le=0.5, description="largest scale change (±)")
    affine_rotate: float = Field(15.0, ge=0, le=180, description="largest rotation (degrees)")
    invert: float = Field(
        0.0,
        ge=0,
        le=1,
        description="probability of inverting intensities: one model for fluorescence and "
        "bright-field images (where seed 003's U-Net failed)",
    )


class DataConfig(Section):
    """Where the data is and how it becomes batches."""

    root: Path | None = Field(
        None, description="data folder (with train/val/test sub-folders, or split by fractions)"
    )
    layout: Literal[
        "auto", "folders", "dsb2018", "cityscapes", "volumes", "idx", "class_folders", "digits"
    ] = Field(
        "auto",
        description="auto | folders | dsb2018 | cityscapes (multi-class) | volumes (3D); "
        "classification: idx (MNIST files) | class_folders | digits (8x8, shipped offline)",
    )
    val_fraction: float = Field(
        0.15, ge=0, lt=1, description="share for val when the data has no split sub-folders"
    )
    test_fraction: float = Field(
        0.15, ge=0, lt=1, description="share for test when the data has no split sub-folders"
    )
    size: tuple[Side, Side] | None = Field(
        None,
        description="[H, W] to resize every image once at load (the seeds' [128, 128]); "
        "null keeps native sizes",
    )
    crop: int | Literal["auto"] | None = Field(
        "auto",
        description="random training crops of this side (smaller images reflect-padded); auto: "
        "whole images when all are one size up to 512², else 256 (or the smallest side); "
        "null: whole images",
    )
    normalize: Literal["scale", "percentile"] = Field(
        "scale",
        description="scale (÷ dtype max) | percentile (stretch each image between its "
        "percentiles: dim and bright acquisitions look alike)",
    )
    percentiles: tuple[float, float] = Field(
        (1.0, 99.0), description="low and high percentiles of `normalize: percentile`"
    )
    target: Literal["mask", "boundary"] = Field(
        "mask",
        description="mask | boundary (a second channel for nucleus borders, as the DSB2018 "
        "winners; seeds the watershed with foreground minus borders)",
    )
    views: list[str] | None = Field(
        None,
        description="pre-processed copies stacked as input channels (raw, clahe, invert, ...); "
        "null: the model's default, [raw] or [raw, clahe, invert] for unet_extended",
    )
    num_classes: int | None = Field(
        None,
        ge=2,
        description="multi-class masks of class indices 0..C-1 (softmax over C channels); "
        "null: binary (mask > 0), or the cityscapes layout's classes from `labels`",
    )
    labels: str = Field(
        "categories",
        description="multi-class label mapping: categories (Cityscapes' 8 groups, seed 001) | "
        "train_ids (the 19 benchmark classes) | a YAML file of value: name",
    )
    void: Literal["ignore", "class"] = Field(
        "ignore",
        description="void pixels: ignore (no loss, not scored, the benchmark convention) | "
        "class (a trained class, as seed 001)",
    )
    ignore_index: int = Field(
        255, ge=0, le=255, description="label value of ignored pixels in class-index masks"
    )
    patch: list[Side] | Literal["auto"] | None = Field(
        None,
        description="volumes: training patch [D, H, W]; auto: the largest that fits (see "
        "`seglab plan`)",
    )
    patches_per_volume: int = Field(
        8, ge=1, description="volumes: random patches drawn from each volume per epoch"
    )
    foreground_share: float = Field(
        0.33,
        ge=0,
        le=1,
        description="volumes: share of patches centred on a foreground voxel (nnU-Net: 1/3)",
    )
    batch_size: int = Field(8, ge=1, description="images (or patches) per optimiser step")
    num_workers: int | Literal["auto"] = Field(
        "auto",
        description="loader processes; auto: 0 on a CPU (measured faster: the network needs "
        "every core), else one per spare core, at most 8",
    )
    cache_dir: Path | None = Field(
        None, description="on-disk cache of decoded samples; null: cache/ beside the run folders"
    )
    skip_bad: bool = Field(
        False, description="skip unreadable samples (listed in skipped.json) instead of failing"
    )
    augment: AugmentConfig = Field(
        AugmentConfig(), description="training-only augmentations (probabilities, 0 disables)"
    )

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

    @model_validator(mode="after")
    def _fractions(self) -> DataConfig:
        if self.val_fraction + self.test_fraction >= 1:
            raise ValueError(
                "val_fraction + test_fraction must be below 1 to leave images to train on, got "
                f"{self.val_fraction} + {self.test_fraction}"
            )
        return self


class InstanceConfig(Section):
    """From a probability map to one label per nucleus (see `seglab.postprocess`)."""

    method: Literal["watershed", "components"] = Field(
        "watershed",
        description="watershed (splits touching nuclei: distance transform, seeded markers) | "
        "components (connected components as they are)",
    )
    min_area: int = Field(10, ge=0, description="smaller objects (pixels) are noise, not nuclei")
    fill_holes: bool = Field(True, description="fill holes inside each object")
    min_distance: int = Field(
        3, ge=1, description="least distance (pixels) between two watershed seeds"
    )
    # On synthetic nuclei 0.5 gave DSB mAP 0.630 against 0.569 for 1.0 (see README).
    min_dynamic: float = Field(
        0.5,
        ge=0,
        description="height (pixels) a distance peak must rise above its saddle to seed a "
        "nucleus; lower splits more touching nuclei",
    )


class ModelConfig(Section):
    """Architecture name (see `seglab.models.MODELS`) and its constructor arguments."""

    name: str = Field(
        "unet",
        description="unet | unet_mini | unet_extended | unet3d | smp (segmentation_models.pytorch "
        "encoders, the smp extra); classification: mlp | mlp_dropout | cnn",
    )
    # Seed 000 uses n_filters=4 (2.16 M parameters) without batch-norm; n_filters=2 trains ~4x
    # faster on a CPU, and batch-norm reaches val Dice 0.94 in 2 epochs on synthetic nuclei
    # where the plain seed network needed 10+.
    params: dict[str, Any] = Field(
        default_factory=lambda: {"n_filters": 2, "batch_norm": True},
        description="constructor arguments, e.g. n_filters (widths n_filters × 4..64), depth, "
        "batch_norm, dropout, bilinear",
    )
    init: str | None = Field(
        None,
        description="bundle folder whose weights start the training (fine-tuning); the "
        "architecture must match it",
    )


class LossConfig(Section):
    """Loss name (see `seglab.objectives.losses.LOSSES`) and its arguments."""

    name: str = Field(
        "bce_dice",
        description="bce | weighted_bce | dice | bce_dice | jaccard | tversky | focal_tversky | "
        "focal; multi-class (default ce_dice): ce | weighted_ce | dice | ce_dice | ...",
    )
    params: dict[str, Any] = Field(
        default_factory=dict, description="e.g. {dice_weight: 3.0} or {alpha: 0.3, beta: 0.7}"
    )


class TrainConfig(Section):
    """Optimisation and the Lightning trainer."""

    epochs: int = Field(30, ge=1, description="most epochs (early stopping may end sooner)")
    max_steps: int | None = Field(
        None,
        ge=1,
        description="stop after this many optimiser steps (benchmarks, smoke tests); null: "
        "`epochs` epochs",
    )
    lr: float = Field(1e-3, gt=0, description="Adam learning rate")
    weight_decay: float = Field(0.0, ge=0, description="Adam L2 weight decay; 0: none")
    scheduler: Literal["none", "cosine", "plateau"] = Field(
        "none", description="learning-rate schedule: none | cosine | plateau"
    )
    patience: int = Field(
        5, ge=0, description="early stopping on val loss, as seed 004 (5); 0 disables it"
    )
    accelerator: Literal["auto", "cpu", "gpu", "mps"] = Field(
        "auto", description="auto | cpu | gpu | mps"
    )
    # More than one process trains with Lightning's DDP (gloo on CPUs, NCCL on GPUs);
    # multi-node jobs start through torchrun or SLURM.
    devices: int = Field(1, ge=1, description="processes per node (GPUs, or CPU processes)")
    num_nodes: int = Field(1, ge=1, description="nodes (started by torchrun or SLURM)")
    strategy: Literal["auto", "ddp", "ddp_spawn"] = Field(
        "auto",
        description="auto | ddp | ddp_spawn (starts the processes from this one: notebooks)",
    )
    # Emulated bf16 is ~20x slower than fp32, native bf16 ~2x faster (see seglab.precision).
    precision: TrainPrecision = Field(
        "auto",
        description="auto: bf16 where native (CPUs with avx512_bf16/amx_bf16, recent GPUs), "
        "fp16 on older GPUs, else fp32; or 32 | bf16-mixed | 16-mixed",
    )
    compile: bool = Field(
        False,
        description="torch.compile the model (opt-in; the first step pays the compilation, "
        "logged as compile_seconds)",
    )
    channels_last: bool = Field(
        True, description="channels-last memory layout (the fastest for convolutions on x86)"
    )
    deterministic: bool = Field(
        True, description="deterministic algorithms: same seed, same metrics"
    )
    threshold_range: tuple[float, float, float] = Field(
        (0.05, 0.95, 0.05),
        description="thresholds tried on val after training: [start, stop (inclusive), step]",
    )
    evaluate_test: bool = Field(
        True, description="evaluate the tuned model on the test split, when there is one"
    )

    @field_validator("precision", mode="before")
    @classmethod
    def _precision_text(cls, value: object) -> object:
        # YAML and --set read `precision: 32` as a number.
        return str(value) if isinstance(value, int) and not isinstance(value, bool) else value

    @field_validator("threshold_range")
    @classmethod
    def _threshold_grid(cls, value: tuple[float, float, float]) -> tuple[float, float, float]:
        start, stop, step = value
        if not 0 <= start <= stop <= 1:
            raise ValueError("threshold_range needs 0 <= start <= stop <= 1 ([start, stop, step])")
        if step <= 0:
            raise ValueError("threshold_range needs a step above 0 ([start, stop, step])")
        return value


class TrackingConfig(Section):
    """MLflow tracking: an embedded SQLite store next to the run folders unless `uri` is given."""

    enabled: bool = Field(True, description="log params, metrics and artefacts to MLflow")
    uri: str | None = Field(
        None,
        description="null: an SQLite store beside the run folders; or a server, http://host:5000",
    )
    experiment: str = Field("seglab", description="MLflow experiment name")
