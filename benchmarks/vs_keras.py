"""seglab vs seed 000's Keras U-Net, one run on one machine: training and inference images/s.

Same network (seed 000's U-Net, n_filters=4, 2,158,705 parameters), 3×128×128 input, batch 8,
Adam, fp32. Keras runs `keras_unet.py` in the TensorFlow venv (`.venv-bench`, made by
`make bench`) as a subprocess. seglab is measured three ways, threads = physical cores:
(a) the bare model step (forward, BCE-with-logits, backward, seglab's Adam; channels_last; one
fixed batch); (b) the real `seglab.training.train` path on synthetic RGB nuclei from
`write_synthetic` (decoding, dataset, augmentation, Lightning, metrics, per-epoch validation,
checkpoints, train_log.csv, curves.png; MLflow off), whose images/s is all epochs' training
images over the wall time of `Trainer.fit` (wrapped to time it: everything fit does, first-epoch
warm-up included), with the steady state from train_log.csv beside it (median epoch seconds
from epoch 2: validation in, the curves.png redraw between epochs out); overhead = (a) / (b) − 1;
(c) the bundle (b) trained, through `load_predictor`'s torch `Predictor` and ONNX Runtime
predictor (after `export_onnx`): `forward` at batch 8, batch-1 latency of `forward` and of the
whole `predict(image)`, backends interleaved so a neighbour's load slows both alike.

FLOPs come from `torch.utils.flop_counter.FlopCounterMode`; the nominal fp32 peak is physical
cores × clock × FLOP/cycle, read from /proc/cpuinfo and lscpu (see `cpu_facts` and
`flop_per_cycle`; override with --clock-ghz / --flop-per-cycle when they are wrong).

Examples:
    make bench
    .venv/bin/python benchmarks/vs_keras.py
    .venv/bin/python benchmarks/vs_keras.py --steps 2 --runs 3 --epochs 2 --train-images 16 \
        --val-images 8  # a smoke test: seconds, meaningless figures
    .venv/bin/python benchmarks/vs_keras.py --profile --set data.num_workers=1
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import csv
import json
import os
import pstats
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any
from unittest.mock import patch

import numpy as np
import pytorch_lightning as pl
import torch
from rich.console import Console
from rich.markdown import Markdown
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from onnx_vs_torch import time_interleaved
from seglab.config import apply_overrides, validate_config
from seglab.data.io import read_image
from seglab.data.synthetic import write_synthetic
from seglab.export import export_onnx
from seglab.inference.loading import load_predictor
from seglab.models import count_parameters, create_model
from seglab.task import SegmentationTask
from seglab.training import train
from unet_throughput import images_per_second

HERE = Path(__file__).resolve().parent
# The figures to reach (issue 8); quoted, never asserted.
TARGETS = {
    "train_vs_keras": (">=", 1.5),
    "infer_vs_keras": (">=", 1.6),
    "latency_ms": ("<=", 15.0),
    "train_peak_fraction": (">=", 0.55),
    "infer_peak_fraction": (">=", 0.75),
    "train_overhead_pct": ("<=", 10.0),
}


def _cpuinfo_blocks() -> list[dict[str, str]]:
    path = Path("/proc/cpuinfo")
    text = path.read_text() if path.is_file() else ""
    return [
        {key.strip(): value.strip() for key, _, value in (line.partition(":") for line in block)}
        for block in (b.splitlines() for b in text.split("\n\n"))
        if block
    ]


def _lscpu() -> dict[str, str]:
    try:
        text = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return {}
    return {k.strip(): v.strip() for k, _, v in (line.partition(":") for line in text.splitlines())}


def flop_per_cycle(flags: set[str], vendor: str, family: int) -> tuple[int, str]:
    """fp32 FLOP per cycle per core from the CPU flags (two FMA units, an FMA being 2 FLOP).

    AVX-512 with two 512-bit FMA units gives 64; AMD Zen 4 (family 25 with AVX-512) runs
    AVX-512 on 256-bit units, so it gives 32 like AVX2 + FMA; AVX without FMA 16; SSE 8. Intel
    parts with a single 512-bit FMA unit (some Xeon Silver/Bronze) give 32 too, which the flags
    cannot tell: pass --flop-per-cycle there.
    """
    if "avx512f" in flags and vendor == "AuthenticAMD" and family == 25:
        return 32, "AVX-512 on Zen 4's 256-bit units: 2 FMA x 8 lanes x 2"
    if "avx512f" in flags:
        return 64, "AVX-512: 2 FMA x 16 lanes x 2"
    if {"avx2", "fma"} <= flags:
        return 32, "AVX2 + FMA: 2 FMA x 8 lanes x 2"
    if "avx" in flags:
        return 16, "AVX: 8-lane add + 8-lane multiply"
    return 8, "SSE: 4-lane add + 4-lane multiply"


def cpu_facts(args: argparse.Namespace) -> dict[str, Any]:
    """Core count, clock, flags and nominal fp32 peak of this machine."""
    blocks, lscpu = _cpuinfo_blocks(), _lscpu()
    first = blocks[0] if blocks else {}
    cores = {(b.get("physical id"), b.get("core id")) for b in blocks if "core id" in b}
    per_socket = int(lscpu.get("Core(s) per socket", 0)) * int(lscpu.get("Socket(s)", 1))
    physical = len(cores) or per_socket or os.cpu_count() or 1
    name = first.get("model name", lscpu.get("Model name", "unknown CPU"))
    mhz = [float(b["cpu MHz"]) for b in blocks if "cpu MHz" in b]
    if args.clock_ghz:
        clock, clock_source = args.clock_ghz, "--clock-ghz"
    elif "@" in name and name.rstrip().endswith("GHz"):
        clock, clock_source = float(name.rsplit("@", 1)[1].strip()[:-3]), "model name"
    elif mhz:
        clock, clock_source = max(mhz) / 1e3, "/proc/cpuinfo cpu MHz"
    elif "CPU max MHz" in lscpu:
        clock, clock_source = float(lscpu["CPU max MHz"]) / 1e3, "lscpu CPU max MHz"
    else:
        raise SystemExit("cannot read the CPU clock; pass --clock-ghz")
    flags = set(first.get("flags", lscpu.get("Flags", "")).split())
    per_cycle, rule = flop_per_cycle(
        flags, first.get("vendor_id", ""), int(first.get("cpu family", 0))
    )
    if args.flop_per_cycle:
        per_cycle, rule = args.flop_per_cycle, "--flop-per-cycle"
    return {
        "name": name,
        "logical_cpus": os.cpu_count(),
        "physical_cores": physical,
        "clock_ghz": round(clock, 3),
        "clock_source": clock_source,
        "flop_per_cycle": per_cycle,
        "flop_per_cycle_rule": rule,
        "simd_flags": sorted(flags & {"avx", "avx2", "fma", "avx512f", "avx512_bf16", "amx_bf16"}),
        "peak_gflops": round(physical * clock * per_cycle, 1),
    }


def count_gflop(model: nn.Module, size: int) -> dict[str, float]:
    """GFLOP per image of a forward pass and of a training step (forward + backward)."""
    x = torch.randn(2, 3, size, size).contiguous(memory_format=torch.channels_last)
    with FlopCounterMode(display=False) as forward, torch.inference_mode():
        model(x)
    with FlopCounterMode(display=False) as step:
        target = torch.zeros(2, 1, size, size)
        nn.functional.binary_cross_entropy_with_logits(model(x), target).backward()
    model.zero_grad(set_to_none=True)
    # The input needs no gradient, so the training step is a little under 3 forwards.
    return {"forward": forward.get_total_flops() / 2e9, "train": step.get_total_flops() / 2e9}


def run_keras(args: argparse.Namespace) -> dict[str, Any]:
    """Seed 000's Keras U-Net in the TensorFlow venv; its JSON line."""
    python = Path(args.keras_python)
    if not python.is_file():
        raise SystemExit(f"{python}: missing; run `make bench` (it creates .venv-bench)")
    command = [str(python), str(HERE / "keras_unet.py"), "--steps", str(args.steps)]
    command += ["--warmup", str(args.warmup), "--latency-runs", str(args.runs)]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"keras_unet.py failed:\n{done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def bare_step(args: argparse.Namespace) -> dict[str, Any]:
    """(a) seglab's model alone: training step and inference images/s on one fixed batch."""
    torch.manual_seed(0)
    model = create_model("unet", in_channels=3, num_classes=1, n_filters=4)
    model = model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    gflop = count_gflop(model, args.size)
    x = torch.randn(args.batch, 3, args.size, args.size).contiguous(
        memory_format=torch.channels_last
    )
    target = (torch.rand(args.batch, 1, args.size, args.size) > 0.5).float()
    # seglab's own optimiser (scheduler "none": the bare optimiser), so the train path's
    # overhead over this step never hides or counts an optimiser difference.
    optimizer = SegmentationTask(model, nn.BCEWithLogitsLoss(), lr=1e-3).configure_optimizers()

    def train_step() -> None:
        optimizer.zero_grad(set_to_none=True)
        nn.functional.binary_cross_entropy_with_logits(model(x), target).backward()
        optimizer.step()

    def infer_step() -> None:
        with torch.inference_mode():
            model(x)

    cpu = torch.device("cpu")
    model.train()
    train_ips = images_per_second(train_step, cpu, args.batch, args.warmup, args.steps)
    model.eval()
    infer_ips = images_per_second(infer_step, cpu, args.batch, args.warmup, args.steps)
    return {
        "params": count_parameters(model),
        "gflop_forward": round(gflop["forward"], 4),
        "gflop_train": round(gflop["train"], 4),
        "train_ips": round(train_ips, 2),
        "infer_ips": round(infer_ips, 2),
    }


def train_path(args: argparse.Namespace, workdir: Path) -> tuple[dict[str, Any], Path, Path]:
    """(b) `seglab.training.train` end to end; returns figures, the bundle and the data folder."""
    data = workdir / "nuclei"
    total = args.train_images + args.val_images
    val_share = args.val_images / total
    write_synthetic("nuclei", data, total, args.size, seed=0, splits=(1 - val_share, val_share, 0))
    raw = {
        "data": {"root": str(data), "layout": "dsb2018", "batch_size": args.batch},
        "model": {"name": "unet", "params": {"n_filters": 4}},  # seed 000: no batch norm
        "loss": {"name": "bce"},  # the seed's binary cross-entropy
        "train": {"epochs": args.epochs, "patience": 0, "accelerator": "cpu"},
        "tracking": {"enabled": False},
    }
    config = validate_config(apply_overrides(raw, ["train.evaluate_test=false", *args.set]))
    fit_seconds: list[float] = []
    original_fit = pl.Trainer.fit

    def timed_fit(trainer: pl.Trainer, *fit_args: Any, **fit_kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            return original_fit(trainer, *fit_args, **fit_kwargs)
        finally:
            fit_seconds.append(time.perf_counter() - start)

    profiler = cProfile.Profile() if args.profile else None
    start = time.perf_counter()
    with patch.object(pl.Trainer, "fit", timed_fit), profiler or contextlib.nullcontext():
        result = train(config, workdir / "run", progress=False)
    train_seconds = time.perf_counter() - start
    if profiler:
        profiler.dump_stats(args.out_dir / "vs_keras_train.prof")
        pstats.Stats(profiler).sort_stats("tottime").print_stats(25)
    with (result.run_dir / "train_log.csv").open(newline="") as handle:
        epoch_seconds = [float(row["seconds"]) for row in csv.DictReader(handle)]
    steps = args.train_images // args.batch if args.train_images > args.batch else 1
    images = steps * min(args.batch, args.train_images)
    steady = statistics.median(epoch_seconds[1:] or epoch_seconds)
    figures = {
        "train_images": args.train_images,
        "val_images": args.val_images,
        "epochs": len(epoch_seconds),
        "images_per_epoch": images,
        "fit_seconds": round(fit_seconds[0], 2),
        "train_call_seconds": round(train_seconds, 2),
        "epoch_seconds": epoch_seconds,
        "train_ips": round(images * len(epoch_seconds) / fit_seconds[0], 2),
        "train_ips_steady_epochs": round(images / steady, 2),
        "overrides": list(args.set),
    }
    return figures, result.bundle_path, data


def inference(args: argparse.Namespace, bundle: Path, data: Path) -> dict[str, Any]:
    """(c) torch and ONNX Runtime predictors on the trained bundle."""
    export = export_onnx(bundle)
    paths = sorted(data.glob("*/*/images/*.png"))[: args.batch]
    images = [read_image(path) for path in paths]
    predictors = {name: load_predictor(bundle, "cpu", name) for name in ("torch", "onnx")}
    batch = np.concatenate([predictors["torch"].preprocess(image) for image in images])
    steps: dict[str, Callable[[], object]] = {}
    for name, predictor in predictors.items():
        steps[f"{name} batch"] = partial(predictor.forward, batch)
        steps[f"{name} forward"] = partial(predictor.forward, batch[:1])
        steps[f"{name} predict"] = partial(predictor.predict, images[0])
    seconds = time_interleaved(steps, args.warmup, args.runs)
    medians = {name: statistics.median(values) for name, values in seconds.items()}
    backends = {
        name: {
            "infer_ips": round(len(batch) / medians[f"{name} batch"], 2),
            "forward_ms_batch1": round(1e3 * medians[f"{name} forward"], 2),
            "predict_ms_batch1": round(1e3 * medians[f"{name} predict"], 2),
        }
        for name in predictors
    }
    best = max(backends, key=lambda name: backends[name]["infer_ips"])
    return {
        "batch": len(batch),
        "runs": args.runs,
        "onnx_threads": os.cpu_count(),  # OnnxPredictor's default intra-op threads
        "onnx_parity_max_abs_diff": export.max_abs_diff,
        "backends": backends,
        "best": best,
    }


def summarise(result: dict[str, Any]) -> dict[str, Any]:
    """Ratios vs Keras, fractions of the peak, end-to-end overhead, and the issue's targets."""
    keras, bare, path = result["keras"], result["bare"], result["train_path"]
    best = result["inference"]["backends"][result["inference"]["best"]]
    peak = result["cpu"]["peak_gflops"]
    figures = {
        "train_vs_keras": path["train_ips"] / keras["train_ips"],
        "bare_train_vs_keras": bare["train_ips"] / keras["train_ips"],
        "infer_vs_keras": best["infer_ips"] / keras["infer_ips"],
        "latency_ms": best["predict_ms_batch1"],
        "train_peak_fraction": bare["gflop_train"] * path["train_ips"] / peak,
        "bare_train_peak_fraction": bare["gflop_train"] * bare["train_ips"] / peak,
        "infer_peak_fraction": bare["gflop_forward"] * best["infer_ips"] / peak,
        "train_overhead_pct": 100 * (bare["train_ips"] / path["train_ips"] - 1),
    }
    figures = {key: round(value, 3) for key, value in figures.items()}
    figures["targets_met"] = {
        key: (figures[key] >= goal if op == ">=" else figures[key] <= goal)
        for key, (op, goal) in TARGETS.items()
    }
    return figures


def markdown(result: dict[str, Any]) -> str:
    keras, bare, path = result["keras"], result["bare"], result["train_path"]
    summary, cpu = result["summary"], result["cpu"]
    rows = [
        ("Keras `train_on_batch` / `predict_on_batch`", keras["train_ips"], keras["infer_ips"],
         keras["latency_ms_batch1"]),
        ("seglab bare model step (channels_last)", bare["train_ips"], bare["infer_ips"], None),
        (f"seglab `train` path, fit wall time ({path['epochs']} epochs)", path["train_ips"],
         None, None),
        ("seglab `train` path, steady epochs (train_log.csv)", path["train_ips_steady_epochs"],
         None, None),
    ]  # fmt: skip
    for name, row in result["inference"]["backends"].items():
        label = f"seglab predictor, {name} (`forward` b8; `predict(image)` b1)"
        rows.append((label, None, row["infer_ips"], row["predict_ms_batch1"]))
    lines = [
        f"# seglab vs Keras — {cpu['name']}, {cpu['physical_cores']} cores, "
        f"load {result['load_avg_1m'][0]} → {result['load_avg_1m'][1]}",
        "",
        "| | train img/s | inference img/s | batch-1 latency ms |",
        "|---|---|---|---|",
    ]
    if result["load_avg_1m"][0] >= 0.5:
        # This run's own threads raise the load average; only the start reading shows others.
        lines[1:1] = ["", "**Load average ≥ 0.5 at start: other processes shared the cores.**"]
    for label, *values in rows:
        cells = " | ".join("–" if v is None else f"{v:.1f}" for v in values)
        lines.append(f"| {label} | {cells} |")
    lines += ["", "| figure | value | target (issue 8) | met |", "|---|---|---|---|"]
    for key, value in summary.items():
        if key in TARGETS:
            met = "yes" if summary["targets_met"][key] else "**no**"
            lines.append(f"| {key} | {value} | {' '.join(map(str, TARGETS[key]))} | {met} |")
        elif key != "targets_met":
            lines.append(f"| {key} | {value} | | |")
    lines += [
        "",
        f"Model {bare['gflop_forward']:.3f} GFLOP/image forward, {bare['gflop_train']:.3f} per "
        f"training image; peak {cpu['peak_gflops']} GFLOP/s = {cpu['physical_cores']} cores × "
        f"{cpu['clock_ghz']} GHz ({cpu['clock_source']}) × {cpu['flop_per_cycle']} FLOP/cycle "
        f"({cpu['flop_per_cycle_rule']}). Keras {keras['keras']} / TensorFlow "
        f"{keras['tensorflow']}, torch {result['torch']}, batch {bare.get('batch', 8)}.",
        "",
    ]
    return "\n".join(lines)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch", type=int, default=8, help="images per step (8)")
    parser.add_argument("--size", type=int, default=128, help="image side (128)")
    parser.add_argument("--steps", type=int, default=30, help="timed steps, Keras and bare (30)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed calls first (3)")
    parser.add_argument("--runs", type=int, default=50, help="timed inference runs (50)")
    parser.add_argument("--epochs", type=int, default=3, help="epochs of the train path (3)")
    # DSB2018 stage 1 has 670 training images; 15 % of them validate (the config's default).
    parser.add_argument("--train-images", type=int, default=576, help="train split (576)")
    parser.add_argument("--val-images", type=int, default=96, help="validation split (96)")
    parser.add_argument("--threads", type=int, help="torch threads (default: physical cores)")
    parser.add_argument("--clock-ghz", type=float, help="override the clock read from the CPU")
    parser.add_argument("--flop-per-cycle", type=int, help="override the FLOP/cycle rule")
    parser.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="train config override"
    )
    parser.add_argument("--profile", action="store_true", help="cProfile the train path")
    parser.add_argument(
        "--keras-python",
        default=str(HERE.parent / ".venv-bench" / "bin" / "python"),
        help="python of the TensorFlow venv (default: .venv-bench's)",
    )
    parser.add_argument("--out-dir", type=Path, default=HERE / "results", help="JSON/MD folder")
    args = parser.parse_args()
    for name in ("batch", "steps", "runs", "epochs", "train_images", "val_images"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1")
    if args.size < 16 or args.size % 16:
        parser.error("--size must be a positive multiple of 16")
    return args


def main() -> None:
    args = parse_args()
    args.out_dir.mkdir(parents=True, exist_ok=True)
    cpu = cpu_facts(args)
    torch.set_num_threads(args.threads or cpu["physical_cores"])
    load_start = round(os.getloadavg()[0], 2)
    keras = run_keras(args)
    bare = bare_step(args)
    if bare["params"] != keras["params"]:
        raise SystemExit(
            f"parameter counts differ: seglab {bare['params']}, Keras {keras['params']}"
        )
    with tempfile.TemporaryDirectory() as tmp:
        path, bundle, data = train_path(args, Path(tmp))
        infer = inference(args, bundle, data)
    result: dict[str, Any] = {
        "cpu": cpu,
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        # Other processes on the cores skew every figure; the load average makes that visible.
        "load_avg_1m": [load_start, round(os.getloadavg()[0], 2)],
        "keras": keras,
        "bare": {**bare, "batch": args.batch, "steps": args.steps, "warmup": args.warmup},
        "train_path": path,
        "inference": infer,
    }
    result["summary"] = summarise(result)
    (args.out_dir / "vs_keras.json").write_text(json.dumps(result, indent=2) + "\n")
    (args.out_dir / "vs_keras.md").write_text(markdown(result))
    console = Console(width=None if sys.stdout.isatty() else 120)
    console.print(Markdown(markdown(result)))


if __name__ == "__main__":
    main()
