"""The functional core of the binary losses: plain ``loss(logits, target, ...)`` functions.

Every loss takes ``(logits, target)``: logits of shape ``(N, 1, *spatial)`` straight from the
network (no sigmoid applied) and a target of the same shape holding 0/1 values (float, bool or
uint8), and returns a scalar tensor.

These functions do the arithmetic; the ``nn.Module`` classes of `seglab.objectives.losses` hold
and validate the hyper-parameters, and ``create_loss(name, mode="binary")`` builds them from
config names. The soft-overlap losses (dice, jaccard, tversky) use ``p = sigmoid(logits)`` and sum
over the whole batch, every pixel of every image together, as the seed notebooks do with
``K.flatten``; a ``smooth`` term in numerator and denominator keeps empty masks finite.

Example:
    >>> loss = tversky(torch.zeros(2, 1, 8, 8), torch.ones(2, 1, 8, 8), alpha=0.3, beta=0.7)
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


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
