"""Image classifiers of seed 004 (MNIST): a dense net, a deeper dense net with dropout, a CNN.

All three share one constructor signature, `(in_channels, num_classes, image_size, ...)`, take
`(N, in_channels, H, W)` images and return `(N, num_classes)` logits. No softmax is applied: the
loss is cross-entropy on logits (numerically safer) and prediction applies the softmax itself.
"""

from __future__ import annotations

import itertools
from collections import OrderedDict
from typing import ClassVar

import torch
from torch import nn

from seglab.models.checks import check_dropout, check_int

__all__ = ["CNN", "MLP", "MLPDropout"]


def _check_image_size(image_size: tuple[int, int] | list[int]) -> tuple[int, int]:
    # A list is accepted because YAML and JSON configs have no tuples.
    is_pair = isinstance(image_size, tuple | list) and len(image_size) == 2
    if not (is_pair and all(_is_int(side) and side >= 1 for side in image_size)):
        raise ValueError(
            f"image_size must be two integers >= 1 (height, width), got {image_size!r}"
        )
    return (image_size[0], image_size[1])


def _is_int(value: object) -> bool:
    # bool is an int subclass; `True` in a config is a mistake, not a 1.
    return isinstance(value, int) and not isinstance(value, bool)


class _Classifier(nn.Module):
    """Argument checks and the input check shared by the classifiers; `layers` does the work."""

    task: ClassVar[str] = "classification"
    layers: nn.Sequential

    def __init__(
        self, in_channels: int, num_classes: int, image_size: tuple[int, int] | list[int]
    ) -> None:
        super().__init__()
        check_int("in_channels", in_channels, 1)
        check_int("num_classes", num_classes, 1)
        self.in_channels = in_channels
        self.num_classes = num_classes
        self.image_size = _check_image_size(image_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # The dense layers fix the input size; a wrong one would otherwise fail deep inside with
        # a bare matrix-shape error.
        expected = (self.in_channels, *self.image_size)
        if x.ndim != 4 or tuple(x.shape[1:]) != expected:
            raise ValueError(
                f"{type(self).__name__} expects input of shape (N, {', '.join(map(str, expected))})"
                f", got {tuple(x.shape)}; resize the images or set in_channels/image_size"
            )
        return self.layers(x)


class MLP(_Classifier):
    """Seed 004's first model: flatten, then one dense layer to the class logits.

    Args:
        in_channels: Channels of the input image (1 for MNIST).
        num_classes: Number of classes (10 digits).
        image_size: `(H, W)` of the input (28×28 for MNIST; a list of two ints is accepted).

    Shape:
        - Input: `(N, in_channels, H, W)` with `(H, W) == image_size`
        - Output: `(N, num_classes)` logits

    Example:
        >>> model = MLP()  # 784·10 + 10 = 7,850 parameters
        >>> model(torch.zeros(2, 1, 28, 28)).shape
        torch.Size([2, 10])
    """

    def __init__(
        self,
        in_channels: int = 1,
        num_classes: int = 10,
        image_size: tuple[int, int] | list[int] = (28, 28),
    ) -> None:
        super().__init__(in_channels, num_classes, image_size)
        height, width = self.image_size
        self.layers = nn.Sequential(
            OrderedDict(
                flatten=nn.Flatten(),
                head=nn.Linear(in_channels * height * width, num_classes),
            )
        )


class MLPDropout(_Classifier):
    """Seed 004's dense net with dropout: flatten, then [dense, ReLU, dropout] per hidden width.

    Args:
        in_channels: Channels of the input image.
        num_classes: Number of classes.
        image_size: `(H, W)` of the input (a list of two ints is accepted).
        hidden: Widths of the hidden dense layers; the seed's funnel is 200, 100, 60, 30.
        dropout: Probability of zeroing a unit after every hidden layer, in [0, 1). The seed sets
            `Pkeep=0.25` but passes it to Keras' `Dropout` as the drop rate; 0.2 matches the CNN.

    Shape:
        - Input: `(N, in_channels, H, W)` with `(H, W) == image_size`
        - Output: `(N, num_classes)` logits

    Example:
        >>> model = MLPDropout(hidden=(64, 32), dropout=0.1)
        >>> model(torch.zeros(2, 1, 28, 28)).shape
        torch.Size([2, 10])
    """

    def __init__(
        self,
        in_channels: int = 1,
        num_classes: int = 10,
        image_size: tuple[int, int] | list[int] = (28, 28),
        hidden: tuple[int, ...] | list[int] = (200, 100, 60, 30),
        dropout: float = 0.2,
    ) -> None:
        super().__init__(in_channels, num_classes, image_size)
        if not (isinstance(hidden, tuple | list) and all(_is_int(w) and w >= 1 for w in hidden)):
            raise ValueError(f"hidden must be a list of integers >= 1, got {hidden!r}")
        check_dropout(dropout)
        height, width = self.image_size
        widths = [in_channels * height * width, *hidden]
        layers: OrderedDict[str, nn.Module] = OrderedDict(flatten=nn.Flatten())
        for i, (n_in, n_out) in enumerate(itertools.pairwise(widths), start=1):
            layers[f"dense{i}"] = nn.Sequential(
                nn.Linear(n_in, n_out), nn.ReLU(), nn.Dropout(dropout)
            )
        layers["head"] = nn.Linear(widths[-1], num_classes)
        self.layers = nn.Sequential(layers)


class CNN(_Classifier):
    """Seed 004's CNN: three [3×3 conv, ReLU, 2×2 max-pool] blocks, then a dense head.

    The convolutions have 32, 64 and 128 channels and 'same' padding, so each block halves H and
    W (rounding down) and any side >= 8 works: 8×8 digits end at 1×1, 28×28 MNIST at 3×3. The
    head is dense 512, ReLU, dropout, dense `num_classes`. (The seed's Keras model uses 'valid'
    convolutions, no third pooling and no ReLU on the dense 512; on 28×28 it also flattens 3×3×128
    values, so the parameter count is the same: 688,138.)

    Args:
        in_channels: Channels of the input image.
        num_classes: Number of classes.
        image_size: `(H, W)` of the input, both >= 8 (a list of two ints is accepted).
        dropout: Probability of zeroing a unit of the dense 512 layer, in [0, 1) (seed: 0.2).

    Shape:
        - Input: `(N, in_channels, H, W)` with `(H, W) == image_size`
        - Output: `(N, num_classes)` logits

    Example:
        >>> model = CNN(image_size=(8, 8))
        >>> model(torch.zeros(2, 1, 8, 8)).shape
        torch.Size([2, 10])
    """

    widths: ClassVar[tuple[int, ...]] = (32, 64, 128)

    def __init__(
        self,
        in_channels: int = 1,
        num_classes: int = 10,
        image_size: tuple[int, int] | list[int] = (28, 28),
        dropout: float = 0.2,
    ) -> None:
        super().__init__(in_channels, num_classes, image_size)
        check_dropout(dropout)
        minimum = 2 ** len(self.widths)
        if min(self.image_size) < minimum:
            raise ValueError(
                f"CNN needs images of at least {minimum}×{minimum} to pool {len(self.widths)} "
                f"times, got image_size={self.image_size!r}"
            )
        height, width = (side // minimum for side in self.image_size)
        layers: OrderedDict[str, nn.Module] = OrderedDict()
        for i, (n_in, n_out) in enumerate(itertools.pairwise((in_channels, *self.widths)), start=1):
            layers[f"conv{i}"] = nn.Sequential(
                nn.Conv2d(n_in, n_out, kernel_size=3, padding=1),
                nn.ReLU(),
                nn.MaxPool2d(2),
            )
        layers["flatten"] = nn.Flatten()
        layers["dense"] = nn.Sequential(
            nn.Linear(self.widths[-1] * height * width, 512), nn.ReLU(), nn.Dropout(dropout)
        )
        layers["head"] = nn.Linear(512, num_classes)
        self.layers = nn.Sequential(layers)
