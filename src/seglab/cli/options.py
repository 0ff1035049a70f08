"""Options and consoles shared by the command modules."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console

console = Console()
errors = Console(stderr=True)

Progress = Annotated[bool, typer.Option("--progress/--no-progress", help="Show progress bars.")]
TileOption = Annotated[
    int | None, typer.Option(help="Sliding-window tile side (default: the bundle's, 1024).")
]
OverlapOption = Annotated[float, typer.Option(help="Sliding-window tile overlap.")]
TtaOption = Annotated[bool, typer.Option("--tta", help="Average over flipped predictions.")]
PrecisionOption = Annotated[
    str,
    typer.Option(
        help="torch backend: auto (bf16 where the CPU/GPU has it natively, else fp32), 32 or bf16."
    ),
]


LayoutOption = Annotated[
    str, typer.Option("--layout", help="Data layout: auto, folders or dsb2018.")
]
