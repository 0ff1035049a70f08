"""What `seglab predict --instances` adds to `predict`: 50 synthetic nuclei images (128 px) and
1024x1024 mosaics of hundreds of nuclei, with and without instances, interleaved; prints a
table and writes JSON. Run it on two checkouts (PYTHONPATH) to compare before and after.

    python benchmarks/instances_overhead.py [--model runs/nuclei/model] [--repeats 3] [--big 4]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")


def mosaic(seed: int, tiles: int = 8) -> np.ndarray:
    """8x8 fluorescence tiles of 128 px: a 1024x1024 image of ~500 nuclei, seams cleared."""
    from seglab.data.synthetic import make_nuclei

    images = [image.copy() for image, _ in make_nuclei(tiles * tiles, 128, seed, "fluorescence")]
    for image in images:
        dark = np.percentile(image, 5, axis=(0, 1)).astype(np.uint8)
        image[:2], image[-2:], image[:, :2], image[:, -2:] = dark, dark, dark, dark
    rows = [np.concatenate(images[r * tiles : (r + 1) * tiles], axis=1) for r in range(tiles)]
    return np.concatenate(rows, axis=0)


def write_sets(root: Path, big: int) -> dict[str, Path]:
    from seglab.data.io import write_png
    from seglab.data.synthetic import make_nuclei

    sets = {"synthetic 50 x 128^2": root / "small", f"{big} x 1024^2": root / "big"}
    for folder in sets.values():
        folder.mkdir(parents=True)
    for index, (image, _) in enumerate(make_nuclei(50, 128, seed=5)):
        write_png(sets["synthetic 50 x 128^2"] / f"n{index:02d}.png", image)
    for index in range(big):
        write_png(sets[f"{big} x 1024^2"] / f"m{index}.png", mosaic(100 + index))
    return sets


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="nuclei", help="bundle or shipped name (nuclei)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--big", type=int, default=4, help="1024x1024 images")
    parser.add_argument("--label", default="seglab")
    parser.add_argument("--json", type=Path, default=Path("benchmarks/results/instances.json"))
    args = parser.parse_args()

    from rich.console import Console
    from rich.table import Table

    from seglab.inference.files import predict_files
    from seglab.inference.loading import load_predictor

    predictor = load_predictor(args.model)
    results = {}
    with tempfile.TemporaryDirectory() as scratch:
        sets = write_sets(Path(scratch), args.big)
        for name, folder in sets.items():
            out = Path(scratch) / "out"
            predict_files(predictor, [folder], out, progress=False)  # warm-up
            times: dict[str, list[float]] = {"plain": [], "instances": []}
            for _ in range(args.repeats):
                for mode in times:
                    started = time.perf_counter()
                    predict_files(
                        predictor, [folder], out, instances=mode == "instances", progress=False
                    )
                    times[mode].append(time.perf_counter() - started)
            plain, inst = (statistics.median(times[m]) for m in ("plain", "instances"))
            results[name] = {**times, "overhead_percent": round(100 * (inst / plain - 1), 1)}
    table = Table(title=f"predict with and without --instances ({args.label})")
    for column in ("images", "plain s (min-max)", "--instances s (min-max)", "overhead"):
        table.add_column(column, justify="right")
    for name, r in results.items():
        spans = [f"{min(r[m]):.2f}-{max(r[m]):.2f}" for m in ("plain", "instances")]
        table.add_row(name, *spans, f"{r['overhead_percent']:+.0f} %")
    Console().print(table)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"label": args.label, "results": results}, indent=2))


if __name__ == "__main__":
    main()
