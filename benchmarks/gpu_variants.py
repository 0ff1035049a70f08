"""The seed U-Net's training and inference images/s under each speed-up, one after the other.

Variants, each on a fresh model (seed 0) and the same random batch: fp32 eager; bf16 autocast;
bf16 + channels_last; + `torch.compile`; + CUDA graphs (`torch.compile(mode="reduce-overhead")`,
CUDA only). Steps are those of `unet_throughput.py` (forward, BCE-with-logits, backward, seglab's
Adam; inference under `inference_mode`), the fraction is of the GPU's data-sheet dense peak at the
variant's precision. Defaults are the GPU setting of issue 18: batch 64, 256×256. Prints a table
and writes JSON.

Examples:
    python benchmarks/gpu_variants.py                      # CUDA when there is one
    python benchmarks/gpu_variants.py --device cpu --batch 8 --size 128 --only fp32,bf16
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from rich.console import Console
from rich.table import Table

from seglab.models import create_model
from unet_throughput import (
    cpu_name,
    forward_gflop_per_image,
    gpu_peak_gflops,
    step_throughput,
)


@dataclass(frozen=True)
class Variant:
    name: str
    dtype: torch.dtype
    channels_last: bool
    compile_mode: str | None  # None: eager


VARIANTS = (
    Variant("fp32", torch.float32, False, None),
    Variant("bf16", torch.bfloat16, False, None),
    Variant("bf16+channels_last", torch.bfloat16, True, None),
    Variant("bf16+channels_last+compile", torch.bfloat16, True, "default"),
    Variant("bf16+channels_last+cuda_graphs", torch.bfloat16, True, "reduce-overhead"),
)


def measure(variant: Variant, device: torch.device, args: argparse.Namespace) -> dict[str, object]:
    """Train and inference images/s of one variant, and the seconds its warm-up took (which
    holds `torch.compile`'s compilation)."""
    torch.manual_seed(0)
    layout = torch.channels_last if variant.channels_last else torch.contiguous_format
    model = create_model("unet", in_channels=3, num_classes=1, n_filters=args.n_filters)
    model = model.to(device=device, memory_format=layout)  # type: ignore[call-overload]
    gflop = forward_gflop_per_image(model, 3, args.size)
    if variant.compile_mode is not None:
        model = torch.compile(model, mode=variant.compile_mode)  # type: ignore[assignment]
    x = torch.randn(args.batch, 3, args.size, args.size, device=device).contiguous(
        memory_format=layout
    )
    target = (torch.rand(args.batch, 1, args.size, args.size, device=device) > 0.5).float()
    started = time.perf_counter()
    train_ips, infer_ips = step_throughput(model, x, target, device, variant.dtype, args)
    row: dict[str, object] = {
        "variant": variant.name,
        "train_ips": round(train_ips, 1),
        "infer_ips": round(infer_ips, 1),
        "seconds": round(time.perf_counter() - started, 1),
    }
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_name()
    peak = gpu_peak_gflops(name, variant.dtype) if device.type == "cuda" else None
    if peak:
        row["train_peak_fraction"] = round(3 * gflop * train_ips / peak, 4)
        row["infer_peak_fraction"] = round(gflop * infer_ips / peak, 4)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", help="cuda or cpu (default: cuda if available)")
    parser.add_argument("--batch", type=int, default=64, help="(default: 64)")
    parser.add_argument("--size", type=int, default=256, help="image side (default: 256)")
    parser.add_argument("--n-filters", type=int, default=4, help="U-Net width (default: 4, seed)")
    parser.add_argument("--steps", type=int, default=20, help="timed steps (default: 20)")
    parser.add_argument("--warmup", type=int, default=5, help="untimed steps (default: 5)")
    parser.add_argument("--only", help="comma-separated variant names (default: all that apply)")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/gpu_variants.json"))
    args = parser.parse_args()
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    torch.backends.cudnn.benchmark = True
    chosen = [v for v in VARIANTS if args.only is None or v.name in args.only.split(",")]
    if device.type != "cuda":  # CUDA graphs need a GPU
        chosen = [v for v in chosen if v.compile_mode != "reduce-overhead"]
    rows = [measure(variant, device, args) for variant in chosen]
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_name()
    table = Table(title=f"U-Net variants on {name}: batch {args.batch}, {args.size}²")
    for column in ("variant", "train img/s", "infer img/s", "train % peak", "infer % peak", "s"):
        table.add_column(column, justify="left" if column == "variant" else "right")
    for row in rows:
        fractions = [row.get(f"{k}_peak_fraction") for k in ("train", "infer")]
        table.add_row(
            str(row["variant"]),
            f"{row['train_ips']:.1f}",
            f"{row['infer_ips']:.1f}",
            *("–" if f is None else f"{float(f):.1%}" for f in fractions),  # type: ignore[arg-type]
            f"{row['seconds']:.0f}",
        )
    Console(width=120).print(table)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    result = {"device": name, "torch": torch.__version__, "batch": args.batch, "size": args.size}
    args.out.write_text(json.dumps(result | {"variants": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
