"""Tests of seglab.models.unet3d: shapes at odd sizes, gradients, norms, validation, save/load,
the registry entry and parameter counts."""

from __future__ import annotations

import pytest
import torch

from seglab.models import MODELS, count_parameters, create_model, model_parameters
from seglab.models.unet3d import NORMS, UNet3D


def small(**kwargs: object) -> UNet3D:
    torch.manual_seed(0)
    return UNet3D(n_filters=1, **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize("num_classes", [1, 2])
def test_output_keeps_odd_spatial_size(num_classes: int) -> None:
    model = small(num_classes=num_classes).eval()
    assert model(torch.zeros(1, 1, 13, 17, 11)).shape == (1, num_classes, 13, 17, 11)


def test_divisor_and_class_attributes() -> None:
    assert small(depth=2).divisor == 4
    assert UNet3D.task == "segmentation"
    assert UNet3D.spatial_dims == 3


def test_widths_follow_unet() -> None:
    state = small(depth=2, in_channels=2).state_dict()
    assert state["stem.conv1.weight"].shape == (4, 2, 3, 3, 3)
    assert state["downs.1.conv.conv2.weight"].shape == (16, 16, 3, 3, 3)
    assert state["ups.0.up.weight"].shape == (16, 8, 2, 2, 2)
    assert state["head.weight"].shape == (1, 4, 1, 1, 1)


@pytest.mark.parametrize("norm", NORMS)
def test_backward_gives_finite_gradients_for_every_norm(norm: str) -> None:
    model = small(norm=norm, dropout=0.1, depth=2).train()
    x = torch.randn(2, 1, 9, 8, 7)
    model(x).square().mean().backward()
    grads = [p.grad for p in model.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert any(g is not None and g.abs().sum() > 0 for g in grads)


def test_norm_layers_match_option() -> None:
    assert isinstance(small(norm="batch").stem.norm1, torch.nn.BatchNorm3d)
    assert isinstance(small(norm="instance").stem.norm1, torch.nn.InstanceNorm3d)
    assert not hasattr(small(norm="none").stem, "norm1")


@pytest.mark.parametrize(
    "kwargs",
    [
        {"in_channels": 0},
        {"num_classes": 1.5},
        {"n_filters": True},
        {"depth": 0},
        {"norm": "group"},
        {"dropout": 1.0},
        {"dropout": -0.1},
    ],
)
def test_bad_arguments_raise_value_error(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        UNet3D(**kwargs)  # type: ignore[arg-type]


def test_state_dict_round_trip_gives_identical_outputs() -> None:
    model = small(norm="batch", num_classes=2).eval()
    copy = UNet3D(n_filters=1, norm="batch", num_classes=2)
    copy.load_state_dict(model.state_dict())
    copy.eval()
    x = torch.randn(1, 1, 8, 10, 6)
    assert torch.equal(model(x), copy(x))


def test_registered_as_unet3d_with_its_defaults() -> None:
    assert MODELS["unet3d"] is UNet3D
    assert model_parameters("unet3d") == {
        "in_channels": 1,
        "num_classes": 1,
        "n_filters": 2,
        "depth": 3,
        "norm": "instance",
        "dropout": 0.0,
    }
    model = create_model("unet3d", n_filters=1, depth=2)
    assert isinstance(model, UNet3D) and model.divisor == 4


def test_parameter_count_by_hand() -> None:
    # n_filters=1, depth=1, norm "none" (convolutions keep their bias): widths 4, 8.
    #   stem  1->4: 27*1*4 + 4 = 112;  4->4: 27*4*4 + 4 = 436              ->   548
    #   down  4->8: 27*4*8 + 8 = 872;  8->8: 27*8*8 + 8 = 1,736           -> 2,608
    #   up    transposed 8->4 (2x2x2): 8*4*8 + 4 = 260
    #         block 8->4: 27*8*4 + 4 = 868;  4->4: 436                     -> 1,564
    #   head  1x1x1 4->1: 4 + 1 = 5.          Total 548 + 2,608 + 1,564 + 5 = 4,725
    assert count_parameters(UNet3D(n_filters=1, depth=1, norm="none")) == 4_725
    # Instance norm (affine) drops each conv bias (-4 -4 -8 -8 -4 -4 = -32) and adds a scale
    # and a shift per channel (2 * (4 + 4 + 8 + 8 + 4 + 4) = 64): 4,725 - 32 + 64 = 4,757.
    assert count_parameters(UNet3D(n_filters=1, depth=1)) == 4_757


def test_padding_reflects_at_the_far_end() -> None:
    model = small(depth=2, norm="none").eval()
    x = torch.randn(1, 1, 5, 9, 6, generator=torch.Generator().manual_seed(0))
    padded = torch.nn.functional.pad(x, (0, 2, 0, 3, 0, 3), mode="reflect")  # 5, 9, 6 -> 8, 12, 8
    with torch.no_grad():
        torch.testing.assert_close(model(x), model(padded)[..., :5, :9, :6])
