"""Tests of seglab.models.unet_mini (the generic model contract runs in test_models.py)."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch import nn

from seglab.models import MODELS, count_parameters, create_model, model_parameters
from seglab.models.blocks import ConvBlock
from seglab.models.unet_mini import UNetMini
from seglab.objectives.losses import create_loss


def images(*shape: int) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(1))


def test_registered_with_unet_constructor_conventions() -> None:
    assert MODELS["unet_mini"] is UNetMini
    assert model_parameters("unet_mini") == {
        "in_channels": 3,
        "num_classes": 1,
        "n_filters": 8,
        "batch_norm": True,
        "dropout": 0.0,
    }
    model = create_model("unet_mini", num_classes=8, n_filters=1)
    assert model(images(2, 3, 24, 36)).shape == (2, 8, 24, 36)


def test_seed_widths_parameter_count() -> None:
    # Seed 001: 32, 64, 128 channels (n_filters=8), 8 classes. A 3×3 conv c_in -> c_out without
    # bias (batch norm follows) has 9·c_in·c_out weights, each batch norm 2·c_out; the transposed
    # convs and the 1×1 head keep their bias.
    #   stem  3->32->32:     864 + 64 +   9,216 + 64 =  10,208
    #   down 32->64->64:  18,432 +128 +  36,864 +128 =  55,552
    #   bottleneck 64->128->128 (dilations 2, 4): 73,728 + 256 + 147,456 + 256 = 221,696
    #   up1: transposed 128->64: 9·128·64 + 64 = 73,792; block 128->64->64:
    #        73,728 + 128 + 36,864 + 128 = 110,848                            -> 184,640
    #   up2: transposed 64->32: 9·64·32 + 32 = 18,464; block 64->32->32:
    #        18,432 + 64 + 9,216 + 64 = 27,776                                ->  46,240
    #   head 32->8: 32·8 + 8 = 264
    #   total 10,208 + 55,552 + 221,696 + 184,640 + 46,240 + 264 = 518,600
    assert count_parameters(UNetMini(in_channels=3, num_classes=8, n_filters=8)) == 518_600
    # One class instead of 8: head 32·1 + 1 = 33 instead of 264.
    assert count_parameters(UNetMini()) == 518_600 - 264 + 33


def test_architecture_follows_seed_001() -> None:
    model = UNetMini(num_classes=8)
    convs = [m for m in model.bottleneck.modules() if isinstance(m, nn.Conv2d)]
    assert [c.dilation for c in convs] == [(2, 2), (4, 4)]
    assert [c.out_channels for c in convs] == [128, 128]
    ups = [m for m in model.modules() if isinstance(m, nn.ConvTranspose2d)]
    assert [(u.in_channels, u.out_channels, u.stride) for u in ups] == [
        (128, 64, (2, 2)),
        (64, 32, (2, 2)),
    ]
    # Batch norm after each of the 10 convolutions of the blocks (2 per block, 5 blocks).
    assert sum(isinstance(m, nn.BatchNorm2d) for m in model.modules()) == 10
    assert model.divisor == 4


def test_dilated_bottleneck_keeps_size_and_sees_13_positions() -> None:
    block = ConvBlock(1, 1, batch_norm=False, dilations=(2, 4))
    for conv in (block.conv1, block.conv2):
        assert isinstance(conv, nn.Conv2d)
        nn.init.constant_(conv.weight, 1.0)
        assert conv.bias is not None
        nn.init.zeros_(conv.bias)
    x = torch.zeros(1, 1, 31, 31)
    x[0, 0, 15, 15] = 1.0  # an impulse: the output is nonzero over the receptive field
    out = block(x)
    assert out.shape == x.shape
    # Spans 1 + 2·2 + 2·4 = 13 positions, centred: rows/columns 9 to 21.
    rows = out[0, 0].abs().sum(dim=1).nonzero().flatten()
    assert (rows.min().item(), rows.max().item()) == (9, 21)


def test_padding_reflects_at_bottom_right() -> None:
    model = UNetMini(n_filters=1).eval()
    x = images(1, 3, 17, 30)
    padded = torch.nn.functional.pad(x, (0, 2, 0, 3), mode="reflect")  # 17×30 -> 20×32
    with torch.no_grad():
        torch.testing.assert_close(model(x), model(padded)[..., :17, :30])


def test_tiny_single_image_trains_with_batch_norm() -> None:
    # Padded to 8×8 at least, so the bottleneck keeps 2×2 values per channel for batch norm.
    model = UNetMini(n_filters=1, num_classes=2)
    assert model(images(1, 3, 3, 2)).shape == (1, 2, 3, 2)


@pytest.mark.parametrize(
    "kwargs", [{"batch_norm": False}, {"dropout": 0.3}, {"in_channels": 1, "num_classes": 20}]
)
def test_options_build_run_and_backpropagate(kwargs: dict[str, Any]) -> None:
    model = UNetMini(n_filters=1, **kwargs)
    out = model(images(2, kwargs.get("in_channels", 3), 12, 20))
    out.mean().backward()
    assert out.shape == (2, kwargs.get("num_classes", 1), 12, 20)
    has_norm = any(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    assert has_norm == kwargs.get("batch_norm", True)
    assert any(isinstance(m, nn.Dropout2d) for m in model.modules()) == ("dropout" in kwargs)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n_filters": 0}, "n_filters"),
        ({"in_channels": 0}, "in_channels"),
        ({"num_classes": True}, "num_classes"),
        ({"num_classes": 2.0}, "num_classes"),
        ({"dropout": 1.0}, "dropout"),
    ],
)
def test_rejects_bad_arguments(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        UNetMini(**kwargs)  # type: ignore[arg-type]


def test_learns_a_tiny_multiclass_batch_with_the_total_loss() -> None:
    # Three flat colours -> three classes, a void band: 30 Adam steps must cut CE + 3 Dice and
    # classify the non-void pixels (a bug in the decoder or the loss's ignore_index shows here).
    torch.manual_seed(0)
    target = torch.zeros(2, 16, 16, dtype=torch.long)
    target[:, :, 6:11] = 1
    target[:, :, 11:] = 2
    target[:, :2] = 255
    x = torch.stack([(target == c).float() for c in range(3)], dim=1) + 0.1 * images(2, 3, 16, 16)
    model = UNetMini(num_classes=3, n_filters=2)
    loss_fn = create_loss("ce_dice", mode="multiclass")
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    first = loss_fn(model(x), target).item()
    for _ in range(30):
        optimizer.zero_grad()
        loss = loss_fn(model(x), target)
        loss.backward()
        optimizer.step()
    assert loss.item() < 0.25 * first
    with torch.no_grad():
        pred = model.eval()(x).argmax(dim=1)
    assert (pred == target)[target != 255].float().mean() > 0.95
