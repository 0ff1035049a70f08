"""3D U-Net for volumes, the 2D `UNet` of `unet.py` with its 2D layers swapped for 3D ones.

Seed 002 part III: small 3×3×3 kernels and few filters, trained on patches, because a volume's
activations grow with the cube of the side. Registered as "unet3d" in `seglab.models.MODELS`, with
`spatial_dims = 3` so that 2D code paths (and the 2D contract tests) can tell it apart; trained by
`seglab.training.kinds.volumes`.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from seglab.models.blocks import encode_decode
from seglab.models.checks import check_unet
from seglab.models.padding import padded_forward

__all__ = ["NORMS", "UNet3D"]

NORMS = ("instance", "batch", "none")


def _norm(kind: str, channels: int) -> nn.Module:
    if kind == "batch":
        return nn.BatchNorm3d(channels)
    # affine=True: without it instance norm has no learnable scale and shift at all.
    return nn.InstanceNorm3d(channels, affine=True)


class ConvBlock3d(nn.Sequential):
    """Two 3×3×3 'same' convolutions, each followed by optional norm and a ReLU, then dropout.

    Shape:
        - Input: `(N, in_channels, D, H, W)`
        - Output: `(N, out_channels, D, H, W)`
    """

    def __init__(self, in_channels: int, out_channels: int, norm: str, dropout: float) -> None:
        layers: dict[str, nn.Module] = {}
        for i, channels in enumerate((in_channels, out_channels), start=1):
            # Both norms subtract the mean, which makes a convolution bias redundant.
            layers[f"conv{i}"] = nn.Conv3d(
                channels, out_channels, kernel_size=3, padding=1, bias=norm == "none"
            )
            if norm != "none":
                layers[f"norm{i}"] = _norm(norm, out_channels)
            layers[f"act{i}"] = nn.ReLU(inplace=True)
        if dropout > 0:
            layers["dropout"] = nn.Dropout3d(dropout)
        super().__init__(OrderedDict(layers))


class Up3d(nn.Module):
    """2×2×2 stride-2 transposed convolution to the skip's width, concatenation, `ConvBlock3d`."""

    def __init__(self, in_channels: int, skip_channels: int, norm: str, dropout: float) -> None:
        super().__init__()
        self.up = nn.ConvTranspose3d(in_channels, skip_channels, kernel_size=2, stride=2)
        self.conv = ConvBlock3d(2 * skip_channels, skip_channels, norm, dropout)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        return self.conv(torch.cat([self.up(x), skip], dim=1))


class UNet3D(nn.Module):
    """3D U-Net (Çiçek et al., 2016) with 'same' convolutions, mirroring `UNet`.

    The encoder has `depth + 1` levels of widths `4 * n_filters * 2**i`, each two 3×3×3
    convolutions (norm, ReLU); levels are joined by 2×2×2 max-pooling. The decoder upsamples with
    2×2×2 stride-2 transposed convolutions, concatenates the skip and convolves at the skip's
    width. A 1×1×1 convolution gives `num_classes` logit channels (no sigmoid or softmax).

    D, H and W are padded by reflection (at the far end) to a multiple of `divisor` and the
    output is cropped back, so any size works. With a norm in training mode the deepest level
    must hold more than one value per channel: instance norm needs a padded side above
    `divisor` on some axis, batch norm a batch above 1 otherwise (PyTorch raises a ValueError).

    Args:
        in_channels: Channels of the input volume.
        num_classes: Output logit channels: 1 for a binary task, C for C classes.
        n_filters: Width multiplier; the first level has `4 * n_filters` channels. The default 2
            (8, 16, 32, 64 channels) keeps patches of 128³ within a few GiB.
        depth: Number of 2×2×2 max-poolings.
        norm: "instance" (the default: patches come in small batches, where batch statistics
            are noisy), "batch" or "none".
        dropout: Channel dropout probability at the end of every conv block, in [0, 1).

    Shape:
        - Input: `(N, in_channels, D, H, W)`, any D, H, W >= 1
        - Output: `(N, num_classes, D, H, W)` logits

    Example:
        >>> model = UNet3D(in_channels=1, num_classes=2, n_filters=1)
        >>> model(torch.zeros(1, 1, 13, 17, 11)).shape
        torch.Size([1, 2, 13, 17, 11])
    """

    task = "segmentation"
    spatial_dims = 3

    def __init__(
        self,
        in_channels: int = 1,
        num_classes: int = 1,
        n_filters: int = 2,
        depth: int = 3,
        norm: str = "instance",
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        check_unet(in_channels, num_classes, n_filters, depth, dropout)
        if norm not in NORMS:
            raise ValueError(f"norm must be one of {', '.join(NORMS)}, got {norm!r}")
        self.depth = depth
        widths = [4 * n_filters * 2**i for i in range(depth + 1)]

        self.stem = ConvBlock3d(in_channels, widths[0], norm, dropout)
        self.downs = nn.ModuleList(
            nn.Sequential(
                OrderedDict(
                    pool=nn.MaxPool3d(kernel_size=2),
                    conv=ConvBlock3d(widths[i], widths[i + 1], norm, dropout),
                )
            )
            for i in range(depth)
        )
        self.ups = nn.ModuleList(
            Up3d(widths[i + 1], widths[i], norm, dropout) for i in reversed(range(depth))
        )
        self.head = nn.Conv3d(widths[0], num_classes, kernel_size=1)

    @property
    def divisor(self) -> int:
        """D, H and W are padded to a multiple of this (2**depth) so every pooling halves evenly."""
        return 2**self.depth

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return padded_forward(self._logits, x, self.divisor, spatial_dims=3)

    def _logits(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(encode_decode(x, self.stem, self.downs, self.ups))
