"""The functional core of the multi-class losses: plain ``loss(logits, target, ...)`` functions.

Every loss takes ``(logits, target)``: logits of shape ``(N, C, *spatial)`` straight from the
network (no softmax applied) and a target of shape ``(N, *spatial)`` holding integer class
indices in ``[0, C)``, or ``ignore_index`` (``IGNORE_INDEX`` = 255 by default, Cityscapes' void)
for pixels that must not count. Probabilities are ``softmax(logits, dim=1)``: seed 001 applied
binary cross-entropy to softmax outputs; here every loss is a multi-class one. Arithmetic is done
in float32 at least, so the losses are safe under mixed precision.

Ignored pixels contribute nothing to any numerator or denominator: their logits are replaced by
zeros before the softmax and their terms by exact zeros, so changing the target or the logits only
at ignored pixels gives a bit-identical loss, and the gradient at those pixels is exactly 0.

The soft-overlap losses (dice, jaccard, tversky, focal_tversky) compute, for each class c, soft
counts summed over the whole batch, as the binary losses and the seed's ``K.flatten`` do::

    TP_c = Σ p_c y_c,   FP_c = Σ p_c (1 - y_c),   FN_c = Σ (1 - p_c) y_c

then a per-class score with a ``smooth`` term in numerator and denominator, and average the
scores over the C classes (a "macro" mean: a rare class weighs as much as the road, where the
seed's flattening of every channel together let road and sky dominate).

The ``nn.Module`` wrappers live in `seglab.objectives.losses`, built by
``create_loss(name, mode="multiclass")``.

Example:
    >>> loss = ce_dice(torch.zeros(2, 8, 16, 16), torch.zeros(2, 16, 16, dtype=torch.long))
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from seglab.objectives import IGNORE_INDEX


def _prepare(
    logits: Tensor, target: Tensor, ignore_index: int | None
) -> tuple[Tensor, Tensor, Tensor]:
    """Checks shapes and values; returns float logits, int64 target and the valid-pixel mask.

    Ignored pixels get zero logits and class 0 so that later arithmetic stays finite there; the
    mask (bool, shape of ``target``) removes their contribution.
    """
    if logits.ndim < 3:
        raise ValueError(
            f"multi-class losses expect logits of shape (N, C, *spatial), got {tuple(logits.shape)}"
        )
    expected = (logits.shape[0], *logits.shape[2:])
    if tuple(target.shape) != expected:
        raise ValueError(
            f"target shape {tuple(target.shape)} must be (N, *spatial) = {expected} for logits "
            f"of shape {tuple(logits.shape)}; pass class indices, not one-hot masks"
        )
    if target.is_floating_point() or target.is_complex() or target.dtype == torch.bool:
        raise ValueError(f"target must hold integer class indices, got dtype {target.dtype}")
    num_classes = logits.shape[1]
    target = target.long()
    valid = (
        torch.ones_like(target, dtype=torch.bool)
        if ignore_index is None
        else target != ignore_index
    )
    out_of_range = valid & ((target < 0) | (target >= num_classes))
    if out_of_range.any():
        value = target[out_of_range][0].item()
        raise ValueError(
            f"target holds class index {value}, outside [0, {num_classes}) for {num_classes} "
            f"logit channels and not ignore_index ({ignore_index}); check num_classes and "
            "the label mapping"
        )
    # Sums over a whole batch in float16/bfloat16 (mixed precision) lose too many digits.
    dtype = torch.promote_types(logits.dtype, torch.float32)
    logits = torch.where(valid.unsqueeze(1), logits.to(dtype), 0.0)
    return logits, torch.where(valid, target, 0), valid


def _soft_counts(
    logits: Tensor, target: Tensor, ignore_index: int | None
) -> tuple[Tensor, Tensor, Tensor]:
    """Per-class soft ``(TP, FP, FN)`` summed over the batch and valid pixels, each ``(C,)``."""
    logits, target, valid = _prepare(logits, target, ignore_index)
    weight = valid.unsqueeze(1).to(logits.dtype)
    probs = torch.softmax(logits, dim=1) * weight
    # scatter_ writes each position once (unlike scatter_add_), so it is deterministic on GPUs.
    truth = torch.zeros_like(probs).scatter_(1, target.unsqueeze(1), 1.0) * weight
    dims = [0, *range(2, probs.ndim)]
    tp = (probs * truth).sum(dims)
    return tp, probs.sum(dims) - tp, truth.sum(dims) - tp


def _smoothed_ratio(numerator: Tensor, denominator: Tensor, smooth: float) -> Tensor:
    """``(numerator + s) / (denominator + s)``; 1 for 0 / 0 (nothing to find, nothing found)."""
    den = denominator + smooth
    defined = den > 0
    return torch.where(defined, (numerator + smooth) / torch.where(defined, den, 1.0), 1.0)


def _pixel_nll(
    logits: Tensor, target: Tensor, ignore_index: int | None
) -> tuple[Tensor, Tensor, Tensor]:
    """``-log p_true`` per pixel (0 where ignored), the target (0 where ignored) and the mask."""
    logits, target, valid = _prepare(logits, target, ignore_index)
    log_probs = torch.log_softmax(logits, dim=1)
    nll = -log_probs.gather(1, target.unsqueeze(1)).squeeze(1)
    return torch.where(valid, nll, 0.0), target, valid


def _class_values(values: Sequence[float], num_classes: int, name: str, like: Tensor) -> Tensor:
    if len(values) != num_classes:
        raise ValueError(
            f"{name} has {len(values)} values but the logits have {num_classes} classes; "
            "give one value per class"
        )
    return torch.tensor(values, dtype=like.dtype, device=like.device)


# --- functional core --------------------------------------------------------------------------


def ce(logits: Tensor, target: Tensor, ignore_index: int | None = IGNORE_INDEX) -> Tensor:
    """Mean softmax cross-entropy ``-log p_true`` over the non-ignored pixels (0 if there are none).

    Shape:
        logits: ``(N, C, *spatial)``; target: ``(N, *spatial)`` class indices; output: scalar.
    """
    nll, _, valid = _pixel_nll(logits, target, ignore_index)
    return nll.sum() / valid.sum().clamp_min(1)


def weighted_ce(
    logits: Tensor,
    target: Tensor,
    weights: Sequence[float],
    ignore_index: int | None = IGNORE_INDEX,
) -> Tensor:
    """Class-weighted cross-entropy ``Σ w_y (-log p_y) / Σ w_y`` over the non-ignored pixels.

    Normalised by the summed weights of the pixels' true classes (PyTorch's convention), so the
    weights' overall scale does not matter and :func:`inverse_frequency_weights` (summing to 1) can
    be passed as is. 0 when no pixel has a nonzero weight.

    Args:
        weights: One weight ``w_c >= 0`` per class.

    Shape:
        logits: ``(N, C, *spatial)``; target: ``(N, *spatial)`` class indices; output: scalar.
    """
    nll, target, valid = _pixel_nll(logits, target, ignore_index)
    w = _class_values(weights, logits.shape[1], "weights", nll)
    pixel_weights = torch.where(valid, w[target], 0.0)
    total = pixel_weights.sum()
    return (pixel_weights * nll).sum() / torch.where(total > 0, total, 1.0)


def dice(
    logits: Tensor, target: Tensor, smooth: float = 1.0, ignore_index: int | None = IGNORE_INDEX
) -> Tensor:
    """Soft Dice loss ``1 - mean_c (2 TP_c + s) / (2 TP_c + FP_c + FN_c + s)``.

    A class with no true and (almost) no predicted pixel in the batch scores about 1 thanks to
    ``s``; a class predicted but absent scores about 0, so false alarms are penalised.

    Args:
        smooth: ``s``, added to numerator and denominator of every class.

    Shape:
        logits: ``(N, C, *spatial)``; target: ``(N, *spatial)`` class indices; output: scalar.
    """
    tp, fp, fn = _soft_counts(logits, target, ignore_index)
    return 1 - _smoothed_ratio(2 * tp, 2 * tp + fp + fn, smooth).mean()


def ce_dice(
    logits: Tensor,
    target: Tensor,
    dice_weight: float = 3.0,
    smooth: float = 1.0,
    ignore_index: int | None = IGNORE_INDEX,
) -> Tensor:
    """The seeds' "total loss" ``ce + dice_weight * dice``, with a softmax cross-entropy.

    Args:
        dice_weight: Weight of the Dice term; 3 in seed 001.
        smooth: Smoothing term of the Dice part.

    Shape:
        logits: ``(N, C, *spatial)``; target: ``(N, *spatial)`` class indices; output: scalar.
    """
    return ce(logits, target, ignore_index) + dice_weight * dice(
        logits, target, smooth, ignore_index
    )


def jaccard(
    logits: Tensor, target: Tensor, smooth: float = 1.0, ignore_index: int | None = IGNORE_INDEX
) -> Tensor:
    """Soft Jaccard (IoU) loss ``1 - mean_c (TP_c + s) / (TP_c + FP_c + FN_c + s)``.

    Args:
        smooth: ``s``, added to numerator and denominator of every class.

    Shape:
        logits: ``(N, C, *spatial)``; target: ``(N, *spatial)`` class indices; output: scalar.
    """
    tp, fp, fn = _soft_counts(logits, target, ignore_index)
    return 1 - _smoothed_ratio(tp, tp + fp + fn, smooth).mean()


def _tversky_indices(
    logits: Tensor,
    target: Tensor,
    alpha: float,
    beta: float,
    smooth: float,
    ignore_index: int | None,
) -> Tensor:
    tp, fp, fn = _soft_counts(logits, target, ignore_index)
    return _smoothed_ratio(tp, tp + alpha * fp + beta * fn, smooth)


def tversky(
    logits: Tensor,
    target: Tensor,
    alpha: float = 0.3,
    beta: float = 0.7,
    smooth: float = 1.0,
    ignore_index: int | None = IGNORE_INDEX,
) -> Tensor:
    """Tversky loss ``1 - mean_c TI_c``, ``TI_c = (TP_c + s) / (TP_c + α FP_c + β FN_c + s)``.

    Args:
        alpha: Weight of false positives (0.3 in seed 001).
        beta: Weight of false negatives (0.7 in seed 001); ``beta > alpha`` penalises missed
            pixels of a class more than false alarms.
        smooth: ``s``, added to numerator and denominator of every class.

    Shape:
        logits: ``(N, C, *spatial)``; target: ``(N, *spatial)`` class indices; output: scalar.
    """
    return 1 - _tversky_indices(logits, target, alpha, beta, smooth, ignore_index).mean()


def focal_tversky(
    logits: Tensor,
    target: Tensor,
    alpha: float = 0.3,
    beta: float = 0.7,
    gamma: float = 1.5,
    smooth: float = 1.0,
    ignore_index: int | None = IGNORE_INDEX,
) -> Tensor:
    """Focal Tversky loss ``mean_c (1 - TI_c) ** gamma`` (see :func:`tversky`).

    The exponent is applied as written, ``(1 - TI) ** gamma`` with ``gamma = 1.5``, exactly as
    seed 001 (``K.pow(tversky_loss, gamma)``) and seglab's binary ``focal_tversky``. Abraham &
    Khan (2019) write ``(1 - TI) ** (1 / gamma)`` with gamma in [1, 3]; the seed's 1.5 is their
    gamma = 2/3. With an exponent above 1 a class's gradient fades as its TI approaches 1, so
    training concentrates on the classes still badly segmented. The exponent is applied per
    class, then averaged, so each class is focused on its own error.

    Args:
        alpha: Weight of false positives.
        beta: Weight of false negatives.
        gamma: Exponent; 1 gives the Tversky loss.
        smooth: ``s``, added to numerator and denominator of every class.

    Shape:
        logits: ``(N, C, *spatial)``; target: ``(N, *spatial)`` class indices; output: scalar.
    """
    ti = _tversky_indices(logits, target, alpha, beta, smooth, ignore_index)
    # Clamped: rounding can give 1 - TI = -1e-8 (NaN under a fractional power), and at exactly
    # 0 the power's gradient is infinite for gamma < 1.
    return ((1 - ti).clamp_min(torch.finfo(ti.dtype).tiny) ** gamma).mean()


def focal(
    logits: Tensor,
    target: Tensor,
    gamma: float = 2.0,
    alpha: Sequence[float] | None = None,
    ignore_index: int | None = IGNORE_INDEX,
) -> Tensor:
    """Mean softmax focal loss ``-α_y (1 - p_y)^γ log p_y`` (Lin et al., 2017) over valid pixels.

    Args:
        gamma: Focusing exponent; 0 with ``alpha=None`` gives :func:`ce`.
        alpha: One weight per class (``α_y`` is the weight of the pixel's true class), or
            ``None`` for 1 everywhere. The mean is over pixels (not normalised by the weights).

    Shape:
        logits: ``(N, C, *spatial)``; target: ``(N, *spatial)`` class indices; output: scalar.
    """
    nll, target, valid = _pixel_nll(logits, target, ignore_index)
    # 1 - p_y = -expm1(-nll) without cancellation; clamped so the power's gradient stays finite
    # at p_y = 1 when gamma < 1.
    loss = (-torch.expm1(-nll)).clamp_min(torch.finfo(nll.dtype).tiny) ** gamma * nll
    if alpha is not None:
        a = _class_values(alpha, logits.shape[1], "alpha", nll)
        loss = a[target] * loss
    return torch.where(valid, loss, 0.0).sum() / valid.sum().clamp_min(1)
