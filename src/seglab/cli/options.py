"""Options, consoles and helpers shared by the command modules."""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

console = Console()
errors = Console(stderr=True)

Progress = Annotated[bool, typer.Option("--progress/--no-progress", help="Show progress bars.")]
TileOption = Annotated[
    int | None,
    typer.Option(help="Sliding-window tile side (default: the bundle's, 1024).", min=4),
]
OverlapOption = Annotated[
    float, typer.Option(help="Sliding-window tile overlap, from 0 to 0.95.", min=0.0, max=0.95)
]
TtaOption = Annotated[bool, typer.Option("--tta", help="Average over flipped predictions.")]
PrecisionOption = Annotated[
    str,
    typer.Option(
        help="torch backend: auto (bf16 where the CPU/GPU has it natively, else fp32), 32 or bf16."
    ),
]


def _probability(value: float | None) -> float | None:
    if value is not None and not 0.0 <= value <= 1.0:  # NaN fails the comparison too
        raise typer.BadParameter(f"{value} is not a probability; give a number from 0 to 1")
    return value


ThresholdOption = Annotated[
    float | None,
    typer.Option(help="Override the bundle's tuned threshold (0 to 1).", callback=_probability),
]


LayoutOption = Annotated[
    str, typer.Option("--layout", help="Data layout: auto, folders or dsb2018.")
]
DataOption = Annotated[Path | None, typer.Option(help="Data folder (sets data.root).")]
TaskOption = Annotated[str | None, typer.Option(help="segmentation (default) or classification.")]
SetOption = Annotated[
    list[str] | None, typer.Option("--set", help="Override, e.g. train.epochs=10 (repeat).")
]
NoTrackOption = Annotated[bool, typer.Option("--no-track", help="Do not log to MLflow.")]


def config_overrides(
    options: Mapping[str, object],
    sets: list[str] | None,
    no_track: bool = False,
    skip_bad: bool = False,
) -> list[str]:
    """`key=value` config overrides: the options given (None: not given), the switches, then
    the `--set` ones, which so win."""
    overrides = [f"{key}={value}" for key, value in options.items() if value is not None]
    if no_track:
        overrides.append("tracking.enabled=false")
    if skip_bad:
        overrides.append("data.skip_bad=true")
    return [*overrides, *(sets or [])]


def run_folder(out: Path | None, prefix: str = "") -> Path:
    """`out`, or by default `runs/<prefix><date>-<time>`."""
    return out or Path("runs") / time.strftime(f"{prefix}%Y%m%d-%H%M%S")


def apply_inference_settings(predictor: Any, tile: int | None, overlap: float, tta: bool) -> None:
    """Apply sliding-window and TTA options to network predictors (baselines have none)."""
    if hasattr(predictor, "tile"):
        if tile is not None:
            predictor.tile = tile
        predictor.overlap = overlap
        predictor.tta = tta
