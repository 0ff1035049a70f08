"""seglab's sliding window against MONAI's `sliding_window_inference`: same model, same result?

Cases: a 1024² RGB image through the config-default 2D U-Net (n_filters=2, batch norm) at tile
512, and a 128³ volume through unet3d (n_filters=2) at tile 64³; overlap 0.5, batch 4 (2D) and
2 (3D), fp32 on CPU, random weights scaled by 2.5 so that the probabilities vary. Each of three
ways is timed (best of `--repeats` runs, after one untimed warm-up):

- seglab: `sliding_window_predict` (Gaussian weights, σ = tile / 8, centred on (tile - 1) / 2);
- MONAI, `mode="gaussian"`, `sigma_scale=0.125` (σ = 0.125 × tile, the same σ), its own map;
- MONAI with `roi_weight_map` = seglab's `gaussian_weights(tile)`: the same weights, so any
  difference left is in the tile positions, the padding or the blending arithmetic.

For these sizes both place tiles at the same offsets (0, step, 2 × step with step = tile / 2) and
neither pads. MONAI 1.6's own map is the same sampled Gaussian, centred on (tile - 1) / 2 too, but
not divided by its maximum (which cancels in the blend) and clamped from below at 1e-3: where
every tile covering a pixel has a weight under 1e-3 (towards tile corners), MONAI averages the
tiles uniformly while seglab keeps their Gaussian ratio. A fourth, untimed run passes MONAI
seglab's map floored at 1e-3, to show that the floor is the whole difference.

MONAI is not a seglab dependency (nor should it be): run this with a Python that has both, e.g.

    python -m venv /tmp/venv-monai && /tmp/venv-monai/bin/pip install torch==2.13.0
    /tmp/venv-monai/bin/pip install monai -e .
    /tmp/venv-monai/bin/python benchmarks/monai_sliding_window.py
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rich import box
from rich.console import Console
from rich.table import Table

from seglab.inference.sliding_window import gaussian_weights, sliding_window_predict
from seglab.models import create_model

TARGET = 1e-4  # the largest acceptable |seglab - MONAI| of probabilities
MONAI_WEIGHT_FLOOR = 1e-3  # compute_importance_map clamps the Gaussian map from below at this
CASES = {
    "2d": {"size": 1024, "tile": 512, "batch": 4},
    "3d": {"size": 128, "tile": 64, "batch": 2},
}


def make_model(kind: str) -> torch.nn.Module:
    torch.manual_seed(0)
    if kind == "2d":
        model = create_model("unet", in_channels=3, num_classes=1, n_filters=2, batch_norm=True)
    else:
        model = create_model("unet3d", in_channels=1, num_classes=1, n_filters=2)
    with torch.no_grad():  # default init gives near-constant outputs; spread them
        for module in model.modules():
            if isinstance(module, torch.nn.modules.conv._ConvNd):
                module.weight.mul_(2.5)
    return model.eval()


def timed(function: Callable[[], np.ndarray], repeats: int) -> tuple[np.ndarray, float]:
    function()  # warm-up: oneDNN picks its kernels on the first call
    best = float("inf")
    result = np.empty(0)
    for _ in range(repeats):
        start = time.perf_counter()
        result = function()
        best = min(best, time.perf_counter() - start)
    return result, best


def run_case(kind: str, repeats: int) -> dict[str, Any]:
    from monai.inferers import sliding_window_inference

    case = CASES[kind]
    dims = 2 if kind == "2d" else 3
    channels = 3 if dims == 2 else 1
    tile = (case["tile"],) * dims
    model = make_model(kind)
    image = np.random.default_rng(0).random((channels, *(case["size"],) * dims), np.float32)

    def torch_probabilities(batch: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            return torch.sigmoid(model(batch))

    def seglab() -> np.ndarray:
        def forward(batch: np.ndarray) -> np.ndarray:
            return torch_probabilities(torch.from_numpy(batch)).numpy()

        return sliding_window_predict(image, forward, tile, 0.5, case["batch"])

    def monai(weights: torch.Tensor | None) -> Callable[[], np.ndarray]:
        def run() -> np.ndarray:
            with torch.inference_mode():
                output = sliding_window_inference(
                    torch.from_numpy(image)[None],
                    roi_size=tile,
                    sw_batch_size=case["batch"],
                    predictor=torch_probabilities,
                    overlap=0.5,
                    mode="gaussian",
                    sigma_scale=0.125,
                    padding_mode="constant",
                    roi_weight_map=weights,
                )
            assert isinstance(output, torch.Tensor)
            return output[0].numpy()

        return run

    ours, ours_seconds = timed(seglab, repeats)
    theirs, theirs_seconds = timed(monai(None), repeats)
    weights = torch.from_numpy(gaussian_weights(tile))
    shared, shared_seconds = timed(monai(weights), repeats)
    # MONAI raises weights below 1e-3 to 1e-3; seglab's map floored alike, to check that the
    # floor is the whole difference.
    floored = monai(weights.clamp(min=MONAI_WEIGHT_FLOOR))()
    return {
        "case": kind,
        "image": [channels, *(case["size"],) * dims],
        "tile": case["tile"],
        "batch": case["batch"],
        "seglab_seconds": round(ours_seconds, 3),
        "monai_seconds": round(theirs_seconds, 3),
        "monai_seglab_weights_seconds": round(shared_seconds, 3),
        "max_abs_diff": float(np.abs(ours - theirs).max()),
        "max_abs_diff_same_weights": float(np.abs(ours - shared).max()),
        "max_abs_diff_monai_vs_floored_seglab_weights": float(np.abs(theirs - floored).max()),
        "weights_below_floor": float((weights < MONAI_WEIGHT_FLOOR).float().mean()),
        "max_abs_weight_diff": weight_difference(tile),
        "probability_std": round(float(ours.std()), 4),
    }


def weight_difference(tile: tuple[int, ...]) -> float:
    """Largest |MONAI's importance map - seglab's| for this tile, both normalised to max 1."""
    from monai.data.utils import compute_importance_map

    theirs = compute_importance_map(tile, mode="gaussian", sigma_scale=0.125, device="cpu")
    return float(np.abs(theirs.numpy() - gaussian_weights(tile)).max())


def print_table(results: list[dict[str, Any]], header: str) -> None:
    table = Table(title="sliding window: seglab vs MONAI (CPU, fp32, overlap 0.5)", box=box.SIMPLE)
    columns = ["case", "image", "tile", "seglab s", "MONAI s", "MONAI (seglab weights) s"]
    columns += ["max |diff|", "max |diff| same weights", "MONAI vs floored seglab map"]
    columns += ["max |weight diff|", "weights < 1e-3"]
    for column in columns:
        table.add_column(column, justify="left" if column in ("case", "image") else "right")
    for r in results:
        table.add_row(
            r["case"],
            "×".join(map(str, r["image"])),
            str(r["tile"]),
            f"{r['seglab_seconds']:.2f}",
            f"{r['monai_seconds']:.2f}",
            f"{r['monai_seglab_weights_seconds']:.2f}",
            f"{r['max_abs_diff']:.2e}",
            f"{r['max_abs_diff_same_weights']:.2e}",
            f"{r['max_abs_diff_monai_vs_floored_seglab_weights']:.2e}",
            f"{r['max_abs_weight_diff']:.2e}",
            f"{r['weights_below_floor']:.1%}",
        )
    console = Console(width=None if sys.stdout.isatty() else 160)
    console.print(table)
    console.print(header)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--case", choices=sorted(CASES), action="append", help="default: both")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs (the best is kept)")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument(
        "--out", type=Path, default=Path("benchmarks/results/monai_sliding_window.json")
    )
    args = parser.parse_args()
    try:
        import monai
    except ImportError:
        sys.exit(
            "MONAI is not installed (it is not a seglab dependency); use a separate venv:\n"
            "  python -m venv /tmp/venv-monai && /tmp/venv-monai/bin/pip install torch==2.13.0\n"
            "  /tmp/venv-monai/bin/pip install monai -e .\n"
            "  /tmp/venv-monai/bin/python benchmarks/monai_sliding_window.py"
        )
    torch.set_num_threads(args.threads)
    load_avg = round(os.getloadavg()[0], 2)
    results = [run_case(kind, args.repeats) for kind in args.case or sorted(CASES)]
    header = (
        f"torch {torch.__version__}, MONAI {monai.__version__}, {args.threads} threads, "
        f"load average {load_avg} at start; target max |diff| <= {TARGET:g}"
    )
    print_table(results, header)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    summary = {"torch": torch.__version__, "monai": monai.__version__, "threads": args.threads}
    args.out.write_text(
        json.dumps({**summary, "load_avg_1m": load_avg, "cases": results}, indent=2)
    )


if __name__ == "__main__":
    main()
