"""Tests of seglab.planner: size parsing/formatting, memory estimate components, patch plans,
and the estimate against the measured memory of real training steps."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from seglab.models.unet import UNet
from seglab.models.unet3d import UNet3D
from seglab.planner import (
    MemoryEstimate,
    estimate_memory,
    format_size,
    free_memory_bytes,
    parse_size,
    plan_patch,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("8GiB", 8 * 2**30),
        ("512MiB", 512 * 2**20),
        ("2GB", 2_000_000_000),
        ("1e9", 1_000_000_000),
        ("1.5 kib", 1536),
        ("100", 100),
        ("3B", 3),
    ],
)
def test_parse_size(text: str, expected: int) -> None:
    assert parse_size(text) == expected


@pytest.mark.parametrize("text", ["", "GiB", "8 GiBs", "-1GB", "eight"])
def test_parse_size_rejects_garbage(text: str) -> None:
    with pytest.raises(ValueError, match="cannot read the size"):
        parse_size(text)


@pytest.mark.parametrize(
    ("num_bytes", "expected"),
    [(0, "0 B"), (1023, "1023 B"), (1024, "1.0 KiB"), (1536, "1.5 KiB"), (8 * 2**30, "8.0 GiB")],
)
def test_format_size(num_bytes: int, expected: str) -> None:
    assert format_size(num_bytes) == expected


def model() -> UNet3D:
    return UNet3D(n_filters=1, depth=2)


def test_estimate_components() -> None:
    net = model()
    count = sum(p.numel() for p in net.parameters())
    est = estimate_memory(net, (1, 8, 8, 8), batch=1)
    assert isinstance(est, MemoryEstimate)
    assert est.params_bytes == 4 * count
    assert est.grads_bytes == est.params_bytes
    assert est.optimizer_bytes == 2 * est.params_bytes
    assert estimate_memory(net, (1, 8, 8, 8), batch=1, optimizer="sgd").optimizer_bytes == 0
    assert est.total_bytes == (
        est.params_bytes + est.grads_bytes + est.optimizer_bytes + est.activations_bytes
    )
    # At least the stem's first convolution output (4 channels × 8³) is kept.
    assert est.activations_bytes > 4 * 4 * 8**3
    assert estimate_memory(net, (1, 8, 8, 8), 1, dtype_bytes=2).params_bytes == 2 * count


def test_estimate_restores_training_flag_and_rejects_unknown_optimizer() -> None:
    net = model().train()
    estimate_memory(net, (1, 8, 8, 8), batch=1)
    assert net.training
    with pytest.raises(ValueError, match="optimizer"):
        estimate_memory(net, (1, 8, 8, 8), batch=1, optimizer="lion")


def test_activations_scale_with_batch_and_volume() -> None:
    net = model()
    base = estimate_memory(net, (1, 8, 8, 8), batch=1).activations_bytes
    by_batch = estimate_memory(net, (1, 8, 8, 8), batch=4).activations_bytes
    by_side = estimate_memory(net, (1, 16, 16, 16), batch=1).activations_bytes
    assert by_batch / base == pytest.approx(4, rel=0.1)
    assert by_side / base == pytest.approx(8, rel=0.1)


def test_plan_sides_are_multiples_of_divisor_and_grow_with_budget() -> None:
    budget = 64 * 2**20
    plan = plan_patch(model, channels=1, budget_bytes=budget, divisor=4, max_side=64)
    assert [row.batch for row in plan] == [1, 2, 4, 8]
    assert all(row.side % 4 == 0 and row.total_bytes <= budget for row in plan)
    assert [row.side for row in plan] == sorted((row.side for row in plan), reverse=True)
    larger = plan_patch(model, channels=1, budget_bytes=4 * budget, divisor=4, max_side=64)
    assert all(big.side >= small.side for big, small in zip(larger, plan))
    assert any(big.side > small.side for big, small in zip(larger, plan))


def test_plan_matches_direct_estimate() -> None:
    (row,) = plan_patch(model, 1, 64 * 2**20, divisor=4, max_side=64, batches=(2,))
    direct = estimate_memory(model(), (1, row.side, row.side, row.side), batch=2)
    assert row.total_bytes == pytest.approx(direct.total_bytes, rel=0.01)
    too_big = estimate_memory(model(), (1, *[row.side + 4] * 3), batch=2)
    assert row.side == 64 or too_big.total_bytes > 64 * 2**20


def test_plan_square_patches_for_a_2d_unet() -> None:
    def unet2d() -> UNet:
        return UNet(in_channels=3, n_filters=1, depth=2)

    (row,) = plan_patch(unet2d, 3, 2**20, divisor=4, spatial_dims=2, max_side=256, batches=(1,))
    assert row.side % 4 == 0 and 4 <= row.side < 256
    assert estimate_memory(unet2d(), (3, row.side, row.side), 1).total_bytes <= 2**20
    assert estimate_memory(unet2d(), (3, row.side + 4, row.side + 4), 1).total_bytes > 2**20


def test_tiny_budget_gives_empty_plan() -> None:
    assert plan_patch(model, channels=1, budget_bytes=1000, divisor=4) == []


def test_free_memory_is_positive() -> None:
    assert free_memory_bytes() > 0
    assert isinstance(free_memory_bytes(), int)
    assert torch.cuda.is_available() or free_memory_bytes() < 2**50


def test_estimate_is_a_lower_bound_of_measured_training_memory() -> None:
    # benchmarks/planner_check.py runs two real Adam steps of unet3d (n_filters=1, depth=2) on a
    # (2, 1, 32, 32, 32) batch in a fresh process and reports its peak RSS over its RSS before
    # the model. The estimate leaves out the backward pass's transient gradients, the loss and
    # allocator caching, so the measured peak is above it: 2.33x here (18 -> 41 MiB), 1.5-2.5x
    # at batch 2 for n_filters=2, depth=3 and patches of 32³ to 64³. (At batch 1 on CPU a
    # further 100-200 MiB appears, so small batch-1 cases are not a fair test.) This case
    # measured 2.27-2.41x on an idle machine and 3.19x beside the rest of the suite under
    # pytest -n 2 (allocator caching varies with load). Tolerance: 1x-4x.
    script = Path(__file__).parents[1] / "benchmarks" / "planner_check.py"
    command = [sys.executable, str(script), "--child", "32:2", "--n-filters", "1"]
    command += ["--depth", "2", "--device", "cpu"]
    done = subprocess.run(command, capture_output=True, text=True, check=True, timeout=120)
    measured = json.loads(done.stdout.strip().splitlines()[-1])["measured_bytes"]
    estimate = estimate_memory(UNet3D(n_filters=1, depth=2), (1, 32, 32, 32), batch=2)
    assert estimate.total_bytes <= measured <= 4 * estimate.total_bytes
