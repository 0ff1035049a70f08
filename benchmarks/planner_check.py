"""The memory planner's estimate against the measured peak memory of real unet3d training steps.

For each case (patch side, batch), `seglab.planner.estimate_memory` predicts the memory of one
training step (parameters, gradients, Adam's two moments, activations); a fresh subprocess then
builds the same model, Adam and a random batch and runs two steps (Adam allocates its state in the
first), and the peak is measured:

- on CUDA, `torch.cuda.max_memory_allocated()` minus what was allocated before the model;
- on CPU, the process's peak resident memory (VmHWM from /proc/self/status) minus its resident
  memory before the model, after a warm-up step of a tiny model has loaded oneDNN's kernels. This
  also counts the allocator's cached and fragmented blocks, the loss's temporaries and the target,
  which the planner leaves out, so it reads higher than the CUDA figure would.

The ratio measured / estimated is what the planner's advice to "leave headroom" should cover.
Measured on the 2-core CPU machine (torch 2.13): 1.5-2.5x at batch 2 (32³ to 96³ patches), but
at batch 1 a further 100-200 MiB whatever the patch (5-15x the estimate for patches of 32³-56³,
2.2x at 80³), presumably the buffers of the convolution algorithm PyTorch picks at batch 1.

Examples:
    python benchmarks/planner_check.py
    python benchmarks/planner_check.py --quick
    python benchmarks/planner_check.py --case 48:2 --case 64:1 --n-filters 1
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import torch
from rich import box
from rich.console import Console
from rich.table import Table

from seglab.models import create_model
from seglab.planner import estimate_memory

MIB = 2**20
# side:batch
FULL_CASES = ["32:2", "48:2", "64:1", "64:2", "96:1"]
QUICK_CASES = ["32:2", "48:1"]


def proc_status_bytes(field: str) -> int:
    """VmRSS (now) or VmHWM (peak) of this process in bytes, from /proc/self/status."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) * 1024  # the file says kB but means KiB
    raise RuntimeError(f"{field} not in /proc/self/status (Linux only)")


def training_steps(model: torch.nn.Module, batch: torch.Tensor, steps: int = 2) -> None:
    """`steps` Adam steps of binary cross-entropy on a random target, as training runs them."""
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    target = (torch.rand_like(batch[:, :1]) > 0.5).float()
    for _ in range(steps):
        optimizer.zero_grad(set_to_none=True)
        loss = torch.nn.functional.binary_cross_entropy_with_logits(model(batch), target)
        loss.backward()
        optimizer.step()


def measure(side: int, batch: int, n_filters: int, depth: int, device: str) -> dict[str, Any]:
    """Peak bytes of two training steps of unet3d on (batch, 1, side, side, side), this process."""
    kwargs = {"in_channels": 1, "num_classes": 1, "n_filters": n_filters, "depth": depth}
    torch.manual_seed(0)
    target = torch.device(device)
    # Warm-up on a tiny model: libraries and kernels loaded, so the baseline holds them.
    training_steps(
        create_model("unet3d", **{**kwargs, "n_filters": 1}).to(target),
        torch.rand(1, 1, 16, 16, 16, device=target),
    )
    if target.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
    else:
        before = proc_status_bytes("VmRSS")
    model = create_model("unet3d", **kwargs).to(target)
    training_steps(model, torch.rand(batch, 1, side, side, side, device=target))
    if target.type == "cuda":
        torch.cuda.synchronize()
        peak = torch.cuda.max_memory_allocated() - before
    else:
        peak = proc_status_bytes("VmHWM") - before
    return {
        "measured_bytes": int(peak),
        "method": "cuda_max_allocated" if target.type == "cuda" else "peak_rss",
    }


def run_case(spec: str, n_filters: int, depth: int, device: str) -> dict[str, Any]:
    """Estimate here, measure in a fresh subprocess (peak RSS is per process)."""
    side, batch = (int(v) for v in spec.split(":"))
    model = create_model("unet3d", in_channels=1, num_classes=1, n_filters=n_filters, depth=depth)
    estimate = estimate_memory(model, (1, side, side, side), batch)
    command = [sys.executable, str(Path(__file__).resolve()), "--child", spec]
    command += ["--n-filters", str(n_filters), "--depth", str(depth), "--device", device]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"case {spec} failed:\n{done.stderr}")
    measured = json.loads(done.stdout.strip().splitlines()[-1])
    return {
        "case": spec,
        "side": side,
        "batch": batch,
        "estimated_bytes": estimate.total_bytes,
        "estimated_activations_bytes": estimate.activations_bytes,
        **measured,
        "ratio": round(measured["measured_bytes"] / estimate.total_bytes, 3),
    }


def print_table(results: list[dict[str, Any]], header: str) -> None:
    table = Table(title="planner estimate vs measured peak (unet3d, fp32, Adam)", box=box.SIMPLE)
    for column in (
        "patch",
        "batch",
        "estimated MiB",
        "of which activations",
        "measured MiB",
        "measured / estimated",
        "method",
    ):
        table.add_column(column, justify="right")
    for r in results:
        table.add_row(
            f"{r['side']}³",
            str(r["batch"]),
            f"{r['estimated_bytes'] / MIB:.0f}",
            f"{r['estimated_activations_bytes'] / MIB:.0f}",
            f"{r['measured_bytes'] / MIB:.0f}",
            f"{r['ratio']:.2f}",
            r["method"],
        )
    console = Console(width=None if sys.stdout.isatty() else 140)
    console.print(table)
    console.print(header)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="two small cases")
    parser.add_argument(
        "--case", action="append", default=[], help="side:batch, e.g. 64:2 (repeatable)"
    )
    parser.add_argument("--n-filters", type=int, default=2, help="unet3d width multiplier")
    parser.add_argument("--depth", type=int, default=3, help="unet3d depth")
    default_device = "cuda" if torch.cuda.is_available() else "cpu"
    parser.add_argument("--device", default=default_device, help="cpu or cuda")
    parser.add_argument("--out", type=Path, help="JSON file (default: benchmarks/results/...)")
    parser.add_argument("--child", help=argparse.SUPPRESS)  # one measurement, in this process
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    if args.child:
        side, batch = (int(v) for v in args.child.split(":"))
        print(json.dumps(measure(side, batch, args.n_filters, args.depth, args.device)), flush=True)
        return
    specs = (QUICK_CASES if args.quick else [] if args.case else FULL_CASES) + args.case
    results = [run_case(spec, args.n_filters, args.depth, args.device) for spec in specs]
    header = (
        f"torch {torch.__version__}, device {args.device}, unet3d n_filters={args.n_filters} "
        f"depth={args.depth}"
    )
    print_table(results, header)
    name = "planner_check_quick.json" if args.quick or args.case else "planner_check.json"
    out = args.out or Path("benchmarks/results") / name
    out.parent.mkdir(parents=True, exist_ok=True)
    summary = {"torch": torch.__version__, "device": args.device, "n_filters": args.n_filters}
    out.write_text(json.dumps({**summary, "depth": args.depth, "cases": results}, indent=2))


if __name__ == "__main__":
    main()
