"""Precision choice: bf16 only where the hardware has it, fp32 otherwise; explicit requests
that would be slow are refused; the torch predictor in bf16 agrees with fp32."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from seglab import precision
from seglab.config import load_config
from seglab.errors import ConfigError
from seglab.inference import loading
from seglab.inference.loading import onnx_preferred
from seglab.inference.predictor import Predictor
from seglab.models import create_model


def test_cpu_flags_are_read_from_cpuinfo(tmp_path: Path) -> None:
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nflags\t\t: fpu avx2 avx512_bf16\n\nflags\t: other\n")
    assert precision.cpu_flags(cpuinfo) == {"fpu", "avx2", "avx512_bf16"}
    assert precision.cpu_flags(tmp_path / "missing") == frozenset()


def test_detection_follows_the_flags(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(precision.OVERRIDE_ENV, raising=False)
    for flags, expected in (({"avx2", "fma"}, False), ({"avx2", "amx_bf16"}, True)):
        monkeypatch.setattr(precision, "cpu_flags", lambda flags=flags: frozenset(flags))
        precision.cpu_has_native_bf16.cache_clear()
        assert precision.cpu_has_native_bf16() is expected
    precision.cpu_has_native_bf16.cache_clear()


@pytest.mark.usefixtures("native_bf16")
def test_auto_trains_in_bf16_on_a_native_bf16_cpu() -> None:
    assert precision.resolve_train_precision("auto", "cpu") == "bf16-mixed"
    assert precision.resolve_train_precision("32", "cpu") == "32"
    assert precision.resolve_train_precision("auto", "mps") == "32"
    assert precision.inference_dtype("auto", torch.device("cpu")) == torch.bfloat16
    assert precision.inference_dtype("32", torch.device("cpu")) == torch.float32


@pytest.mark.usefixtures("no_native_bf16")
def test_auto_keeps_fp32_and_refuses_emulated_bf16() -> None:
    assert precision.resolve_train_precision("auto", "cpu") == "32"
    assert precision.inference_dtype("auto", torch.device("cpu")) == torch.float32
    with pytest.raises(ConfigError, match="bf16-mixed on a CPU without bf16"):
        precision.resolve_train_precision("bf16-mixed", "cpu")
    with pytest.raises(ConfigError, match="--precision bf16 on a CPU without bf16"):
        precision.inference_dtype("bf16", torch.device("cpu"))
    with pytest.raises(ConfigError, match="16-mixed needs a GPU"):
        precision.resolve_train_precision("16-mixed", "cpu")
    with pytest.raises(ConfigError, match="unknown 'fp8'"):
        precision.inference_dtype("fp8", torch.device("cpu"))


def test_gpus_use_bf16_when_supported_else_fp16(monkeypatch: pytest.MonkeyPatch) -> None:
    for supported, expected in ((True, "bf16-mixed"), (False, "16-mixed")):
        monkeypatch.setattr(precision, "_cuda_bf16", lambda _device, s=supported: s)
        assert precision.resolve_train_precision("auto", "cuda") == expected
    monkeypatch.setattr(precision, "_cuda_bf16", lambda _device: False)
    assert precision.inference_dtype("auto", torch.device("cuda")) == torch.float16


def test_precision_32_is_read_as_text_from_yaml(tmp_path: Path) -> None:
    config = tmp_path / "run.yaml"
    config.write_text("train:\n  precision: 32\n")
    assert load_config(config).train.precision == "32"
    assert load_config(config, ["train.precision=bf16-mixed"]).train.precision == "bf16-mixed"


def test_onnx_is_the_auto_backend_unless_torch_has_native_bf16(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "model.onnx").write_bytes(b"")
    for native, expected in (("0", True), ("1", False)):
        monkeypatch.setenv(precision.OVERRIDE_ENV, native)
        precision.cpu_has_native_bf16.cache_clear()
        assert onnx_preferred(tmp_path, "auto") is expected
        assert onnx_preferred(tmp_path, "32") is True  # fp32: ONNX Runtime is the faster
    precision.cpu_has_native_bf16.cache_clear()
    assert onnx_preferred(tmp_path / "missing", "32") is False


@pytest.mark.usefixtures("native_bf16")
def test_bf16_predictor_agrees_with_fp32() -> None:
    torch.manual_seed(0)
    model = create_model("unet", in_channels=3, num_classes=1, n_filters=1)
    metadata = {
        "preprocessing": {"normalize": "scale", "percentiles": [1, 99], "channels": 3},
        "in_channels": 3,
        "threshold": 0.5,
    }
    image = np.random.default_rng(0).integers(0, 256, (48, 40, 3), dtype=np.uint8)
    full = Predictor(model, metadata, "cpu", precision="32").predict_proba(image)
    half = Predictor(model, metadata, "cpu", precision="auto").predict_proba(image)
    assert half.dtype == np.float32 and half.shape == (48, 40)
    # bf16 keeps 8 bits of mantissa: probabilities agree to about 1e-2, not exactly.
    assert np.abs(full - half).max() < 0.02
    assert not np.array_equal(full, half)


@pytest.mark.usefixtures("no_native_bf16")
def test_emulated_bf16_training_is_refused_before_the_run_folder_exists(tmp_path: Path) -> None:
    from seglab.training.run import train

    config = load_config(None, ["data.root=nowhere", "train.precision=bf16-mixed"])
    with pytest.raises(ConfigError, match="bf16-mixed on a CPU without bf16"):
        train(config, tmp_path / "run", progress=False)
    assert not (tmp_path / "run").exists()


def test_onnx_runtime_never_takes_a_gpus_place(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "model.onnx").write_bytes(b"")
    assert onnx_preferred(tmp_path, "32", "cpu") is True
    assert onnx_preferred(tmp_path, "32", "cuda") is False
    assert onnx_preferred(tmp_path, "32", "cuda:1") is False
    monkeypatch.setattr(loading, "cuda_gpu_present", lambda: True)
    assert onnx_preferred(tmp_path, "32", "auto") is False
    assert onnx_preferred(tmp_path, "32", "cpu") is True
    monkeypatch.setattr(loading, "cuda_gpu_present", lambda: False)
    assert onnx_preferred(tmp_path, "32", "auto") is True


def test_no_nvidia_driver_means_no_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(precision.shutil, "which", lambda _name: None)
    monkeypatch.setattr(precision.Path, "exists", lambda _self: False)
    precision.cuda_gpu_present.cache_clear()
    try:
        assert precision.cuda_gpu_present() is False
    finally:
        precision.cuda_gpu_present.cache_clear()
