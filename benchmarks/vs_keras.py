"""seglab vs seed 000's Keras U-Net, one run on one machine: training and inference images/s.

Same network (seed 000's U-Net, n_filters=4, 2,158,705 parameters), 3×128×128 input, batch 8,
Adam. Keras (fp32, its default) runs `keras_unet.py` in the TensorFlow venv (`.venv-bench`,
made by `make bench`) as a subprocess. seglab is measured three ways, threads = physical cores:
(a) the bare model step (forward, BCE-with-logits, backward, seglab's Adam; channels_last; one
fixed batch) in fp32 and, on CPUs with native bf16, in bf16 autocast; (b) the real
`seglab.training.run.train` path on synthetic RGB nuclei from `write_synthetic` (decoding, dataset,
augmentation, Lightning, metrics, per-epoch validation, checkpoints, train_log.csv, curves.png;
MLflow off; `train.precision` auto: bf16 where native), whose images/s is all epochs' training
images over the wall time of `Trainer.fit` (wrapped to time it: everything fit does, first-epoch
warm-up included), with the steady state from train_log.csv beside it (median epoch seconds
from epoch 2: validation in, the curves.png redraw between epochs out); overhead = (a) / (b) − 1
at the same precision; (c) the bundle (b) trained, through `load_predictor`'s torch `Predictor`
(bf16 where native, and fp32) and ONNX Runtime predictor (after `export_onnx`): `forward` at
batch 8, batch-1 latency of `forward` and of the whole `predict(image)`, one backend after the
other (ONNX Runtime's spinning threads would slow a torch call interleaved with its runs).

FLOPs come from `torch.utils.flop_counter.FlopCounterMode`; the nominal peak is physical cores
× clock × FLOP/cycle, read from /proc/cpuinfo and lscpu (`cpu_peak.py`; override with
--clock-ghz / --flop-per-cycle when they are wrong), twice that for bf16 with AVX512_BF16; the
measured peak is a 4096² matrix product in each precision.

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

from cpu_peak import cpu_facts, measured_peaks
from onnx_vs_torch import time_interleaved
from seglab.config import apply_overrides, validate_config
from seglab.data.io import read_image
from seglab.data.synthetic import write_synthetic
from seglab.deploy.export import export_onnx
from seglab.inference.loading import load_predictor
from seglab.inference.onnx_backend import OnnxPredictor
from seglab.models import count_parameters, create_model
from seglab.precision import autocast, cpu_has_native_bf16, resolve_train_precision
from seglab.training.run import train
from seglab.training.tasks import SegmentationTask
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


def bare_step(args: argparse.Namespace, dtype: torch.dtype) -> dict[str, Any]:
    """(a) seglab's model alone: training step and inference images/s on one fixed batch, the
    convolutions in `dtype` (bf16 by autocast, as `train.precision=bf16-mixed` runs them)."""
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

    cpu = torch.device("cpu")

    def train_step() -> None:
        optimizer.zero_grad(set_to_none=True)
        with autocast(cpu, dtype):
            logits = model(x)
        nn.functional.binary_cross_entropy_with_logits(logits.float(), target).backward()
        optimizer.step()

    def infer_step() -> None:
        with torch.inference_mode(), autocast(cpu, dtype):
            model(x)

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
    """(b) `seglab.training.run.train` end to end: figures, the bundle and the data folder."""
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
        "precision": resolve_train_precision(config.train.precision, "cpu"),
    }
    return figures, result.bundle_path, data


def inference(args: argparse.Namespace, bundle: Path, data: Path) -> dict[str, Any]:
    """(c) torch and ONNX Runtime predictors on the trained bundle."""
    export = export_onnx(bundle)
    paths = sorted(data.glob("*/*/images/*.png"))[: args.batch]
    images = [read_image(path) for path in paths]
    predictors = {
        f"torch {precision}": load_predictor(bundle, "cpu", "torch", precision)
        for precision in (["bf16"] if cpu_has_native_bf16() else []) + ["32"]
    }
    predictors["onnx"] = load_predictor(bundle, "cpu", "onnx")
    default = load_predictor(bundle, "cpu", "auto")
    default_name = "onnx" if isinstance(default, OnnxPredictor) else next(iter(predictors))
    batch = np.concatenate([predictors["onnx"].preprocess(image) for image in images])
    medians: dict[str, float] = {}
    for name, predictor in predictors.items():
        # One backend at a time: ONNX Runtime's threads spin after each run, which would slow
        # a torch call timed right after it.
        steps: dict[str, Callable[[], object]] = {
            f"{name} batch": partial(predictor.forward, batch),
            f"{name} forward": partial(predictor.forward, batch[:1]),
            f"{name} predict": partial(predictor.predict, images[0]),
        }
        seconds = time_interleaved(steps, args.warmup, args.runs)
        medians |= {step: statistics.median(values) for step, values in seconds.items()}
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
        "default": default_name,  # what `load_predictor(..., backend="auto")` picks here
    }


def _mean_of(runs: list[dict[str, Any]], keys: tuple[str, ...]) -> dict[str, Any]:
    """The mean of `keys` over `runs`, with every run's value under `<key>_runs`."""
    means: dict[str, Any] = {}
    for key in keys:
        values = [run[key] for run in runs]
        means[key] = round(statistics.mean(values), 2)
        means[f"{key}_runs"] = values
    return means


def _precision_key(name: str) -> str:
    """ "bf16" for a bf16 train precision or predictor name, else "32"."""
    return "bf16" if "bf16" in name else "32"


def summarise(result: dict[str, Any]) -> dict[str, Any]:
    """Ratios vs Keras, fractions of the peak (nominal and measured GEMM, at the precision each
    figure ran in), end-to-end overhead, and the issue's targets."""
    keras, bare, path, cpu = result["keras"], result["bare"], result["train_path"], result["cpu"]
    best_name = result["inference"]["best"]
    best = result["inference"]["backends"][best_name]
    train_key, infer_key = _precision_key(path["precision"]), _precision_key(best_name)
    suffix = {"32": "", "bf16": "_bf16"}
    train_gflops = bare["gflop_train"] * path["train_ips"]
    infer_gflops = bare["gflop_forward"] * best["infer_ips"]
    bare_train = bare["by_precision"][train_key]["train_ips"]
    figures = {
        "train_vs_keras": path["train_ips"] / keras["train_ips"],
        "bare_train_vs_keras": bare_train / keras["train_ips"],
        "infer_vs_keras": best["infer_ips"] / keras["infer_ips"],
        "latency_ms": best["predict_ms_batch1"],
        "train_peak_fraction": train_gflops / cpu["peak_gflops" + suffix[train_key]],
        "infer_peak_fraction": infer_gflops / cpu["peak_gflops" + suffix[infer_key]],
        "train_gemm_fraction": train_gflops / cpu["gemm_gflops" + suffix[train_key]],
        "infer_gemm_fraction": infer_gflops / cpu["gemm_gflops" + suffix[infer_key]],
        "train_overhead_pct": 100 * (bare_train / path["train_ips"] - 1),
        # Epochs 2.. (validation included; fit's start-up, first-epoch warm-up and end not).
        "train_overhead_steady_pct": 100 * (bare_train / path["train_ips_steady_epochs"] - 1),
    }
    fp32 = bare["by_precision"]["32"]
    figures["fp32_bare_train_vs_keras"] = fp32["train_ips"] / keras["train_ips"]
    figures["fp32_bare_infer_vs_keras"] = fp32["infer_ips"] / keras["infer_ips"]
    figures = {key: round(value, 3) for key, value in figures.items()}
    figures["targets_met"] = {
        key: (figures[key] >= goal if op == ">=" else figures[key] <= goal)
        for key, (op, goal) in TARGETS.items()
    }
    return figures


def markdown(result: dict[str, Any]) -> str:
    keras, bare, path = result["keras"], result["bare"], result["train_path"]
    summary, cpu = result["summary"], result["cpu"]
    rows: list[tuple[str, float | None, float | None, float | None]] = [
        ("Keras `train_on_batch` / `predict_on_batch` (fp32), mean of before and after",
         keras["train_ips"], keras["infer_ips"], keras["latency_ms_batch1"]),
    ]  # fmt: skip
    for index, when in enumerate(("before", "after")):
        values = [keras[f"{key}_runs"][index] for key in ("train_ips", "infer_ips")]
        rows.append((f"… Keras {when} seglab", *values, keras["latency_ms_batch1_runs"][index]))
    for key, row in bare["by_precision"].items():
        label = f"seglab bare model step, {key} (channels_last), mean of before and after"
        rows.append((label, row["train_ips"], row["infer_ips"], None))
        runs = zip(row["train_ips_runs"], row["infer_ips_runs"], ("before", "after"))
        rows += [(f"… bare {key} {when} the train path", t, i, None) for t, i, when in runs]
    rows += [
        (f"seglab `train` path, {path['precision']}, fit wall time ({path['epochs']} epochs)",
         path["train_ips"], None, None),
        ("seglab `train` path, steady epochs (train_log.csv)", path["train_ips_steady_epochs"],
         None, None),
    ]  # fmt: skip
    for name, row in result["inference"]["backends"].items():
        default = " (default)" if name == result["inference"]["default"] else ""
        label = f"seglab predictor, {name}{default} (`forward` b8; `predict(image)` b1)"
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
    bf16_peak = (
        f", bf16 {cpu['peak_gflops_bf16']} (AVX512_BF16: 2× fp32)"
        if cpu["peak_gflops_bf16"]
        else ""
    )
    lines += [
        "",
        f"Model {bare['gflop_forward']:.3f} GFLOP/image forward, {bare['gflop_train']:.3f} per "
        f"training image. Nominal peak fp32 {cpu['peak_gflops']} GFLOP/s = "
        f"{cpu['physical_cores']} cores × {cpu['clock_ghz']} GHz ({cpu['clock_source']}) × "
        f"{cpu['flop_per_cycle']} FLOP/cycle ({cpu['flop_per_cycle_rule']}){bf16_peak}; "
        f"measured 4096² GEMM fp32 {cpu['gemm_gflops']} GFLOP/s, bf16 "
        f"{cpu['gemm_gflops_bf16']}. Fractions use the peak of the precision each figure ran "
        f"in. Keras {keras['keras']} / TensorFlow {keras['tensorflow']}, torch "
        f"{result['torch']}, batch {bare.get('batch', 8)}.",
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
    cpu.update(measured_peaks(cpu_has_native_bf16()))
    dtypes = {"32": torch.float32, **({"bf16": torch.bfloat16} if cpu_has_native_bf16() else {})}
    # Keras and the bare steps run before and after the train path and their mean is used: the
    # machine's speed drifts over minutes (clock, neighbours), and this brackets the drift.
    runs = [run_keras(args)]
    bare_runs = [{key: bare_step(args, dtype) for key, dtype in dtypes.items()}]
    if bare_runs[0]["32"]["params"] != runs[0]["params"]:
        raise SystemExit(
            f"parameter counts differ: seglab {bare_runs[0]['32']['params']}, "
            f"Keras {runs[0]['params']}"
        )
    with tempfile.TemporaryDirectory() as tmp:
        path, bundle, data = train_path(args, Path(tmp))
        infer = inference(args, bundle, data)
    bare_runs.append({key: bare_step(args, dtype) for key, dtype in dtypes.items()})
    runs.append(run_keras(args))
    keras = runs[0] | _mean_of(runs, ("train_ips", "infer_ips", "latency_ms_batch1"))
    by_precision = {
        key: _mean_of([run[key] for run in bare_runs], ("train_ips", "infer_ips")) for key in dtypes
    }
    bare = bare_runs[0]["32"] | {"by_precision": by_precision}
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
