"""Tests of the binary losses (seglab.objectives.binary_losses and the registry's binary mode):
golden values computed by hand, stability, gradients and the registry."""

from __future__ import annotations

import math

import pytest
import torch

from seglab.objectives import binary_losses
from seglab.objectives.losses import (
    LOSSES,
    class_weights_from_fraction,
    create_loss,
    loss_parameters,
)

BINARY_LOSSES = LOSSES["binary"]

LN3 = math.log(3)
LN2 = math.log(2)
LN4_3 = math.log(4 / 3)

# Example A, one 2x2 image. sigmoid(0) = 1/2, sigmoid(ln 3) = 3/4, sigmoid(-ln 3) = 1/4.
#   p = [1/2, 3/4, 1/4, 1/2], y = [1, 1, 0, 0]
#   Σp = 2, Σy = 2, TP = Σpy = 1/2 + 3/4 = 5/4, FP = 1/4 + 1/2 = 3/4, FN = 1/2 + 1/4 = 3/4
#   per-pixel BCE: -log(1/2), -log(3/4), -log(3/4), -log(1/2) = ln2, ln(4/3), ln(4/3), ln2
LOGITS_A = [0.0, LN3, -LN3, 0.0]
TARGET_A = [1.0, 1.0, 0.0, 0.0]
# Example B, asymmetric errors, to tell alpha from beta.
#   p = [3/4, 1/2, 1/4, 3/4], y = [1, 1, 1, 0]
#   TP = 3/4 + 1/2 + 1/4 = 3/2, FP = 3/4, FN = 1/4 + 1/2 + 3/4 = 3/2
#   per-pixel BCE: -log(3/4), -log(1/2), -log(1/4), -log(1/4) = ln(4/3), ln2, 2 ln2, 2 ln2
LOGITS_B = [LN3, 0.0, -LN3, LN3]
TARGET_B = [1.0, 1.0, 1.0, 0.0]

BCE_A = (2 * LN2 + 2 * LN4_3) / 4  # = ln(8/3) / 2 ≈ 0.4904

GOLDEN = [
    # name, kwargs, example, expected
    ("bce", {}, "A", BCE_A),
    ("bce", {}, "B", (LN4_3 + 5 * LN2) / 4),
    # (2 ln2 + 2 ln(4/3) + 0.5 ln(4/3) + 0.5 ln2) / 4 = 2.5 ln(8/3) / 4
    ("weighted_bce", {"pos_weight": 2.0, "neg_weight": 0.5}, "A", 2.5 * math.log(8 / 3) / 4),
    # example A treats both classes alike, so B tells w+ from w-:
    # (2 ln(4/3) + 2 ln2 + 2 * 2 ln2 + 0.5 * 2 ln2) / 4
    ("weighted_bce", {"pos_weight": 2.0, "neg_weight": 0.5}, "B", (2 * LN4_3 + 7 * LN2) / 4),
    # 1 - (2 * 5/4 + 1) / (2 + 2 + 1) = 1 - 3.5 / 5 = 0.3
    ("dice", {}, "A", 0.3),
    # smooth 0: 1 - (5/2) / 4 = 3/8
    ("dice", {"smooth": 0.0}, "A", 3 / 8),
    # BCE + 3 * 0.3
    ("bce_dice", {}, "A", BCE_A + 0.9),
    ("bce_dice", {"dice_weight": 1.0}, "A", BCE_A + 0.3),
    # 1 - (5/4 + 1) / (2 + 2 - 5/4 + 1) = 1 - 2.25 / 3.75 = 0.4
    ("jaccard", {}, "A", 0.4),
    # 1 - (5/4 + 1) / (5/4 + 0.3 * 3/4 + 0.7 * 3/4 + 1) = 1 - 2.25 / 3 = 0.25
    ("tversky", {}, "A", 0.25),
    # 1 - (3/2 + 1) / (3/2 + 0.2 * 3/4 + 0.8 * 3/2 + 1) = 1 - 2.5 / 3.85 = 27/77
    ("tversky", {"alpha": 0.2, "beta": 0.8}, "B", 27 / 77),
    # swapped weights: 1 - 2.5 / (3/2 + 0.8 * 3/4 + 0.2 * 3/2 + 1) = 1 - 2.5 / 3.4 = 9/34
    ("tversky", {"alpha": 0.8, "beta": 0.2}, "B", 9 / 34),
    # 0.25 ** 1.5 = 0.125
    ("focal_tversky", {}, "A", 0.125),
    # (27/77) ** 2
    ("focal_tversky", {"alpha": 0.2, "beta": 0.8, "gamma": 2.0}, "B", (27 / 77) ** 2),
    # α_t = [.25, .25, .75, .75], (1 - p_t)^2 = [1/4, 1/16, 1/16, 1/4], -log p_t as BCE above:
    # (.0625 ln2 + .015625 ln(4/3) + .046875 ln(4/3) + .1875 ln2) / 4
    ("focal", {}, "A", (0.25 * LN2 + 0.0625 * LN4_3) / 4),
    # B: α_t = [.25, .25, .25, .75], (1 - p_t)^2 = [1/16, 1/4, 9/16, 9/16],
    # -log p_t = [ln(4/3), ln2, 2 ln2, 2 ln2]:
    # (.015625 ln(4/3) + .0625 ln2 + .28125 ln2 + .84375 ln2) / 4
    ("focal", {}, "B", (0.015625 * LN4_3 + 1.1875 * LN2) / 4),
    # α = 0.5, γ = 1: (.25 ln2 + .125 ln(4/3) + .125 ln(4/3) + .25 ln2) / 4
    ("focal", {"alpha": 0.5, "gamma": 1.0}, "A", (0.5 * LN2 + 0.25 * LN4_3) / 4),
    # no α, γ = 2: (.25 ln2 + .0625 ln(4/3) + .0625 ln(4/3) + .25 ln2) / 4
    ("focal", {"alpha": None, "gamma": 2.0}, "A", (0.5 * LN2 + 0.125 * LN4_3) / 4),
]

NEEDED_KWARGS: dict[str, dict[str, object]] = {
    "weighted_bce": {"pos_weight": 0.9, "neg_weight": 0.1}
}


def _example(which: str) -> tuple[torch.Tensor, torch.Tensor]:
    logits, target = (LOGITS_A, TARGET_A) if which == "A" else (LOGITS_B, TARGET_B)
    return torch.tensor(logits).reshape(1, 1, 2, 2), torch.tensor(target).reshape(1, 1, 2, 2)


@pytest.mark.parametrize(("name", "kwargs", "example", "expected"), GOLDEN)
def test_golden_values(name: str, kwargs: dict, example: str, expected: float) -> None:
    logits, target = _example(example)
    assert create_loss(name, **kwargs)(logits, target).item() == pytest.approx(expected, rel=1e-5)
    # The functional core gives the same value.
    assert getattr(binary_losses, name)(logits, target, **kwargs).item() == pytest.approx(
        expected, rel=1e-5
    )


def test_golden_values_cover_every_loss() -> None:
    assert {name for name, *_ in GOLDEN} == set(BINARY_LOSSES)


def test_overlap_losses_pool_the_whole_batch() -> None:
    # Example A split into two images of two pixels: the batch sums are unchanged.
    logits, target = _example("A")
    two_images = (logits.reshape(2, 1, 1, 2), target.reshape(2, 1, 1, 2))
    assert binary_losses.dice(*two_images).item() == pytest.approx(0.3)
    assert binary_losses.jaccard(*two_images).item() == pytest.approx(0.4)


def test_focal_without_alpha_or_gamma_is_bce() -> None:
    logits, target = torch.randn(2, 1, 5, 5), (torch.rand(2, 1, 5, 5) > 0.5).float()
    focal = binary_losses.focal(logits, target, alpha=None, gamma=0.0)
    assert focal.item() == pytest.approx(binary_losses.bce(logits, target).item(), rel=1e-6)


@pytest.mark.parametrize("name", BINARY_LOSSES)
def test_extreme_logits_are_finite_and_differentiable(name: str) -> None:
    # Right and wrong saturated logits, plus moderate ones so every loss has a gradient.
    logits = torch.tensor([100.0, -100.0, 100.0, -100.0, 0.5, -0.5]).reshape(1, 1, 2, 3)
    logits.requires_grad_(True)
    target = torch.tensor([1, 0, 0, 1, 1, 0], dtype=torch.uint8).reshape(1, 1, 2, 3)
    loss = create_loss(name, **NEEDED_KWARGS.get(name, {}))(logits, target)
    loss.backward()
    assert loss.ndim == 0
    assert torch.isfinite(loss)
    assert logits.grad is not None
    assert torch.isfinite(logits.grad).all()
    assert logits.grad.abs().sum() > 0


@pytest.mark.parametrize("name", BINARY_LOSSES)
@pytest.mark.parametrize("empty", [False, True])
def test_perfect_prediction_gives_near_zero_loss(name: str, empty: bool) -> None:
    target = torch.zeros(2, 1, 4, 4, dtype=torch.bool)
    if not empty:
        target[0, 0, 1:3, 1:3] = True
        target[1, 0, 0, :] = True
    logits = torch.where(target, 20.0, -20.0)
    loss = create_loss(name, **NEEDED_KWARGS.get(name, {}))(logits, target)
    assert 0 <= loss.item() < 1e-6


def test_target_dtypes_agree() -> None:
    logits = torch.randn(2, 1, 3, 3)
    mask = torch.rand(2, 1, 3, 3) > 0.5
    expected = binary_losses.tversky(logits, mask.float())
    assert torch.equal(binary_losses.tversky(logits, mask), expected)
    assert torch.equal(binary_losses.tversky(logits, mask.to(torch.uint8)), expected)


def test_half_precision_logits() -> None:
    logits, target = _example("A")
    loss = binary_losses.dice(logits.half(), target)
    assert loss.dtype == torch.float32
    assert loss.item() == pytest.approx(0.3, rel=1e-3)


def test_volumes_are_accepted() -> None:
    logits = torch.zeros(2, 1, 2, 3, 4)  # (N, 1, D, H, W)
    assert binary_losses.bce(logits, torch.ones_like(logits)).item() == pytest.approx(LN2)


@pytest.mark.parametrize(
    ("logits_shape", "target_shape"),
    [((2, 1, 4, 4), (2, 4, 4)), ((2, 3, 4, 4), (2, 3, 4, 4)), ((4,), (4,))],
)
def test_bad_shapes_raise(logits_shape: tuple, target_shape: tuple) -> None:
    with pytest.raises(ValueError, match="shape"):
        binary_losses.dice(torch.zeros(logits_shape), torch.zeros(target_shape))


def test_registry_names() -> None:
    assert list(BINARY_LOSSES) == [
        "bce",
        "weighted_bce",
        "dice",
        "bce_dice",
        "jaccard",
        "tversky",
        "focal_tversky",
        "focal",
    ]


def test_unknown_loss_lists_valid_names() -> None:
    with pytest.raises(ValueError, match="unknown loss 'dise'") as info:
        create_loss("dise")
    assert all(name in str(info.value) for name in BINARY_LOSSES)
    with pytest.raises(ValueError, match="valid names"):
        loss_parameters("nope")


def test_bad_kwarg_names_the_loss_and_its_arguments() -> None:
    with pytest.raises(ValueError, match=r"'tversky'.*gama.*alpha, beta, smooth"):
        create_loss("tversky", gama=2.0)
    with pytest.raises(ValueError, match=r"'bce'.*smooth"):
        create_loss("bce", smooth=1.0)


def test_missing_weights_raise() -> None:
    with pytest.raises(ValueError, match=r"'weighted_bce' requires.*pos_weight, neg_weight"):
        create_loss("weighted_bce")


@pytest.mark.parametrize(
    ("name", "kwargs", "argument"),
    [
        ("tversky", {"alpha": -0.1}, "alpha"),
        ("dice", {"smooth": float("nan")}, "smooth"),
        ("focal", {"alpha": 1.5}, "alpha"),
        ("focal", {"gamma": -1.0}, "gamma"),
        ("weighted_bce", {"pos_weight": None, "neg_weight": 0.5}, "pos_weight"),
        ("bce_dice", {"dice_weight": "3"}, "dice_weight"),
    ],
)
def test_bad_values_raise(name: str, kwargs: dict, argument: str) -> None:
    with pytest.raises(ValueError, match=argument):
        create_loss(name, **kwargs)


def test_loss_parameters() -> None:
    assert loss_parameters("bce") == {}
    assert loss_parameters("tversky") == {"alpha": 0.3, "beta": 0.7, "smooth": 1.0}
    assert loss_parameters("focal") == {"alpha": 0.25, "gamma": 2.0}
    assert loss_parameters("weighted_bce") == {"pos_weight": None, "neg_weight": None}
    # Every loss can be built from its own defaults (weights given where required).
    for name in BINARY_LOSSES:
        params = {**loss_parameters(name), **NEEDED_KWARGS.get(name, {})}
        assert isinstance(create_loss(name, **params), torch.nn.Module)


def test_repr_shows_arguments() -> None:
    text = repr(create_loss("focal_tversky", gamma=2.0))
    assert text == "FocalTverskyLoss(alpha=0.3, beta=0.7, gamma=2.0, smooth=1.0)"


def test_class_weights_from_fraction() -> None:
    # f = 0.2: w+ = 1 / (2 * 0.2) = 2.5, w- = 1 / (2 * 0.8) = 0.625, sum 3.125 -> (0.8, 0.2)
    assert class_weights_from_fraction(0.2) == pytest.approx((0.8, 0.2))
    assert class_weights_from_fraction(0.5) == pytest.approx((0.5, 0.5))


@pytest.mark.parametrize("fraction", [0.0, 1.0, -0.1, 1.5, float("nan")])
def test_class_weights_reject_bad_fractions(fraction: float) -> None:
    with pytest.raises(ValueError, match="foreground_fraction"):
        class_weights_from_fraction(fraction)


def test_one_registry_with_a_mode_per_problem_kind() -> None:
    import seglab
    import seglab.objectives
    from seglab.objectives.loss_modules import DiceLoss, MulticlassDiceLoss

    assert list(LOSSES) == ["binary", "multiclass"]
    assert type(create_loss("dice")) is DiceLoss  # binary is the default mode
    assert type(create_loss("dice", mode="binary")) is DiceLoss
    assert type(create_loss("dice", mode="multiclass")) is MulticlassDiceLoss
    assert seglab.create_loss is create_loss
    assert seglab.objectives.create_loss is create_loss
    assert all(getattr(seglab.objectives, name) is not None for name in seglab.objectives.__all__)
    with pytest.raises(ValueError, match="unknown loss mode 'multilabel'.*binary, multiclass"):
        create_loss("dice", mode="multilabel")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unknown loss mode"):
        loss_parameters("dice", mode="softmax")  # type: ignore[arg-type]
    # A multi-class name is not a binary one, and ignore_index belongs to the multi-class mode.
    with pytest.raises(ValueError, match="unknown loss 'ce'; valid names: bce, weighted_bce"):
        create_loss("ce")
    with pytest.raises(ValueError, match=r"'dice' got unknown argument\(s\) ignore_index"):
        create_loss("dice", ignore_index=255)
