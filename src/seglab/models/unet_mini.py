"""U-Net Mini of seed 001: two encoder levels and a dilated bottleneck, for multi-class scenes."""

from __future__ import annotations

import torch
from torch import nn

from seglab.models.blocks import ConvBlock, Down, Up
from seglab.models.checks import check_dropout, check_int
from seglab.models.padding import padded_forward

__all__ = ["UNetMini"]


class UNetMini(nn.Module):
    """Seed 001's U-Net Mini: a two-level U-Net whose bottleneck uses dilated convolutions.

    Encoder: a conv block at full resolution (`4 * n_filters` channels), a 2×2 max-pooling and a
    conv block at 1/2 (`8 * n_filters`), a second pooling; bottleneck at 1/4 (`16 * n_filters`):
    3×3 convolutions dilated 2 then 4. Decoder: two steps of a 3×3 stride-2 transposed
    convolution, concatenation of the encoder's skip and a conv block. A 1×1 convolution gives
    `num_classes` logits; no softmax is applied (the losses take logits).

    Seed 001 builds it with 32, 64 and 128 channels (`n_filters=8`, the default), batch norm
    after every convolution and 8 Cityscapes category groups. Two departures: batch norm comes
    before the ReLU, the usual order, where the seed put it after; and the convolutions followed
    by batch norm have no bias, which the norm's shift makes redundant.

    Any input size is accepted: H and W are padded by reflection at the bottom and right to a
    multiple of `divisor` (4), and in training to at least 8, and the output is cropped back to
    the input's size.

    Args:
        in_channels: Channels of the input image (3 for RGB).
        num_classes: Output logit channels: C for C classes (1 for a binary task).
        n_filters: Width multiplier; the levels have 4, 8 and 16 times `n_filters` channels.
        batch_norm: Batch norm after every convolution but the last, as in the seed.
        dropout: Channel dropout probability at the end of every conv block, in [0, 1).

    Shape:
        - Input: `(N, in_channels, H, W)`, any H, W >= 1
        - Output: `(N, num_classes, H, W)` logits

    Example:
        >>> model = UNetMini(in_channels=3, num_classes=8)
        >>> model(torch.zeros(2, 3, 96, 130)).shape
        torch.Size([2, 8, 96, 130])
    """

    def __init__(
        self,
        in_channels: int = 3,
        num_classes: int = 1,
        n_filters: int = 8,
        batch_norm: bool = True,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        check_int("in_channels", in_channels, 1)
        check_int("num_classes", num_classes, 1)
        check_int("n_filters", n_filters, 1)
        check_dropout(dropout)
        widths = [4 * n_filters, 8 * n_filters, 16 * n_filters]
        self.stem = ConvBlock(in_channels, widths[0], batch_norm, dropout)
        self.down = Down(widths[0], widths[1], batch_norm, dropout)
        self.pool = nn.MaxPool2d(kernel_size=2)
        self.bottleneck = ConvBlock(widths[1], widths[2], batch_norm, dropout, dilations=(2, 4))
        self.up1 = Up(widths[2], widths[1], widths[1], batch_norm, dropout)
        self.up2 = Up(widths[1], widths[0], widths[0], batch_norm, dropout)
        self.head = nn.Conv2d(widths[0], num_classes, kernel_size=1)

    @property
    def divisor(self) -> int:
        """H and W are padded to a multiple of this (two poolings: 4)."""
        return 4

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # In training, at least 2 × divisor: batch norm needs more than one value per channel,
        # and a single image under 5×5 pixels would leave a 1×1 bottleneck. Not in inference,
        # so an exported graph keeps one padding rule for every size.
        least = 2 * self.divisor if self.training else 0
        return padded_forward(self._logits, x, self.divisor, least=least)

    def _logits(self, x: torch.Tensor) -> torch.Tensor:
        full = self.stem(x)
        half = self.down(full)
        x = self.bottleneck(self.pool(half))
        return self.head(self.up2(self.up1(x, half), full))
