"""Batch-1 CPU latency of a U-Net bundle: torch eager vs ONNX Runtime (fp32, 1×3×256×256).

Both backends are timed through their predictors' `forward` (NumPy in, probabilities out), which
is what `seglab predict` and `seglab serve` call per image: torch as `Predictor` runs it
(channels_last, inference_mode) and ONNX Runtime as `OnnxPredictor` does (all graph
optimisations, one intra-op thread per core). Runs of all backends are interleaved, so a
neighbour's load on a shared machine slows each of them alike; medians are reported because a
few preempted runs would distort the mean. Models: seed 000's U-Net (n_filters=4) and the
config default (n_filters=2, batch_norm=True), both random-initialised (speed ignores weights).

Examples:
    python benchmarks/onnx_vs_torch.py
    python benchmarks/onnx_vs_torch.py --threads 2 --runs 50 --json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import torch
from rich import box
from rich.console import Console
from rich.table import Table

from seglab.bundle import load_bundle, make_metadata, save_bundle
from seglab.deploy.export import export_onnx
from seglab.inference.onnx_backend import OnnxPredictor, session_options
from seglab.inference.predictor import Predictor
from seglab.models import count_parameters, create_model

MODELS: dict[str, dict[str, Any]] = {
    "seed (nf=4)": {"n_filters": 4},
    "default (nf=2, bn)": {"n_filters": 2, "batch_norm": True},
}
BASELINE = "torch eager"


def ort_variants(threads: int) -> dict[str, ort.SessionOptions]:
    """`OnnxPredictor`'s options, then the alternatives tried to make ONNX Runtime faster."""
    variants = {"onnxruntime": session_options(threads)}
    extended = session_options(threads)
    # ALL adds layout transformation to NCHWc blocked convolutions on top of the fusions.
    extended.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    variants["ort, optimisation EXTENDED"] = extended
    no_arena = session_options(threads)
    no_arena.enable_cpu_mem_arena = False
    variants["ort, no CPU memory arena"] = no_arena
    no_spin = session_options(threads)
    # Spinning workers burn a core waiting for work; on a shared machine that can cost more.
    no_spin.add_session_config_entry("session.intra_op.allow_spinning", "0")
    variants["ort, no thread spinning"] = no_spin
    if threads > 1:
        variants["ort, 1 thread"] = session_options(1)
    return variants


def make_bundle(folder: Path, model_kwargs: dict[str, Any]) -> Path:
    torch.manual_seed(0)
    kwargs = {"in_channels": 3, "num_classes": 1, **model_kwargs}
    preprocessing = {"normalize": "scale", "percentiles": [1, 99], "input_size": None}
    meta = make_metadata(
        model_name="unet",
        model_kwargs=kwargs,
        preprocessing={**preprocessing, "channels": 3, "views": ["raw"]},
        threshold=0.5,
        metrics={},
        config={},
    )
    return save_bundle(create_model("unet", **kwargs), meta, folder)


def time_interleaved(
    steps: dict[str, Callable[[], object]], warmup: int, runs: int
) -> dict[str, list[float]]:
    """Seconds of each run of each step, running the steps in turn (A, B, C, A, B, C, ...)."""
    for step in steps.values():
        for _ in range(warmup):
            step()
    seconds: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(runs):
        for name, step in steps.items():
            start = time.perf_counter()
            step()
            seconds[name].append(time.perf_counter() - start)
    return seconds


def summarise(seconds: list[float]) -> dict[str, float]:
    median = float(np.median(seconds))
    return {
        "median_ms": round(1e3 * median, 2),
        "p90_ms": round(1e3 * float(np.percentile(seconds, 90)), 2),
        "mean_ms": round(1e3 * float(np.mean(seconds)), 2),
        "images_per_s": round(1 / median, 2),  # batch 1
    }


def _torch_nchw(model: torch.nn.Module, batch: np.ndarray) -> np.ndarray:
    with torch.inference_mode():
        return torch.sigmoid(model(torch.from_numpy(batch))).numpy()


def bench_model(
    folder: Path, model_kwargs: dict[str, Any], args: argparse.Namespace
) -> dict[str, Any]:
    bundle = make_bundle(folder, model_kwargs)
    export = export_onnx(bundle)
    model, metadata = load_bundle(bundle)
    batch = np.random.default_rng(0).random((1, 3, args.size, args.size), dtype=np.float32)
    steps: dict[str, Callable[[], object]] = {
        BASELINE: partial(Predictor(model, metadata, device="cpu").forward, batch),
        # Not what `Predictor` does, but at batch 1 oneDNN's plain-layout kernels can be faster.
        f"{BASELINE}, NCHW": partial(_torch_nchw, load_bundle(bundle)[0], batch),
    }
    for name, options in ort_variants(args.threads).items():
        session = ort.InferenceSession(
            str(bundle / "model.onnx"), options, providers=["CPUExecutionProvider"]
        )
        steps[name] = partial(OnnxPredictor(session, metadata).forward, batch)
    backends = {
        name: summarise(seconds)
        for name, seconds in time_interleaved(steps, args.warmup, args.runs).items()
    }
    reference = backends[BASELINE]["median_ms"]
    for result in backends.values():
        result["speedup"] = round(reference / result["median_ms"], 2)
    return {
        "params": count_parameters(model),
        "model_kwargs": model_kwargs,
        "export_seconds": round(export.seconds, 1),
        "parity_max_abs_diff": export.max_abs_diff,
        "backends": backends,
    }


def cpu_name() -> str:
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def run(args: argparse.Namespace) -> dict[str, Any]:
    torch.set_num_threads(args.threads)
    load_start = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    with tempfile.TemporaryDirectory() as tmp:
        models = {
            name: bench_model(Path(tmp) / f"model{i}", kwargs, args)
            for i, (name, kwargs) in enumerate(MODELS.items())
        }
    load_end = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    return {
        "device_name": cpu_name(),
        "cpu_count": os.cpu_count(),
        "threads": args.threads,
        # Other processes on the cores skew latencies; the load average makes that visible.
        "load_avg_1m": [load_start, load_end],
        "torch": torch.__version__,
        "onnxruntime": ort.__version__,
        "input": [1, 3, args.size, args.size],
        "warmup": args.warmup,
        "runs": args.runs,
        "models": models,
    }


def print_table(result: dict[str, Any]) -> None:
    table = Table(title=f"U-Net batch-1 latency, {result['input']}, fp32 CPU", box=box.SIMPLE)
    for column in ("model", "backend", "median ms", "p90 ms", "img/s", f"× {BASELINE}"):
        table.add_column(column, justify="left" if column in ("model", "backend") else "right")
    for model_name, model in result["models"].items():
        for backend, row in model["backends"].items():
            table.add_row(
                model_name,
                backend,
                f"{row['median_ms']:.1f}",
                f"{row['p90_ms']:.1f}",
                f"{row['images_per_s']:.1f}",
                f"{row['speedup']:.2f}",
            )
        table.add_section()
    console = Console(width=None if sys.stdout.isatty() else 120)
    console.print(table)
    load = result["load_avg_1m"]
    console.print(
        f"{result['device_name']}, {result['threads']} threads, torch {result['torch']}, "
        f"onnxruntime {result['onnxruntime']}; load average {load[0]} → {load[1]}; "
        f"{result['warmup']} warm-up + {result['runs']} interleaved runs; parity "
        + ", ".join(f"{m['parity_max_abs_diff']:.1e}" for m in result["models"].values())
    )


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=256, help="image height = width (256)")
    parser.add_argument("--warmup", type=int, default=5, help="untimed runs first (5)")
    parser.add_argument("--runs", type=int, default=30, help="timed runs per backend (30)")
    parser.add_argument(
        "--threads",
        type=int,
        default=os.cpu_count() or 1,
        help="threads of both backends (default: os.cpu_count(), one per core here)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=Path("benchmarks/results/onnx_vs_torch.json"),
        help="JSON result file (default: benchmarks/results/onnx_vs_torch.json)",
    )
    parser.add_argument("--json", action="store_true", help="end stdout with the result as JSON")
    args = parser.parse_args()
    for name in ("size", "runs", "threads"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be >= 1")
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
