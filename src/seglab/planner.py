"""Memory planner: how large a patch and batch fit a GPU (or CPU) memory budget.

Training memory = parameters + gradients + optimizer state + the activations autograd keeps for
backward. The first three are counted exactly; activations are measured by one forward pass with
hooks, which approximates what autograd keeps (it ignores cuDNN workspaces and the allocator's
fragmentation, and counts an in-place ReLU's output again), so leave headroom in the budget.
torch is imported inside the functions so that `parse_size` and `format_size` import cheaply.
"""

from __future__ import annotations

import copy
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from torch import nn

__all__ = [
    "MemoryEstimate",
    "PlanRow",
    "estimate_memory",
    "format_size",
    "free_memory_bytes",
    "parse_size",
    "plan_patch",
]

# Optimizer state per parameter, in parameter-sized tensors: Adam keeps two moments.
OPTIMIZER_STATES = {"adam": 2, "adamw": 2, "sgd": 0, "sgd_momentum": 1}

_UNITS = {"b": 1} | {u + "b": 1000**i for i, u in enumerate("kmgt", 1)}
_UNITS |= {u + "ib": 1024**i for i, u in enumerate("kmgt", 1)}
_SIZE = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:e[+-]?[0-9]+)?)\s*([a-z]*)\s*$", re.IGNORECASE)


@dataclass(frozen=True)
class MemoryEstimate:
    """Training memory of one model, input shape and batch, in bytes."""

    params_bytes: int
    grads_bytes: int
    optimizer_bytes: int
    activations_bytes: int
    total_bytes: int


@dataclass(frozen=True)
class PlanRow:
    """The largest patch side that fits the budget at one batch size."""

    batch: int
    side: int
    total_bytes: int


def parse_size(text: str) -> int:
    """Bytes in a size such as "8GiB", "512MiB", "2GB", "1.5 gib" or "1e9" (units: B, kB..TB
    in powers of 1000, KiB..TiB in powers of 1024, case-insensitive; no unit means bytes).
    Raises ValueError otherwise.
    """
    match = _SIZE.match(text)
    unit = match.group(2).lower() if match else ""
    if match is None or (unit and unit not in _UNITS):
        raise ValueError(f"cannot read the size {text!r}; write e.g. '8GiB', '2GB' or '1e9'")
    return int(float(match.group(1)) * _UNITS[unit or "b"])


def format_size(num_bytes: int) -> str:
    """A size in binary units with one decimal: 1536 -> "1.5 KiB", 2**33 -> "8.0 GiB"."""
    if abs(num_bytes) < 1024:
        return f"{num_bytes} B"
    value = float(num_bytes)
    for unit in ("KiB", "MiB", "GiB", "TiB"):
        value /= 1024
        if abs(value) < 1024 or unit == "TiB":
            break
    return f"{value:.1f} {unit}"


def estimate_memory(
    model: nn.Module,
    input_shape: tuple[int, ...],
    batch: int,
    dtype_bytes: int = 4,
    optimizer: str = "adam",
) -> MemoryEstimate:
    """Estimate the memory of one training step.

    Args:
        model: The network; a copy of it on the meta device (shapes, no storage) is run once
            on zeros in eval mode, so any input shape is measured without allocating it.
        input_shape: One sample's shape, `(C, *spatial)`.
        batch: Samples per step; activations are measured at batch 1 and scaled by it.
        dtype_bytes: Bytes per value of parameters and activations (4 for float32, 2 for fp16).
        optimizer: "adam", "adamw", "sgd" or "sgd_momentum".

    Returns:
        Parameters, gradients, optimizer state (Adam: 2× parameters) and activations (every leaf
        module's output summed, plus the input), all times `dtype_bytes`.
    """
    import torch

    if optimizer not in OPTIMIZER_STATES:
        raise ValueError(f"optimizer must be one of {', '.join(OPTIMIZER_STATES)}: {optimizer!r}")
    if batch < 1:
        raise ValueError(f"batch must be >= 1, got {batch}")
    params_bytes = sum(p.numel() for p in model.parameters()) * dtype_bytes
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad) * dtype_bytes
    optimizer_bytes = OPTIMIZER_STATES[optimizer] * trainable

    output_values = 0

    def count(_module: nn.Module, _inputs: object, output: object) -> None:
        nonlocal output_values
        tensors = output if isinstance(output, tuple | list) else (output,)
        output_values += sum(t.numel() for t in tensors if isinstance(t, torch.Tensor))

    # A copy on the meta device has shapes but no storage: any patch is measured without
    # allocating its activations (a 100000³ patch would need petabytes).
    probe = copy.deepcopy(model).to("meta").eval()
    for leaf in (module for module in probe.modules() if not any(module.children())):
        leaf.register_forward_hook(count)
    with torch.no_grad():
        probe(torch.zeros(1, *input_shape, device="meta"))
    activations_bytes = batch * (output_values + math.prod(input_shape)) * dtype_bytes
    total = params_bytes + trainable + optimizer_bytes + activations_bytes
    return MemoryEstimate(params_bytes, trainable, optimizer_bytes, activations_bytes, total)


def plan_patch(
    model_factory: Callable[[], nn.Module],
    channels: int,
    budget_bytes: int,
    divisor: int,
    spatial_dims: int = 3,
    max_side: int = 256,
    batches: tuple[int, ...] = (1, 2, 4, 8),
) -> list[PlanRow]:
    """For each batch, the largest cubic (or square) patch side that fits `budget_bytes`.

    Memory is estimated once, at batch 1 and side `2 * divisor`, then scaled: activations are
    proportional to batch × side**spatial_dims. For a fully convolutional network such as the
    U-Nets this is exact at sides that are multiples of `divisor` (every level then holds
    (side / 2**level)**dims voxels); a model with fixed-size layers would need bisection instead.
    The reference is not `divisor` since instance norm cannot normalise the single voxel the deepest
    level holds there (nor can a model with instance norm run a row at side `divisor`).

    Args:
        model_factory: Builds the model (called once).
        channels: Input channels.
        budget_bytes: Memory available for training (see `free_memory_bytes`).
        divisor: Sides are multiples of this (the model's `divisor`).
        spatial_dims: 3 for volumes, 2 for images.
        max_side: Largest side considered.
        batches: Batch sizes to plan for.

    Returns:
        One `PlanRow` per batch that fits at side `divisor` or more, in the order of `batches`;
        empty when nothing fits, which the caller should explain (smaller model, larger budget).
    """
    if divisor < 1 or spatial_dims < 1:
        raise ValueError(f"divisor and spatial_dims must be >= 1, got {divisor}, {spatial_dims}")
    if max_side < divisor:
        return []
    ref_voxels = (2 * divisor) ** spatial_dims
    reference = estimate_memory(model_factory(), (channels, *[2 * divisor] * spatial_dims), 1)
    fixed = reference.total_bytes - reference.activations_bytes
    rows = []
    for batch in batches:
        fits = []
        for side in range(divisor, max_side + 1, divisor):
            total = fixed + batch * reference.activations_bytes * side**spatial_dims // ref_voxels
            if total > budget_bytes:
                break
            fits.append(PlanRow(batch, side, total))
        rows += fits[-1:]
    return rows


def free_memory_bytes() -> int:
    """Free memory of the current CUDA device, else MemAvailable (OSError if not Linux)."""
    import torch

    if torch.cuda.is_available():
        free, _total = torch.cuda.mem_get_info()
        return int(free)
    return available_ram_bytes()


def available_ram_bytes() -> int:
    """MemAvailable of /proc/meminfo (OSError if not Linux)."""
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) * 1024  # the file says kB but means KiB
    raise OSError("/proc/meminfo has no MemAvailable line; pass the budget explicitly")
