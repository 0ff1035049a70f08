"""seglab's U-Nets beside segmentation_models.pytorch encoder U-Nets: size, speed and test Dice.

For each model: trainable parameters, training and inference images/s on one fixed random batch
(3×128×128, batch 8, Adam lr 1e-3, BCE-with-logits, channels_last, seglab's precision choice:
bf16 autocast on CPUs with native bf16, else fp32), as `unet_throughput.py` measures the seed
U-Net. With `--epochs N` each model is also trained N epochs by `seglab.train` on the same
synthetic nuclei split (`--n` images of 128×128, boundary-free binary masks) and its test Dice
and IoU reported. smp models are built with `encoder_weights: null` (random initialisation):
nothing is downloaded. Needs the smp extra (`.venv-smp`, see the Makefile).

Examples:
    .venv-smp/bin/python benchmarks/smp_models.py
    .venv-smp/bin/python benchmarks/smp_models.py --steps 3 --epochs 3 --n 48
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import torch
from rich import box
from rich.console import Console
from rich.table import Table
from torch import nn

from seglab.models import count_parameters, create_model
from seglab.precision import inference_dtype
from unet_throughput import cpu_name, step_throughput

# (label, model.name, model.params): seglab's U-Net as its default config trains it and U-Net
# Mini, then smp's Unet with three encoders; the same arguments are timed and trained.
MODELS: list[tuple[str, str, dict[str, Any]]] = [
    ("unet (n_filters=2, batch_norm)", "unet", {"n_filters": 2, "batch_norm": True}),
    ("unet_mini (n_filters=8)", "unet_mini", {}),
    ("smp Unet resnet18", "smp", {"encoder": "resnet18"}),
    ("smp Unet resnet34", "smp", {"encoder": "resnet34"}),
    ("smp Unet efficientnet-b0", "smp", {"encoder": "efficientnet-b0"}),
]


def throughput(model: nn.Module, args: argparse.Namespace, dtype: torch.dtype) -> dict[str, float]:
    """Training and inference images/s of `model` on the CPU."""
    device = torch.device("cpu")
    model = model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    x = torch.randn(args.batch, 3, args.size, args.size).contiguous(
        memory_format=torch.channels_last
    )
    target = (torch.rand(args.batch, 1, args.size, args.size) > 0.5).float()
    train_ips, infer_ips = step_throughput(model, x, target, device, dtype, args)
    return {"train_ips": round(train_ips, 2), "infer_ips": round(infer_ips, 2)}


def test_scores(name: str, params: dict[str, Any], args: argparse.Namespace, data: Path) -> Any:
    """Test Dice and IoU after `args.epochs` epochs of `seglab.train` on `data`."""
    from seglab.config import load_config
    from seglab.training.run import train

    overrides = [
        f"data.root={data}",
        f"train.epochs={args.epochs}",
        "tracking.enabled=false",
        f"model.name={name}",
        f"model.params={json.dumps(params)}",  # JSON is YAML: exactly these, no defaults merged
    ]
    started = time.perf_counter()
    run_dir = args.out / f"{name}-{'-'.join(map(str, params.values())) or 'defaults'}"
    metrics = train(load_config(None, overrides), run_dir, progress=False).test_metrics
    assert metrics is not None
    return {
        "test_dice": round(metrics["dice"], 4),
        "test_iou": round(metrics["iou"], 4),
        "train_seconds": round(time.perf_counter() - started, 1),
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    load_avg_1m = round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None
    torch.set_num_threads(args.threads)
    dtype = inference_dtype(args.precision, torch.device("cpu"))
    data = args.out / "data"
    if args.epochs and not data.exists():
        from seglab.data.synthetic import write_synthetic

        write_synthetic("nuclei", data, args.n, size=args.size, seed=0)
    rows = []
    for label, name, params in MODELS:
        torch.manual_seed(0)
        model = create_model(name, in_channels=3, num_classes=1, **params)
        row = {"model": label, "name": name, "params": params}
        row["parameters"] = count_parameters(model)
        row |= throughput(model, args, dtype)
        if args.epochs:
            row |= test_scores(name, params, args, data)
        rows.append(row)
        print(json.dumps(row), file=sys.stderr, flush=True)
    return {
        "device_name": cpu_name(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "load_avg_1m": load_avg_1m,
        "precision": str(dtype).removeprefix("torch."),
        "batch": args.batch,
        "size": args.size,
        "warmup": args.warmup,
        "steps": args.steps,
        "epochs": args.epochs,
        "n_images": args.n if args.epochs else None,
        "models": rows,
    }


def print_table(result: dict[str, Any]) -> None:
    title = f"CPU, {result['precision']}, batch {result['batch']}, {result['size']}²"
    table = Table(title=title, box=box.SIMPLE)
    columns = ["model", "params", "train img/s", "infer img/s"]
    if result["epochs"]:
        columns += [f"test Dice ({result['epochs']} ep)", "test IoU", "train s"]
    for column in columns:
        table.add_column(column, justify="left" if column == "model" else "right", no_wrap=True)
    for row in result["models"]:
        cells = [row["model"], f"{row['parameters']:,}", f"{row['train_ips']:.1f}"]
        cells.append(f"{row['infer_ips']:.1f}")
        if result["epochs"]:
            cells += [f"{row['test_dice']:.4f}", f"{row['test_iou']:.4f}"]
            cells.append(f"{row['train_seconds']:.0f}")
        table.add_row(*cells)
    console = Console(width=None if sys.stdout.isatty() else 120)
    console.print(table)
    console.print(
        f"{result['device_name']}, torch {result['torch']}, {result['threads']} threads, load "
        f"average {result['load_avg_1m']} at start; {result['warmup']} + {result['steps']} steps"
    )


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch", type=int, default=8, help="images per step (default: 8)")
    parser.add_argument("--size", type=int, default=128, help="image side (default: 128)")
    parser.add_argument("--steps", type=int, default=5, help="timed steps (default: 5)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps first (default: 2)")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="CPU threads")
    parser.add_argument("--precision", default="auto", choices=["auto", "32", "bf16"])
    parser.add_argument("--epochs", type=int, default=0, help="train and test (default: 0, off)")
    parser.add_argument("--n", type=int, default=64, help="synthetic nuclei images (default: 64)")
    parser.add_argument("--out", type=Path, default=Path("runs/bench-smp"), help="run folders")
    parser.add_argument(
        "--json", type=Path, default=Path("benchmarks/results/smp_models.json"), help="result"
    )
    args = parser.parse_args()
    for name in ("batch", "size", "steps", "threads", "n"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be >= 1")
    if args.warmup < 0 or args.epochs < 0:
        parser.error("--warmup and --epochs must be >= 0")
    return args


def main() -> None:
    args = parse_args()
    result = run(args)
    print_table(result)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
