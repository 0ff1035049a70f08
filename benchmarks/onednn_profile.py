"""The oneDNN kernels torch (seglab) and TensorFlow (Keras) run for the seed U-Net, and their time.

Both frameworks run their CPU convolutions through oneDNN, which prints one line per executed
primitive when `ONEDNN_VERBOSE=1`: the primitive kind (convolution, deconvolution, reorder,
pooling, eltwise, ...), the implementation it picked (`brg_conv_fwd:avx10_1_512_amx` is AMX,
`jit:avx512_core` plain AVX-512, `gemm:*` a matrix-product fallback), the propagation
(forward_training, backward_data, backward_weights), the memory descriptors (data type and
layout tag of src, weights, dst: `acdb` is channels-last, `aBcd16b` a blocked layout), the
attributes (`attr-post-ops:eltwise_relu` is a ReLU fused into the convolution) and the time in ms.

This script runs a few steps of each framework in a child process with the verbose mode on
(seglab in this Python, eager and, for inference, as `Predictor(..., compile=True)` runs it;
Keras in `.venv-bench`'s, with `TF_ENABLE_ONEDNN_OPTS=1`), keeps the
lines of the timed steps only (markers are printed after the warm-up), and tabulates per step:
kind, propagation, implementation, data types, layouts, fused post-ops, count, ms and share of
the step's wall time. What oneDNN does not run (torch's own ReLU, concatenation, optimiser;
TensorFlow's element-wise ops) shows as the wall time the primitives leave uncovered;
TensorFlow runs independent ops side by side on its inter-op pool, so its primitives' ms can
add up to more than the step's wall time (a negative share outside oneDNN).

The verbose mode times each primitive synchronously, so the wall times are a little above the
real ones; on a loaded machine the ms are noisy but the kernel lists and shares still hold.

Examples:
    .venv/bin/python benchmarks/onednn_profile.py
    .venv/bin/python benchmarks/onednn_profile.py --steps 2 --warmup 1 --phases train
    .venv/bin/python benchmarks/onednn_profile.py --parse onednn.log  # any verbose log
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
MARK = "onednn_profile"
PRECISIONS = ("32", "bf16")
PHASES = ("train", "infer")


def parse_line(line: str) -> dict[str, Any] | None:
    """One `onednn_verbose,...,exec,...` line as a dict; None for any other line.

    Example:
        >>> row = parse_line("onednn_verbose,v1,primitive,exec,cpu,eltwise,jit:avx512_core,"
        ...     "forward_training,data:f32::blocked:acdb::f0 diff:undef::undef:::,"
        ...     ",alg:eltwise_relu alpha:0 beta:0,8x16x128x128,0.25")
        >>> row["kind"], row["impl"], row["dtypes"], row["formats"], row["ms"]
        ('eltwise', 'jit:avx512_core', 'data:f32', 'data:acdb', 0.25)
    """
    fields = line.strip().split(",")
    if not fields[0].endswith("onednn_verbose") or "exec" not in fields:
        return None
    at = fields.index("exec")
    if len(fields) < at + 9:
        return None
    kind, impl, prop, memories, attributes = fields[at + 2 : at + 7]
    dtypes, formats = [], []
    for memory in memories.split():
        name, _, rest = memory.partition(":")
        parts = rest.split(":")
        if len(parts) >= 4 and parts[0] != "undef":
            dtypes.append(f"{name}:{parts[0]}")
            formats.append(f"{name}:{parts[3]}")
    post_ops = [a.removeprefix("attr-post-ops:") for a in attributes.split() if "post-ops" in a]
    return {
        "kind": kind,
        "prop": prop.replace("forward_", "fwd_").replace("backward_", "bwd_"),
        "impl": impl,
        "alg": fields[at + 7].split()[0].removeprefix("alg:") if fields[at + 7] else "",
        "dtypes": " ".join(dtypes),
        "formats": " ".join(formats),
        "post_ops": " ".join(post_ops),
        "ms": float(fields[-1]),
    }


def timed_lines(text: str) -> tuple[list[str], float, int]:
    """The verbose lines between the begin and end markers, the wall seconds and steps timed."""
    lines = text.splitlines()
    begin = next(i for i, line in enumerate(lines) if line.startswith(f"{MARK},begin"))
    end = next(i for i, line in enumerate(lines) if line.startswith(f"{MARK},end"))
    _, _, seconds, steps = lines[end].split(",")
    return lines[begin + 1 : end], float(seconds), int(steps)


def tabulate(lines: Iterable[str], steps: int, keys: tuple[str, ...]) -> list[dict[str, Any]]:
    """Executed primitives grouped by `keys`: count and ms per step, largest first."""
    groups: dict[tuple[str, ...], list[float]] = defaultdict(list)
    for line in lines:
        row = parse_line(line)
        if row is not None:
            groups[tuple(row[key] for key in keys)].append(row["ms"])
    table = [
        dict(zip(keys, key)) | {"count": len(ms) / steps, "ms": sum(ms) / steps}
        for key, ms in groups.items()
    ]
    return sorted(table, key=lambda row: -row["ms"])


def _flush_c_stdio() -> None:
    """oneDNN prints through C stdio, which buffers a pipe; flush it before a marker line."""
    ctypes.CDLL(None).fflush(None)


def run_marked(step: Callable[[], object], warmup: int, steps: int) -> None:
    """Run `step` `warmup` times, then `steps` times between the begin and end markers."""
    for _ in range(warmup):
        step()
    _flush_c_stdio()
    sys.stdout.write(f"{MARK},begin\n")
    sys.stdout.flush()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    seconds = (time.perf_counter() - start) / steps
    _flush_c_stdio()
    sys.stdout.write(f"{MARK},end,{seconds},{steps}\n")
    sys.stdout.flush()


def keras_step(precision: str, phase: str, batch: int) -> Callable[[], object]:
    """A Keras `train_on_batch` or `predict_on_batch` of seed 000's U-Net (keras_unet.py)."""
    import keras
    import numpy as np

    from keras_unet import build_unet

    if precision == "bf16":
        keras.mixed_precision.set_global_policy("mixed_bfloat16")
    model = build_unet(128, 3, 4)
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=1e-3), loss="binary_crossentropy")
    rng = np.random.default_rng(0)
    x = rng.standard_normal((batch, 128, 128, 3), dtype=np.float32)
    y = (rng.random((batch, 128, 128, 1)) > 0.5).astype(np.float32)
    if phase == "train":
        return lambda: model.train_on_batch(x, y)
    return lambda: model.predict_on_batch(x)


def torch_step(precision: str, phase: str, batch: int) -> Callable[[], object]:
    """seglab's bare step of the seed U-Net (channels_last, bf16 autocast for "bf16")."""
    import torch

    from seglab.models import create_model
    from seglab.training.tasks import make_optimizer
    from unet_throughput import model_steps

    model = create_model("unet", in_channels=3, num_classes=1, n_filters=4)
    model = model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    x = torch.randn(batch, 3, 128, 128).contiguous(memory_format=torch.channels_last)
    target = (torch.rand(batch, 1, 128, 128) > 0.5).float()
    optimizer = make_optimizer(model, 1e-3, 0.0, "none")
    dtype = torch.bfloat16 if precision == "bf16" else torch.float32
    train, infer = model_steps(model, x, target, optimizer, dtype)
    model.train(phase == "train")
    return train if phase == "train" else infer


def compiled_step(precision: str, batch: int) -> Callable[[], object]:
    """seglab's `torch_forward(..., compile=True)`: inference with `torch.compile` and freezing
    (bf16 from a bf16 copy of the weights), as `Predictor(..., compile=True)` runs it."""
    import numpy as np

    from seglab.inference.predictor import torch_forward
    from seglab.models import create_model

    model = create_model("unet", in_channels=3, num_classes=1, n_filters=4)
    x = np.random.default_rng(0).standard_normal((batch, 3, 128, 128), dtype=np.float32)
    forward = torch_forward(model, "cpu", precision=precision, compile=True)
    return lambda: forward(x)


def child(args: argparse.Namespace) -> None:
    if args.child == "keras":
        step = keras_step(args.precision, args.phase, args.batch)
    else:
        import torch

        torch.set_num_threads(os.cpu_count() or 1)
        if args.child == "torch-compiled":
            step = compiled_step(args.precision, args.batch)
        else:
            step = torch_step(args.precision, args.phase, args.batch)
    run_marked(step, args.warmup, args.steps)


def profile(args: argparse.Namespace, framework: str, precision: str, phase: str) -> dict:
    """Run one framework's steps in a child with verbose oneDNN; its tables and wall time."""
    python = args.keras_python if framework == "keras" else sys.executable
    env = os.environ | {"ONEDNN_VERBOSE": "1", "DNNL_VERBOSE": "1", "PYTHONPATH": str(HERE)}
    env |= {
        "TF_ENABLE_ONEDNN_OPTS": "1",
        "TF_CPP_MIN_LOG_LEVEL": "2",
        "KERAS_BACKEND": "tensorflow",
    }
    if framework != "keras":
        env["PYTHONPATH"] += os.pathsep + os.pathsep.join(sys.path)
    command = [str(python), __file__, "--child", framework, "--precision", precision]
    command += ["--phase", phase, "--steps", str(args.steps), "--warmup", str(args.warmup)]
    command += ["--batch", str(args.batch)]
    done = subprocess.run(command, capture_output=True, text=True, env=env)
    if done.returncode != 0:
        raise SystemExit(f"{framework} {precision} {phase} failed:\n{done.stderr[-3000:]}")
    lines, seconds, steps = timed_lines(done.stdout)
    detail = tabulate(lines, steps, ("kind", "prop", "impl", "dtypes", "formats", "post_ops"))
    wall_ms = 1e3 * seconds
    for row in detail:
        row["share"] = row["ms"] / wall_ms
    onednn_ms = sum(row["ms"] for row in detail)
    return {
        "framework": framework,
        "precision": precision,
        "phase": phase,
        "steps": steps,
        "wall_ms_per_step": round(wall_ms, 2),
        "onednn_ms_per_step": round(onednn_ms, 2),
        "not_onednn_share": round(1 - onednn_ms / wall_ms, 3),
        "by_kind": tabulate(lines, steps, ("kind", "prop")),
        "detail": detail,
    }


def markdown(profiles: list[dict[str, Any]], top: int) -> str:
    lines = ["# oneDNN primitives per step: seglab (torch) vs Keras (TensorFlow)", ""]
    lines += [
        "Batch 8, 3×128×128, seed U-Net (n_filters 4). ms are per step (verbose mode on).",
        "",
        "| framework | precision | phase | wall ms/step | oneDNN ms | outside oneDNN |",
        "|---|---|---|---|---|---|",
    ]
    for p in profiles:
        lines.append(
            f"| {p['framework']} | {p['precision']} | {p['phase']} | {p['wall_ms_per_step']} "
            f"| {p['onednn_ms_per_step']} | {100 * p['not_onednn_share']:.0f} % |"
        )
    for p in profiles:
        lines += ["", f"## {p['framework']} {p['precision']} {p['phase']}", ""]
        lines += ["| kind | prop | impl | dtypes | formats | post-ops | n/step | ms/step | share |"]
        lines += ["|---|---|---|---|---|---|---|---|---|"]
        for row in p["detail"][:top]:
            cells = [row[key] or "–" for key in ("kind", "prop", "impl", "dtypes", "formats")]
            cells.append(row["post_ops"] or "–")
            lines.append(
                f"| {' | '.join(cells)} | {row['count']:g} | {row['ms']:.2f} "
                f"| {100 * row['share']:.1f} % |"
            )
    return "\n".join(lines) + "\n"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=3, help="timed steps (3)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps first (2)")
    parser.add_argument("--batch", type=int, default=8, help="images per step (8)")
    parser.add_argument(
        "--frameworks",
        default="torch,keras,torch-compiled",
        help="torch,keras,torch-compiled (the last: inference only)",
    )
    parser.add_argument("--precisions", default="32,bf16", help="32,bf16")
    parser.add_argument("--phases", default="train,infer", help="train,infer")
    parser.add_argument("--top", type=int, default=12, help="rows per table in the markdown")
    parser.add_argument("--parse", type=Path, help="tabulate this verbose log and exit")
    parser.add_argument(
        "--child", choices=("torch", "keras", "torch-compiled"), help=argparse.SUPPRESS
    )
    parser.add_argument("--precision", choices=PRECISIONS, default="32", help=argparse.SUPPRESS)
    parser.add_argument("--phase", choices=PHASES, default="train", help=argparse.SUPPRESS)
    parser.add_argument(
        "--keras-python",
        default=str(HERE.parent / ".venv-bench" / "bin" / "python"),
        help="python of the TensorFlow venv (default: .venv-bench's)",
    )
    parser.add_argument("--out-dir", type=Path, default=HERE / "results", help="JSON/MD folder")
    args = parser.parse_args()
    if args.steps < 1 or args.warmup < 0 or args.batch < 1:
        parser.error("--steps and --batch must be >= 1, --warmup >= 0")
    return args


def main() -> None:
    args = parse_args()
    if args.child:
        child(args)
        return
    if args.parse:
        keys = ("kind", "prop", "impl", "dtypes", "formats", "post_ops")
        lines = args.parse.read_text().splitlines()
        sys.stdout.write(json.dumps(tabulate(lines, 1, keys), indent=2) + "\n")
        return
    profiles = [
        profile(args, framework, precision, phase)
        for phase in args.phases.split(",")
        for precision in args.precisions.split(",")
        for framework in args.frameworks.split(",")
        # torch.compile with freezing is an inference mode (`Predictor(..., compile=True)`).
        if not (framework == "torch-compiled" and phase == "train")
    ]
    args.out_dir.mkdir(parents=True, exist_ok=True)
    (args.out_dir / "onednn_profile.json").write_text(json.dumps(profiles, indent=2) + "\n")
    (args.out_dir / "onednn_profile.md").write_text(markdown(profiles, args.top))
    sys.stdout.write(markdown(profiles, args.top))


if __name__ == "__main__":
    main()
