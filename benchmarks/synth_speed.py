"""Speed of the realistic nuclei generator: images per second per rendering, on one core.

Each case draws `--n` images (image ``i`` from ``default_rng([seed, i])``, as
`seglab.data.synthetic.make_realistic_nuclei` does) of one side and rendering, after one
warm-up image, with numpy and scipy limited to one thread. Goal: >= 50 images/s at 256 x 256.
Timings are from a shared 2-core machine on which other test suites run; they are noisy, so the
best of `--repeats` runs is reported (the least disturbed one).

Examples:
    python benchmarks/synth_speed.py
    python benchmarks/synth_speed.py --sizes 256 --n 50 --out /tmp/synth.json
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")  # one core: set before numpy loads its BLAS
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np

from seglab.data.nuclei_synth import MODALITIES, render_nuclei


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 1024])
    parser.add_argument("--n", type=int, default=100, help="images per case at 256 (fewer above)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--bit-depth", type=int, default=8, choices=(8, 16))
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/synth_speed.json"))
    return parser.parse_args()


def time_case(size: int, modality: str, n: int, repeats: int, bit_depth: int) -> dict:
    """Best images/s over `repeats` runs of `n` images of one size and rendering."""
    render_nuclei(np.random.default_rng([0, 10_000]), size, modality, bit_depth)  # warm-up
    rates = []
    for _ in range(repeats):
        started = time.perf_counter()
        for index in range(n):
            render_nuclei(np.random.default_rng([0, index]), size, modality, bit_depth)
        rates.append(n / (time.perf_counter() - started))
    return {"size": size, "modality": modality, "n": n, "images_per_s": round(max(rates), 1)}


def main() -> None:
    args = parse_args()
    load_avg = round(os.getloadavg()[0], 2)  # other processes on the cores skew the seconds
    results = []
    for size in args.sizes:
        n = max(4, args.n * 256**2 // size**2)
        for modality in MODALITIES:
            results.append(time_case(size, modality, n, args.repeats, args.bit_depth))
    print(f"{os.cpu_count()} CPUs, one thread, load average {load_avg} at start")
    print(f"{'size':>6} {'modality':<13} {'images':>6} {'images/s':>9}")
    for row in results:
        print(f"{row['size']:>6} {row['modality']:<13} {row['n']:>6} {row['images_per_s']:>9.1f}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    summary = {"bit_depth": args.bit_depth, "load_avg_1m": load_avg, "cases": results}
    args.out.write_text(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
