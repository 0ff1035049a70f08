"""Nuclei instance segmentation on synthetic DSB2018-like data: otsu vs U-Nets, per modality.

Trains `unet`, `unet_extended` and `unet` with the boundary-aware target on the same split,
evaluates them and the classical `otsu` baseline on the same test set (watershed instances,
Kaggle DSB2018 mAP), prints a table and writes JSON.

    python benchmarks/nuclei_instances.py [--n 240] [--epochs 20] [--out runs/bench-nuclei]
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

VARIANTS = {
    "otsu": [],
    "unet": ["model.name=unet"],
    "unet_extended": ["model.name=unet_extended"],
    "unet_boundary": ["model.name=unet", "data.target=boundary"],
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=240, help="synthetic images")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--out", type=Path, default=Path("runs/bench-nuclei"))
    parser.add_argument("--json", type=Path, default=Path("benchmarks/results/nuclei.json"))
    args = parser.parse_args()

    from rich.console import Console
    from rich.table import Table

    from seglab.baseline import create_baseline
    from seglab.config import load_config
    from seglab.data.splits import load_split_data
    from seglab.data.synthetic import write_synthetic
    from seglab.evaluation.segmentation import evaluate_samples
    from seglab.training.run import train

    data = args.out / "data"
    if not data.exists():
        write_synthetic("nuclei", data, args.n, size=128, seed=0)
    common = [
        f"data.root={data}",
        f"train.epochs={args.epochs}",
        "train.lr=0.002",
        "train.scheduler=cosine",
        "tracking.enabled=false",
    ]
    results = {}
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for name, settings in VARIANTS.items():
        started = time.perf_counter()
        config = load_config(None, [*common, *settings])
        if name == "otsu":
            test = load_split_data(config.data, config.seed).samples["test"]
            out = args.out / f"{stamp}-otsu" / "eval" / "test"
            metrics = evaluate_samples(create_baseline("otsu"), test, out).metrics
        else:
            metrics = train(config, args.out / f"{stamp}-{name}", progress=False).test_metrics
            assert metrics is not None
        metrics["seconds"] = round(time.perf_counter() - started, 1)
        results[name] = metrics

    table = Table(title=f"synthetic nuclei test set ({args.n} images, {args.epochs} epochs)")
    for column in (
        "model",
        "dice",
        "dsb_map",
        "ap@0.5",
        "ap@0.75",
        "dsb_map fluo",
        "dsb_map bright",
        "seconds",
    ):
        table.add_column(column, justify="left" if column == "model" else "right", no_wrap=True)
    for name, m in results.items():
        modality = m["per_modality"]
        table.add_row(
            name,
            *(f"{m[k]:.4f}" for k in ("dice", "dsb_map", "ap@0.5", "ap@0.75")),
            *(
                f"{modality.get(k, {}).get('dsb_map', float('nan')):.4f}"
                for k in ("fluorescence", "brightfield")
            ),
            f"{m['seconds']:.0f}",
        )
    Console().print(table)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=2))
    print(json.dumps({k: {"dsb_map": v["dsb_map"], "dice": v["dice"]} for k, v in results.items()}))


if __name__ == "__main__":
    main()
