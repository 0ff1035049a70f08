"""U-Net assembled from the blocks in `blocks.py`, parameterised as in seed 000."""

from __future__ import annotations

import torch
from torch import nn

from seglab.models.blocks import ConvBlock, Down, Up, encode_decode
from seglab.models.checks import check_unet
from seglab.models.padding import padded_forward

__all__ = ["UNet", "UNetExtended"]


class UNet(nn.Module):
    """U-Net (Ronneberger et al., 2015) with 'same' convolutions, as built in seed 000.

    The encoder has `depth + 1` levels of widths `4 * n_filters * 2**i`; the decoder mirrors it,
    upsampling to the skip's width, concatenating the skip and convolving at that width. A 1×1
    convolution gives `num_classes` logit channels: no sigmoid or softmax is applied, since the
    losses take logits (numerically safer) and inference applies the activation itself.

    Any input size is accepted: H and W are padded by reflection (see `seglab.models.padding`)
    up to a multiple of `divisor` and the output is cropped back to the input's spatial size.

    Args:
        in_channels: Channels of the input image (3 for RGB, 1 for grey).
        num_classes: Output logit channels: 1 for a binary task, C for C classes.
        n_filters: Width multiplier; the first level has `4 * n_filters` channels. Seed 000 uses 4
            (16, 32, 64, 128, 256 channels; 2.16 M parameters with in_channels=3).
        depth: Number of 2×2 max-poolings (seed 000: 4).
        batch_norm: Batch norm after every convolution of the conv blocks.
        dropout: Channel dropout probability at the end of every conv block, in [0, 1).
        bilinear: Upsample by bilinear interpolation and a 1×1 convolution instead of a
            transposed convolution.

    Shape:
        - Input: `(N, in_channels, H, W)`, any H, W >= 1
        - Output: `(N, num_classes, H, W)` logits

    Example:
        >>> model = UNet(in_channels=3, num_classes=1, n_filters=4)
        >>> model(torch.zeros(2, 3, 100, 75)).shape
        torch.Size([2, 1, 100, 75])
    """

    def __init__(
        self,
        in_channels: int = 3,
        num_classes: int = 1,
        n_filters: int = 4,
        depth: int = 4,
        batch_norm: bool = False,
        dropout: float = 0.0,
        bilinear: bool = False,
    ) -> None:
        super().__init__()
        check_unet(in_channels, num_classes, n_filters, depth, dropout)
        self.depth = depth
        widths = [4 * n_filters * 2**i for i in range(depth + 1)]

        self.stem = ConvBlock(in_channels, widths[0], batch_norm, dropout)
        self.downs = nn.ModuleList(
            Down(widths[i], widths[i + 1], batch_norm, dropout) for i in range(depth)
        )
        self.ups = nn.ModuleList(
            Up(widths[i + 1], widths[i], widths[i], batch_norm, dropout, bilinear)
            for i in reversed(range(depth))
        )
        self.head = nn.Conv2d(widths[0], num_classes, kernel_size=1)

    @property
    def divisor(self) -> int:
        """H and W are padded to a multiple of this (2**depth) so every pooling halves evenly."""
        return 2**self.depth

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return padded_forward(self._logits, x, self.divisor)

    def _logits(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(encode_decode(x, self.stem, self.downs, self.ups))


class UNetExtended(UNet):
    """U-Net extended (seed 003): a U-Net fed with several pre-processed copies of the image.

    The copies ("views": normalised raw, CLAHE-equalised, inverted, gradient; see
    `seglab.data.views`) are stacked along the channels by the pre-processing, which the model
    bundle records, so `in_channels` = image channels × number of views. The network itself is
    the U-Net; registering it under its own name makes training pick the extended views by
    default and keeps comparisons (`unet` vs `unet_extended`) readable.

    Args:
        Same as `UNet`.

    Example:
        >>> model = UNetExtended(in_channels=9, num_classes=1, n_filters=2)
        >>> model(torch.zeros(1, 9, 64, 64)).shape
        torch.Size([1, 1, 64, 64])
    """
