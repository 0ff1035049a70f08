"""seglab vs seed 000's Keras U-Net at equal precision, one run on one machine.

Same network (seed 000's U-Net, n_filters=4, 2,158,705 parameters), 3×128×128 input, batch 8,
Adam, each framework in fp32 and in bf16, threads = physical cores:

- Keras: `keras_unet.py` in the TensorFlow venv (`.venv-bench`, made by `make bench`) as a
  subprocess, fp32 and the standard `mixed_bfloat16` policy (float32 output layer):
  `train_on_batch`, `predict_on_batch` and batch-1 `predict_on_batch` latency.
- (a) seglab's bare model step (forward, BCE-with-logits, backward, seglab's Adam;
  channels_last; one fixed batch) in fp32 and in bf16 autocast;
- (b) the real `seglab.training.run.train` path with `train.precision` 32 and bf16-mixed, on
  synthetic RGB nuclei from `write_synthetic` (decoding, dataset, augmentation, Lightning,
  metrics, per-epoch validation, checkpoints, train_log.csv, curves.png; MLflow off), whose
  images/s is all epochs' training images over the wall time of `Trainer.fit` (wrapped to
  time it: first-epoch warm-up included), with the steady state from train_log.csv beside it
  (median epoch seconds from epoch 2); overhead = (a) / (b) − 1 at the same precision;
- (c) the bundle (b) trained, through `load_predictor`'s torch `Predictor` in fp32 and bf16,
  the same with `compile=True` (`torch.compile` with freezing; `--no-compiled` leaves them
  out) and the ONNX Runtime predictor (fp32, after `export_onnx`): `forward` at batch 8, batch-1
  latency of `forward` and of the whole `predict(image)`, one backend after the other (ONNX
  Runtime's spinning threads would slow a torch call interleaved with its runs).

Keras and the bare steps run before and after (b) and (c) (bracketed: the machine's speed drifts
over minutes); their mean is the figure and each ratio is given with its spread over the two
Keras (or bare) runs. On a CPU without native bf16 only fp32 is measured. Figures taken while
other processes use the cores are meaningless; the load average at the start is recorded and a
warning printed when it is 0.5 or more.

Examples:
    make bench
    .venv/bin/python benchmarks/vs_keras.py
    .venv/bin/python benchmarks/vs_keras.py --smoke  # about a minute: meaningless figures
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
from seglab.inference.predictor import Predictor
from seglab.models import count_parameters, create_model
from seglab.precision import cpu_has_native_bf16
from seglab.training.run import train
from seglab.training.tasks import SegmentationTask
from unet_throughput import images_per_second, model_steps

HERE = Path(__file__).resolve().parent
# Issue 18's goals, at equal precision, for each precision; quoted, never asserted.
TARGETS = {
    "train_path_vs_keras": (">=", 1.25),
    "predictor_vs_keras": (">=", 1.3),
    "latency_ms": ("<=", 8.0),
    "train_overhead_pct": ("<=", 5.0),
}
# Per precision: the torch dtype of the bare step, `train.precision`, the predictors of that
# precision (the fastest of them is compared with Keras).
PRECISIONS: dict[str, tuple[torch.dtype, str, tuple[str, ...]]] = {
    "32": (torch.float32, "32", ("torch 32", "torch 32 compiled", "onnx")),
    "bf16": (torch.bfloat16, "bf16-mixed", ("torch bf16", "torch bf16 compiled")),
}
SMOKE = {"steps": 2, "runs": 3, "epochs": 2, "train_images": 16, "val_images": 8, "warmup": 1}


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


def run_keras(args: argparse.Namespace, precisions: list[str]) -> dict[str, dict[str, Any]]:
    """Seed 000's Keras U-Net in the TensorFlow venv, one process for all `precisions`."""
    python = Path(args.keras_python)
    if not python.is_file():
        raise SystemExit(f"{python}: missing; run `make bench` (it creates .venv-bench)")
    command = [str(python), str(HERE / "keras_unet.py"), "--steps", str(args.steps)]
    command += ["--warmup", str(args.warmup), "--latency-runs", str(args.runs)]
    command += ["--precision", ",".join(precisions), "--batch", str(args.batch)]
    command += ["--size", str(args.size)]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"keras_unet.py failed:\n{done.stderr[-3000:]}")
    results = [json.loads(line) for line in done.stdout.strip().splitlines()[-len(precisions) :]]
    return {result["precision"]: result for result in results}


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
    train_step, infer_step = model_steps(model, x, target, optimizer, dtype)

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


def write_data(args: argparse.Namespace, workdir: Path) -> Path:
    """The synthetic nuclei both train paths read (the train and validation splits)."""
    data = workdir / "nuclei"
    total = args.train_images + args.val_images
    val_share = args.val_images / total
    write_synthetic("nuclei", data, total, args.size, seed=0, splits=(1 - val_share, val_share, 0))
    return data


def train_path(
    args: argparse.Namespace, data: Path, run_dir: Path, precision: str
) -> tuple[dict[str, Any], Path]:
    """(b) `seglab.training.run.train` end to end with `train.precision` = `precision`."""
    raw = {
        "data": {"root": str(data), "layout": "dsb2018", "batch_size": args.batch},
        "model": {"name": "unet", "params": {"n_filters": 4}},  # seed 000: no batch norm
        "loss": {"name": "bce"},  # the seed's binary cross-entropy
        "train": {"epochs": args.epochs, "patience": 0, "accelerator": "cpu"},
        "tracking": {"enabled": False},
    }
    overrides = ["train.evaluate_test=false", f"train.precision={precision}", *args.set]
    config = validate_config(apply_overrides(raw, overrides))
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
        result = train(config, run_dir, progress=False)
    train_seconds = time.perf_counter() - start
    if profiler:
        profiler.dump_stats(args.out_dir / f"vs_keras_train_{precision}.prof")
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
        "precision": config.train.precision,
    }
    return figures, result.bundle_path


def inference(args: argparse.Namespace, bundle: Path, data: Path) -> dict[str, Any]:
    """(c) torch and ONNX Runtime predictors on the trained bundle."""
    export = export_onnx(bundle)
    paths = sorted(data.glob("*/*/images/*.png"))[: args.batch]
    images = [read_image(path) for path in paths]
    predictors: dict[str, Any] = {}
    for precision in (["bf16"] if cpu_has_native_bf16() else []) + ["32"]:
        predictors[f"torch {precision}"] = load_predictor(bundle, "cpu", "torch", precision)
        if args.compiled:
            # torch.compile with freezing (opt-in): the warm-up calls compile each shape.
            predictor = Predictor.from_bundle(bundle, "cpu", precision, compile=True)
            predictors[f"torch {precision} compiled"] = predictor
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


def bracket_runs(
    args: argparse.Namespace, precisions: list[str]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """One bracket: Keras in every precision (one subprocess), then seglab's bare steps."""
    keras = run_keras(args, precisions)
    bare = {key: bare_step(args, PRECISIONS[key][0]) for key in precisions}
    return keras, bare


def mean_of(runs: list[dict[str, Any]], keys: tuple[str, ...]) -> dict[str, Any]:
    """The mean of `keys` over `runs`, with every run's value under `<key>_runs`."""
    means: dict[str, Any] = {}
    for key in keys:
        values = [run[key] for run in runs]
        means[key] = round(statistics.mean(values), 2)
        means[f"{key}_runs"] = values
    return means


def ratio(numerator: float, denominators: list[float]) -> dict[str, float]:
    """`numerator` over the mean of `denominators`, and its range over each of them."""
    values = [numerator / d for d in denominators]
    return {
        "value": round(numerator / statistics.mean(denominators), 3),
        "low": round(min(values), 3),
        "high": round(max(values), 3),
    }


def summarise_precision(result: dict[str, Any], key: str) -> dict[str, Any]:
    """The equal-precision figures of `key` ("32" or "bf16") and the issue's targets."""
    keras, bare, path = result["keras"][key], result["bare"][key], result["train_path"][key]
    backends = result["inference"]["backends"]
    names = [name for name in PRECISIONS[key][2] if name in backends]
    best = max(names, key=lambda name: backends[name]["infer_ips"])
    predictor = backends[best]
    overheads = [100 * (bare_ips / path["train_ips"] - 1) for bare_ips in bare["train_ips_runs"]]
    summary: dict[str, Any] = {
        "predictor": best,
        "latency_predictor": min(names, key=lambda name: backends[name]["predict_ms_batch1"]),
        "train_path_vs_keras": ratio(path["train_ips"], keras["train_ips_runs"]),
        "train_path_steady_vs_keras": ratio(
            path["train_ips_steady_epochs"], keras["train_ips_runs"]
        ),
        "bare_train_vs_keras": ratio(bare["train_ips"], keras["train_ips_runs"]),
        "predictor_vs_keras": ratio(predictor["infer_ips"], keras["infer_ips_runs"]),
        "bare_infer_vs_keras": ratio(bare["infer_ips"], keras["infer_ips_runs"]),
        "train_overhead_pct": {
            "value": round(100 * (bare["train_ips"] / path["train_ips"] - 1), 1),
            "low": round(min(overheads), 1),
            "high": round(max(overheads), 1),
        },
        # The lowest batch-1 `predict(image)` of the precision's predictors (and which).
        "latency_ms": {"value": min(backends[name]["predict_ms_batch1"] for name in names)},
        "keras_latency_ms": {"value": keras["latency_ms_batch1"]},
    }
    gemm = result["cpu"]["gemm_gflops" + ("_bf16" if key == "bf16" else "")]
    if gemm:
        train_gflops = result["gflop"]["train"] * path["train_ips"]
        summary["train_path_gemm_fraction"] = {"value": round(train_gflops / gemm, 3)}
        infer_gflops = result["gflop"]["forward"] * predictor["infer_ips"]
        summary["predictor_gemm_fraction"] = {"value": round(infer_gflops / gemm, 3)}
    summary["targets_met"] = {
        name: summary[name]["value"] >= goal if op == ">=" else summary[name]["value"] <= goal
        for name, (op, goal) in TARGETS.items()
    }
    return summary


def _cells(values: list[float | None]) -> str:
    return " | ".join("–" if v is None else f"{v:.1f}" for v in values)


def speed_rows(result: dict[str, Any], key: str) -> list[str]:
    """The table rows of one precision: Keras, bare step, train path, predictors."""
    name = "fp32" if key == "32" else "bf16"
    keras, bare, path = result["keras"][key], result["bare"][key], result["train_path"][key]
    policy = "float32" if key == "32" else "mixed_bfloat16"
    rows = [
        f"| Keras `train_on_batch` / `predict_on_batch`, {policy} (mean of before, after) | "
        + _cells([keras["train_ips"], keras["infer_ips"], keras["latency_ms_batch1"]])
        + " |",
        f"| … Keras {name} before → after | "
        + " | ".join(
            " → ".join(f"{v:.1f}" for v in keras[f"{k}_runs"])
            for k in ("train_ips", "infer_ips", "latency_ms_batch1")
        )
        + " |",
        f"| seglab bare step, {name} (channels_last), mean of before, after | "
        + _cells([bare["train_ips"], bare["infer_ips"], None])
        + " |",
        f"| … bare {name} before → after | "
        + " | ".join(
            " → ".join(f"{v:.1f}" for v in bare[f"{k}_runs"]) for k in ("train_ips", "infer_ips")
        )
        + " | – |",
        f"| seglab `train` path, train.precision={path['precision']}, fit wall time "
        f"({path['epochs']} epochs) | " + _cells([path["train_ips"], None, None]) + " |",
        f"| seglab `train` path, {name}, steady epochs (train_log.csv) | "
        + _cells([path["train_ips_steady_epochs"], None, None])
        + " |",
    ]
    for backend in PRECISIONS[key][2]:
        row = result["inference"]["backends"].get(backend)
        if row:
            rows.append(
                f"| seglab Predictor, {backend} (`forward` b8; `predict(image)` b1) | "
                + _cells([None, row["infer_ips"], row["predict_ms_batch1"]])
                + " |"
            )
    return rows


def _figure(value: dict[str, float]) -> str:
    if "low" in value:
        return f"{value['value']} ({value['low']}–{value['high']})"
    return str(value["value"])


def markdown(result: dict[str, Any]) -> str:
    cpu, load = result["cpu"], result["load_avg_1m"]
    keras = next(iter(result["keras"].values()))
    lines = [
        f"# seglab vs Keras at equal precision — {cpu['name']}, {cpu['physical_cores']} cores, "
        f"load {load[0]} → {load[1]}",
        "",
    ]
    if load[0] >= 0.5:
        # This run's own threads raise the load average; only the start reading shows others.
        lines += ["**Load average ≥ 0.5 at start: other processes shared the cores; the", ""]
        lines[-2] += " figures below are not a measurement of this machine.**"
    if result["smoke"]:
        lines += ["**Smoke mode (--smoke): a check of the harness; the figures mean nothing.**", ""]
    lines += ["| | train img/s | inference img/s | batch-1 latency ms |", "|---|---|---|---|"]
    for key in result["summary"]:
        lines += speed_rows(result, key)
    lines += [
        "",
        "Ratios at equal precision (mean; range over the before and after runs):",
        "",
        "| figure | "
        + " | ".join(f"{'fp32' if k == '32' else 'bf16'}" for k in result["summary"])
        + " | goal |",
        "|---|" + "---|" * len(result["summary"]) + "---|",
    ]
    first = next(iter(result["summary"].values()))
    names = [name for name in first if isinstance(first[name], dict) and name != "targets_met"]
    for name in names:
        cells = []
        for summary in result["summary"].values():
            met = summary["targets_met"].get(name)
            mark = "" if met is None else (" ✓" if met else " **✗**")
            cells.append(_figure(summary[name]) + mark)
        goal = " ".join(map(str, TARGETS[name])) if name in TARGETS else ""
        lines.append(f"| {name} | {' | '.join(cells)} | {goal} |")
    predictors = ", ".join(
        f"{k}: {s['predictor']}, latency {s['latency_predictor']}"
        for k, s in result["summary"].items()
    )
    lines += [
        "",
        f"Predictors compared with Keras: the fastest of each precision ({predictors}). "
        f"Model {result['gflop']['forward']:.3f} GFLOP/image forward, "
        f"{result['gflop']['train']:.3f} per training image; measured 4096² GEMM fp32 "
        f"{cpu['gemm_gflops']} GFLOP/s, bf16 {cpu['gemm_gflops_bf16']}. Keras "
        f"{keras['keras']} / TensorFlow {keras['tensorflow']}, "
        f"torch {result['torch']}, {result['torch_threads']} threads, batch {result['batch']}.",
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
    parser.add_argument("--epochs", type=int, default=3, help="epochs of each train path (3)")
    # DSB2018 stage 1 has 670 training images; 15 % of them validate (the config's default).
    parser.add_argument("--train-images", type=int, default=576, help="train split (576)")
    parser.add_argument("--val-images", type=int, default=96, help="validation split (96)")
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="a smoke test in about a minute ("
        + ", ".join(f"{k}={v}" for k, v in SMOKE.items())
        + "): checks the harness, its figures mean nothing",
    )
    parser.add_argument("--precisions", default="32,bf16", help="32,bf16 (bf16 where native)")
    parser.add_argument(
        "--no-compiled",
        dest="compiled",
        action="store_false",
        help="leave out the predictors with torch.compile (each compiles for tens of seconds)",
    )
    parser.add_argument("--threads", type=int, help="torch threads (default: physical cores)")
    parser.add_argument("--clock-ghz", type=float, help="override the clock read from the CPU")
    parser.add_argument("--flop-per-cycle", type=int, help="override the FLOP/cycle rule")
    parser.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="train config override"
    )
    parser.add_argument("--profile", action="store_true", help="cProfile the train paths")
    parser.add_argument(
        "--keras-python",
        default=str(HERE.parent / ".venv-bench" / "bin" / "python"),
        help="python of the TensorFlow venv (default: .venv-bench's)",
    )
    parser.add_argument("--out-dir", type=Path, default=HERE / "results", help="JSON/MD folder")
    args = parser.parse_args()
    if args.smoke:
        for name, value in SMOKE.items():
            setattr(args, name, value)
    for name in ("batch", "steps", "runs", "epochs", "train_images", "val_images"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1")
    if args.size < 16 or args.size % 16:
        parser.error("--size must be a positive multiple of 16")
    args.precisions = args.precisions.split(",")
    if not args.precisions or set(args.precisions) - set(PRECISIONS):
        parser.error("--precisions must be 32, bf16 or 32,bf16")
    return args


def measure(args: argparse.Namespace, precisions: list[str]) -> dict[str, Any]:
    """Keras and the bare steps bracketing the train paths and the predictors."""
    before = bracket_runs(args, precisions)
    if before[1][precisions[0]]["params"] != before[0][precisions[0]]["params"]:
        raise SystemExit(
            f"parameter counts differ: seglab {before[1][precisions[0]]['params']}, "
            f"Keras {before[0][precisions[0]]['params']}"
        )
    with tempfile.TemporaryDirectory() as tmp:
        data = write_data(args, Path(tmp))
        paths: dict[str, Any] = {}
        for key in precisions:
            paths[key], bundle = train_path(
                args, data, Path(tmp) / f"run-{key}", PRECISIONS[key][1]
            )
        infer = inference(args, bundle, data)
    after = bracket_runs(args, precisions)
    keras_keys = ("train_ips", "infer_ips", "latency_ms_batch1")
    keras = {k: before[0][k] | mean_of([before[0][k], after[0][k]], keras_keys) for k in precisions}
    bare = {
        k: before[1][k] | mean_of([before[1][k], after[1][k]], ("train_ips", "infer_ips"))
        for k in precisions
    }
    return {"keras": keras, "bare": bare, "train_path": paths, "inference": infer}


def main() -> None:
    args = parse_args()
    args.out_dir.mkdir(parents=True, exist_ok=True)
    cpu = cpu_facts(args)
    torch.set_num_threads(args.threads or cpu["physical_cores"])
    load_start = round(os.getloadavg()[0], 2)
    bf16 = cpu_has_native_bf16()
    precisions = [key for key in args.precisions if key == "32" or bf16]
    cpu.update(measured_peaks(bf16))
    measured = measure(args, precisions)
    gflop = count_gflop(create_model("unet", in_channels=3, num_classes=1, n_filters=4), args.size)
    result: dict[str, Any] = {
        "cpu": cpu,
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        # Other processes on the cores skew every figure; the load average makes that visible.
        "load_avg_1m": [load_start, round(os.getloadavg()[0], 2)],
        "smoke": args.smoke,
        "batch": args.batch,
        "steps": args.steps,
        "warmup": args.warmup,
        "gflop": {key: round(value, 4) for key, value in gflop.items()},
        **measured,
    }
    result["summary"] = {key: summarise_precision(result, key) for key in precisions}
    (args.out_dir / "vs_keras.json").write_text(json.dumps(result, indent=2) + "\n")
    (args.out_dir / "vs_keras.md").write_text(markdown(result))
    console = Console(width=None if sys.stdout.isatty() else 120)
    console.print(Markdown(markdown(result)))


if __name__ == "__main__":
    main()
