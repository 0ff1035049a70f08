"""Training and inference throughput of the seed U-Net (images per second).

Defaults are seed 000's model (n_filters=4, 3 input channels, 1 class) on 128×128 images, batch 8,
seglab's Adam (fused) lr 1e-3, channels_last, and seglab's precision choice (`--precision auto`:
bf16 autocast on CPUs with native bf16 and on bf16 GPUs, fp16 on older GPUs, else fp32). A
training step is forward, BCE-with-logits loss, backward and optimiser step on one fixed random
batch, so data loading is excluded: this measures the model, not the input pipeline. On a GPU,
cuDNN autotuning is on and the fraction of the GPU's dense peak at that precision is reported
for the GPUs in `GPU_PEAK_TFLOPS` (or pass --peak-gflops).

Examples:
    python benchmarks/unet_throughput.py
    python benchmarks/unet_throughput.py --device cpu --precision 32 --batch 16 --size 256 --json
    python benchmarks/unet_throughput.py --device cuda --batch 64 --size 256
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
from rich import box
from rich.console import Console
from rich.table import Table
from torch import nn

from seglab.models import count_parameters, create_model
from seglab.precision import autocast, inference_dtype
from seglab.training.tasks import make_optimizer

# Dense (no sparsity) tensor-core TFLOP/s by GPU and dtype, from NVIDIA's data sheets (SXM parts).
GPU_PEAK_TFLOPS = {
    "H200": {"float32": 67.0, "bfloat16": 989.0, "float16": 989.0},
    "H100": {"float32": 67.0, "bfloat16": 989.0, "float16": 989.0},
    "A100": {"float32": 19.5, "bfloat16": 312.0, "float16": 312.0},
}


def forward_gflop_per_image(model: nn.Module, in_channels: int, size: int) -> float:
    """GFLOP of one forward pass on one image, counting conv and transposed-conv MACs as 2 FLOP.

    Bias additions, activations, pooling and concatenation are left out: they are a fraction of a
    percent of a U-Net's work.
    """
    macs = 0

    def counter(kernel: int, transposed: bool) -> Callable[..., None]:
        # A conv does `kernel` MACs per output element; a transposed conv scatters each input
        # element into `kernel` outputs (`weight[0]` is in/groups × kh × kw, resp. out/groups × …).
        def hook(
            _module: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor
        ) -> None:
            nonlocal macs
            macs += (inputs[0] if transposed else output).numel() * kernel

        return hook

    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d | nn.ConvTranspose2d)]
    handles = [
        m.register_forward_hook(counter(m.weight[0].numel(), isinstance(m, nn.ConvTranspose2d)))
        for m in convs
    ]
    try:
        device = next(model.parameters()).device
        with torch.inference_mode():
            model(torch.zeros(1, in_channels, size, size, device=device))
    finally:
        for handle in handles:
            handle.remove()
    return 2 * macs / 1e9


def images_per_second(
    step: Callable[[], None], device: torch.device, batch: int, warmup: int, steps: int
) -> float:
    for _ in range(warmup):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()  # kernels run asynchronously; wait before reading the clock
    start = time.perf_counter()
    for _ in range(steps):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return steps * batch / (time.perf_counter() - start)


def gpu_peak_gflops(device_name: str, dtype: torch.dtype) -> float | None:
    """The data-sheet dense peak of a known GPU at `dtype`, in GFLOP/s; None when unknown."""
    for model, peaks in GPU_PEAK_TFLOPS.items():
        if model in device_name:
            return 1e3 * peaks[str(dtype).removeprefix("torch.")]
    return None


def cpu_name() -> str:
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def model_steps(
    model: nn.Module,
    x: torch.Tensor,
    target: torch.Tensor,
    optimizer: torch.optim.Optimizer,
    dtype: torch.dtype,
) -> tuple[Callable[[], None], Callable[[], None]]:
    """The bare training step (forward under autocast to `dtype`, BCE with logits, backward,
    `optimizer`; loss scaling in fp16) and inference step of `model` on the batch `x`."""
    device = x.device
    # fp16 gradients underflow without loss scaling; bf16 has fp32's exponent range.
    scaler = torch.amp.GradScaler(device.type, enabled=dtype == torch.float16)

    def train_step() -> None:
        optimizer.zero_grad(set_to_none=True)
        with autocast(device, dtype):
            logits = model(x)
        loss = nn.functional.binary_cross_entropy_with_logits(logits.float(), target)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()

    def infer_step() -> None:
        with torch.inference_mode(), autocast(device, dtype):
            model(x)

    return train_step, infer_step


def step_throughput(
    model: nn.Module,
    x: torch.Tensor,
    target: torch.Tensor,
    device: torch.device,
    dtype: torch.dtype,
    args: argparse.Namespace,
) -> tuple[float, float]:
    """Training and inference images/s of `model` on the batch `x` (seglab's Adam lr 1e-3,
    `model_steps`), `args.warmup` untimed then `args.steps` timed steps each."""
    optimizer = make_optimizer(model, 1e-3, 0.0, "none")
    train_step, infer_step = model_steps(model, x, target, optimizer, dtype)
    model.train()
    train_ips = images_per_second(train_step, device, x.shape[0], args.warmup, args.steps)
    model.eval()
    infer_ips = images_per_second(infer_step, device, x.shape[0], args.warmup, args.steps)
    return train_ips, infer_ips


def run(args: argparse.Namespace) -> dict[str, object]:
    # Other processes competing for the cores skew CPU figures; the load average makes that visible.
    load_avg_1m = round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    torch.backends.cudnn.benchmark = True  # the fastest cuDNN kernel per shape (GPU only)
    dtype = inference_dtype(args.precision, device)
    memory_format = torch.channels_last if args.channels_last else torch.contiguous_format

    model = create_model("unet", in_channels=3, num_classes=1, n_filters=args.n_filters)
    # Module.to(memory_format=...) exists at runtime but is missing from torch's type stubs.
    model = model.to(device=device, memory_format=memory_format)  # type: ignore[call-overload]
    gflop = forward_gflop_per_image(model, 3, args.size)
    x = torch.randn(args.batch, 3, args.size, args.size, device=device)
    x = x.contiguous(memory_format=memory_format)
    target = (torch.rand(args.batch, 1, args.size, args.size, device=device) > 0.5).float()
    train_ips, infer_ips = step_throughput(model, x, target, device, dtype, args)

    device_name = torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_name()
    result: dict[str, object] = {
        "model": "unet",
        "params": count_parameters(model),
        "device": device.type,
        "device_name": device_name,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "load_avg_1m": load_avg_1m,
        "batch": args.batch,
        "size": args.size,
        "n_filters": args.n_filters,
        "channels_last": args.channels_last,
        "precision": str(dtype).removeprefix("torch."),
        "warmup": args.warmup,
        "steps": args.steps,
        "train_ips": round(train_ips, 2),
        "infer_ips": round(infer_ips, 2),
        "gflop_per_image": round(gflop, 4),
        # Backward costs about twice the forward (gradients of inputs and of weights).
        "train_gflops": round(3 * gflop * train_ips, 2),
        "infer_gflops": round(gflop * infer_ips, 2),
    }
    peak = args.peak_gflops or gpu_peak_gflops(device_name, dtype)
    if peak:
        result["peak_gflops"] = peak
        result["train_peak_fraction"] = round(3 * gflop * train_ips / peak, 4)
        result["infer_peak_fraction"] = round(gflop * infer_ips / peak, 4)
    return result


def print_table(result: dict[str, object]) -> None:
    table = Table(title=f"U-Net throughput ({result['precision']})", box=box.SIMPLE)
    for column in ("model", "params", "device", "torch", "train img/s", "infer img/s", "GFLOP/img"):
        numeric = column in ("params", "train img/s", "infer img/s", "GFLOP/img")
        table.add_column(column, justify="right" if numeric else "left", no_wrap=True)
    table.add_row(
        f"unet nf={result['n_filters']}",
        f"{result['params']:,}",
        str(result["device"]),
        str(result["torch"]),
        f"{result['train_ips']:.1f}",
        f"{result['infer_ips']:.1f}",
        f"{result['gflop_per_image']:.3f}",
    )
    # Rich assumes 80 columns when stdout is not a terminal (logs, pipes), too narrow for the table.
    console = Console(width=None if sys.stdout.isatty() else 120)
    console.print(table)
    console.print(
        f"{result['device_name']}, {result['threads']} threads, load average "
        f"{result['load_avg_1m']} at start; batch {result['batch']}, "
        f"{result['size']}×{result['size']}, channels_last={result['channels_last']}; "
        f"achieved GFLOP/s: train {result['train_gflops']}, infer {result['infer_gflops']}"
    )
    if "peak_gflops" in result:
        console.print(
            f"fraction of {result['peak_gflops']} GFLOP/s peak: "
            f"train {result['train_peak_fraction']:.1%}, infer {result['infer_peak_fraction']:.1%}"
        )


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", help="cuda or cpu (default: cuda if available)")
    parser.add_argument("--batch", type=int, default=8, help="images per step (default: 8)")
    parser.add_argument("--size", type=int, default=128, help="image height = width (default: 128)")
    parser.add_argument("--n-filters", type=int, default=4, help="U-Net width (default: 4, seed)")
    parser.add_argument("--steps", type=int, default=20, help="timed steps (default: 20)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps first (default: 3)")
    # channels_last lets oneDNN (CPU) and cuDNN (GPU) pick their fastest fp32 convolution kernels.
    parser.add_argument(
        "--channels-last", action=argparse.BooleanOptionalAction, default=True, help="(default: on)"
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=os.cpu_count() or 1,
        help="CPU threads (default: os.cpu_count(), one per core on this machine)",
    )
    parser.add_argument(
        "--precision",
        default="auto",
        choices=["auto", "32", "bf16"],
        help="auto: bf16 where native (CPU or GPU), fp16 on older GPUs, else fp32 (default)",
    )
    parser.add_argument("--peak-gflops", type=float, help="peak at that precision, for a fraction")
    parser.add_argument(
        "--out",
        type=Path,
        default=Path("benchmarks/results/unet_throughput.json"),
        help="JSON result file (default: benchmarks/results/unet_throughput.json)",
    )
    parser.add_argument("--json", action="store_true", help="end stdout with the result as JSON")
    args = parser.parse_args()
    for name in ("batch", "size", "steps", "threads", "n_filters"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1")
    if args.warmup < 0:
        parser.error("--warmup must be >= 0")
    return args


def main() -> None:
    args = parse_args()
    result = run(args)
    print_table(result)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    if args.json:
        print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
