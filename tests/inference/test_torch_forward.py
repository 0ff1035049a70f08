"""`torch_forward`'s fast paths: bf16 weights cast once on the CPU, and `torch.compile`."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
import torch

from seglab.inference.predictor import bf16_weights, torch_forward
from seglab.models import create_model
from seglab.precision import cpu_has_native_bf16


def _unet(batch_norm: bool = False) -> torch.nn.Module:
    torch.manual_seed(0)
    return create_model(
        "unet", in_channels=3, num_classes=1, n_filters=1, depth=2, batch_norm=batch_norm
    ).eval()


def test_bf16_weights_casts_a_copy_and_keeps_norm_layers_in_float32() -> None:
    model = _unet(batch_norm=True)
    copied = bf16_weights(model)
    assert copied.stem.conv1.weight.dtype == torch.bfloat16
    assert copied.stem.norm1.weight.dtype == torch.float32
    assert copied.stem.norm1.running_var.dtype == torch.float32
    # The original is left as it was.
    assert model.stem.conv1.weight.dtype == torch.float32


def test_bf16_weights_compute_what_bf16_autocast_computes() -> None:
    model = _unet()
    x = torch.randn(2, 3, 32, 32)
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
        expected = model(x).float()
    with torch.inference_mode():
        got = bf16_weights(model)(x.to(torch.bfloat16)).float()
    assert torch.equal(got, expected)


@pytest.fixture
def native_bf16(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    # Emulated bf16 is slow, but this network is tiny; the override makes "bf16" allowed.
    monkeypatch.setenv("SEGLAB_CPU_BF16", "1")
    cpu_has_native_bf16.cache_clear()
    yield
    cpu_has_native_bf16.cache_clear()


@pytest.mark.usefixtures("native_bf16")
def test_cpu_bf16_forward_matches_autocast_and_leaves_the_model_in_float32() -> None:
    model = _unet()
    batch = np.random.default_rng(0).random((1, 3, 32, 32), dtype=np.float32)
    forward = torch_forward(model, "cpu", precision="bf16")
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
        expected = torch.sigmoid(model(torch.from_numpy(batch)).float()).numpy()
    got = forward(batch)
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, expected)
    assert model.stem.conv1.weight.dtype == torch.float32


@pytest.mark.slow
def test_compiled_forward_matches_the_eager_one() -> None:
    model = _unet()
    batch = np.random.default_rng(0).random((2, 3, 32, 32), dtype=np.float32)
    eager = torch_forward(model, "cpu", precision="32")(batch)
    compiled = torch_forward(model, "cpu", precision="32", compile=True)
    np.testing.assert_allclose(compiled(batch), eager, atol=1e-5)
    np.testing.assert_allclose(compiled(batch), eager, atol=1e-5)  # the compiled graph reused
