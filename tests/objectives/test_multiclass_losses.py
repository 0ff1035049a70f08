"""Tests of the multi-class losses (seglab.objectives.multiclass_losses and the registry's
multi-class mode): golden values by hand, ignore_index, properties, registry."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from seglab.objectives import multiclass_losses as mcl
from seglab.objectives.losses import LOSSES, create_loss, inverse_frequency_weights, loss_parameters

MULTICLASS_LOSSES = LOSSES["multiclass"]

LN2, LN3, LN4 = math.log(2), math.log(3), math.log(4)

# Example A: logits (1, 3, 1, 2), C = 3 classes, two pixels.
#   pixel 0: logits (0, 0, 0)    -> p = (1/3, 1/3, 1/3), true class 0
#   pixel 1: logits (ln2, 0, 0)  -> exp = (2, 1, 1), p = (1/2, 1/4, 1/4), true class 1
# Soft counts per class (TP = Σ p y, FP = Σ p - TP, FN = Σ y - TP):
#   class 0: p = (1/3, 1/2), y = (1, 0): TP = 1/3, Σp = 5/6,  FP = 1/2,  FN = 2/3
#   class 1: p = (1/3, 1/4), y = (0, 1): TP = 1/4, Σp = 7/12, FP = 1/3,  FN = 3/4
#   class 2: p = (1/3, 1/4), y = (0, 0): TP = 0,   Σp = 7/12, FP = 7/12, FN = 0
# -log p_true: pixel 0: ln3, pixel 1: ln4.
LOGITS_A = [[0.0, LN2], [0.0, 0.0], [0.0, 0.0]]  # [class][pixel]
TARGET_A = [0, 1]

CE_A = (LN3 + LN4) / 2
# Dice, s = 1: (2 TP + 1) / (Σp + Σy + 1)
#   c0: (2/3 + 1) / (5/6 + 1 + 1) = (5/3) / (17/6) = 10/17
#   c1: (1/2 + 1) / (7/12 + 1 + 1) = (3/2) / (31/12) = 18/31
#   c2: (0 + 1) / (7/12 + 0 + 1) = 12/19
DICE_A = 1 - (10 / 17 + 18 / 31 + 12 / 19) / 3
# Tversky α = 0.3, β = 0.7, s = 1: (TP + 1) / (TP + α FP + β FN + 1)
#   c0: (4/3) / (1/3 + 0.15 + 7/15 + 1) = (4/3) / 1.95 = 80/117
#   c1: (5/4) / (1/4 + 0.1 + 0.525 + 1) = 1.25 / 1.875 = 2/3
#   c2: 1 / (0.3 * 7/12 + 1) = 1 / 1.175 = 40/47
TI_A = (80 / 117, 2 / 3, 40 / 47)

GOLDEN: list[tuple[str, dict[str, Any], float]] = [
    ("ce", {}, CE_A),
    # Σ w_y (-log p_y) / Σ w_y with w = (1, 2, 3): (1 ln3 + 2 ln4) / (1 + 2)
    ("weighted_ce", {"weights": [1.0, 2.0, 3.0]}, (LN3 + 2 * LN4) / 3),
    ("dice", {}, DICE_A),
    # s = 0: c0 (2/3) / (11/6) = 4/11, c1 (1/2) / (19/12) = 6/19, c2 0 / (7/12) = 0
    ("dice", {"smooth": 0.0}, 1 - (4 / 11 + 6 / 19 + 0) / 3),
    # CE + 3 Dice, and CE + 1 Dice
    ("ce_dice", {}, CE_A + 3 * DICE_A),
    ("ce_dice", {"dice_weight": 1.0}, CE_A + DICE_A),
    # Jaccard, s = 1: (TP + 1) / (Σp + Σy - TP + 1)
    #   c0: (4/3) / (5/6 + 1 - 1/3 + 1) = (4/3) / (5/2) = 8/15
    #   c1: (5/4) / (7/12 + 1 - 1/4 + 1) = (5/4) / (7/3) = 15/28
    #   c2: 1 / (7/12 + 1) = 12/19
    ("jaccard", {}, 1 - (8 / 15 + 15 / 28 + 12 / 19) / 3),
    ("tversky", {}, 1 - sum(TI_A) / 3),
    # α and β swapped (α = 0.7, β = 0.3) tells them apart:
    #   c0: (4/3) / (1/3 + 0.35 + 0.2 + 1) = (4/3) / (113/60) = 80/113
    #   c1: (5/4) / (1/4 + 0.7/3 + 0.225 + 1) = (5/4) / (41/24) = 30/41
    #   c2: 1 / (0.7 * 7/12 + 1) = 1 / (169/120) = 120/169
    ("tversky", {"alpha": 0.7, "beta": 0.3}, 1 - (80 / 113 + 30 / 41 + 120 / 169) / 3),
    # mean over classes of (1 - TI_c) ** 1.5: (37/117)^1.5, (1/3)^1.5, (7/47)^1.5
    ("focal_tversky", {}, ((37 / 117) ** 1.5 + (1 / 3) ** 1.5 + (7 / 47) ** 1.5) / 3),
    ("focal_tversky", {"gamma": 1.0}, 1 - sum(TI_A) / 3),
    # (1 - p_y)^2 (-log p_y): pixel 0 (2/3)^2 ln3, pixel 1 (3/4)^2 ln4; mean of the two
    ("focal", {}, (4 / 9 * LN3 + 9 / 16 * LN4) / 2),
    # α = (0.1, 0.9, 0.5): pixel 0 (class 0) × 0.1, pixel 1 (class 1) × 0.9
    ("focal", {"alpha": [0.1, 0.9, 0.5]}, (0.1 * 4 / 9 * LN3 + 0.9 * 9 / 16 * LN4) / 2),
    # γ = 1: (2/3) ln3 and (3/4) ln4
    ("focal", {"gamma": 1.0}, (2 / 3 * LN3 + 3 / 4 * LN4) / 2),
]

NEEDED: dict[str, dict[str, Any]] = {"weighted_ce": {"weights": [0.5, 1.0, 2.0]}}


def example_a(extra_pixel: tuple[list[float], int] | None = None) -> tuple[torch.Tensor, ...]:
    """Example A as (1, 3, 1, W) logits and (1, 1, W) target, optionally with a third pixel."""
    logits, target = [list(row) for row in LOGITS_A], list(TARGET_A)
    if extra_pixel is not None:
        for row, value in zip(logits, extra_pixel[0], strict=True):
            row.append(value)
        target.append(extra_pixel[1])
    return torch.tensor(logits).reshape(1, 3, 1, -1), torch.tensor(target).reshape(1, 1, -1)


def build(name: str, ignore_index: int | None = 255, **kwargs: Any) -> torch.nn.Module:
    return create_loss(
        name, "multiclass", ignore_index=ignore_index, **{**NEEDED.get(name, {}), **kwargs}
    )


@pytest.mark.parametrize(("name", "kwargs", "expected"), GOLDEN)
def test_golden_values(name: str, kwargs: dict[str, Any], expected: float) -> None:
    logits, target = example_a()
    assert create_loss(name, "multiclass", **kwargs)(logits, target).item() == pytest.approx(
        expected, rel=1e-6
    )
    assert getattr(mcl, name)(logits, target, **kwargs).item() == pytest.approx(expected, rel=1e-6)


def test_golden_values_cover_every_loss() -> None:
    assert {name for name, *_ in GOLDEN} == set(MULTICLASS_LOSSES)


@pytest.mark.parametrize(("name", "kwargs", "expected"), GOLDEN)
def test_golden_values_with_an_ignored_pixel(
    name: str, kwargs: dict[str, Any], expected: float
) -> None:
    # A third pixel labelled 255 with wild logits: the loss is example A's, whatever they are.
    for wild in ([50.0, -30.0, 7.0], [float("inf"), float("nan"), 0.0]):
        logits, target = example_a((wild, 255))
        loss = create_loss(name, "multiclass", **kwargs)(logits, target)
        assert loss.item() == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize("name", MULTICLASS_LOSSES)
def test_ignore_index_none_counts_every_pixel(name: str) -> None:
    logits, target = example_a()
    assert build(name, None)(logits, target).item() == pytest.approx(
        build(name)(logits, target).item(), rel=1e-6
    )
    logits, target = example_a(([0.0, 0.0, 0.0], 255))
    with pytest.raises(ValueError, match=r"class index 255.*ignore_index \(None\)"):
        build(name, None)(logits, target)


def test_ignore_index_can_be_a_real_class() -> None:
    # ignore_index=1 drops pixel 1, leaving pixel 0: p = (1/3, 1/3, 1/3), class 0.
    logits, target = example_a()
    assert mcl.ce(logits, target, ignore_index=1).item() == pytest.approx(LN3)
    # Dice: c0 (2/3 + 1) / (1/3 + 1 + 1) = 5/7; c1, c2: 1 / (1/3 + 1) = 3/4
    expected = 1 - (5 / 7 + 3 / 4 + 3 / 4) / 3
    assert mcl.dice(logits, target, ignore_index=1).item() == pytest.approx(expected)


@st.composite
def batches(draw: st.DrawFn) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Random logits, targets and an ignore mask leaving at least one pixel."""
    n, c = draw(st.integers(1, 2)), draw(st.integers(2, 4))
    h, w = draw(st.integers(1, 3)), draw(st.integers(1, 4))
    seed = draw(st.integers(0, 2**31 - 1))
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(n, c, h, w, generator=g) * 4
    target = torch.randint(0, c, (n, h, w), generator=g)
    ignored = torch.rand(n, h, w, generator=g) < draw(st.floats(0.0, 0.7))
    ignored.view(-1)[0] = False
    return logits, target, ignored


@settings(max_examples=40, deadline=None)
@given(batches())
def test_ignored_pixels_change_nothing(batch: tuple[torch.Tensor, ...]) -> None:
    logits, target, ignored = batch
    labelled = torch.where(ignored, 255, target)
    # Other logits behind the ignored pixels, or another void label: a bit-identical loss.
    other_logits = torch.where(ignored.unsqueeze(1), 50 * logits.flip(1) + 3, logits)
    c = logits.shape[1]
    # The valid pixels alone, as one (1, C, 1, K) image: the loss must be the same number.
    kept = ~ignored
    only_valid = (
        logits.movedim(1, -1)[kept].T.reshape(1, c, 1, -1),
        target[kept].reshape(1, 1, -1),
    )
    weights = [1.0 + i for i in range(c)]
    for name in MULTICLASS_LOSSES:
        kwargs: dict[str, Any] = {"weights": weights} if name == "weighted_ce" else {}
        loss_fn = create_loss(name, "multiclass", **kwargs)
        expected = loss_fn(logits, labelled)
        assert torch.equal(loss_fn(other_logits, labelled), expected), name
        minus_one = create_loss(name, "multiclass", ignore_index=-1, **kwargs)
        assert torch.equal(minus_one(logits, torch.where(ignored, -1, target)), expected), name
        assert loss_fn(*only_valid).item() == pytest.approx(expected.item(), rel=1e-5, abs=1e-6)


@pytest.mark.parametrize("name", MULTICLASS_LOSSES)
def test_ignored_pixels_get_exactly_zero_gradient(name: str) -> None:
    logits, target = example_a(([3.0, -1.0, 0.5], 255))
    logits.requires_grad_(True)
    build(name)(logits, target).backward()
    assert logits.grad is not None
    assert torch.equal(logits.grad[..., 2], torch.zeros(1, 3, 1))
    assert logits.grad[..., :2].abs().sum() > 0


@pytest.mark.parametrize("name", MULTICLASS_LOSSES)
def test_every_pixel_ignored_gives_zero_and_finite_gradient(name: str) -> None:
    logits = torch.randn(2, 3, 2, 2, requires_grad=True)
    loss = build(name)(logits, torch.full((2, 2, 2), 255))
    loss.backward()
    assert loss.item() == 0.0
    assert logits.grad is not None and torch.isfinite(logits.grad).all()


@pytest.mark.parametrize("name", MULTICLASS_LOSSES)
def test_perfect_prediction_gives_near_zero_loss(name: str) -> None:
    target = torch.tensor([[[0, 1, 2, 255], [3, 3, 1, 0]], [[2, 2, 255, 255], [1, 0, 3, 3]]])
    logits = 30.0 * F.one_hot(torch.where(target == 255, 0, target), 4).movedim(-1, 1).float()
    kwargs: dict[str, Any] = {"weights": [1.0, 2.0, 3.0, 4.0]} if name == "weighted_ce" else {}
    assert 0 <= build(name, **kwargs)(logits, target).item() < 1e-6


def test_every_loss_differs_from_the_others() -> None:
    g = torch.Generator().manual_seed(0)
    logits, target = (
        torch.randn(2, 3, 4, 4, generator=g),
        torch.randint(0, 3, (2, 4, 4), generator=g),
    )
    values = {name: build(name)(logits, target).item() for name in MULTICLASS_LOSSES}
    names = list(values)
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            assert abs(values[a] - values[b]) > 1e-3, (a, b, values)


@pytest.mark.parametrize("name", MULTICLASS_LOSSES)
def test_extreme_logits_give_finite_gradients(name: str) -> None:
    logits = torch.tensor([[100.0, -100.0, 0.5], [-100.0, 100.0, -0.5], [0.0, 0.0, 0.0]])
    logits = logits.reshape(1, 3, 1, 3).requires_grad_(True)
    target = torch.tensor([[[0, 0, 1]]])  # one right and one wrong saturated pixel
    loss = build(name, alpha=[0.2, 0.3, 0.5]) if name == "focal" else build(name)
    value = loss(logits, target)
    value.backward()
    assert torch.isfinite(value)
    assert logits.grad is not None and torch.isfinite(logits.grad).all()
    assert logits.grad.abs().sum() > 0


@pytest.mark.parametrize("gamma", [0.0, 0.5])
def test_focal_losses_finite_gradient_at_perfect_pixels_for_small_gamma(gamma: float) -> None:
    logits = (
        200.0 * F.one_hot(torch.tensor([[[0, 1]]]), 3).movedim(-1, 1).float()
    ).requires_grad_()
    target = torch.tensor([[[0, 1]]])
    for name in ("focal", "focal_tversky"):
        build(name, gamma=gamma)(logits, target).backward()
        assert logits.grad is not None and torch.isfinite(logits.grad).all()


UNWEIGHTED = [n for n in MULTICLASS_LOSSES if n != "weighted_ce"]


@pytest.mark.parametrize("name", UNWEIGHTED)
def test_unweighted_losses_are_invariant_to_class_permutation(name: str) -> None:
    g = torch.Generator().manual_seed(3)
    logits, target = (
        torch.randn(2, 4, 3, 5, generator=g),
        torch.randint(0, 4, (2, 3, 5), generator=g),
    )
    target[0, 0, :2] = 255
    perm = torch.tensor([2, 0, 3, 1])  # new channel k holds old class perm[k]
    new_label = torch.argsort(perm)  # old class c is now called new_label[c]
    relabelled = torch.where(target == 255, 255, new_label[target.clamp(max=3)])
    loss_fn = build(name)
    assert loss_fn(logits[:, perm], relabelled).item() == pytest.approx(
        loss_fn(logits, target).item(), rel=1e-6
    )


def test_ce_matches_torch_cross_entropy() -> None:
    g = torch.Generator().manual_seed(1)
    logits, target = (
        torch.randn(3, 5, 4, 4, generator=g),
        torch.randint(0, 5, (3, 4, 4), generator=g),
    )
    target[1, :2] = 255
    w = [0.5, 1.0, 2.0, 0.1, 3.0]
    torch.testing.assert_close(
        mcl.ce(logits, target), F.cross_entropy(logits, target, ignore_index=255)
    )
    torch.testing.assert_close(
        mcl.weighted_ce(logits, target, w),
        F.cross_entropy(logits, target, weight=torch.tensor(w), ignore_index=255),
    )


def test_weighted_ce_ignores_weight_scale_and_uniform_weights_give_ce() -> None:
    g = torch.Generator().manual_seed(2)
    logits, target = (
        torch.randn(2, 3, 4, 4, generator=g),
        torch.randint(0, 3, (2, 4, 4), generator=g),
    )
    ce = mcl.ce(logits, target).item()
    assert mcl.weighted_ce(logits, target, [0.7, 0.7, 0.7]).item() == pytest.approx(ce)
    a = mcl.weighted_ce(logits, target, [1.0, 2.0, 5.0]).item()
    assert mcl.weighted_ce(logits, target, [0.125, 0.25, 0.625]).item() == pytest.approx(a)


def test_focal_without_alpha_or_gamma_is_ce() -> None:
    g = torch.Generator().manual_seed(4)
    logits, target = (
        torch.randn(2, 3, 4, 4, generator=g),
        torch.randint(0, 3, (2, 4, 4), generator=g),
    )
    assert mcl.focal(logits, target, gamma=0.0).item() == pytest.approx(
        mcl.ce(logits, target).item()
    )


def test_half_precision_and_volumes_and_target_dtypes() -> None:
    logits, target = example_a()
    loss = mcl.dice(logits.half(), target)
    assert loss.dtype == torch.float32
    assert loss.item() == pytest.approx(DICE_A, rel=1e-3)
    assert mcl.dice(logits.bfloat16(), target).item() == pytest.approx(DICE_A, rel=1e-2)
    assert torch.equal(mcl.tversky(logits, target.to(torch.uint8)), mcl.tversky(logits, target))
    volume = torch.zeros(2, 3, 2, 3, 4)  # (N, C, D, H, W), p = 1/3 everywhere
    assert mcl.ce(volume, torch.zeros(2, 2, 3, 4, dtype=torch.long)).item() == pytest.approx(LN3)


@pytest.mark.parametrize(
    ("logits_shape", "target", "message"),
    [
        ((2, 3, 4, 4), torch.zeros(2, 3, 4, 4, dtype=torch.long), "one-hot"),
        ((2, 3, 4, 4), torch.zeros(2, 4, 4), "integer class indices"),
        ((2, 3), torch.zeros(2, dtype=torch.long), r"\(N, C, \*spatial\)"),
        ((1, 3, 2, 2), torch.tensor([[[0, 3], [1, 2]]]), "class index 3"),
        ((1, 3, 2, 2), torch.tensor([[[0, -1], [1, 2]]]), "class index -1"),
    ],
)
def test_bad_inputs_raise(
    logits_shape: tuple[int, ...], target: torch.Tensor, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        mcl.dice(torch.zeros(logits_shape), target)


def test_registry_names_and_parameters() -> None:
    assert list(MULTICLASS_LOSSES) == [
        "ce", "weighted_ce", "dice", "ce_dice", "jaccard", "tversky", "focal_tversky", "focal"
    ]  # fmt: skip
    assert loss_parameters("ce", "multiclass") == {}
    assert loss_parameters("weighted_ce", "multiclass") == {"weights": None}
    assert loss_parameters("ce_dice", "multiclass") == {"dice_weight": 3.0, "smooth": 1.0}
    assert loss_parameters("tversky", "multiclass") == {"alpha": 0.3, "beta": 0.7, "smooth": 1.0}
    assert loss_parameters("focal_tversky", "multiclass") == {
        "alpha": 0.3, "beta": 0.7, "gamma": 1.5, "smooth": 1.0
    }  # fmt: skip
    assert loss_parameters("focal", "multiclass") == {"gamma": 2.0, "alpha": None}
    for name in MULTICLASS_LOSSES:  # each builds from its own defaults (+ required weights)
        params = {**loss_parameters(name, "multiclass"), **NEEDED.get(name, {})}
        assert isinstance(create_loss(name, "multiclass", **params), torch.nn.Module)


def test_repr_shows_arguments_and_ignore_index() -> None:
    assert repr(create_loss("focal_tversky", "multiclass", ignore_index=None, gamma=2.0)) == (
        "MulticlassFocalTverskyLoss(alpha=0.3, beta=0.7, gamma=2.0, smooth=1.0, ignore_index=None)"
    )
    weights = inverse_frequency_weights(np.array([1, 3]))  # a numpy array is accepted
    assert repr(create_loss("weighted_ce", "multiclass", weights=weights)) == (
        "MulticlassWeightedCELoss(weights=(0.75, 0.25), ignore_index=255)"
    )


def test_unknown_names_and_arguments_raise() -> None:
    with pytest.raises(ValueError, match="unknown multi-class loss 'bce'.*ce, weighted_ce"):
        create_loss("bce", mode="multiclass")
    with pytest.raises(ValueError, match="valid names"):
        loss_parameters("nope", "multiclass")
    with pytest.raises(ValueError, match=r"unknown argument\(s\) gama; accepted: alpha, beta"):
        create_loss("tversky", "multiclass", gama=2.0)
    with pytest.raises(ValueError, match=r"requires argument\(s\) weights"):
        create_loss("weighted_ce", mode="multiclass")


@pytest.mark.parametrize(
    ("name", "kwargs", "argument"),
    [
        ("tversky", {"alpha": -0.1}, "alpha"),
        ("dice", {"smooth": float("nan")}, "smooth"),
        ("ce_dice", {"dice_weight": "3"}, "dice_weight"),
        ("focal", {"gamma": -1.0}, "gamma"),
        ("focal", {"alpha": 0.25}, "alpha"),
        ("weighted_ce", {"weights": [1.0, -2.0]}, "weights"),
        ("weighted_ce", {"weights": [0.0, 0.0]}, "weights"),
        ("weighted_ce", {"weights": "1, 2"}, "weights"),
        ("weighted_ce", {"weights": [1.0, float("inf")]}, "weights"),
        ("weighted_ce", {"weights": [True, 1.0]}, "weights"),
    ],
)
def test_bad_values_raise(name: str, kwargs: dict[str, Any], argument: str) -> None:
    with pytest.raises(ValueError, match=argument):
        create_loss(name, "multiclass", **kwargs)


@pytest.mark.parametrize("ignore_index", ["255", True, 2.0])
def test_bad_ignore_index_raises(ignore_index: object) -> None:
    with pytest.raises(ValueError, match="ignore_index"):
        create_loss("ce", "multiclass", ignore_index=ignore_index)  # type: ignore[arg-type]


@pytest.mark.parametrize(("name", "argument"), [("weighted_ce", "weights"), ("focal", "alpha")])
def test_per_class_values_must_match_the_classes(name: str, argument: str) -> None:
    kwargs: dict[str, Any] = {argument: [1.0, 2.0]}
    loss_fn = create_loss(name, "multiclass", **kwargs)
    logits, target = example_a()
    with pytest.raises(ValueError, match=rf"{argument} has 2 values but the logits have 3 classes"):
        loss_fn(logits, target)


def test_inverse_frequency_weights() -> None:
    # 1/n: 1/300, 1/100, (none), 1/600 = 2/600, 6/600, 0, 1/600; normalised by 9/600
    expected = [2 / 9, 6 / 9, 0.0, 1 / 9]
    np.testing.assert_allclose(inverse_frequency_weights(np.array([300, 100, 0, 600])), expected)
    # Seed 001's formula, total / (C n_c) normalised to sum 1, where every class has pixels:
    counts = np.array([500.0, 20.0, 80.0])
    seed = counts.sum() / (len(counts) * counts)
    np.testing.assert_allclose(inverse_frequency_weights(counts), seed / seed.sum())


@pytest.mark.parametrize(
    "counts", [np.array([]), np.zeros(3), np.array([1, -1]), np.array([[1, 2]]), np.array(["a"])]
)
def test_inverse_frequency_weights_reject_bad_counts(counts: np.ndarray) -> None:
    with pytest.raises(ValueError, match="pixel_counts"):
        inverse_frequency_weights(counts)
