"""What each transfer choice of the nuclei generalist is worth: `train_generalist.py` once with
its settings and once per choice undone, at a smaller scale (default 300 images, 20 epochs),
scored on the same held-out renderings. Prints a table (Dice / DSB mAP) and writes JSON.

Examples:
    python benchmarks/ablate_generalist.py
    python benchmarks/ablate_generalist.py --images 100 --epochs 3 --arms baseline,scale
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from rich.console import Console
from rich.table import Table

console = Console(width=None if sys.stdout.isatty() else 160)
SCRIPT = Path(__file__).with_name("train_generalist.py")
# Each arm undoes one choice of the shipped settings.
ARMS: dict[str, list[str]] = {
    "baseline": [],
    "scale": ["data.normalize=scale"],
    "no zoom aug": ["data.augment.affine=0"],
    "no intensity aug": ["data.augment.brightness_contrast=0"],
    "mask target": ["data.target=mask"],
}
RENDERINGS = ("fluorescence", "brightfield", "he")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=300)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument(
        "--arms", default=",".join(ARMS), help="comma-separated, of: " + ", ".join(ARMS)
    )
    parser.add_argument("--out", type=Path, default=Path("runs/ablation"))
    parser.add_argument("--json", type=Path, default=Path("benchmarks/results/ablation.json"))
    args = parser.parse_args()
    results = {}
    for arm in args.arms.split(","):
        out = args.out / arm.replace(" ", "_")
        if not (out / "generalist.json").exists():
            command = [sys.executable, str(SCRIPT), "--images", str(args.images)]
            command += ["--epochs", str(args.epochs), "--out", str(out)]
            subprocess.run([*command, *(f"--set={s}" for s in ARMS[arm])], check=True)
        results[arm] = json.loads((out / "generalist.json").read_text())
    table = Table(title=f"ablation: {args.images} images, {args.epochs} epochs (Dice / DSB mAP)")
    for column in ("arm", "undone", *RENDERINGS, "seconds"):
        table.add_column(column)
    for arm, result in results.items():
        cells = [result["scores"][r]["nuclei"] for r in RENDERINGS]
        scores = [f"{c['dice']:.3f} / {c['dsb_map']:.3f}" for c in cells]
        table.add_row(arm, " ".join(ARMS[arm]) or "—", *scores, f"{result['seconds']:.0f}")
    console.print(table)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
