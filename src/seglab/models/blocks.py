"""Building blocks of the U-Net family: a double convolution, a down step and an up step.

The blocks know nothing about the network they sit in; `unet.py` assembles them. They are 2D for
now; every 2D layer class is named in one place per block (`nn.Conv2d`, `nn.BatchNorm2d`,
`nn.Dropout2d`, `nn.MaxPool2d`, `nn.ConvTranspose2d`) so that 3D versions only swap those classes.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterable

import torch
from torch import nn

__all__ = ["ConvBlock", "Down", "Up", "encode_decode"]


class ConvBlock(nn.Sequential):
    """Two 3×3 convolutions, each followed by optional batch norm and a ReLU, then optional dropout.

    This is seed 000's `conv2d_block` ('same' padding, so the spatial size is kept).

    Args:
        in_channels: Channels of the input.
        out_channels: Channels of both convolutions' outputs.
        batch_norm: Add `BatchNorm2d` after each convolution. The convolutions then have no bias,
            since batch norm's shift makes it redundant.
        dropout: Probability of zeroing whole channels after the block (0 disables it).
        dilations: Dilation of each convolution; (2, 4) is U-Net Mini's bottleneck, which
            widens the receptive field without another pooling (the pair spans 13 positions
            where two plain 3×3 convolutions span 5).

    Shape:
        - Input: `(N, in_channels, H, W)`
        - Output: `(N, out_channels, H, W)`

    Example:
        >>> block = ConvBlock(3, 16)
        >>> block(torch.zeros(2, 3, 32, 32)).shape
        torch.Size([2, 16, 32, 32])
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        batch_norm: bool = False,
        dropout: float = 0.0,
        dilations: tuple[int, int] = (1, 1),
    ) -> None:
        # Named layers give readable state_dict keys and summaries ("stem.conv1.weight").
        layers: dict[str, nn.Module] = {}
        for i, (channels, dilation) in enumerate(zip((in_channels, out_channels), dilations), 1):
            # padding = dilation keeps H and W, as Keras' padding='same'.
            layers[f"conv{i}"] = nn.Conv2d(
                channels,
                out_channels,
                kernel_size=3,
                padding=dilation,
                dilation=dilation,
                bias=not batch_norm,
            )
            if batch_norm:
                layers[f"norm{i}"] = nn.BatchNorm2d(out_channels)
            layers[f"act{i}"] = nn.ReLU(inplace=True)
        if dropout > 0:
            # Channel-wise dropout: neighbouring pixels of a feature map are strongly correlated,
            # so dropping single pixels barely regularises a convolutional network.
            layers["dropout"] = nn.Dropout2d(dropout)
        super().__init__(OrderedDict(layers))


class Down(nn.Sequential):
    """One encoder step: 2×2 max-pooling (halves H and W), then a `ConvBlock`.

    Args:
        in_channels: Channels of the input.
        out_channels: Channels of the output.
        batch_norm: Passed to `ConvBlock`.
        dropout: Passed to `ConvBlock`.

    Shape:
        - Input: `(N, in_channels, H, W)` with H and W even
        - Output: `(N, out_channels, H / 2, W / 2)`

    Example:
        >>> Down(16, 32)(torch.zeros(2, 16, 32, 32)).shape
        torch.Size([2, 32, 16, 16])
    """

    def __init__(
        self, in_channels: int, out_channels: int, batch_norm: bool = False, dropout: float = 0.0
    ) -> None:
        super().__init__(
            OrderedDict(
                pool=nn.MaxPool2d(kernel_size=2),
                conv=ConvBlock(in_channels, out_channels, batch_norm, dropout),
            )
        )


class Up(nn.Module):
    """One decoder step: upsample ×2 to the skip's width, concatenate the skip, then a `ConvBlock`.

    Args:
        in_channels: Channels of the input from the level below.
        skip_channels: Channels of the skip connection from the encoder; the upsampled input is
            brought to this width too, as in seed 000.
        out_channels: Channels of the output.
        batch_norm: Passed to `ConvBlock`.
        dropout: Passed to `ConvBlock`.
        bilinear: Upsample by bilinear interpolation followed by a 1×1 convolution instead of a
            learned transposed convolution (fewer parameters, no checkerboard artefacts).

    Shape:
        - Input: `x` `(N, in_channels, H, W)` and `skip` `(N, skip_channels, 2H, 2W)`
        - Output: `(N, out_channels, 2H, 2W)`

    Example:
        >>> up = Up(32, 16, 16)
        >>> up(torch.zeros(2, 32, 8, 8), torch.zeros(2, 16, 16, 16)).shape
        torch.Size([2, 16, 16, 16])
    """

    def __init__(
        self,
        in_channels: int,
        skip_channels: int,
        out_channels: int,
        batch_norm: bool = False,
        dropout: float = 0.0,
        bilinear: bool = False,
    ) -> None:
        super().__init__()
        self.up: nn.Module
        if bilinear:
            self.up = nn.Sequential(
                nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False),
                nn.Conv2d(in_channels, skip_channels, kernel_size=1),
            )
        else:
            # padding=1 with output_padding=1 gives exactly 2H × 2W, like Keras' padding='same'
            # for a 3×3 stride-2 transposed convolution.
            self.up = nn.ConvTranspose2d(
                in_channels, skip_channels, kernel_size=3, stride=2, padding=1, output_padding=1
            )
        self.conv = ConvBlock(2 * skip_channels, out_channels, batch_norm, dropout)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        return self.conv(torch.cat([self.up(x), skip], dim=1))


def encode_decode(
    x: torch.Tensor,
    stem: Callable[[torch.Tensor], torch.Tensor],
    downs: Iterable[Callable[[torch.Tensor], torch.Tensor]],
    ups: Iterable[Callable[[torch.Tensor, torch.Tensor], torch.Tensor]],
) -> torch.Tensor:
    """The U of a U-Net: `stem`, then each down step, then each up step fed the skip of its level.

    Works in 2D and 3D alike: the steps decide the dimension.
    """
    skips = [stem(x)]
    for down in downs:
        skips.append(down(skips[-1]))
    x = skips.pop()
    for up in ups:
        x = up(x, skips.pop())
    return x
