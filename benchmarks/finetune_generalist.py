"""Fine-tuning from the shipped `nuclei` model against training from scratch, on 20 images of a
rendering it was not trained on: the same architecture and settings, only the starting weights
differ. Prints validation Dice per epoch and the first epoch reaching `--target`; writes JSON.

Examples:
    python benchmarks/finetune_generalist.py
    python benchmarks/finetune_generalist.py --kind nuclei --modality he --bit-depth 16 --epochs 8
"""

from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
from pathlib import Path

from rich.console import Console
from rich.table import Table

from seglab.data.synthetic import write_synthetic
from seglab.training.init_weights import init_overrides

console = Console(width=None if sys.stdout.isatty() else 140)


def train(data: Path, out: Path, epochs: int, start: list[str]) -> list[float]:
    """Validation Dice after each epoch."""
    sets = [f"data.root={data}", f"train.epochs={epochs}", "tracking.enabled=false", *start]
    sets += ["train.patience=0", "data.batch_size=4", "train.evaluate_test=false"]
    command = [sys.executable, "-m", "seglab", "train", "--out", str(out), "--no-progress"]
    subprocess.run([*command, *(f"--set={s}" for s in sets)], check=True)
    with (out / "train_log.csv").open() as handle:
        return [float(row["val_dice"]) for row in csv.DictReader(handle)]


def first_reaching(scores: list[float], target: float) -> str:
    return next((str(i + 1) for i, s in enumerate(scores) if s >= target), f"> {len(scores)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="nuclei", help="the bundle to start from")
    parser.add_argument("--kind", default="nuclei_simple", help="synthetic kind of the new data")
    parser.add_argument("--modality", default=None, help="rendering (kind nuclei only)")
    parser.add_argument("--bit-depth", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--target", type=float, default=0.8, help="Dice to reach")
    parser.add_argument("--out", type=Path, default=Path("runs/finetune"))
    parser.add_argument("--json", type=Path, default=Path("benchmarks/results/finetune.json"))
    args = parser.parse_args()
    data = args.out / "data"
    if not data.exists():
        options = {"modality": args.modality, "bit_depth": args.bit_depth} if args.modality else {}
        write_synthetic(args.kind, data, 29, size=256, seed=7, **options)  # 20 train, 4 val, 5 test
    architecture = init_overrides(args.model)
    runs = {
        f"from {args.model}": train(
            data, args.out / "init", args.epochs, [*architecture, f"model.init={args.model}"]
        ),
        "from scratch": train(data, args.out / "scratch", args.epochs, architecture),
    }
    table = Table(title=f"{args.kind} {args.modality or ''}: 20 training images, val Dice")
    for column in ("start", *(f"ep {i + 1}" for i in range(args.epochs)), f"≥ {args.target}"):
        table.add_column(column)
    for name, scores in runs.items():
        table.add_row(name, *(f"{s:.3f}" for s in scores), first_reaching(scores, args.target))
    console.print(table)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    result = {"kind": args.kind, "modality": args.modality, "target": args.target, "runs": runs}
    args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
