"""Train a nuclei generalist candidate: a small boundary-aware U-Net on the realistic
synthetic nuclei only (fluorescence, bright-field, H&E and IHC renderings), reproducibly.

Writes the training data (`seglab data synth --kind nuclei`, mixed renderings, 256², seed 0),
trains with the settings below, scores the bundle on held-out synthetic sets of each rendering
(seed 1) and `otsu` for comparison, prints a table and writes JSON. `--ship` copies the bundle
into the package (`src/seglab/pretrained_bundles/nuclei`, loaded by `--model nuclei`); then
update `WEIGHTS_SHA256` in tests/test_pretrained.py.

Examples:
    python benchmarks/train_generalist.py --ship   # the shipped model (about 50 min here)
    python benchmarks/train_generalist.py --images 60 --epochs 1   # a quick check
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from seglab.bundle import FORMAT, METADATA, WEIGHTS
from seglab.data.synthetic import write_synthetic

console = Console(width=None if sys.stdout.isatty() else 140)
RENDERINGS = ("fluorescence", "brightfield", "he", "ihc")
SETTINGS = [
    "model.name=unet",
    "model.params.n_filters=4",
    "model.params.depth=4",
    "data.target=boundary",
    "data.normalize=percentile",
    "data.percentiles=[1.0,99.8]",
    "data.crop=128",
    "data.batch_size=16",
    "data.augment.affine=0.5",
    "data.augment.affine_scale=0.5",
    "data.augment.brightness_contrast=0.5",
    "train.lr=0.002",
    "train.scheduler=cosine",
    "train.patience=0",
    "train.precision=auto",  # bf16 where native: 1143 s here for 800 images, 40 epochs
    "tracking.enabled=false",
]


def seglab(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "seglab", *args], check=True)


def score(model: str, data: Path, out: Path) -> dict[str, float]:
    seglab("evaluate", "--model", model, "--data", str(data), "--out", str(out), "--no-progress")
    metrics = json.loads((out / "metrics.json").read_text())
    return {key: float(metrics[key]) for key in ("dice", "dsb_map") if key in metrics}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=800, help="training images (default 800)")
    parser.add_argument("--epochs", type=int, default=40, help="(default 40)")
    parser.add_argument("--out", type=Path, default=Path("runs/generalist"))
    parser.add_argument("--set", action="append", default=[], help="extra override (repeat)")
    parser.add_argument("--ship", action="store_true", help="copy the bundle into the package")
    args = parser.parse_args()
    started = time.perf_counter()
    data = args.out / "data"
    if not data.exists():
        write_synthetic("nuclei", data, args.images, size=256, seed=0, modality="mixed")
    run = args.out / "run"
    sets = [f"data.root={data}", f"train.epochs={args.epochs}", *SETTINGS, *args.set]
    seglab("train", "--out", str(run), "--no-progress", *(f"--set={s}" for s in sets))
    rows = {}
    for rendering in RENDERINGS:
        held_out = args.out / f"test-{rendering}"
        if not held_out.exists():
            write_synthetic(
                "nuclei", held_out, 20, size=256, seed=1, modality=rendering, splits=None
            )
        rows[rendering] = {
            "nuclei": score(str(run / "model"), held_out, args.out / f"eval-{rendering}"),
            "otsu": score("otsu", held_out, args.out / f"otsu-{rendering}"),
        }
    seconds = time.perf_counter() - started
    table = Table(title=f"generalist: {args.images} images, {args.epochs} epochs, {seconds:.0f} s")
    for column in ("rendering", "model", "Dice", "DSB mAP"):
        table.add_column(column)
    for rendering, models in rows.items():
        for name, metrics in models.items():
            table.add_row(rendering, name, f"{metrics['dice']:.3f}", f"{metrics['dsb_map']:.3f}")
    console.print(table)
    result = {"images": args.images, "epochs": args.epochs, "seconds": round(seconds, 1)}
    result |= {"settings": [*SETTINGS, *args.set], "scores": rows}
    (args.out / "generalist.json").write_text(json.dumps(result, indent=2) + "\n")
    if args.ship:
        ship(run / "model", args.images)


def ship(bundle: Path, images: int) -> None:
    """Copy the bundle's metadata and its weights in float16 (half the size; loading casts them
    back to the model's float32, probabilities move by ~2e-3) into the package."""
    from safetensors.torch import load_file, save_file

    target = Path(__file__).parents[1] / "src" / "seglab" / "pretrained_bundles" / "nuclei"
    target.mkdir(parents=True, exist_ok=True)
    metadata = json.loads((bundle / METADATA).read_text())
    # The training folder was a scratch folder on the machine that trained it; say what it held.
    metadata["config"]["data"]["root"] = (
        f"synthetic: seglab data synth --kind nuclei --n {images} --size 256 --seed 0"
    )
    (target / METADATA).write_text(json.dumps(metadata, indent=2) + "\n")
    state = load_file(str(bundle / WEIGHTS))
    half = {k: v.half() if v.is_floating_point() else v for k, v in state.items()}
    save_file(half, str(target / WEIGHTS), metadata={"format": FORMAT})
    console.print(f"shipped {bundle} to {target}")


if __name__ == "__main__":
    main()
