"""Encoder-decoder networks of segmentation_models.pytorch (`model.name: smp`).

`SmpModel` wraps one of smp's architectures (Unet, UnetPlusPlus, FPN, DeepLabV3Plus, Segformer,
...) with one of its encoders (resnet34, efficientnet-b0, ...) behind seglab's model contract:
`(N, in_channels, H, W)` images of any size in, `(N, num_classes, H, W)` logits out.

smp is an optional dependency (`pip install 'seglab[smp]'`), imported only when a model is built.
Pretrained encoder weights are fetched by smp from the Hugging Face hub, and only when asked for
(`encoder_weights="imagenet"`); a bundle is always rebuilt with `encoder_weights=None` and gets
its weights from `weights.safetensors` (see `SmpModel.offline_kwargs`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

import torch
from torch import nn

from seglab.errors import SeglabError
from seglab.models.padding import padded_forward

__all__ = ["SmpModel", "smp_architectures", "smp_encoders"]

INSTALL_HINT = "pip install 'seglab[smp]'"
# In training, tiny inputs are padded to at least this side so the deepest feature map of a
# 32-stride encoder is 2×2: batch norm needs more than one value per channel.
TRAINING_LEAST_SIDE = 64
# PAN's feature pyramid attention halves the encoder's deepest map three more times.
_EXTRA_STRIDE = {"PAN": 8}
_BATCH_NORM_MESSAGE = "Expected more than 1 value per channel when training"


def _smp() -> Any:
    try:
        import segmentation_models_pytorch
    # A torchvision built for another torch fails at import with a RuntimeError.
    except (ImportError, RuntimeError) as exc:
        raise ValueError(
            f"model 'smp' needs segmentation_models.pytorch, which cannot be imported "
            f"({type(exc).__name__}: {exc}); install it with {INSTALL_HINT} (beside a CPU-only "
            "torch: torch 2.14.1 + torchvision 0.29.1, see the README)"
        ) from None
    return segmentation_models_pytorch


def smp_architectures() -> list[str]:
    """The architecture names smp builds, e.g. `"Unet"`, `"FPN"`, `"DeepLabV3Plus"`."""
    return [architecture.__name__ for architecture in _smp().MODEL_ARCHITECTURES_MAPPING.values()]


def smp_encoders() -> list[str]:
    """The encoder names smp builds (timm's models are also accepted as `"tu-<name>"`)."""
    return list(_smp().encoders.get_encoder_names())


def _check_names(arch: str, encoder: str) -> str:
    """The architecture's canonical name; ValueError naming the valid ones for a bad name."""
    architectures = {name.lower(): name for name in smp_architectures()}
    if arch.lower() not in architectures:
        raise ValueError(
            f"model 'smp': unknown arch {arch!r}; valid: {', '.join(architectures.values())}"
        )
    if encoder.startswith("tu-"):
        import timm

        if not timm.is_model(encoder[3:]):
            raise ValueError(f"model 'smp': {encoder!r} is not a timm model (timm.list_models())")
    elif encoder not in smp_encoders():
        raise ValueError(
            f"model 'smp': unknown encoder {encoder!r}; valid: {', '.join(smp_encoders())} "
            "or tu-<timm model>"
        )
    return architectures[arch.lower()]


def _pretrained(arch: str, build: Any) -> nn.Module:
    """`build()` (which downloads the encoder's weights), its network errors made clear."""
    try:
        return build()
    except OSError as exc:  # urllib's and the Hugging Face hub's errors are all OSErrors
        raise ValueError(
            f"model 'smp' ({arch}): cannot fetch the pretrained encoder weights "
            f"(encoder_weights: imagenet) - no network? ({type(exc).__name__}: {exc}). Use "
            "encoder_weights: null to train from scratch, or fetch the weights once on a "
            "machine with network into the Hugging Face hub cache (HF_HOME) that this one reads"
        ) from None


def _normalisation(
    encoder: str,
    encoder_weights: str | None,
    in_channels: int,
    mean: Sequence[float] | None,
    std: Sequence[float] | None,
) -> tuple[list[float], list[float]]:
    """Per-channel mean and std of the input: given, the pretrained encoder's, or 0 and 1."""
    if mean is None and std is None:
        if encoder_weights is None:
            return [0.0] * in_channels, [1.0] * in_channels
        params = _smp().encoders.get_preprocessing_params(encoder, pretrained=encoder_weights)
        mean, std = params["mean"], params["std"]
        if len(mean) != in_channels:  # e.g. grey images: the RGB statistics averaged
            return [sum(mean) / len(mean)] * in_channels, [sum(std) / len(std)] * in_channels
        return [float(m) for m in mean], [float(s) for s in std]
    if mean is None or std is None or len(mean) != in_channels or len(std) != in_channels:
        raise ValueError(
            f"model 'smp': mean and std must both be lists of {in_channels} values (one per "
            f"input channel), got mean={mean}, std={std}; or leave both null"
        )
    if any(s <= 0 for s in std):
        raise ValueError(f"model 'smp': std must be positive, got {list(std)}")
    return [float(m) for m in mean], [float(s) for s in std]


class SmpModel(nn.Module):
    """An architecture of segmentation_models.pytorch with one of its encoders.

    The input is normalised inside the network, `(x - mean) / std` per channel, with `mean`
    and `std` held as buffers: the bundle, ONNX and TorchScript carry them. With pretrained
    encoder weights they default to the encoder's (ImageNet's) statistics of `[0, 1]` images,
    which seglab's `scale` pre-processing gives; without, to 0 and 1.

    H and W are reflect-padded to a multiple of the encoder's output stride (32; see
    `seglab.models.padding`) and the output is cropped back, so any size is accepted; in
    training to at least 64 as well, so the deepest batch-norm layers see 2×2 values.

    Args:
        in_channels: Channels of the input image.
        num_classes: Output logit channels: 1 binary, C classes, 2 for mask + boundary.
        arch: smp's architecture: Unet, UnetPlusPlus, FPN, DeepLabV3Plus, Segformer, ...
        encoder: smp's encoder: resnet18, resnet34, efficientnet-b0, ..., or tu-<timm model>.
        encoder_weights: None (random initialisation) or "imagenet" (downloaded by smp, once,
            into the Hugging Face hub cache; a bundle never downloads).
        mean: Per-channel input mean; None: the pretrained encoder's, or 0.
        std: Per-channel input std; None: the pretrained encoder's, or 1.

    Shape:
        - Input: `(N, in_channels, H, W)`, any H, W >= 1
        - Output: `(N, num_classes, H, W)` logits

    Example:
        >>> model = SmpModel(in_channels=3, num_classes=2, encoder="resnet18")
        >>> model(torch.zeros(2, 3, 37, 53)).shape
        torch.Size([2, 2, 37, 53])
    """

    mean: torch.Tensor
    std: torch.Tensor

    def __init__(
        self,
        in_channels: int = 3,
        num_classes: int = 1,
        arch: str = "Unet",
        encoder: str = "resnet34",
        encoder_weights: str | None = None,
        mean: list[float] | None = None,
        std: list[float] | None = None,
    ) -> None:
        super().__init__()
        self.arch = _check_names(arch, encoder)
        self.encoder_name = encoder
        smp = _smp()

        def build() -> nn.Module:
            return smp.create_model(
                self.arch,
                encoder_name=encoder,
                encoder_weights=encoder_weights,
                in_channels=in_channels,
                classes=num_classes,
            )

        try:
            self.network = build() if encoder_weights is None else _pretrained(self.arch, build)
        except KeyError as exc:  # smp: these weights do not exist for this encoder
            raise ValueError(f"model 'smp': {exc.args[0]}") from None
        mean, std = _normalisation(encoder, encoder_weights, in_channels, mean, std)
        self.register_buffer("mean", torch.tensor(mean).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std).view(1, -1, 1, 1))

    @staticmethod
    def offline_kwargs(kwargs: dict[str, Any]) -> dict[str, Any]:
        """`kwargs` that rebuild the model without the network: no pretrained weights (the
        bundle's replace them, the normalisation buffers included)."""
        return {**kwargs, "encoder_weights": None}

    def resolved_kwargs(self) -> dict[str, Any]:
        """The constructor arguments the model resolved itself: the architecture's canonical
        name, the encoder and the input's per-channel `mean` and `std`."""
        return {
            "arch": self.arch,
            "encoder": self.encoder_name,
            "mean": self.mean.flatten().tolist(),
            "std": self.std.flatten().tolist(),
        }

    @property
    def divisor(self) -> int:
        """H and W are padded to a multiple of this: the encoder's output stride (times 8 for
        PAN, whose attention block pools the deepest features further)."""
        encoder = cast(nn.Module, self.network.encoder)
        stride = cast(int, encoder.output_stride)
        return stride * _EXTRA_STRIDE.get(self.arch, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = (x - self.mean) / self.std
        if not self.training:
            return padded_forward(self.network, x, self.divisor)
        try:
            return padded_forward(self.network, x, self.divisor, least=TRAINING_LEAST_SIDE)
        except ValueError as exc:
            if not str(exc).startswith(_BATCH_NORM_MESSAGE):
                raise
            raise SeglabError(
                f"model 'smp' ({self.arch}): a batch norm layer after global pooling sees one "
                f"value per channel in a training batch of {x.shape[0]} image(s); train with "
                "data.batch_size of at least 2"
            ) from None
