"""The ``nn.Module`` form of every loss, built by name through `seglab.objectives.losses`.

Each module checks the hyper-parameters of one functional loss once (binary ones from
`seglab.objectives.binary_losses`, multi-class ones from `seglab.objectives.multiclass_losses`)
and shows them in ``repr``, so logs say which loss a run used. :class:`ConfigurableLoss` is what
the registry needs of a class: the config keys it accepts and a constructor from them.

Example:
    >>> TverskyLoss(alpha=0.3, beta=0.7)
    TverskyLoss(alpha=0.3, beta=0.7, smooth=1.0)
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Sequence
from numbers import Real
from typing import ClassVar

import numpy as np
from torch import Tensor, nn

from seglab.objectives import IGNORE_INDEX, binary_losses, multiclass_losses


def _check_nonnegative(**values: float) -> None:
    for name, value in values.items():
        if not isinstance(value, Real) or not value >= 0:  # `not >=` also rejects NaN
            raise ValueError(f"{name} must be a number >= 0, got {value!r}")


def _init_parameters(cls: type[nn.Module]) -> list[inspect.Parameter]:
    params = inspect.signature(cls.__init__).parameters.values()
    return [p for p in params if p.name != "self" and p.kind is p.POSITIONAL_OR_KEYWORD]


class ConfigurableLoss(nn.Module):
    """A loss module built from a config name and keyword arguments (see :func:`create_loss`)."""

    @classmethod
    def config_parameters(cls) -> dict[str, object]:
        """``{argument: default}`` of the config keys it accepts; ``None`` where required."""
        raise NotImplementedError

    @classmethod
    def from_config(cls, name: str, **kwargs: object) -> nn.Module:
        """Builds it from config arguments; ``name`` is its registry key, for error messages."""
        raise NotImplementedError


class _BinaryLoss(ConfigurableLoss):
    """Shows the constructor arguments in ``repr``, so logs say which loss a run used."""

    def extra_repr(self) -> str:
        return ", ".join(
            f"{p.name}={getattr(self, p.name)!r}" for p in _init_parameters(type(self))
        )

    @classmethod
    def config_parameters(cls) -> dict[str, object]:
        return {p.name: None if p.default is p.empty else p.default for p in _init_parameters(cls)}

    @classmethod
    def from_config(cls, name: str, **kwargs: object) -> nn.Module:
        params = _init_parameters(cls)
        unknown = sorted(set(kwargs) - {p.name for p in params})
        if unknown:
            accepted = ", ".join(p.name for p in params) or "no arguments"
            raise ValueError(
                f"loss {name!r} got unknown argument(s) {', '.join(unknown)}; accepted: {accepted}"
            )
        missing = [p.name for p in params if p.default is p.empty and p.name not in kwargs]
        if missing:
            raise ValueError(f"loss {name!r} requires argument(s) {', '.join(missing)}")
        return cls(**kwargs)


class BCELoss(_BinaryLoss):
    """Module form of :func:`binary_losses.bce`."""

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        return binary_losses.bce(logits, target)


class WeightedBCELoss(_BinaryLoss):
    """Module form of :func:`binary_losses.weighted_bce` (see ``class_weights_from_fraction``)."""

    def __init__(self, pos_weight: float, neg_weight: float) -> None:
        super().__init__()
        _check_nonnegative(pos_weight=pos_weight, neg_weight=neg_weight)
        self.pos_weight, self.neg_weight = pos_weight, neg_weight

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        return binary_losses.weighted_bce(logits, target, self.pos_weight, self.neg_weight)


class DiceLoss(_BinaryLoss):
    """Module form of :func:`binary_losses.dice`."""

    def __init__(self, smooth: float = 1.0) -> None:
        super().__init__()
        _check_nonnegative(smooth=smooth)
        self.smooth = smooth

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        return binary_losses.dice(logits, target, self.smooth)


class BCEDiceLoss(_BinaryLoss):
    """Module form of :func:`binary_losses.bce_dice`."""

    def __init__(self, dice_weight: float = 3.0, smooth: float = 1.0) -> None:
        super().__init__()
        _check_nonnegative(dice_weight=dice_weight, smooth=smooth)
        self.dice_weight, self.smooth = dice_weight, smooth

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        return binary_losses.bce_dice(logits, target, self.dice_weight, self.smooth)


class JaccardLoss(_BinaryLoss):
    """Module form of :func:`binary_losses.jaccard`."""

    def __init__(self, smooth: float = 1.0) -> None:
        super().__init__()
        _check_nonnegative(smooth=smooth)
        self.smooth = smooth

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        return binary_losses.jaccard(logits, target, self.smooth)


class TverskyLoss(_BinaryLoss):
    """Module form of :func:`binary_losses.tversky`."""

    def __init__(self, alpha: float = 0.3, beta: float = 0.7, smooth: float = 1.0) -> None:
        super().__init__()
        _check_nonnegative(alpha=alpha, beta=beta, smooth=smooth)
        self.alpha, self.beta, self.smooth = alpha, beta, smooth

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        return binary_losses.tversky(logits, target, self.alpha, self.beta, self.smooth)


class FocalTverskyLoss(_BinaryLoss):
    """Module form of :func:`binary_losses.focal_tversky`."""

    def __init__(
        self, alpha: float = 0.3, beta: float = 0.7, gamma: float = 1.5, smooth: float = 1.0
    ) -> None:
        super().__init__()
        _check_nonnegative(alpha=alpha, beta=beta, gamma=gamma, smooth=smooth)
        self.alpha, self.beta, self.gamma, self.smooth = alpha, beta, gamma, smooth

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        return binary_losses.focal_tversky(
            logits, target, self.alpha, self.beta, self.gamma, self.smooth
        )


class FocalLoss(_BinaryLoss):
    """Module form of :func:`binary_losses.focal`."""

    def __init__(self, alpha: float | None = 0.25, gamma: float = 2.0) -> None:
        super().__init__()
        if alpha is not None and (not isinstance(alpha, Real) or not 0 <= alpha <= 1):
            raise ValueError(f"alpha must be in [0, 1] or None, got {alpha!r}")
        _check_nonnegative(gamma=gamma)
        self.alpha, self.gamma = alpha, gamma

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        return binary_losses.focal(logits, target, self.alpha, self.gamma)


# --- multi-class modules ----------------------------------------------------------------------


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


class _MulticlassLoss(ConfigurableLoss):
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

    @classmethod
    def config_parameters(cls) -> dict[str, object]:
        # ignore_index is left out: it belongs to the data, not to the loss section of a config.
        return {
            key: None if default is _REQUIRED else default
            for key, default in _function_parameters(cls.function).items()
        }

    @classmethod
    def from_config(cls, name: str, **kwargs: object) -> nn.Module:
        return cls(**kwargs)  # type: ignore[arg-type]


class MulticlassCELoss(_MulticlassLoss):
    """Module form of :func:`multiclass_losses.ce`."""

    function = staticmethod(multiclass_losses.ce)


class MulticlassWeightedCELoss(_MulticlassLoss):
    """Module form of :func:`multiclass_losses.weighted_ce` (``weights`` required).

    See ``inverse_frequency_weights`` for weights computed from the training masks.
    """

    function = staticmethod(multiclass_losses.weighted_ce)
    per_class = ("weights",)


class MulticlassDiceLoss(_MulticlassLoss):
    """Module form of :func:`multiclass_losses.dice`."""

    function = staticmethod(multiclass_losses.dice)


class MulticlassCEDiceLoss(_MulticlassLoss):
    """Module form of :func:`multiclass_losses.ce_dice`."""

    function = staticmethod(multiclass_losses.ce_dice)


class MulticlassJaccardLoss(_MulticlassLoss):
    """Module form of :func:`multiclass_losses.jaccard`."""

    function = staticmethod(multiclass_losses.jaccard)


class MulticlassTverskyLoss(_MulticlassLoss):
    """Module form of :func:`multiclass_losses.tversky`."""

    function = staticmethod(multiclass_losses.tversky)


class MulticlassFocalTverskyLoss(_MulticlassLoss):
    """Module form of :func:`multiclass_losses.focal_tversky`."""

    function = staticmethod(multiclass_losses.focal_tversky)


class MulticlassFocalLoss(_MulticlassLoss):
    """Module form of :func:`multiclass_losses.focal` (``alpha``: one weight per class or None)."""

    function = staticmethod(multiclass_losses.focal)
    per_class = ("alpha",)
