"""Multi-class segmentation losses computed from logits, with an ignore label.

Every loss takes ``(logits, target)``: logits of shape ``(N, C, *spatial)`` straight from the
network (no softmax applied) and a target of shape ``(N, *spatial)`` holding integer class
indices in ``[0, C)``, or ``ignore_index`` (255 by default, Cityscapes' void) for pixels that must
not count. Probabilities are ``softmax(logits, dim=1)``: seed 001 applied binary cross-entropy to
softmax outputs; here every loss is a multi-class one. Arithmetic is done in float32 at least, so
the losses are safe under mixed precision.

Ignored pixels contribute nothing to any numerator or denominator: their logits are replaced by
zeros before the softmax and their terms by exact zeros, so changing the target or the logits only
at ignored pixels gives a bit-identical loss, and the gradient at those pixels is exactly 0.

The soft-overlap losses (dice, jaccard, tversky, focal_tversky) compute, for each class c, soft
counts summed over the whole batch, as the binary losses and the seed's ``K.flatten`` do::

    TP_c = Σ p_c y_c,   FP_c = Σ p_c (1 - y_c),   FN_c = Σ (1 - p_c) y_c

then a per-class score with a ``smooth`` term in numerator and denominator, and average the
scores over the C classes (a "macro" mean: a rare class weighs as much as the road, where the
seed's flattening of every channel together let road and sky dominate).

The functions themselves live in `seglab.multiclass_loss_functions` and are re-exported here;
this module holds their ``nn.Module`` wrappers, the ``MULTICLASS_LOSSES`` registry and
:func:`create_multiclass_loss`.

Example:
    >>> loss_fn = create_multiclass_loss("ce_dice", ignore_index=255)
    >>> loss = loss_fn(torch.zeros(2, 8, 16, 16), torch.zeros(2, 16, 16, dtype=torch.long))
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Sequence
from typing import ClassVar, cast

import numpy as np
from torch import Tensor, nn

from seglab.losses import _check_nonnegative
from seglab.multiclass_loss_functions import (
    IGNORE_INDEX,
    ce,
    ce_dice,
    dice,
    focal,
    focal_tversky,
    jaccard,
    tversky,
    weighted_ce,
)
from seglab.multiclass_loss_functions import inverse_frequency_weights as inverse_frequency_weights

# --- modules ----------------------------------------------------------------------------------


_REQUIRED = inspect.Parameter.empty


def _function_parameters(function: Callable[..., Tensor]) -> dict[str, object]:
    """``{argument: default}`` of a functional loss, without logits, target and ignore_index."""
    params = list(inspect.signature(function).parameters.values())[2:]
    return {p.name: p.default for p in params if p.name != "ignore_index"}


def _as_class_values(name: str, values: object) -> tuple[float, ...]:
    """Checks a per-class list (``weights``, ``alpha``) from a config; returns it as floats."""
    items = values.tolist() if isinstance(values, np.ndarray) else values
    if isinstance(items, Sequence) and not isinstance(items, str):
        numbers = [
            float(v) for v in items if isinstance(v, int | float) and not isinstance(v, bool)
        ]
        usable = all(math.isfinite(v) and v >= 0 for v in numbers) and any(v > 0 for v in numbers)
        if numbers and len(numbers) == len(items) and usable:
            return tuple(numbers)
    raise ValueError(
        f"{name} must be a list of one number >= 0 per class, not all 0, got {values!r}"
    )


class _MulticlassLoss(nn.Module):
    """A loss of the functional core with its arguments checked once, shown in ``repr``.

    The arguments and their defaults are those of ``function``, so each default is written in
    one place. ``per_class`` names the arguments taking one number per class (or ``None``); all
    others must be numbers >= 0.

    Args:
        ignore_index: Target value of pixels that do not count (``None``: every pixel counts).
        **params: Arguments of ``function`` other than ``logits``, ``target``, ``ignore_index``.

    Raises:
        ValueError: If an argument is unknown, missing or out of range.
    """

    function: ClassVar[Callable[..., Tensor]]
    per_class: ClassVar[tuple[str, ...]] = ()

    def __init__(self, ignore_index: int | None = IGNORE_INDEX, **params: object) -> None:
        super().__init__()
        self.arguments: dict[str, object] = {}
        self.ignore_index = ignore_index
        if ignore_index is not None and (
            isinstance(ignore_index, bool) or not isinstance(ignore_index, int)
        ):
            raise ValueError(f"ignore_index must be an integer or None, got {ignore_index!r}")
        accepted = _function_parameters(type(self).function)
        name = type(self).__name__
        unknown = sorted(set(params) - set(accepted))
        if unknown:
            raise ValueError(
                f"{name} got unknown argument(s) {', '.join(unknown)}; "
                f"accepted: {', '.join(accepted) or 'no arguments'} (and ignore_index)"
            )
        missing = [key for key, default in accepted.items() if default is _REQUIRED]
        missing = [key for key in missing if key not in params]
        if missing:
            raise ValueError(f"{name} requires argument(s) {', '.join(missing)}")
        for key, default in accepted.items():
            value = params.get(key, default)
            if key in self.per_class:
                value = None if value is None else _as_class_values(key, value)
            else:
                _check_nonnegative(**{key: value})  # type: ignore[arg-type]
            self.arguments[key] = value

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        return type(self).function(logits, target, **self.arguments, ignore_index=self.ignore_index)

    def extra_repr(self) -> str:
        items = [*self.arguments.items(), ("ignore_index", self.ignore_index)]
        return ", ".join(f"{key}={value!r}" for key, value in items)


class MulticlassCELoss(_MulticlassLoss):
    """Module form of :func:`ce`."""

    function = staticmethod(ce)


class MulticlassWeightedCELoss(_MulticlassLoss):
    """Module form of :func:`weighted_ce` (``weights`` required; see inverse_frequency_weights)."""

    function = staticmethod(weighted_ce)
    per_class = ("weights",)


class MulticlassDiceLoss(_MulticlassLoss):
    """Module form of :func:`dice`."""

    function = staticmethod(dice)


class MulticlassCEDiceLoss(_MulticlassLoss):
    """Module form of :func:`ce_dice`."""

    function = staticmethod(ce_dice)


class MulticlassJaccardLoss(_MulticlassLoss):
    """Module form of :func:`jaccard`."""

    function = staticmethod(jaccard)


class MulticlassTverskyLoss(_MulticlassLoss):
    """Module form of :func:`tversky`."""

    function = staticmethod(tversky)


class MulticlassFocalTverskyLoss(_MulticlassLoss):
    """Module form of :func:`focal_tversky`."""

    function = staticmethod(focal_tversky)


class MulticlassFocalLoss(_MulticlassLoss):
    """Module form of :func:`focal` (``alpha``: one weight per class, or None)."""

    function = staticmethod(focal)
    per_class = ("alpha",)


# --- registry ---------------------------------------------------------------------------------

MULTICLASS_LOSSES: dict[str, type[nn.Module]] = {
    "ce": MulticlassCELoss,
    "weighted_ce": MulticlassWeightedCELoss,
    "dice": MulticlassDiceLoss,
    "ce_dice": MulticlassCEDiceLoss,
    "jaccard": MulticlassJaccardLoss,
    "tversky": MulticlassTverskyLoss,
    "focal_tversky": MulticlassFocalTverskyLoss,
    "focal": MulticlassFocalLoss,
}


def _loss_class(name: str) -> type[_MulticlassLoss]:
    if name not in MULTICLASS_LOSSES:
        raise ValueError(
            f"unknown multi-class loss {name!r}; valid names: {', '.join(MULTICLASS_LOSSES)}"
        )
    return cast("type[_MulticlassLoss]", MULTICLASS_LOSSES[name])


def multiclass_loss_parameters(name: str) -> dict[str, object]:
    """Keyword arguments a multi-class loss accepts, with their defaults.

    ``ignore_index`` is not listed: it belongs to the data and is passed to
    :func:`create_multiclass_loss` on its own. Arguments without a default (``weights`` of
    ``weighted_ce``) map to ``None``.

    Args:
        name: A key of ``MULTICLASS_LOSSES``.

    Returns:
        ``{argument: default}`` in signature order.

    Raises:
        ValueError: If the name is unknown.

    Example:
        >>> multiclass_loss_parameters("focal_tversky")
        {'alpha': 0.3, 'beta': 0.7, 'gamma': 1.5, 'smooth': 1.0}
    """
    function = _loss_class(name).function
    return {
        key: None if default is _REQUIRED else default
        for key, default in _function_parameters(function).items()
    }


def create_multiclass_loss(
    name: str, ignore_index: int | None = IGNORE_INDEX, **params: object
) -> nn.Module:
    """Builds the multi-class loss registered under ``name``.

    Args:
        name: A key of ``MULTICLASS_LOSSES``.
        ignore_index: Target value of pixels that do not count (``None``: every pixel counts).
        **params: Arguments of that loss (see :func:`multiclass_loss_parameters`).

    Returns:
        The loss module, called as ``loss(logits, target)``.

    Raises:
        ValueError: If the name or an argument is unknown, a required argument is missing or a
            value is out of range.

    Example:
        >>> create_multiclass_loss("weighted_ce", weights=[0.2, 0.8])
        MulticlassWeightedCELoss(weights=(0.2, 0.8), ignore_index=255)
    """
    return _loss_class(name)(ignore_index, **params)
