"""Tests of seglab.models.smp_models beyond the model contract (test_models.py runs that too).

Nothing here downloads: smp's Hugging Face downloads are answered from a temporary folder
(`fake_hub`) or made to fail.
"""

from __future__ import annotations

import json
from pathlib import Path
from urllib.error import URLError

import pytest
import torch

from conftest import SMP_MARKS, SMP_TINY
from seglab.bundle import load_bundle, make_metadata, read_metadata, save_bundle
from seglab.errors import SeglabError
from seglab.models import (
    SmpModel,
    bundle_kwargs,
    check_fits_in_memory,
    create_model,
    offline_kwargs,
)

pytestmark = list(SMP_MARKS)

# torchvision's ImageNet statistics, which smp's ImageNet encoders record.
IMAGENET_MEAN = [0.485, 0.456, 0.406]
IMAGENET_STD = [0.229, 0.224, 0.225]
PRETRAINED = {**SMP_TINY, "encoder_weights": "imagenet"}


@pytest.fixture
def fake_hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str]]:
    """smp's hub downloads answered from `tmp_path`: random ResNet-18 encoder weights and a
    config.json of ImageNet's statistics. Returns the (repo, file) of each download."""
    import segmentation_models_pytorch.encoders as encoders
    from safetensors.torch import save_file

    torch.manual_seed(7)
    weights = encoders.get_encoder("resnet18", weights=None).state_dict()
    save_file({k: v.contiguous() for k, v in weights.items()}, str(tmp_path / "model.safetensors"))
    config = {"mean": IMAGENET_MEAN, "std": IMAGENET_STD, "input_range": [0, 1]}
    (tmp_path / "config.json").write_text(json.dumps(config))
    downloads: list[tuple[str, str]] = []

    def download(repo_id: str, filename: str, **_: object) -> str:
        downloads.append((repo_id, filename))
        return str(tmp_path / filename)

    monkeypatch.setattr(encoders, "hf_hub_download", download)
    return downloads


def offline_hub(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every hub download fails as without network."""
    import segmentation_models_pytorch.encoders as encoders

    def download(*_: object, **__: object) -> str:
        raise URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(encoders, "hf_hub_download", download)


def images(*shape: int) -> torch.Tensor:
    return torch.rand(*shape, generator=torch.Generator().manual_seed(1))


def test_bad_arch_and_encoder_list_the_valid_names() -> None:
    with pytest.raises(ValueError, match=r"unknown arch 'Unett'; valid: Unet, UnetPlusPlus, "):
        SmpModel(arch="Unett", encoder="resnet18")
    with pytest.raises(ValueError, match=r"unknown encoder 'resnet1'; valid: resnet18, resnet34"):
        SmpModel(encoder="resnet1")
    with pytest.raises(ValueError, match="'tu-no_such_net' is not a timm model"):
        SmpModel(encoder="tu-no_such_net")


def test_arch_names_are_case_insensitive() -> None:
    assert SmpModel(arch="fpn", encoder="resnet18").arch == "FPN"


@pytest.mark.parametrize("arch", ["FPN", "DeepLabV3Plus", "UnetPlusPlus", "Segformer", "PAN"])
def test_architectures_take_odd_sizes(arch: str) -> None:
    model = SmpModel(num_classes=3, arch=arch, encoder="resnet18")
    assert model(images(2, 3, 37, 53)).shape == (2, 3, 37, 53)
    assert model.eval()(images(1, 3, 37, 53)).shape == (1, 3, 37, 53)


def test_pan_pads_to_eight_times_the_encoder_stride() -> None:
    assert SmpModel(arch="PAN", encoder="resnet18").divisor == 16 * 8
    assert SmpModel(arch="Unet", encoder="resnet18").divisor == 32


def test_global_pooling_batch_norm_on_one_image_says_to_raise_the_batch_size() -> None:
    model = SmpModel(arch="DeepLabV3Plus", encoder="resnet18")
    with pytest.raises(SeglabError, match="data.batch_size of at least 2"):
        model(images(1, 3, 64, 64))
    assert model.eval()(images(1, 3, 64, 64)).shape == (1, 1, 64, 64)


def test_without_pretrained_weights_the_input_is_not_normalised() -> None:
    model = SmpModel(in_channels=2, **SMP_TINY)
    assert model.mean.flatten().tolist() == [0.0, 0.0]
    assert model.std.flatten().tolist() == [1.0, 1.0]


def test_mean_and_std_normalise_inside_the_network() -> None:
    normalised = SmpModel(mean=[0.5, 0.25, 0.0], std=[0.5, 2.0, 1.0], **SMP_TINY).eval()
    plain = SmpModel(**SMP_TINY).eval()
    plain.network.load_state_dict(normalised.network.state_dict())
    x = images(2, 3, 32, 32)
    by_hand = (x - torch.tensor([0.5, 0.25, 0.0]).view(1, 3, 1, 1)) / torch.tensor(
        [0.5, 2.0, 1.0]
    ).view(1, 3, 1, 1)
    with torch.no_grad():
        torch.testing.assert_close(normalised(x), plain(by_hand))
    resolved = {
        "arch": "Unet",
        "encoder": "resnet18",
        "mean": [0.5, 0.25, 0.0],
        "std": [0.5, 2.0, 1.0],
    }
    assert normalised.resolved_kwargs() == resolved


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"mean": [0.5, 0.5]}, "mean and std must both be lists of 3 values"),
        ({"mean": [0.5] * 3, "std": [1.0] * 2}, "mean and std must both be lists of 3 values"),
        ({"mean": [0.5] * 3, "std": [1.0, 0.0, 1.0]}, r"std must be positive, got \[1.0, 0.0"),
    ],
)
def test_bad_mean_or_std_is_refused(kwargs: dict[str, list[float]], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        SmpModel(**SMP_TINY, **kwargs)


def test_pretrained_encoder_loads_its_weights_and_imagenet_statistics(
    fake_hub: list[tuple[str, str]], tmp_path: Path
) -> None:
    from safetensors.torch import load_file

    model = SmpModel(**PRETRAINED)
    assert ("smp-hub/resnet18.imagenet", "model.safetensors") in fake_hub
    expected = load_file(str(tmp_path / "model.safetensors"))
    for key, value in model.network.encoder.state_dict().items():
        torch.testing.assert_close(value, expected[key], rtol=0, atol=0, msg=key)
    torch.testing.assert_close(model.mean.flatten(), torch.tensor(IMAGENET_MEAN))
    torch.testing.assert_close(model.std.flatten(), torch.tensor(IMAGENET_STD))


def test_grey_images_take_the_average_imagenet_statistics(fake_hub: list[object]) -> None:
    model = SmpModel(in_channels=1, **PRETRAINED)
    # (0.485 + 0.456 + 0.406) / 3 and (0.229 + 0.224 + 0.225) / 3
    assert model.mean.flatten().tolist() == pytest.approx([0.449])
    assert model.std.flatten().tolist() == pytest.approx([0.226])


def test_without_network_pretrained_weights_fail_with_what_to_do(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    offline_hub(monkeypatch)
    with pytest.raises(ValueError, match="cannot fetch the pretrained encoder weights") as error:
        create_model("smp", **PRETRAINED)
    assert "encoder_weights: null" in str(error.value)
    assert "URLError" in str(error.value)


def test_memory_check_and_offline_kwargs_never_download(monkeypatch: pytest.MonkeyPatch) -> None:
    offline_hub(monkeypatch)
    check_fits_in_memory("smp", SmpModel, PRETRAINED)  # no error: built without weights
    assert offline_kwargs("smp", PRETRAINED) == {**PRETRAINED, "encoder_weights": None}


def test_bundle_records_statistics_and_loads_offline_with_same_outputs(
    fake_hub: list[object], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = create_model("smp", num_classes=2, **PRETRAINED)
    model(images(4, 3, 32, 32))  # a training step's pass moves the batch-norm statistics
    model.eval()
    recorded = bundle_kwargs("smp", model, {"in_channels": 3, "num_classes": 2, **PRETRAINED})
    assert recorded["encoder_weights"] is None
    assert recorded["mean"] == pytest.approx(IMAGENET_MEAN)
    preprocessing = {"normalize": "scale", "percentiles": [1, 99], "input_size": None}
    rest = {"preprocessing": preprocessing, "threshold": 0.5, "metrics": {}, "config": {}}
    bundle = save_bundle(
        model, make_metadata(model_name="smp", model_kwargs=recorded, **rest), tmp_path / "b"
    )
    assert read_metadata(bundle)["model"]["kwargs"]["std"] == pytest.approx(IMAGENET_STD)

    offline_hub(monkeypatch)
    # A bundle whose arguments still ask for ImageNet weights loads offline as well.
    asking = {"in_channels": 3, "num_classes": 2, **PRETRAINED}
    meta = make_metadata(model_name="smp", model_kwargs=asking, **rest)
    asking_bundle = save_bundle(model, meta, tmp_path / "asking")
    x = images(2, 3, 45, 61)
    with torch.no_grad():
        expected = model(x)
        for path in (bundle, asking_bundle):
            loaded, _ = load_bundle(path)
            torch.testing.assert_close(loaded(x), expected, rtol=0, atol=0)
            torch.testing.assert_close(loaded.mean.flatten(), torch.tensor(IMAGENET_MEAN))


def test_fine_tuning_from_an_smp_bundle_takes_the_arguments_it_was_trained_with(
    tmp_path: Path,
) -> None:
    from seglab.training.init_weights import load_initial_weights

    kwargs = {"in_channels": 3, "num_classes": 1, **SMP_TINY}
    torch.manual_seed(0)
    trained = create_model("smp", **kwargs)
    rest = {"preprocessing": {}, "threshold": 0.5, "metrics": {}, "config": {}}
    recorded = bundle_kwargs("smp", trained, kwargs)  # arch, mean and std added
    save_bundle(trained, make_metadata(model_name="smp", model_kwargs=recorded, **rest), tmp_path)
    torch.manual_seed(1)
    fresh = create_model("smp", **kwargs)
    load_initial_weights(fresh, "smp", kwargs, str(tmp_path))
    for key, value in trained.state_dict().items():
        assert torch.equal(fresh.state_dict()[key], value), key
