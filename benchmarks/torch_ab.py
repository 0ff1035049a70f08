"""A/B of torch settings for the seed U-Net on this CPU, interleaved in one process.

Each variant is one way of running the same network (seed U-Net, n_filters 4, batch 8,
3×128×128): memory layout, bf16 by autocast or by bf16 weights, `torch.compile` (inference with
`torch._inductor.config.freezing`, which folds the weights in as constants, pre-packs them
for oneDNN and fuses ReLUs into the convolutions), the transposed convolution as a sub-pixel
convolution (`SubPixelUp`, exactly the same function and parameters). The variants run in
turn (A, B, C, A, B, C, ...), `--rounds` times `--steps` calls each, so a neighbour's load or
a clock change slows them all alike: the ratio of each variant to the first one of its group,
per round, then the median over rounds, is what to read, not the absolute images/s on a shared
machine.

Examples:
    .venv/bin/python benchmarks/torch_ab.py
    .venv/bin/python benchmarks/torch_ab.py --groups infer_bf16 --rounds 3 --steps 3
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch._inductor.config
from torch import nn

from seglab.models import create_model
from seglab.training.tasks import make_optimizer

HERE = Path(__file__).resolve().parent
Step = Callable[[], object]


class SubPixelUp(nn.Module):
    """`ConvTranspose2d(k=3, s=2, p=1, output_padding=1)` computed as a 2×2 convolution to 4×
    the channels and a pixel shuffle, with the transposed convolution's own parameters.

    Output row 2a takes input row a through kernel row 1; row 2a+1 takes rows a and a+1
    through kernel rows 2 and 0 (the same for columns), so each of the four output phases is
    a 2×2 convolution (zero-padded below and right) whose taps are a rearrangement of the 3×3
    kernel, with zeros where a phase has fewer taps.
    """

    # For output phase r and window offset d, the transposed kernel's tap (-1: none).
    TAPS = ((1, -1), (2, 0))

    def __init__(self, transposed: nn.ConvTranspose2d) -> None:
        super().__init__()
        self.transposed = transposed
        index = torch.full((2, 2, 2, 2), 9, dtype=torch.long)  # 9 points at an appended zero
        for ry in range(2):
            for rx in range(2):
                for dy, ky in enumerate(self.TAPS[ry]):
                    for dx, kx in enumerate(self.TAPS[rx]):
                        if ky >= 0 and kx >= 0:
                            index[ry, rx, dy, dx] = 3 * ky + kx
        self.register_buffer("index", index.flatten(), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight = self.transposed.weight  # (in, out, 3, 3)
        channels_in, channels_out = weight.shape[:2]
        flat = nn.functional.pad(weight.flatten(2), (0, 1))  # (in, out, 10)
        taps = flat[:, :, self.index].view(channels_in, channels_out, 2, 2, 2, 2)
        # (out, ry, rx, in, dy, dx): pixel_shuffle reads channel o*4 + ry*2 + rx.
        kernel = taps.permute(1, 2, 3, 0, 4, 5).reshape(4 * channels_out, channels_in, 2, 2)
        bias = self.transposed.bias
        bias4 = None if bias is None else bias.repeat_interleave(4)
        y = nn.functional.conv2d(nn.functional.pad(x, (0, 1, 0, 1)), kernel, bias4)
        return nn.functional.pixel_shuffle(y, 2)


def with_subpixel_ups(model: nn.Module) -> nn.Module:
    """`model` with every up step's transposed convolution wrapped in `SubPixelUp`."""
    for up in model.ups:  # type: ignore[union-attr]
        up.up = SubPixelUp(up.up)
    return model


def build(layout: torch.memory_format, subpixel: bool = False) -> nn.Module:
    torch.manual_seed(0)
    model = create_model("unet", in_channels=3, num_classes=1, n_filters=4)
    if subpixel:
        model = with_subpixel_ups(model)
    return model.to(memory_format=layout)  # type: ignore[call-overload]


def train_step(
    model: nn.Module, layout: torch.memory_format, dtype: torch.dtype, batch: int
) -> Step:
    x = torch.randn(batch, 3, 128, 128).contiguous(memory_format=layout)
    target = (torch.rand(batch, 1, 128, 128) > 0.5).float()
    optimizer = make_optimizer(model, 1e-3, 0.0, "none")
    model.train()

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=dtype, enabled=dtype != torch.float32):
            logits = model(x)
        nn.functional.binary_cross_entropy_with_logits(logits.float(), target).backward()
        optimizer.step()

    return step


def infer_step(
    model: nn.Module,
    layout: torch.memory_format,
    dtype: torch.dtype,
    batch: int,
    cast_weights: bool = False,
) -> Step:
    x = torch.randn(batch, 3, 128, 128).contiguous(memory_format=layout)
    model.eval()
    if cast_weights:
        model, x = model.to(dtype), x.to(dtype)

    def step() -> torch.Tensor:
        with (
            torch.inference_mode(),
            torch.autocast("cpu", dtype=dtype, enabled=dtype != torch.float32 and not cast_weights),
        ):
            return model(x)

    return step


def compiled_infer(
    layout: torch.memory_format, dtype: torch.dtype, batch: int, cast_weights: bool = False
) -> Step:
    """Inference through `torch.compile` with freezing (weights as constants, pre-packed)."""
    torch._inductor.config.freezing = True
    model = build(layout).eval()
    if cast_weights:
        model = model.to(dtype)
    compiled = torch.compile(model)
    x = torch.randn(batch, 3, 128, 128).contiguous(memory_format=layout)
    if cast_weights:
        x = x.to(dtype)

    def step() -> torch.Tensor:
        with (
            torch.no_grad(),
            torch.autocast("cpu", dtype=dtype, enabled=dtype != torch.float32 and not cast_weights),
        ):
            return compiled(x)

    return step


def groups(batch: int) -> dict[str, dict[str, Callable[[], Step]]]:
    """Variant factories by group; the first of each group is seglab's current way."""
    last, plain = torch.channels_last, torch.contiguous_format
    bf16, fp32 = torch.bfloat16, torch.float32
    result: dict[str, dict[str, Callable[[], Step]]] = {}
    for name, dtype in (("32", fp32), ("bf16", bf16)):
        result[f"train_{name}"] = {
            "channels_last (seglab)": lambda d=dtype: train_step(build(last), last, d, batch),
            "contiguous": lambda d=dtype: train_step(build(plain), plain, d, batch),
            "channels_last, sub-pixel up": lambda d=dtype: train_step(
                build(last, subpixel=True), last, d, batch
            ),
            "channels_last, torch.compile": lambda d=dtype: train_step(
                torch.compile(build(last)), last, d, batch
            ),
        }
        infer = {
            "channels_last (seglab)": lambda d=dtype: infer_step(build(last), last, d, batch),
            "contiguous": lambda d=dtype: infer_step(build(plain), plain, d, batch),
            "channels_last, sub-pixel up": lambda d=dtype: infer_step(
                build(last, subpixel=True), last, d, batch
            ),
            "channels_last, compile + freezing": lambda d=dtype: compiled_infer(last, d, batch),
        }
        if dtype == bf16:
            infer["channels_last, bf16 weights"] = lambda: infer_step(
                build(last), last, bf16, batch, cast_weights=True
            )
            infer["channels_last, bf16 weights, compile + freezing"] = lambda: compiled_infer(
                last, bf16, batch, cast_weights=True
            )
        result[f"infer_{name}"] = infer
    return result


def time_group(variants: dict[str, Step], rounds: int, steps: int, batch: int) -> dict:
    """Interleaved images/s of each variant per round; medians and ratios to the first."""
    ips: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(rounds):
        for name, step in variants.items():
            start = time.perf_counter()
            for _ in range(steps):
                step()
            ips[name].append(steps * batch / (time.perf_counter() - start))
    baseline = next(iter(ips.values()))
    return {
        name: {
            "ips_median": round(statistics.median(values), 2),
            "ips_runs": [round(v, 2) for v in values],
            "ratio_median": round(statistics.median(v / b for v, b in zip(values, baseline)), 3),
            "ratio_spread": [
                round(min(v / b for v, b in zip(values, baseline)), 3),
                round(max(v / b for v, b in zip(values, baseline)), 3),
            ],
        }
        for name, values in ips.items()
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--groups", default="infer_bf16,infer_32,train_bf16,train_32")
    parser.add_argument("--batch", type=int, default=8, help="images per step (8)")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds (5)")
    parser.add_argument("--steps", type=int, default=5, help="calls per variant per round (5)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed calls first (3)")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    parser.add_argument("--out-dir", type=Path, default=HERE / "results", help="JSON folder")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    factories = groups(args.batch)
    result = {"torch": torch.__version__, "threads": torch.get_num_threads(), "groups": {}}
    result |= {"batch": args.batch, "rounds": args.rounds, "steps": args.steps}
    for group in args.groups.split(","):
        variants = {name: make() for name, make in factories[group].items()}
        for step in variants.values():
            for _ in range(args.warmup):
                step()
        result["groups"][group] = time_group(variants, args.rounds, args.steps, args.batch)
        for name, row in result["groups"][group].items():
            print(f"{group:11} {name:50} {row['ips_median']:8.1f} img/s  ×{row['ratio_median']}")
    args.out_dir.mkdir(parents=True, exist_ok=True)
    out = args.out_dir / f"torch_ab_b{args.batch}_{args.groups.replace(',', '_')}.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    sys.stdout.write(f"wrote {out}\n")


if __name__ == "__main__":
    main()
