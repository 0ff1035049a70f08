"""The shipped `nuclei` model beside `otsu` on real images available offline (scikit-image's
`immunohistochemistry` and `cell`) and on one held-out synthetic image of each rendering: one
figure of instance outlines, and a table of nucleus counts (and Dice where truth exists).

Examples:
    python benchmarks/generalist_real_images.py
    python benchmarks/generalist_real_images.py --model runs/generalist/run/model
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table
from skimage import data as skdata
from skimage.segmentation import find_boundaries

from seglab.data.nuclei_synth import render_nuclei
from seglab.inference import load_predictor
from seglab.viz import new_figure, save_figure, to_display

console = Console(width=None if sys.stdout.isatty() else 140)


def images() -> list[tuple[str, np.ndarray, np.ndarray | None]]:
    """(name, image, true mask or None): the real images, then synthetic held-out ones."""
    found: list[tuple[str, np.ndarray, np.ndarray | None]] = [
        ("immunohistochemistry (real)", skdata.immunohistochemistry(), None),
        ("cell (real)", skdata.cell(), None),
    ]
    for modality in ("fluorescence", "brightfield", "he", "ihc"):
        image, instances = render_nuclei(np.random.default_rng([99, 0]), 256, modality)
        found.append((f"{modality} (synthetic)", image, instances > 0))
    return found


def dice(a: np.ndarray, b: np.ndarray) -> float:
    total = int(a.sum() + b.sum())
    return 2 * float(np.logical_and(a, b).sum()) / total if total else 1.0


def outlined(image: np.ndarray, instances: np.ndarray) -> np.ndarray:
    rgb = to_display(image).copy()
    rgb[find_boundaries(instances, mode="inner")] = (255, 230, 0)
    return rgb


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="nuclei", help="bundle or shipped name (nuclei)")
    parser.add_argument("--figure", type=Path, default=Path("docs/figures/generalist_real.png"))
    parser.add_argument(
        "--json", type=Path, default=Path("benchmarks/results/generalist_real.json")
    )
    args = parser.parse_args()
    models = {"seglab nuclei": load_predictor(args.model), "otsu": load_predictor("otsu")}
    rows = images()
    fig = new_figure(3 * 3.4, len(rows) * 3.4)
    results = []
    for r, (name, image, truth) in enumerate(rows):
        axes = fig.add_subplot(len(rows), 3, 3 * r + 1)
        axes.imshow(to_display(image))
        axes.set_title(name, fontsize=9)
        axes.axis("off")
        entry: dict[str, object] = {"image": name}
        for c, (label, predictor) in enumerate(models.items()):
            prediction = predictor.predict(image, instances=True)
            count = int(prediction.instances.max())
            score = "" if truth is None else f", Dice {dice(prediction.mask, truth):.2f}"
            entry[label] = {"nuclei": count} | (
                {} if truth is None else {"dice": round(dice(prediction.mask, truth), 4)}
            )
            axes = fig.add_subplot(len(rows), 3, 3 * r + 2 + c)
            axes.imshow(outlined(image, prediction.instances))
            axes.set_title(f"{label}: {count} nuclei{score}", fontsize=9)
            axes.axis("off")
        results.append(entry)
    fig.tight_layout()
    save_figure(fig, args.figure)
    table = Table(title=f"{args.model} vs otsu (figure: {args.figure})")
    for column in ("image", *models):
        table.add_column(column)
    for entry in results:
        table.add_row(str(entry["image"]), *(json.dumps(entry[m]) for m in models))
    console.print(table)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
