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


class DataConfig(Section):
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
    size: tuple[Side, Side] | None = None
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
    patch: list[Side] | Literal["auto"] | None = None
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


class ModelConfig(Section):
    """Architecture name (see `seglab.models.MODELS`) and its constructor arguments."""

    name: str = "unet"
    # Seed 000 uses n_filters=4 (2.16 M parameters) without batch-norm; n_filters=2 trains ~4x
    # faster on a CPU, and batch-norm reaches val Dice 0.94 in 2 epochs on synthetic nuclei
    # where the plain seed network needed 10+.
    params: dict[str, Any] = Field(default_factory=lambda: {"n_filters": 2, "batch_norm": True})


class LossConfig(Section):
    """Loss name (see `seglab.objectives.losses.LOSSES`) and its arguments."""

    name: str = "bce_dice"
    params: dict[str, Any] = Field(default_factory=dict)


class TrainConfig(Section):
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
    # Thresholds tried on the validation set after training: start, stop (inclusive), step, with
    # 0 <= start <= stop <= 1 and step > 0.
    threshold_range: tuple[float, float, float] = (0.05, 0.95, 0.05)
    # Evaluate the tuned model on the test split at the end of training, when there is one.
    evaluate_test: bool = True

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

    enabled: bool = True
    uri: str | None = None
    experiment: str = "seglab"
