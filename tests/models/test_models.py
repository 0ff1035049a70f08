"""Tests of seglab.models: a contract every entry of MODELS must meet, then U-Net specifics."""

from __future__ import annotations

import copy
import sys
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

from conftest import SMP_TINY, model_params
from seglab.models import (
    MODELS,
    UNet,
    count_parameters,
    create_model,
    model_parameters,
    model_spatial_dims,
    model_summary,
    model_task,
)
from seglab.models.padding import pad_end, padding_to_multiple

# The contract below is the 2D segmentation one ((N, C, H, W) in and out); the classifiers have
# theirs in test_classifiers.py, and the volume models ((N, C, D, H, W)) theirs below.
NAMES = model_params(
    sorted(n for n in MODELS if model_task(n) == "segmentation" and model_spatial_dims(n) == 2)
)
NAMES_3D = sorted(n for n in MODELS if model_spatial_dims(n) == 3)


def small_model(name: str, seed: int = 0, **kwargs: Any) -> nn.Module:
    """The model at its narrowest width (if it has one; smp: ResNet-18), so the contract tests
    stay fast."""
    if "n_filters" in model_parameters(name):
        kwargs.setdefault("n_filters", 1)
    if name == "smp":
        kwargs = {**SMP_TINY, **kwargs}
    torch.manual_seed(seed)
    return create_model(name, **kwargs)


def images(*shape: int) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(1))


# --- contract: every registered model ----------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_shared_constructor_signature(name: str) -> None:
    params = model_parameters(name)
    assert {"in_channels", "num_classes"} <= set(params)
    assert isinstance(MODELS[name](), nn.Module)  # every argument has a default


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("in_channels", [1, 3])
@pytest.mark.parametrize("num_classes", [1, 3])
def test_output_shape(name: str, in_channels: int, num_classes: int) -> None:
    model = small_model(name, in_channels=in_channels, num_classes=num_classes)
    assert model(images(2, in_channels, 32, 48)).shape == (2, num_classes, 32, 48)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("size", [(1, 1), (17, 31), (37, 53), (64, 64)])
def test_any_input_size_gives_output_of_input_size(name: str, size: tuple[int, int]) -> None:
    model = small_model(name, num_classes=2)
    assert model(images(1, 3, *size)).shape == (1, 2, *size)


@pytest.mark.parametrize("name", NAMES)
def test_backward_gives_finite_gradients_on_all_parameters(name: str) -> None:
    model = small_model(name)
    model(images(2, 3, 32, 32)).mean().backward()
    for param_name, param in model.named_parameters():
        assert param.grad is not None, param_name
        assert torch.isfinite(param.grad).all(), param_name


@pytest.mark.parametrize("name", NAMES)
def test_eval_output_is_deterministic(name: str) -> None:
    model = small_model(name).eval()
    x = images(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(model(x), model(x))


@pytest.mark.parametrize("name", NAMES)
def test_channels_last_gives_same_output(name: str) -> None:
    model = small_model(name).eval()
    x = images(2, 3, 40, 24)
    with torch.no_grad():
        expected = model(x)
        # Module.to(memory_format=...) exists at runtime but is missing from torch's type stubs.
        model_cl = copy.deepcopy(model).to(memory_format=torch.channels_last)  # type: ignore[call-overload]
        actual = model_cl(x.to(memory_format=torch.channels_last))
    torch.testing.assert_close(actual, expected, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", NAMES)
def test_state_dict_round_trip_gives_identical_outputs(name: str) -> None:
    kwargs = {"batch_norm": True} if "batch_norm" in model_parameters(name) else {}
    model = small_model(name, **kwargs)
    model(images(4, 3, 32, 32))  # a training-mode pass moves batch-norm running statistics
    model.eval()
    fresh = small_model(name, seed=123, **kwargs).eval()  # starts from different weights
    x = images(2, 3, 32, 32)
    with torch.no_grad():
        assert not torch.equal(fresh(x), model(x))
        fresh.load_state_dict(model.state_dict())
        assert torch.equal(fresh(x), model(x))


@pytest.mark.parametrize("name", NAMES)
def test_summary_lists_totals_and_leaves_model_untouched(name: str) -> None:
    model = small_model(name)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    text = model_summary(model, (1, 3, 32, 32))
    assert f"Total params: {count_parameters(model):,}" in text
    assert "Output shape: (1, 1, 32, 32)" in text
    assert model.training  # eval() during the summary is undone
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())


# --- contract: every registered volume model ---------------------------------------------------


def test_volume_models_are_registered() -> None:
    assert "unet3d" in NAMES_3D
    assert all(model_task(name) == "segmentation" for name in NAMES_3D)


@pytest.mark.parametrize("name", NAMES_3D)
def test_volume_model_shape_backward_and_round_trip(name: str) -> None:
    assert {"in_channels", "num_classes"} <= set(model_parameters(name))
    model = small_model(name, in_channels=2, num_classes=3)
    out = model(images(2, 2, 9, 6, 11))  # odd sides, none a multiple of any divisor
    assert out.shape == (2, 3, 9, 6, 11)
    out.mean().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())
    model.eval()
    fresh = small_model(name, seed=123, in_channels=2, num_classes=3).eval()
    fresh.load_state_dict(model.state_dict())
    x = images(1, 2, 16, 8, 12)  # instance norm needs > 1 voxel at the deepest level
    with torch.no_grad():
        assert torch.equal(fresh(x), model(x))


@pytest.mark.parametrize("name", NAMES_3D)
def test_volume_model_channels_last_3d_gives_same_output(name: str) -> None:
    model = small_model(name).eval()
    x = images(2, 1, 8, 12, 10)
    with torch.no_grad():
        expected = model(x)
        model_cl = copy.deepcopy(model).to(memory_format=torch.channels_last_3d)  # type: ignore[call-overload]
        actual = model_cl(x.contiguous(memory_format=torch.channels_last_3d))
    torch.testing.assert_close(actual, expected, rtol=1e-4, atol=1e-5)


def test_model_spatial_dims() -> None:
    assert model_spatial_dims("unet3d") == 3
    assert model_spatial_dims("unet") == model_spatial_dims("cnn") == 2
    with pytest.raises(ValueError, match="unknown model"):
        model_spatial_dims("vnet")


# --- registry and factory ----------------------------------------------------------------------


def test_smp_without_its_extra_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "segmentation_models_pytorch", None)  # import fails
    with pytest.raises(ValueError, match=r"install it with pip install 'seglab\[smp\]'"):
        create_model("smp")


def test_create_model_unknown_name_lists_valid_names() -> None:
    with pytest.raises(ValueError, match=r"unknown model 'vnet'.*unet"):
        create_model("vnet")


def test_create_model_bad_argument_names_model_and_accepted_arguments() -> None:
    with pytest.raises(ValueError, match=r"'unet' does not accept 'filters'.*n_filters"):
        create_model("unet", filters=8)


def test_model_parameters_are_the_constructor_defaults() -> None:
    assert model_parameters("unet") == {
        "in_channels": 3,
        "num_classes": 1,
        "n_filters": 4,
        "depth": 4,
        "batch_norm": False,
        "dropout": 0.0,
        "bilinear": False,
    }


def test_count_parameters_counts_only_trainable() -> None:
    model = nn.Sequential(nn.Linear(3, 2), nn.Linear(2, 1))  # 8 + 3 parameters
    model[0].requires_grad_(False)
    assert count_parameters(model) == 3


# --- U-Net specifics ---------------------------------------------------------------------------


def test_seed_unet_parameter_count() -> None:
    # Seed 000: n_filters=4 -> widths 16, 32, 64, 128, 256; a 3×3 conv c_in -> c_out has
    # 9·c_in·c_out + c_out parameters (the transposed convs too), a 1×1 conv c_in·c_out + c_out.
    #   encoder  3->16->16:          448 +   2,320 =     2,768
    #           16->32->32:        4,640 +   9,248 =    13,888
    #           32->64->64:       18,496 +  36,928 =    55,424
    #           64->128->128:     73,856 + 147,584 =   221,440
    #          128->256->256:    295,168 + 590,080 =   885,248   -> 1,178,768
    #   decoder up 256->128   295,040; block 256->128->128 295,040 + 147,584 = 737,664
    #           up 128->64     73,792; block 128->64->64    73,792 +  36,928 = 184,512
    #           up  64->32     18,464; block  64->32->32    18,464 +   9,248 =  46,176
    #           up  32->16      4,624; block  32->16->16     4,624 +   2,320 =  11,568
    #                                                                          -> 979,920
    #   head 16->1 (1×1): 17.   Total 1,178,768 + 979,920 + 17 = 2,158,705 (about 2.16 M).
    assert count_parameters(UNet(in_channels=3, num_classes=1, n_filters=4)) == 2_158_705


@pytest.mark.parametrize(
    "kwargs",
    [
        {"batch_norm": True},
        {"dropout": 0.2},
        {"bilinear": True},
        {"depth": 2},
        {"depth": 2, "batch_norm": True, "dropout": 0.1, "bilinear": True, "num_classes": 3},
    ],
)
def test_unet_options_build_and_run(kwargs: dict[str, Any]) -> None:
    model = small_model("unet", **kwargs)
    out = model(images(2, 3, 20, 28))
    out.mean().backward()
    assert out.shape == (2, kwargs.get("num_classes", 1), 20, 28)


def test_unet_divisor_and_padding_reflect_at_bottom_right() -> None:
    model = small_model("unet", depth=2).eval()
    assert model.divisor == 4
    x = images(1, 3, 17, 31)
    padded = torch.nn.functional.pad(x, (0, 1, 0, 3), mode="reflect")  # 17×31 -> 20×32
    with torch.no_grad():
        torch.testing.assert_close(model(x), model(padded)[..., :17, :31])


def test_pad_end_matches_numpy_reflect_even_past_the_axis_length() -> None:
    x = torch.arange(10.0).view(1, 2, 5, 1)
    padded = pad_end(x, [11, 3])  # 5 -> 16 reflects three times; the 1-wide axis repeats
    expected = np.pad(x.numpy(), [(0, 0), (0, 0), (0, 11), (0, 0)], mode="reflect")
    expected = np.repeat(expected, 4, axis=3)
    np.testing.assert_array_equal(padded.numpy(), expected)
    assert padding_to_multiple([118, 128, 5], 16, least=32) == [10, 0, 27]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n_filters": 0}, "n_filters"),
        ({"depth": 0}, "depth"),
        ({"depth": 2.0}, "depth"),
        ({"in_channels": 0}, "in_channels"),
        ({"num_classes": True}, "num_classes"),
        ({"dropout": 1.0}, "dropout"),
        ({"dropout": -0.1}, "dropout"),
    ],
)
def test_unet_rejects_bad_arguments(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        UNet(**kwargs)  # type: ignore[arg-type]
