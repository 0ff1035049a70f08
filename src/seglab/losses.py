"""Binary segmentation losses computed from logits.

Every loss takes ``(logits, target)``: logits of shape ``(N, 1, *spatial)`` straight from the
network (no sigmoid applied) and a target of the same shape holding 0/1 values (float, bool or
uint8), and returns a scalar tensor.

The functional core (``bce``, ``dice``, ...) does the arithmetic; the ``nn.Module`` classes hold
and validate the hyper-parameters. ``LOSSES`` and ``create_loss`` turn config names into modules.
The soft-overlap losses (dice, jaccard, tversky) use ``p = sigmoid(logits)`` and sum over the
whole batch, every pixel of every image together, as the seed notebooks do with ``K.flatten``; a
``smooth`` term in numerator and denominator keeps empty masks finite.

Example:
    >>> loss_fn = create_loss("tversky", alpha=0.3, beta=0.7)
    >>> loss = loss_fn(torch.zeros(2, 1, 8, 8), torch.ones(2, 1, 8, 8))
"""

from __future__ import annotations

import inspect
from numbers import Real

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def _prepare(logits: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
    """Checks shapes and returns ``(logits, target)`` as floats of at least 32 bits."""
    if logits.ndim < 2 or logits.shape[1] != 1:
        raise ValueError(
            "binary losses expect logits of shape (N, 1, *spatial) (one logit channel), "
            f"got {tuple(logits.shape)}"
        )
    if target.shape != logits.shape:
        raise ValueError(
            f"target shape {tuple(target.shape)} must equal logits shape {tuple(logits.shape)}"
        )
    # Sums over a whole batch in float16/bfloat16 (mixed precision) lose too many digits.
    dtype = torch.promote_types(logits.dtype, torch.float32)
    return logits.to(dtype), target.to(dtype)


def _soft_counts(logits: Tensor, target: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Soft true positives, false positives and false negatives summed over the whole batch."""
    logits, target = _prepare(logits, target)
    p = torch.sigmoid(logits)
    tp = (p * target).sum()
    return tp, p.sum() - tp, target.sum() - tp


# --- functional core --------------------------------------------------------------------------


def bce(logits: Tensor, target: Tensor) -> Tensor:
    """Mean binary cross-entropy.

    Shape:
        logits: ``(N, 1, *spatial)``; target: same shape, values in {0, 1}; output: scalar.
    """
    logits, target = _prepare(logits, target)
    return F.binary_cross_entropy_with_logits(logits, target)


def weighted_bce(logits: Tensor, target: Tensor, pos_weight: float, neg_weight: float) -> Tensor:
    """Mean of ``-(w+ y log p + w- (1 - y) log(1 - p))``, the first seed's weighted BCE.

    Args:
        pos_weight: ``w+``, weight of foreground pixels.
        neg_weight: ``w-``, weight of background pixels.

    Shape:
        logits: ``(N, 1, *spatial)``; target: same shape, values in {0, 1}; output: scalar.
    """
    logits, target = _prepare(logits, target)
    # logsigmoid(-x) is log(1 - sigmoid(x)) without the rounding to log(0) = -inf for large x.
    positive = pos_weight * target * F.logsigmoid(logits)
    negative = neg_weight * (1 - target) * F.logsigmoid(-logits)
    return -(positive + negative).mean()


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


def dice(logits: Tensor, target: Tensor, smooth: float = 1.0) -> Tensor:
    """Soft Dice loss ``1 - (2 Σ p y + s) / (Σ p + Σ y + s)`` over the whole batch.

    Args:
        smooth: ``s``, added to numerator and denominator.

    Shape:
        logits: ``(N, 1, *spatial)``; target: same shape, values in {0, 1}; output: scalar.
    """
    tp, fp, fn = _soft_counts(logits, target)
    return 1 - (2 * tp + smooth) / (2 * tp + fp + fn + smooth)  # Σ p + Σ y = 2 TP + FP + FN


def bce_dice(
    logits: Tensor, target: Tensor, dice_weight: float = 3.0, smooth: float = 1.0
) -> Tensor:
    """The seeds' "total loss" ``bce + dice_weight * dice``.

    Args:
        dice_weight: Weight of the Dice term; 3 in the seed.
        smooth: Smoothing term of the Dice part.

    Shape:
        logits: ``(N, 1, *spatial)``; target: same shape, values in {0, 1}; output: scalar.
    """
    return bce(logits, target) + dice_weight * dice(logits, target, smooth)


def jaccard(logits: Tensor, target: Tensor, smooth: float = 1.0) -> Tensor:
    """Soft Jaccard (IoU) loss ``1 - (Σ p y + s) / (Σ p + Σ y - Σ p y + s)`` over the batch.

    Args:
        smooth: ``s``, added to numerator and denominator.

    Shape:
        logits: ``(N, 1, *spatial)``; target: same shape, values in {0, 1}; output: scalar.
    """
    tp, fp, fn = _soft_counts(logits, target)
    return 1 - (tp + smooth) / (tp + fp + fn + smooth)


def tversky(
    logits: Tensor, target: Tensor, alpha: float = 0.3, beta: float = 0.7, smooth: float = 1.0
) -> Tensor:
    """Tversky loss ``1 - TI`` with ``TI = (TP + s) / (TP + α FP + β FN + s)``.

    ``TP = Σ p y``, ``FP = Σ p (1 - y)`` and ``FN = Σ (1 - p) y`` over the whole batch;
    ``beta > alpha`` penalises missed foreground more than false alarms.

    Args:
        alpha: Weight of false positives.
        beta: Weight of false negatives.
        smooth: ``s``, added to numerator and denominator.

    Shape:
        logits: ``(N, 1, *spatial)``; target: same shape, values in {0, 1}; output: scalar.
    """
    tp, fp, fn = _soft_counts(logits, target)
    return 1 - (tp + smooth) / (tp + alpha * fp + beta * fn + smooth)


def focal_tversky(
    logits: Tensor,
    target: Tensor,
    alpha: float = 0.3,
    beta: float = 0.7,
    gamma: float = 1.5,
    smooth: float = 1.0,
) -> Tensor:
    """Focal Tversky loss ``(1 - TI) ** gamma`` (see :func:`tversky`).

    Args:
        alpha: Weight of false positives.
        beta: Weight of false negatives.
        gamma: Focusing exponent; 1 gives the Tversky loss.
        smooth: ``s``, added to numerator and denominator.

    Shape:
        logits: ``(N, 1, *spatial)``; target: same shape, values in {0, 1}; output: scalar.
    """
    # Rounding can make 1 - TI = -1e-8, and a negative base to a fractional power is NaN.
    return tversky(logits, target, alpha, beta, smooth).clamp_min(0) ** gamma


def focal(logits: Tensor, target: Tensor, alpha: float | None = 0.25, gamma: float = 2.0) -> Tensor:
    """Mean sigmoid focal loss ``-α_t (1 - p_t)^γ log p_t`` (Lin et al., 2017).

    ``p_t`` is the probability given to the true class; ``α_t`` is ``alpha`` on foreground
    pixels and ``1 - alpha`` on background pixels.

    Args:
        alpha: Foreground weight in [0, 1]; ``None`` weights both classes equally (α_t = 1).
        gamma: Focusing exponent; 0 with ``alpha=None`` gives plain BCE.

    Shape:
        logits: ``(N, 1, *spatial)``; target: same shape, values in {0, 1}; output: scalar.
    """
    logits, target = _prepare(logits, target)
    ce = F.binary_cross_entropy_with_logits(logits, target, reduction="none")  # -log p_t
    # For y in {0, 1}, 1 - p_t = sigmoid((1 - 2y) x); going through logsigmoid keeps the factor
    # and its gradient finite for saturated logits, even with gamma < 1.
    loss = torch.exp(gamma * F.logsigmoid((1 - 2 * target) * logits)) * ce
    if alpha is not None:
        loss = (alpha * target + (1 - alpha) * (1 - target)) * loss
    return loss.mean()


# --- modules ----------------------------------------------------------------------------------


def _check_nonnegative(**values: float) -> None:
    for name, value in values.items():
        if not isinstance(value, Real) or not value >= 0:  # `not >=` also rejects NaN
            raise ValueError(f"{name} must be a number >= 0, got {value!r}")


def _init_parameters(cls: type[nn.Module]) -> list[inspect.Parameter]:
    params = inspect.signature(cls.__init__).parameters.values()
    return [p for p in params if p.name != "self" and p.kind is p.POSITIONAL_OR_KEYWORD]


class _BinaryLoss(nn.Module):
    """Shows the constructor arguments in ``repr``, so logs say which loss a run used."""

    def extra_repr(self) -> str:
        return ", ".join(
            f"{p.name}={getattr(self, p.name)!r}" for p in _init_parameters(type(self))
        )


class BCELoss(_BinaryLoss):
    """Module form of :func:`bce`."""

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        return bce(logits, target)


class WeightedBCELoss(_BinaryLoss):
    """Module form of :func:`weighted_bce`; see :func:`class_weights_from_fraction`."""

    def __init__(self, pos_weight: float, neg_weight: float) -> None:
        super().__init__()
        _check_nonnegative(pos_weight=pos_weight, neg_weight=neg_weight)
        self.pos_weight, self.neg_weight = pos_weight, neg_weight

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        return weighted_bce(logits, target, self.pos_weight, self.neg_weight)


class DiceLoss(_BinaryLoss):
    """Module form of :func:`dice`."""

    def __init__(self, smooth: float = 1.0) -> None:
        super().__init__()
        _check_nonnegative(smooth=smooth)
        self.smooth = smooth

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        return dice(logits, target, self.smooth)


class BCEDiceLoss(_BinaryLoss):
    """Module form of :func:`bce_dice`."""

    def __init__(self, dice_weight: float = 3.0, smooth: float = 1.0) -> None:
        super().__init__()
        _check_nonnegative(dice_weight=dice_weight, smooth=smooth)
        self.dice_weight, self.smooth = dice_weight, smooth

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        return bce_dice(logits, target, self.dice_weight, self.smooth)


class JaccardLoss(_BinaryLoss):
    """Module form of :func:`jaccard`."""

    def __init__(self, smooth: float = 1.0) -> None:
        super().__init__()
        _check_nonnegative(smooth=smooth)
        self.smooth = smooth

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        return jaccard(logits, target, self.smooth)


class TverskyLoss(_BinaryLoss):
    """Module form of :func:`tversky`."""

    def __init__(self, alpha: float = 0.3, beta: float = 0.7, smooth: float = 1.0) -> None:
        super().__init__()
        _check_nonnegative(alpha=alpha, beta=beta, smooth=smooth)
        self.alpha, self.beta, self.smooth = alpha, beta, smooth

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        return tversky(logits, target, self.alpha, self.beta, self.smooth)


class FocalTverskyLoss(_BinaryLoss):
    """Module form of :func:`focal_tversky`."""

    def __init__(
        self, alpha: float = 0.3, beta: float = 0.7, gamma: float = 1.5, smooth: float = 1.0
    ) -> None:
        super().__init__()
        _check_nonnegative(alpha=alpha, beta=beta, gamma=gamma, smooth=smooth)
        self.alpha, self.beta, self.gamma, self.smooth = alpha, beta, gamma, smooth

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        return focal_tversky(logits, target, self.alpha, self.beta, self.gamma, self.smooth)


class FocalLoss(_BinaryLoss):
    """Module form of :func:`focal`."""

    def __init__(self, alpha: float | None = 0.25, gamma: float = 2.0) -> None:
        super().__init__()
        if alpha is not None and (not isinstance(alpha, Real) or not 0 <= alpha <= 1):
            raise ValueError(f"alpha must be in [0, 1] or None, got {alpha!r}")
        _check_nonnegative(gamma=gamma)
        self.alpha, self.gamma = alpha, gamma

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        return focal(logits, target, self.alpha, self.gamma)


# --- registry ---------------------------------------------------------------------------------

LOSSES: dict[str, type[nn.Module]] = {
    "bce": BCELoss,
    "weighted_bce": WeightedBCELoss,
    "dice": DiceLoss,
    "bce_dice": BCEDiceLoss,
    "jaccard": JaccardLoss,
    "tversky": TverskyLoss,
    "focal_tversky": FocalTverskyLoss,
    "focal": FocalLoss,
}


def _loss_class(name: str) -> type[nn.Module]:
    if name not in LOSSES:
        raise ValueError(f"unknown loss {name!r}; valid names: {', '.join(LOSSES)}")
    return LOSSES[name]


def loss_parameters(name: str) -> dict[str, object]:
    """Keyword arguments a loss accepts, with their defaults.

    Arguments without a default (``pos_weight`` and ``neg_weight`` of ``weighted_bce``, which
    training computes from the data) map to ``None``.

    Args:
        name: A key of ``LOSSES``.

    Example:
        >>> loss_parameters("tversky")
        {'alpha': 0.3, 'beta': 0.7, 'smooth': 1.0}
    """
    return {
        p.name: None if p.default is p.empty else p.default
        for p in _init_parameters(_loss_class(name))
    }


def create_loss(name: str, **kwargs: object) -> nn.Module:
    """Builds the loss module registered under ``name``.

    Args:
        name: A key of ``LOSSES``.
        **kwargs: Constructor arguments of that loss (see :func:`loss_parameters`).

    Example:
        >>> create_loss("focal_tversky", gamma=2.0)
        FocalTverskyLoss(alpha=0.3, beta=0.7, gamma=2.0, smooth=1.0)
    """
    cls = _loss_class(name)
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
