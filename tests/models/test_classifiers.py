"""Tests of seglab.models.classifiers: a contract every classification model of MODELS must meet,
then the seed-004 parameter counts, argument checks and a tiny end-to-end training run."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch import nn

from seglab.models import (
    CNN,
    MLP,
    MODELS,
    MLPDropout,
    count_parameters,
    create_model,
    model_parameters,
    model_summary,
    model_task,
)

NAMES = sorted(n for n in MODELS if model_task(n) == "classification")
WITH_DROPOUT = [n for n in NAMES if "dropout" in model_parameters(n)]


def make(name: str, seed: int = 0, **kwargs: Any) -> nn.Module:
    torch.manual_seed(seed)
    return create_model(name, **kwargs)


def images(*shape: int) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(1))


# --- registry ----------------------------------------------------------------------------------


def test_registry_holds_the_seed_classifiers_and_tells_tasks_apart() -> None:
    assert NAMES == ["cnn", "mlp", "mlp_dropout"]
    assert (MODELS["mlp"], MODELS["mlp_dropout"], MODELS["cnn"]) == (MLP, MLPDropout, CNN)
    assert model_task("unet") == "segmentation"  # U-Nets have no `task` attribute
    with pytest.raises(ValueError, match="unknown model 'resnet'"):
        model_task("resnet")


# --- contract: every classification model ------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_shared_constructor_signature(name: str) -> None:
    params = model_parameters(name)
    assert list(params)[:3] == ["in_channels", "num_classes", "image_size"]
    assert (params["in_channels"], params["num_classes"], params["image_size"]) == (1, 10, (28, 28))
    assert isinstance(MODELS[name](), nn.Module)  # every argument has a default


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("in_channels", [1, 3])
@pytest.mark.parametrize("num_classes", [2, 10])
@pytest.mark.parametrize("size", [(8, 8), (28, 28), (16, 24)])
def test_output_shape(name: str, in_channels: int, num_classes: int, size: tuple[int, int]) -> None:
    model = make(name, in_channels=in_channels, num_classes=num_classes, image_size=size)
    assert model(images(3, in_channels, *size)).shape == (3, num_classes)


@pytest.mark.parametrize("name", NAMES)
def test_output_is_logits_not_probabilities(name: str) -> None:
    out = make(name).eval()(images(4, 1, 28, 28))
    assert not torch.allclose(out.sum(dim=1), torch.ones(4))


@pytest.mark.parametrize("name", NAMES)
def test_wrong_input_shape_names_the_expected_one(name: str) -> None:
    model = make(name, image_size=(16, 16))
    with pytest.raises(ValueError, match=r"expects input of shape \(N, 1, 16, 16\), got"):
        model(images(2, 1, 28, 28))


@pytest.mark.parametrize("name", NAMES)
def test_backward_gives_finite_gradients_on_all_parameters(name: str) -> None:
    model = make(name)
    model(images(4, 1, 28, 28)).logsumexp(dim=1).mean().backward()
    for param_name, param in model.named_parameters():
        assert param.grad is not None, param_name
        assert torch.isfinite(param.grad).all(), param_name


@pytest.mark.parametrize("name", NAMES)
def test_eval_output_is_deterministic(name: str) -> None:
    model = make(name).eval()
    x = images(4, 1, 28, 28)
    with torch.no_grad():
        assert torch.equal(model(x), model(x))


@pytest.mark.parametrize("name", WITH_DROPOUT)
def test_dropout_is_active_in_training_mode(name: str) -> None:
    model = make(name, dropout=0.5).train()
    x = images(4, 1, 28, 28)
    with torch.no_grad():
        assert not torch.equal(model(x), model(x))


@pytest.mark.parametrize("name", NAMES)
def test_state_dict_round_trip_gives_identical_outputs(name: str) -> None:
    model = make(name).eval()
    fresh = make(name, seed=123).eval()  # starts from different weights
    x = images(2, 1, 28, 28)
    with torch.no_grad():
        assert not torch.equal(fresh(x), model(x))
        fresh.load_state_dict(model.state_dict())
        assert torch.equal(fresh(x), model(x))


@pytest.mark.parametrize("name", NAMES)
def test_create_model_accepts_image_size_as_a_list(name: str) -> None:
    # YAML and JSON configs give lists, not tuples.
    model = create_model(name, in_channels=3, num_classes=4, image_size=[16, 24])
    assert model(images(2, 3, 16, 24)).shape == (2, 4)


@pytest.mark.parametrize("name", NAMES)
def test_summary_lists_totals_and_leaves_model_untouched(name: str) -> None:
    model = make(name)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    text = model_summary(model, (1, 1, 28, 28))
    assert f"Total params: {count_parameters(model):,}" in text
    assert "Output shape: (1, 10)" in text
    assert model.training  # eval() during the summary is undone
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize(
    "kwargs",
    [
        {"in_channels": 0},
        {"num_classes": True},
        {"image_size": (28,)},
        {"image_size": (0, 28)},
        {"image_size": (28.0, 28)},
        {"image_size": "28"},
    ],
)
def test_rejects_bad_shared_arguments(name: str, kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        create_model(name, **kwargs)


@pytest.mark.parametrize("name", WITH_DROPOUT)
@pytest.mark.parametrize("dropout", [1.0, -0.1, True])
def test_rejects_dropout_outside_unit_interval(name: str, dropout: object) -> None:
    with pytest.raises(ValueError, match="dropout"):
        create_model(name, dropout=dropout)


# --- seed 004 specifics ------------------------------------------------------------------------


def test_seed_parameter_counts() -> None:
    # A dense layer n -> m has n·m + m parameters; a 3×3 conv c_in -> c_out 9·c_in·c_out + c_out.
    # MLP, 28×28×1 -> 10: 784·10 + 10 = 7,850.
    assert count_parameters(MLP()) == 7_850
    # MLPDropout, 784 -> 200 -> 100 -> 60 -> 30 -> 10:
    #   784·200 + 200 = 157,000;  200·100 + 100 = 20,100;  100·60 + 60 = 6,060;
    #   60·30 + 30 = 1,830;  30·10 + 10 = 310.   Total 185,300.
    assert count_parameters(MLPDropout()) == 185_300
    # CNN, 8×8×1 -> 10: conv 1->32: 9·1·32 + 32 = 320; 32->64: 9·32·64 + 64 = 18,496;
    #   64->128: 9·64·128 + 128 = 73,856; three poolings 8 -> 4 -> 2 -> 1, so 128·1·1 = 128
    #   features; dense 128 -> 512: 65,536 + 512 = 66,048; 512 -> 10: 5,120 + 10 = 5,130.
    #   Total 320 + 18,496 + 73,856 + 66,048 + 5,130 = 163,850.
    assert count_parameters(CNN(image_size=(8, 8))) == 163_850
    # CNN, 28×28×1: 28 -> 14 -> 7 -> 3, so 3·3·128 = 1,152 features; dense 1,152·512 + 512 =
    #   590,336; total 320 + 18,496 + 73,856 + 590,336 + 5,130 = 688,138 (as the seed's Keras CNN).
    assert count_parameters(CNN()) == 688_138


def test_mlp_dropout_hidden_widths_from_a_list() -> None:
    # 8×8×1 -> 16 -> 10: 64·16 + 16 = 1,040 and 16·10 + 10 = 170.
    assert count_parameters(MLPDropout(image_size=(8, 8), hidden=[16])) == 1_210
    with pytest.raises(ValueError, match="hidden"):
        MLPDropout(hidden=(200, 0))


@pytest.mark.parametrize("size", [(7, 28), (28, 7), (1, 1)])
def test_cnn_rejects_images_too_small_to_pool_three_times(size: tuple[int, int]) -> None:
    with pytest.raises(ValueError, match="at least 8×8"):
        CNN(image_size=size)


def test_cnn_learns_mean_brightness() -> None:
    # Class 1 = mean brightness above 0.5: a trivial task, so reaching 90 % training accuracy
    # within 60 Adam steps shows the gradients flow from the logits back to the first conv.
    generator = torch.Generator().manual_seed(0)
    brightness = torch.rand(64, 1, 1, 1, generator=generator)
    x = (brightness + 0.2 * torch.randn(64, 1, 8, 8, generator=generator)).clamp(0, 1)
    y = (x.mean(dim=(1, 2, 3)) > 0.5).long()
    assert 0.25 < y.float().mean() < 0.75  # no constant prediction reaches 90 %
    model = make("cnn", num_classes=2, image_size=(8, 8))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)

    def accuracy() -> float:
        model.eval()
        with torch.no_grad():
            correct = (model(x).argmax(dim=1) == y).float().mean().item()
        model.train()
        return correct

    assert accuracy() < 0.9  # the untrained model does not already pass
    steps = 0
    while steps < 60 and accuracy() < 0.9:
        optimizer.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        optimizer.step()
        steps += 1
    assert accuracy() >= 0.9, f"{accuracy():.2f} after {steps} steps"
