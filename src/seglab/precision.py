"""Fast numeric formats for the hardware at hand: bf16 where it is native, channels-last layouts.

On a CPU with bf16 instructions (AVX512_BF16 or AMX) oneDNN runs bf16 convolutions about twice as
fast as fp32 (the seed U-Net's training step 30 → 58 img/s, inference 114 → 215 img/s on the
2-core Zen 4 build machine); on a CPU without them bf16 is emulated and about 20 times slower. So
"auto" picks bf16 only where it is native: bf16 autocast on such CPUs and on GPUs that support
it, fp16 autocast with loss scaling on older GPUs, fp32 otherwise.
"""

from __future__ import annotations

import contextlib
import functools
import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from seglab.errors import ConfigError

if TYPE_CHECKING:  # torch is imported where it is used: ONNX-only deployments never load it
    import torch

__all__ = [
    "TrainPrecision",
    "accelerator_device_type",
    "autocast",
    "channels_last_format",
    "cpu_has_native_bf16",
    "cuda_gpu_present",
    "inference_dtype",
    "prefer_torch_on_cpu",
    "resolve_train_precision",
]

TrainPrecision = Literal["auto", "32", "16-mixed", "bf16-mixed"]

# CPU flags (as /proc/cpuinfo spells them) of instructions that compute bf16 dot products.
NATIVE_BF16_FLAGS = frozenset({"avx512_bf16", "amx_bf16"})
# `SEGLAB_CPU_BF16=0` (or 1) overrides the detection, e.g. to train in fp32 on a bf16 CPU.
OVERRIDE_ENV = "SEGLAB_CPU_BF16"


def cpu_flags(cpuinfo: Path = Path("/proc/cpuinfo")) -> frozenset[str]:
    """The instruction-set flags of the first CPU in `cpuinfo`; empty where there is none."""
    try:
        text = cpuinfo.read_text()
    except OSError:
        return frozenset()
    for line in text.splitlines():
        if line.startswith("flags"):
            return frozenset(line.split(":", 1)[1].split())
    return frozenset()


@functools.cache
def cpu_has_native_bf16() -> bool:
    """True when this CPU computes bf16 in hardware (Linux flags `avx512_bf16` or `amx_bf16`),
    which oneDNN (torch's CPU convolutions) uses; `SEGLAB_CPU_BF16=0/1` overrides the answer."""
    override = os.environ.get(OVERRIDE_ENV)
    if override in ("0", "1"):
        return override == "1"
    return bool(NATIVE_BF16_FLAGS & cpu_flags())


@functools.cache
def cuda_gpu_present() -> bool:
    """Whether torch runs on a CUDA GPU here. torch is imported to find out only where an NVIDIA
    driver is installed (``/proc/driver/nvidia`` or ``nvidia-smi``), so that an ONNX-only
    deployment on a machine without one never loads it."""
    if not (Path("/proc/driver/nvidia/version").exists() or shutil.which("nvidia-smi")):
        return False
    import torch

    return torch.cuda.is_available()


def prefer_torch_on_cpu(precision: str) -> bool:
    """Whether torch beats ONNX Runtime for CPU inference at `precision`: with native bf16 it
    runs the seed U-Net 2.5x faster than ONNX Runtime's fp32 (215 vs 86 img/s at batch 8 on
    the 2-core build machine); in fp32 ONNX Runtime is the faster one."""
    return precision != "32" and cpu_has_native_bf16()


def accelerator_device_type(accelerator: str) -> str:
    """The torch device type ("cuda", "mps" or "cpu") that Lightning's `accelerator` trains on.

    Raises:
        ConfigError: A GPU is asked for ("gpu", "cuda", "mps") and torch finds none.
    """
    import torch

    cuda, mps = torch.cuda.is_available(), torch.backends.mps.is_available()
    wanted = {"gpu": cuda or mps, "cuda": cuda, "mps": mps}.get(accelerator, True)
    if not wanted:
        build = f"torch {torch.__version__}" + ("" if torch.version.cuda else ", a CPU-only build")
        raise ConfigError(
            f"train.accelerator={accelerator}: torch finds no such GPU on this machine ({build}); "
            "train with train.accelerator=auto (or cpu), or install a CUDA build of torch"
        )
    if accelerator == "gpu":
        return "cuda" if cuda else "mps"
    if accelerator != "auto":
        return accelerator
    return "cuda" if cuda else "mps" if mps else "cpu"


def _cuda_bf16(device: torch.device) -> bool:
    import torch

    return bool(torch.cuda.is_bf16_supported()) if device.type == "cuda" else False


def resolve_train_precision(requested: str, device_type: str) -> str:
    """The Lightning `precision` to train with on `device_type` ("cpu", "cuda", "mps").

    "auto": "bf16-mixed" on a native-bf16 CPU or a bf16 GPU, "16-mixed" on other GPUs, "32"
    elsewhere. An explicit "bf16-mixed" on a CPU without bf16 instructions is refused (emulated
    bf16 is ~20x slower there), as is "16-mixed" on a CPU (no fp16 convolutions).
    """
    if requested == "auto":
        if device_type == "cuda":
            import torch

            return "bf16-mixed" if _cuda_bf16(torch.device("cuda")) else "16-mixed"
        if device_type == "cpu" and cpu_has_native_bf16():
            return "bf16-mixed"
        return "32"
    if device_type == "cpu" and requested == "bf16-mixed" and not cpu_has_native_bf16():
        raise ConfigError(
            "train.precision: bf16-mixed on a CPU without bf16 instructions (avx512_bf16 or "
            "amx_bf16) would be ~20x slower than fp32; use train.precision=auto or 32"
        )
    if device_type == "cpu" and requested == "16-mixed":
        raise ConfigError(
            "train.precision: 16-mixed needs a GPU; on a CPU use train.precision=auto, "
            "bf16-mixed (CPUs with bf16 instructions) or 32"
        )
    return requested


def inference_dtype(requested: str, device: torch.device) -> torch.dtype:
    """The dtype to run convolutions in at inference: `requested` "32" → float32, "bf16" →
    bfloat16 (refused on a CPU without bf16 instructions), "auto" → bfloat16 where native (CPU
    or GPU), float16 on other GPUs, else float32."""
    import torch

    if requested == "32":
        return torch.float32
    native = cpu_has_native_bf16() if device.type == "cpu" else _cuda_bf16(device)
    if requested == "bf16":
        if device.type == "cpu" and not native:
            raise ConfigError(
                "--precision bf16 on a CPU without bf16 instructions would be ~20x slower than "
                "fp32; use --precision auto or 32"
            )
        return torch.bfloat16
    if requested != "auto":
        raise ConfigError(f"--precision: unknown '{requested}'; valid: auto, 32, bf16")
    if native:
        return torch.bfloat16
    return torch.float16 if device.type == "cuda" else torch.float32


def autocast(device: torch.device, dtype: torch.dtype) -> contextlib.AbstractContextManager[None]:
    """Autocast to `dtype` on `device`; a no-op for float32."""
    import torch

    if dtype == torch.float32:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)


def channels_last_format(ndim: int) -> torch.memory_format:
    """The channels-last layout of a batch of `ndim` axes: `channels_last` for `(N, C, H, W)`,
    `channels_last_3d` for `(N, C, D, H, W)` volumes (a 3D U-Net training step ran 1.4-1.8x
    faster with it on CPU than in the default layout), `contiguous_format` otherwise."""
    import torch

    if ndim == 4:
        return torch.channels_last
    if ndim == 5:
        return torch.channels_last_3d
    return torch.contiguous_format
