"""Seed 000's Keras U-Net on TensorFlow (CPU): training and inference images/s, batch-1 latency.

This is the reference that `vs_keras.py` compares seglab with: the network of seed 000's
`get_unet(input_img, n_filters)` (two 3×3 ReLU 'same' convolutions per level, 2×2 max-pooling,
3×3 stride-2 'same' transposed convolutions, skip concatenation, a 1×1 sigmoid head; widths
16…256 for n_filters=4, 2,158,705 parameters with 3 input channels), compiled as a user of the
seed would: Adam (lr 1e-3) and binary cross-entropy, Keras' default channels-last layout, in
fp32 (`--precision 32`, Keras' default) or in Keras' standard mixed precision (`--precision bf16`:
the global policy "mixed_bfloat16", bf16 compute with float32 weights, and the sigmoid output
layer kept in float32, as the Keras mixed-precision guide recommends).
It runs in its own virtual environment (`make bench` creates `.venv-bench` from
`benchmarks/requirements-keras.txt`), never in seglab's: it imports Keras, TensorFlow and NumPy
only, and prints one JSON object per precision on stdout (TensorFlow's own messages go to stderr).

Training is `train_on_batch` on one fixed random batch and inference `predict_on_batch`, so data
loading is excluded, as in `unet_throughput.py`. Warm-up calls (graph tracing) are not timed.

Examples:
    .venv-bench/bin/python benchmarks/keras_unet.py
    .venv-bench/bin/python benchmarks/keras_unet.py --precision 32,bf16
    .venv-bench/bin/python benchmarks/keras_unet.py --steps 3 --warmup 1 --latency-runs 5
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable

# Keras 3 reads its backend from the environment at import; TensorFlow is the seed's.
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # keep TensorFlow's start-up notes short

import keras
import numpy as np
import tensorflow as tf
from keras import layers


def conv2d_block(inputs: keras.KerasTensor, filters: int) -> keras.KerasTensor:
    """Two 3×3 'same' convolutions with ReLU, as seed 000's `conv2d_block`."""
    x = layers.Conv2D(filters, (3, 3), activation="relu", padding="same")(inputs)
    return layers.Conv2D(filters, (3, 3), activation="relu", padding="same")(x)


def build_unet(size: int, channels: int, n_filters: int) -> keras.Model:
    """Seed 000's `get_unet`: 4 poolings, encoder widths 4·n_filters … 64·n_filters.

    Args:
        size: Input height and width (a multiple of 16).
        channels: Input channels (3 for the seed's RGB images).
        n_filters: The seed's width multiplier (4 gives 16, 32, 64, 128, 256 channels).

    Returns:
        The uncompiled functional model, `(N, size, size, channels)` -> `(N, size, size, 1)`
        sigmoid probabilities.
    """
    inputs = keras.Input((size, size, channels))
    widths = [n_filters * factor for factor in (4, 8, 16, 32, 64)]
    skips = []
    x = inputs
    for width in widths[:-1]:
        x = conv2d_block(x, width)
        skips.append(x)
        x = layers.MaxPooling2D((2, 2))(x)
    x = conv2d_block(x, widths[-1])
    for width in reversed(widths[:-1]):
        x = layers.Conv2DTranspose(width, (3, 3), strides=(2, 2), padding="same")(x)
        x = layers.concatenate([x, skips.pop()])
        x = conv2d_block(x, width)
    # float32 whatever the global policy: a bf16 sigmoid would round probabilities near 0 and 1.
    outputs = layers.Conv2D(1, (1, 1), activation="sigmoid", dtype="float32")(x)
    return keras.Model(inputs=[inputs], outputs=[outputs])


def images_per_second(step: Callable[[], object], batch: int, warmup: int, steps: int) -> float:
    """Images per second of `step` over `steps` timed calls after `warmup` untimed ones."""
    for _ in range(warmup):
        step()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return steps * batch / (time.perf_counter() - start)


def median_ms(step: Callable[[], object], warmup: int, runs: int) -> float:
    """Median wall time of `step` in milliseconds (medians resist a neighbour's preemptions)."""
    for _ in range(warmup):
        step()
    seconds = []
    for _ in range(runs):
        start = time.perf_counter()
        step()
        seconds.append(time.perf_counter() - start)
    return 1e3 * statistics.median(seconds)


def measure(args: argparse.Namespace, precision: str) -> dict[str, object]:
    """Training, inference and batch-1 latency of a fresh model under `precision`'s policy."""
    # The policy applies to the layers created after it is set: each precision gets its model.
    keras.mixed_precision.set_global_policy("mixed_bfloat16" if precision == "bf16" else "float32")
    keras.utils.set_random_seed(0)
    model = build_unet(args.size, 3, args.n_filters)
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=1e-3), loss="binary_crossentropy")
    rng = np.random.default_rng(0)
    x = rng.standard_normal((args.batch, args.size, args.size, 3), dtype=np.float32)
    y = (rng.random((args.batch, args.size, args.size, 1)) > 0.5).astype(np.float32)
    single = x[:1]

    train_ips = images_per_second(
        lambda: model.train_on_batch(x, y), args.batch, args.warmup, args.steps
    )
    infer_ips = images_per_second(
        lambda: model.predict_on_batch(x), args.batch, args.warmup, args.steps
    )
    latency = median_ms(lambda: model.predict_on_batch(single), args.warmup, args.latency_runs)
    return {
        "framework": "keras",
        "keras": keras.__version__,
        "tensorflow": tf.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
        "backend": keras.backend.backend(),
        "precision": precision,
        "dtype_policy": keras.mixed_precision.global_policy().name,
        # Keras resolves jit_compile="auto" to no XLA on CPU-only machines; recorded, not assumed.
        "jit_compile": bool(getattr(model, "jit_compile", False)),
        "onednn_opts": os.environ.get("TF_ENABLE_ONEDNN_OPTS", "default (on for x86 Linux)"),
        "intra_op_threads": tf.config.threading.get_intra_op_parallelism_threads(),
        "cpu_count": os.cpu_count(),
        "params": int(model.count_params()),
        "batch": args.batch,
        "size": args.size,
        "n_filters": args.n_filters,
        "warmup": args.warmup,
        "steps": args.steps,
        "latency_runs": args.latency_runs,
        "train_ips": round(train_ips, 2),
        "infer_ips": round(infer_ips, 2),
        "latency_ms_batch1": round(latency, 2),
    }


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch", type=int, default=8, help="images per step (default: 8)")
    parser.add_argument("--size", type=int, default=128, help="image height = width (default: 128)")
    parser.add_argument("--n-filters", type=int, default=4, help="seed width (default: 4)")
    parser.add_argument("--steps", type=int, default=30, help="timed steps (default: 30)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps first (default: 3)")
    parser.add_argument(
        "--latency-runs", type=int, default=50, help="timed batch-1 predictions (default: 50)"
    )
    parser.add_argument(
        "--precision",
        default="32",
        help='32: fp32 (default); bf16: the "mixed_bfloat16" policy with a float32 output '
        "layer; 32,bf16: both, one JSON line each",
    )
    parser.add_argument(
        "--threads", type=int, default=0, help="intra-op threads; 0 keeps TensorFlow's default"
    )
    args = parser.parse_args()
    args.precisions = args.precision.split(",")
    if not args.precisions or set(args.precisions) - {"32", "bf16"}:
        parser.error("--precision must be 32, bf16 or 32,bf16")
    for name in ("batch", "steps", "latency_runs", "n_filters"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1")
    if args.size < 16 or args.size % 16:
        parser.error("--size must be a positive multiple of 16 (four 2×2 poolings)")
    if args.warmup < 0 or args.threads < 0:
        parser.error("--warmup and --threads must be >= 0")
    return args


def main() -> None:
    args = parse_args()
    if args.threads:
        tf.config.threading.set_intra_op_parallelism_threads(args.threads)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    for precision in args.precisions:
        sys.stdout.write(json.dumps(measure(args, precision)) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
