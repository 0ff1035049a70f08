"""The one loss registry: a config name and a mode to a loss module.

Two modes, as in segmentation_models.pytorch, chosen once by the caller:

- ``"binary"``: logits ``(N, 1, *spatial)`` and a 0/1 target of the same shape (sigmoid).
- ``"multiclass"``: logits ``(N, C, *spatial)`` and class indices ``(N, *spatial)``, pixels equal
  to ``ignore_index`` left out (softmax).

``LOSSES[mode]`` maps each loss name to its module class (`seglab.objectives.loss_modules`);
:func:`create_loss` builds one and :func:`loss_parameters` lists the arguments it accepts.
:class:`ChannelwiseLoss` applies a binary loss to each output channel of a multi-target model.
:func:`class_weights_from_fraction` and :func:`inverse_frequency_weights` compute from the
training masks the arguments ``weighted_bce`` and ``weighted_ce`` require.

Example:
    >>> create_loss("tversky", alpha=0.3, beta=0.7)
    TverskyLoss(alpha=0.3, beta=0.7, smooth=1.0)
    >>> create_loss("ce_dice", mode="multiclass", ignore_index=255)
    MulticlassCEDiceLoss(dice_weight=3.0, smooth=1.0, ignore_index=255)
"""

from __future__ import annotations

from numbers import Real
from typing import Literal

import numpy as np
import torch
from torch import nn

from seglab.objectives.loss_modules import (
    BCEDiceLoss,
    BCELoss,
    ConfigurableLoss,
    DiceLoss,
    FocalLoss,
    FocalTverskyLoss,
    JaccardLoss,
    MulticlassCEDiceLoss,
    MulticlassCELoss,
    MulticlassDiceLoss,
    MulticlassFocalLoss,
    MulticlassFocalTverskyLoss,
    MulticlassJaccardLoss,
    MulticlassTverskyLoss,
    MulticlassWeightedCELoss,
    TverskyLoss,
    WeightedBCELoss,
)

LossMode = Literal["binary", "multiclass"]

LOSSES: dict[str, dict[str, type[ConfigurableLoss]]] = {
    "binary": {
        "bce": BCELoss,
        "weighted_bce": WeightedBCELoss,
        "dice": DiceLoss,
        "bce_dice": BCEDiceLoss,
        "jaccard": JaccardLoss,
        "tversky": TverskyLoss,
        "focal_tversky": FocalTverskyLoss,
        "focal": FocalLoss,
    },
    "multiclass": {
        "ce": MulticlassCELoss,
        "weighted_ce": MulticlassWeightedCELoss,
        "dice": MulticlassDiceLoss,
        "ce_dice": MulticlassCEDiceLoss,
        "jaccard": MulticlassJaccardLoss,
        "tversky": MulticlassTverskyLoss,
        "focal_tversky": MulticlassFocalTverskyLoss,
        "focal": MulticlassFocalLoss,
    },
}
_KINDS = {"binary": "loss", "multiclass": "multi-class loss"}  # as error messages name them


def _loss_class(name: str, mode: LossMode) -> type[ConfigurableLoss]:
    if mode not in LOSSES:
        raise ValueError(f"unknown loss mode {mode!r}; valid modes: {', '.join(LOSSES)}")
    registry = LOSSES[mode]
    if name not in registry:
        raise ValueError(f"unknown {_KINDS[mode]} {name!r}; valid names: {', '.join(registry)}")
    return registry[name]


def loss_parameters(name: str, mode: LossMode = "binary") -> dict[str, object]:
    """Keyword arguments a loss accepts, with their defaults.

    Arguments without a default (``pos_weight`` and ``neg_weight`` of ``weighted_bce``,
    ``weights`` of ``weighted_ce``, which training computes from the data) map to ``None``.
    ``ignore_index`` of the multi-class losses is not listed: it belongs to the data and is
    passed to :func:`create_loss` on its own.

    Args:
        name: A key of ``LOSSES[mode]``.
        mode: ``"binary"`` or ``"multiclass"``.

    Returns:
        ``{argument: default}`` in signature order.

    Raises:
        ValueError: If the mode or the name is unknown.

    Example:
        >>> loss_parameters("tversky")
        {'alpha': 0.3, 'beta': 0.7, 'smooth': 1.0}
        >>> loss_parameters("focal", mode="multiclass")
        {'gamma': 2.0, 'alpha': None}
    """
    return _loss_class(name, mode).config_parameters()


def create_loss(name: str, mode: LossMode = "binary", **kwargs: object) -> nn.Module:
    """Builds the loss module registered under ``name`` for ``mode``.

    Args:
        name: A key of ``LOSSES[mode]``.
        mode: ``"binary"`` (one logit channel) or ``"multiclass"`` (C channels).
        **kwargs: Constructor arguments of that loss (see :func:`loss_parameters`), and for a
            multi-class loss ``ignore_index`` (default ``IGNORE_INDEX``; ``None``: every pixel
            counts).

    Returns:
        The loss module, called as ``loss(logits, target)``.

    Raises:
        ValueError: If the mode, the name or an argument is unknown, a required argument is
            missing or a value is out of range.

    Example:
        >>> create_loss("focal_tversky", gamma=2.0)
        FocalTverskyLoss(alpha=0.3, beta=0.7, gamma=2.0, smooth=1.0)
        >>> create_loss("weighted_ce", mode="multiclass", weights=[0.2, 0.8])
        MulticlassWeightedCELoss(weights=(0.2, 0.8), ignore_index=255)
    """
    return _loss_class(name, mode).from_config(name, **kwargs)


class ChannelwiseLoss(nn.Module):
    """Applies a binary loss to every output channel on its own and sums the results.

    Used for the boundary-aware target: channel 0 is the foreground, channel 1 the nucleus
    borders, each a binary problem of its own.

    Shape:
        - logits, target: `(N, C, H, W)`
    """

    def __init__(self, loss: nn.Module) -> None:
        super().__init__()
        self.loss = loss

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        channels = logits.shape[1]
        return sum(self.loss(logits[:, c : c + 1], target[:, c : c + 1]) for c in range(channels))


# --- class weights: required arguments of weighted_bce and weighted_ce, from the data ----------


def class_weights_from_fraction(foreground_fraction: float) -> tuple[float, float]:
    """Inverse-frequency class weights ``(w_pos, w_neg)`` for :func:`weighted_bce`.

    As in the seed: with K = 2 classes of pixel fractions f_c, ``w_c = 1 / (K f_c)``, then the
    weights are normalised to sum to 1, which works out to ``(1 - f, f)``.

    Args:
        foreground_fraction: Fraction f of foreground pixels in the training masks, in (0, 1).
    """
    f = foreground_fraction
    if not isinstance(f, Real) or not 0 < f < 1:  # `not 0 < f < 1` also rejects NaN
        raise ValueError(
            f"foreground_fraction must be in the open interval (0, 1), got {f!r}; "
            "masks with no foreground (or no background) cannot be weighted"
        )
    w_pos, w_neg = 1 / (2 * f), 1 / (2 * (1 - f))
    return w_pos / (w_pos + w_neg), w_neg / (w_pos + w_neg)


def inverse_frequency_weights(pixel_counts: np.ndarray) -> np.ndarray:
    """Seed 001's class weights: inverse pixel frequencies, normalised to sum to 1.

    With ``n_c`` pixels of class c among ``n = Σ n_c``, the seed computes ``n / (C n_c)`` and
    divides by the sum; C and n cancel, leaving ``w_c = (1 / n_c) / Σ_k (1 / n_k)``, the sum
    running over the classes with pixels. A class with no pixel gets weight 0 instead of the
    seed's infinity: a class weight only scales the loss of pixels whose truth is that class, and
    the counted data has none, so 0 changes nothing there and keeps the others finite. Unlike the
    seed, seglab passes these weights to the loss (``weighted_ce``).

    Args:
        pixel_counts: Number of (non-ignored) pixels of each class in the training masks.

    Returns:
        float64 weights of shape ``(C,)``, summing to 1.

    Raises:
        ValueError: If the counts are not a 1-D array of finite numbers >= 0 with one above 0.

    Example:
        >>> inverse_frequency_weights(np.array([300, 100, 0]))  # 1/300 : 1/100 = 1 : 3
        array([0.25, 0.75, 0.  ])
    """
    counts = np.asarray(pixel_counts)
    if counts.ndim != 1 or counts.size == 0 or not np.issubdtype(counts.dtype, np.number):
        raise ValueError(f"pixel_counts must be a non-empty 1-D array of numbers, got {counts!r}")
    counts = counts.astype(np.float64)
    if not np.isfinite(counts).all() or (counts < 0).any() or not (counts > 0).any():
        raise ValueError(
            f"pixel_counts must be finite, >= 0 and not all 0, got {counts.tolist()}; "
            "count the pixels of each class in the training masks"
        )
    inverse = np.divide(1.0, counts, out=np.zeros_like(counts), where=counts > 0)
    return inverse / inverse.sum()
