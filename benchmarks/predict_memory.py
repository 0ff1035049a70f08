"""Peak memory of `seglab predict` over 100 and 1,000 images: it must stay flat (streaming).

Each count of synthetic circles (128×128, written by `write_synthetic`) is predicted by a fresh
`python -m seglab predict` subprocess, whose peak resident set size is read from the kernel's
accounting of that child (`os.wait4`, the `ru_maxrss` that `resource.getrusage` reports for
children, but for this child alone). A folder is streamed image by image, so the peak should not
grow with the number of images; the run passes when the largest count's peak is within 10 % of
the smallest's (issue 8). The bundle is seed 000's U-Net (n_filters=4, one input channel),
random-initialised: memory does not depend on the weights. Both backends are measured, torch and
ONNX Runtime (after `export_onnx`).

Examples:
    python benchmarks/predict_memory.py
    python benchmarks/predict_memory.py --counts 5,20 --backends onnx
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from rich.console import Console
from rich.table import Table

from seglab.bundle import make_metadata, save_bundle
from seglab.data.synthetic import write_synthetic
from seglab.deploy.export import export_onnx
from seglab.models import create_model

HERE = Path(__file__).resolve().parent
FLAT_TOLERANCE = 0.10  # issue 8: within 10 % between 100 and 1,000 images
# A child's ru_maxrss starts at its parent's resident size when it was forked (Linux keeps the
# high-water mark across exec), and this process holds torch: a small Python in between forks
# `seglab predict` and reports that grandchild's peak alone.
LAUNCHER = (
    "import resource, subprocess, sys\n"
    "code = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL).returncode\n"
    "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
    "sys.exit(code)\n"
)


def make_bundle(folder: Path) -> Path:
    """A seed-000 U-Net bundle for one-channel images, with `model.onnx` beside the weights."""
    torch.manual_seed(0)
    kwargs = {"in_channels": 1, "num_classes": 1, "n_filters": 4}
    meta = make_metadata(
        model_name="unet",
        model_kwargs=kwargs,
        preprocessing={"normalize": "scale", "percentiles": [1, 99], "input_size": None},
        threshold=0.5,
        metrics={},
        config={},
    )
    bundle = save_bundle(create_model("unet", **kwargs), meta, folder)
    export_onnx(bundle)
    return bundle


def peak_rss_of(command: list[str]) -> tuple[float, float]:
    """Run `command` through `LAUNCHER`; return its peak resident set size (MiB) and seconds.

    Raises:
        SystemExit: The command failed (its stderr is shown).
    """
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", LAUNCHER, *command], capture_output=True, text=True
    )
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{done.stderr[-3000:]}")
    return int(done.stdout.split()[-1]) / 1024, seconds  # ru_maxrss is in KiB on Linux


def run(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    bundle = make_bundle(workdir / "bundle")
    runs: dict[str, list[dict[str, Any]]] = {backend: [] for backend in args.backends}
    for count in args.counts:
        images = workdir / f"circles_{count}"
        # Image i depends only on (seed, i): each folder starts with the smaller one's images.
        write_synthetic("circles", images, count, args.size, seed=0, splits=None)
        for backend in args.backends:
            out = workdir / f"pred_{backend}_{count}"
            command = [sys.executable, "-m", "seglab", "predict", str(images)]
            command += ["--model", str(bundle), "--out", str(out), "--backend", backend]
            peak_mib, seconds = peak_rss_of([*command, "--no-progress"])
            written = len(list(out.glob("*_mask.png")))
            if written != count:
                raise SystemExit(f"{out}: {written} masks written for {count} images")
            runs[backend].append(
                {
                    "images": count,
                    "peak_rss_mib": round(peak_mib, 1),
                    "seconds": round(seconds, 2),
                    "images_per_s": round(count / seconds, 2),
                }
            )
    backends = {}
    for backend, rows in runs.items():
        growth = rows[-1]["peak_rss_mib"] / rows[0]["peak_rss_mib"] - 1
        backends[backend] = {
            "runs": rows,
            "growth": round(growth, 4),
            "flat": growth <= FLAT_TOLERANCE,
        }
    return {
        "size": args.size,
        "counts": args.counts,
        "flat_tolerance": FLAT_TOLERANCE,
        "torch": torch.__version__,
        "cpu_count": os.cpu_count(),
        "backends": backends,
    }


def print_table(result: dict[str, Any]) -> None:
    table = Table(title=f"seglab predict peak RSS, {result['size']}×{result['size']} circles")
    for column in ("backend", "images", "peak RSS MiB", "seconds", "img/s", "growth", "flat"):
        table.add_column(column, justify="left" if column == "backend" else "right")
    for backend, entry in result["backends"].items():
        for index, row in enumerate(entry["runs"]):
            last = index == len(entry["runs"]) - 1
            table.add_row(
                backend,
                str(row["images"]),
                f"{row['peak_rss_mib']:.1f}",
                f"{row['seconds']:.1f}",
                f"{row['images_per_s']:.1f}",
                f"{entry['growth']:+.1%}" if last else "",
                ("yes" if entry["flat"] else "NO") if last else "",
            )
    Console(width=None if sys.stdout.isatty() else 120).print(table)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--counts", default="100,1000", help="comma-separated image counts (100,1000)"
    )
    parser.add_argument(
        "--backends", default="torch,onnx", help="comma-separated: torch, onnx (both)"
    )
    parser.add_argument("--size", type=int, default=128, help="image side (128)")
    parser.add_argument(
        "--out",
        type=Path,
        default=HERE / "results" / "predict_memory.json",
        help="JSON result file (benchmarks/results/predict_memory.json)",
    )
    args = parser.parse_args()
    try:
        args.counts = sorted(int(c) for c in args.counts.split(","))
    except ValueError:
        parser.error("--counts must be comma-separated integers, e.g. 100,1000")
    args.backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    if len(args.counts) < 2 or args.counts[0] < 1:
        parser.error("--counts needs at least two counts >= 1")
    if not args.backends or not set(args.backends) <= {"torch", "onnx"}:
        parser.error("--backends takes torch, onnx or both")
    if args.size < 8:
        parser.error("--size must be >= 8")
    return args


def main() -> None:
    args = parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        result = run(args, Path(tmp))
    print_table(result)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
