"""Shared fixtures: tiny synthetic datasets and a tiny trained run, made once per session."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from seglab import precision

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
os.environ.setdefault("MPLBACKEND", "Agg")

# The run folder contract of DESIGN.md (files every training run must write).
RUN_FOLDER_FILES = (
    "config.yaml",
    "splits.json",
    "train_log.csv",
    "curves.png",
    "threshold.png",
    "model_summary.txt",
    "checkpoints/best.ckpt",
    "checkpoints/last.ckpt",
    "model/weights.safetensors",
    "model/seglab.json",
    "eval/test/metrics.json",
    "eval/test/per_image.csv",
    "eval/test/report.html",
)

# `model.name: smp` needs the smp extra: its tests are marked `smp` and skip where it is missing.
SMP_MARKS = (
    pytest.mark.smp,
    pytest.mark.skipif(
        importlib.util.find_spec("segmentation_models_pytorch") is None,
        reason="needs the smp extra: pip install 'seglab[smp]' (make test runs it in .venv-smp)",
    ),
)
# The smallest of smp's ResNet encoders keeps its tests fast; weights are never downloaded.
SMP_TINY = {"encoder": "resnet18", "encoder_weights": None}


def model_params(names: list[str]) -> list[object]:
    """Model names as pytest parameters; `smp` carries `SMP_MARKS`."""
    return [pytest.param(name, marks=SMP_MARKS if name == "smp" else ()) for name in names]


# A U-Net small enough to train in seconds on 2 CPU cores.
TINY_MODEL = ["model.params.n_filters=1", "model.params.depth=2", "model.params.batch_norm=false"]


@pytest.fixture(scope="session")
def nuclei_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """20 synthetic 32x32 nuclei images in the dsb2018 layout with train/val/test folders."""
    from seglab.data.synthetic import write_synthetic

    out = tmp_path_factory.mktemp("data") / "nuclei"
    write_synthetic("nuclei_simple", out, 20, size=32, seed=1)
    return out


def tiny_overrides(data: Path, *extra: str) -> list[str]:
    return [
        f"data.root={data}",
        "train.epochs=2",
        "data.batch_size=4",
        "tracking.enabled=false",
        *TINY_MODEL,
        *extra,
    ]


def _cpu_bf16(monkeypatch: pytest.MonkeyPatch, native: bool) -> Iterator[None]:
    monkeypatch.setenv(precision.OVERRIDE_ENV, "1" if native else "0")
    precision.cpu_has_native_bf16.cache_clear()
    yield
    precision.cpu_has_native_bf16.cache_clear()


@pytest.fixture
def native_bf16(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Run as on a CPU with bf16 instructions (emulated, and slow, where it has none)."""
    yield from _cpu_bf16(monkeypatch, True)


@pytest.fixture
def no_native_bf16(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Run as on a CPU without bf16 instructions."""
    yield from _cpu_bf16(monkeypatch, False)


def run_main(args: list[str], monkeypatch: pytest.MonkeyPatch) -> int:
    """Run the `seglab` entry point in this process with `args`; its exit code."""
    from seglab.cli.main import main

    monkeypatch.setattr(sys, "argv", ["seglab", *args])
    try:
        main()
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0


def seglab(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run `python -m seglab ARGS` (asserting success unless `check` is false)."""
    result = subprocess.run(
        [sys.executable, "-m", "seglab", *args], capture_output=True, text=True, timeout=600
    )
    if check and result.returncode != 0:
        raise AssertionError(f"seglab {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result


def tiny_gray_unet_bundle(folder: Path) -> Path:
    """An untrained U-Net bundle for 1-channel images (1 filter, depth 2, 64-pixel tiles)."""
    import torch

    from seglab.bundle import make_metadata, save_bundle
    from seglab.models import create_model

    torch.manual_seed(0)
    kwargs = {"in_channels": 1, "num_classes": 1, "n_filters": 1, "depth": 2}
    pre = {"normalize": "scale", "percentiles": [1, 99], "input_size": None, "tile": 64}
    meta = make_metadata(
        model_name="unet",
        model_kwargs=kwargs,
        preprocessing=pre,
        threshold=0.5,
        metrics={},
        config={},
    )
    return save_bundle(create_model("unet", **kwargs), meta, folder)
