"""Padding a network's input up to a size its poolings halve evenly, by reflection.

Zeros are the wrong filler for images: on a bright-field image (light background) a black
margin reads as a dark object, and a U-Net trained on such images marks it as foreground.
Reflection continues the texture and the background of the image instead, so the prediction
of a crop matches the prediction of the whole image away from the crop's border. Padding goes
at the far end of each axis, so cropping back is a plain slice.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from types import EllipsisType

import torch

__all__ = ["pad_end", "padded_forward", "padding_to_multiple", "reflect_index"]


def padding_to_multiple(sizes: Sequence[int], divisor: int, least: int = 0) -> list[int]:
    """Padding per axis that brings each size to a multiple of `divisor` (and at least `least`).

    Example:
        >>> padding_to_multiple([118, 128], 16)
        [10, 0]
    """
    return [max(-size % divisor, least - size, 0) for size in sizes]


def reflect_index(size: int, pad: int, device: torch.device) -> torch.Tensor:
    """Source positions of an axis of `size` reflected `pad` past its end.

    Reflection repeats with period `2 * (size - 1)`, so any padding works, including paddings
    longer than the axis, as NumPy's `mode="reflect"`; an axis of length 1 repeats its value.

    Example:
        >>> reflect_index(5, 6, torch.device("cpu")).tolist()
        [0, 1, 2, 3, 4, 3, 2, 1, 0, 1, 2]
    """
    period = torch.clamp(torch.tensor(2 * (size - 1), device=device), min=1)
    position = torch.arange(size + pad, device=device) % period
    return torch.minimum(position, period - position)


def pad_end(x: torch.Tensor, pads: Sequence[int]) -> torch.Tensor:
    """Pad the last `len(pads)` axes of `x` at their far end by reflection.

    A gather per axis rather than `F.pad(mode="reflect")`, which refuses paddings as long as
    the axis (a 5-pixel image padded to 16) and would export to ONNX with that limit; the
    gather has none, for any size the exported graph meets.

    Shape:
        - x: `(N, C, *spatial)` with `len(spatial) == len(pads)`
        - Output: `(N, C, *(s + p for s, p in zip(spatial, pads)))`
    """
    first = x.ndim - len(pads)
    for axis, pad in enumerate(pads, start=first):
        x = x.index_select(axis, reflect_index(x.shape[axis], pad, x.device))
    return x


def padded_forward(
    network: Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    divisor: int,
    spatial_dims: int = 2,
    least: int = 0,
) -> torch.Tensor:
    """`network` applied to `x` padded (`pad_end`) to a multiple of `divisor`, cropped back.

    Args:
        network: Maps `(N, C, *padded)` to `(N, K, *padded)`.
        x: Input whose last `spatial_dims` axes are padded.
        divisor: Each spatial size is padded up to a multiple of this.
        spatial_dims: Number of spatial axes: 2 for images, 3 for volumes.
        least: Each spatial size is padded to at least this.

    Shape:
        - x: `(N, C, *spatial)`
        - Output: `(N, K, *spatial)`
    """
    sizes = x.shape[-spatial_dims:]
    pads = padding_to_multiple(sizes, divisor, least)
    if any(pads):
        x = pad_end(x, pads)
    crop: tuple[EllipsisType | slice, ...] = (..., *(slice(0, size) for size in sizes))
    return network(x)[crop]
