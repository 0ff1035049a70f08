"""Time and peak memory of `sliding_window_predict` on a large 2D image and a 3D volume (CPU, fp32).

Cases: (a) a 4096×4096 RGB image through the config-default U-Net (n_filters=2, batch norm,
random weights: speed and memory ignore them) at tile 512 with batch 1, 2, 4 and tile 256 with
batch 4; (b) a 256³ single-channel volume through three 3×3×3 convolutions of 8 channels, at tile
64³ and 96³ with batch 2. Overlap 0.5 and Gaussian weights throughout.

Each case runs in a fresh subprocess, so that its peak RSS (VmHWM from /proc) is its own and not
the largest of the cases before it. Reported per case: seconds of `sliding_window_predict` (after
one untimed warm-up batch) and the part of them spent in `forward` (the rest is tiling and
blending); the tracemalloc peak of NumPy's allocations during it (accumulators, batch buffer,
weighted tiles; torch's own tensors are invisible to tracemalloc); the RSS before it (Python,
torch, the model, the input image) and the process peak RSS. Seconds are wall time and grow when
other processes share the cores (the load average at start is printed); the memory figures do not.

Examples:
    python benchmarks/sliding_window.py
    python benchmarks/sliding_window.py --quick                   # 1024² and 96³, a smoke check
    python benchmarks/sliding_window.py --quick --case 2d:4096:512:4
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rich import box
from rich.console import Console
from rich.table import Table
from torch import nn

from seglab.inference.sliding_window import sliding_window_predict, tile_boxes
from seglab.models import create_model

MIB = 2**20
# kind:size:tile:batch
FULL_CASES = ["2d:4096:512:1", "2d:4096:512:2", "2d:4096:512:4", "2d:4096:256:4"]
FULL_CASES += ["3d:256:64:2", "3d:256:96:2"]
QUICK_CASES = ["2d:1024:512:1", "2d:1024:512:4", "2d:1024:256:4", "3d:96:64:2"]


def proc_status_mib(field: str) -> float:
    """VmRSS (now) or VmHWM (peak) of this process in MiB, from /proc/self/status."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024  # reported in kB
    raise RuntimeError(f"{field} not in /proc/self/status (Linux only)")


def torch_forward(model: nn.Module, channels_last: bool) -> Callable[[np.ndarray], np.ndarray]:
    """A NumPy forward as `seglab.inference.Predictor` runs it: inference mode, sigmoid."""
    model.eval()

    def forward(batch: np.ndarray) -> np.ndarray:
        tensor = torch.from_numpy(batch)
        if channels_last:  # oneDNN's fastest fp32 2D convolutions on CPU
            tensor = tensor.contiguous(memory_format=torch.channels_last)
        with torch.inference_mode():
            return torch.sigmoid(model(tensor)).contiguous().numpy()

    return forward


def run_case(spec: str, threads: int) -> dict[str, Any]:
    """Runs one case in this process and returns its figures."""
    kind, size, tile, batch = spec.split(":")
    dims = 2 if kind == "2d" else 3
    shape = (int(size),) * dims
    tile_shape = (int(tile),) * dims
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    if dims == 2:
        model = create_model("unet", in_channels=3, num_classes=1, n_filters=2, batch_norm=True)
        channels = 3
    else:
        model = nn.Sequential(
            nn.Conv3d(1, 8, 3, padding=1),
            nn.ReLU(),
            nn.Conv3d(8, 8, 3, padding=1),
            nn.ReLU(),
            nn.Conv3d(8, 1, 3, padding=1),
        )
        channels = 1
    forward = torch_forward(model, channels_last=dims == 2)
    image = np.random.default_rng(0).random((channels, *shape), dtype=np.float32)
    forward(np.zeros((int(batch), channels, *tile_shape), dtype=np.float32))  # warm-up
    forward_seconds = 0.0

    def timed_forward(batch: np.ndarray) -> np.ndarray:
        nonlocal forward_seconds
        start = time.perf_counter()
        output = forward(batch)
        forward_seconds += time.perf_counter() - start
        return output

    rss_before = proc_status_mib("VmRSS")
    tracemalloc.start()
    start = time.perf_counter()
    out = sliding_window_predict(image, timed_forward, tile_shape, 0.5, batch_size=int(batch))
    seconds = time.perf_counter() - start
    numpy_peak = tracemalloc.get_traced_memory()[1] / MIB
    tracemalloc.stop()
    n_tiles = len(tile_boxes(shape, tile_shape, 0.5))
    return {
        "case": spec,
        "image": [channels, *shape],
        "tile": int(tile),
        "batch": int(batch),
        "tiles": n_tiles,
        "seconds": round(seconds, 2),
        "tiles_per_second": round(n_tiles / seconds, 2),
        # The rest of the time is tiling and blending, NumPy's share.
        "forward_seconds": round(forward_seconds, 2),
        "numpy_peak_mib": round(numpy_peak, 1),
        "rss_before_mib": round(rss_before, 1),
        "peak_rss_mib": round(proc_status_mib("VmHWM"), 1),
        # Sanity check that something was computed: sigmoid outputs lie in (0, 1).
        "output_mean": round(float(out.mean()), 4),
    }


def run_in_subprocess(spec: str, threads: int) -> dict[str, Any]:
    command = [sys.executable, str(Path(__file__).resolve()), "--child", spec]
    command += ["--threads", str(threads)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"case {spec} failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def print_table(results: list[dict[str, Any]], header: str) -> None:
    table = Table(title="sliding_window_predict (CPU, fp32, overlap 0.5)", box=box.SIMPLE)
    columns = ["case", "image", "tile", "batch", "tiles", "seconds", "in forward", "tiles/s"]
    columns += ["numpy peak MiB", "RSS before MiB", "peak RSS MiB"]
    for column in columns:
        table.add_column(column, justify="left" if column in ("case", "image") else "right")
    for r in results:
        table.add_row(
            r["case"],
            "×".join(map(str, r["image"])),
            str(r["tile"]),
            str(r["batch"]),
            str(r["tiles"]),
            f"{r['seconds']:.1f}",
            f"{r['forward_seconds']:.1f}",
            f"{r['tiles_per_second']:.1f}",
            f"{r['numpy_peak_mib']:.0f}",
            f"{r['rss_before_mib']:.0f}",
            f"{r['peak_rss_mib']:.0f}",
        )
    # Rich assumes 80 columns when stdout is not a terminal (logs, pipes), too narrow for the table.
    console = Console(width=None if sys.stdout.isatty() else 140)
    console.print(table)
    console.print(header)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes: 1024² and 96³")
    parser.add_argument(
        "--case",
        action="append",
        default=[],
        help="kind:size:tile:batch, e.g. 2d:4096:512:4 (repeatable; added to --quick, else alone)",
    )
    parser.add_argument(
        "--threads", type=int, default=os.cpu_count() or 1, help="torch CPU threads"
    )
    parser.add_argument("--out", type=Path, help="JSON file (default: benchmarks/results/...)")
    parser.add_argument("--child", help=argparse.SUPPRESS)  # one case, in this process
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    if args.child:
        print(json.dumps(run_case(args.child, args.threads)), flush=True)
        return
    specs = (QUICK_CASES if args.quick else [] if args.case else FULL_CASES) + args.case
    load_avg = round(os.getloadavg()[0], 2)  # other processes on the cores skew the seconds
    results = [run_in_subprocess(spec, args.threads) for spec in specs]
    header = (
        f"torch {torch.__version__}, {args.threads} threads, {os.cpu_count()} CPUs, "
        f"load average {load_avg} at start"
    )
    print_table(results, header)
    # A quick run must not overwrite the full run's figures.
    name = "sliding_window_quick.json" if args.quick or args.case else "sliding_window.json"
    out = args.out or Path("benchmarks/results") / name
    out.parent.mkdir(parents=True, exist_ok=True)
    summary = {"torch": torch.__version__, "threads": args.threads, "cpu_count": os.cpu_count()}
    out.write_text(json.dumps({**summary, "load_avg_1m": load_avg, "cases": results}, indent=2))


if __name__ == "__main__":
    main()
