"""`seglab data synth`, `data inspect` and `plan`: datasets and memory planning (see
`seglab.cli.main`, which registers these commands)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from seglab.cli.options import LayoutOption, console, examples


@examples(
    "seglab plan --model unet3d --patch 96,96,96 --batch 2",
    "seglab plan --model unet3d --budget 8GiB",
)
def plan(
    model: Annotated[str, typer.Option(help="unet3d or unet.")] = "unet3d",
    patch: Annotated[
        str | None, typer.Option(help="Estimate this patch, e.g. 96,96,96 (else plan).")
    ] = None,
    batch: Annotated[int, typer.Option(help="Batch size for --patch.", min=1)] = 2,
    channels: Annotated[int, typer.Option(help="Input channels.", min=1)] = 1,
    budget: Annotated[
        str | None, typer.Option(help="Memory budget, e.g. 8GiB (default: free memory).")
    ] = None,
    n_filters: Annotated[int, typer.Option(help="Width multiplier of the model.", min=1)] = 2,
) -> None:
    """Estimate training memory (parameters, gradients, Adam state, activations) for a patch
    and batch, or find the largest patch per batch size that fits a budget."""
    from seglab.planner import format_size, plan_patch

    factory, dims = _model_factory(model, channels, n_filters)
    limit = _budget_bytes(budget)
    table = Table(title=f"{model} training memory (fp32, Adam), budget {format_size(limit)}")
    if patch is not None:
        _estimate_row(table, factory, model, patch, dims, channels, batch, limit)
    else:
        rows = plan_patch(factory, channels, limit, factory().divisor, spatial_dims=dims)
        for column in ("batch", "largest patch side", "estimated total"):
            table.add_column(column, justify="right")
        for row in rows:
            table.add_row(str(row.batch), str(row.side), format_size(row.total_bytes))
        if not rows:
            console.print("nothing fits this budget: lower n_filters or raise --budget")
    console.print(table)


def _model_factory(model: str, channels: int, n_filters: int) -> tuple[Callable[[], Any], int]:
    """A function building the model to plan for, and its number of spatial axes."""
    from seglab.errors import ConfigError

    if model == "unet3d":
        from seglab.models.unet3d import UNet3D

        return lambda: UNet3D(in_channels=channels, n_filters=n_filters), 3
    if model == "unet":
        from seglab.models import create_model

        return lambda: create_model("unet", in_channels=channels, n_filters=n_filters), 2
    raise ConfigError(f"--model: plan supports unet3d and unet, got '{model}'")


def _budget_bytes(budget: str | None) -> int:
    """`--budget` in bytes; by default the free memory."""
    from seglab.errors import ConfigError
    from seglab.planner import free_memory_bytes, parse_size

    try:
        return parse_size(budget) if budget else free_memory_bytes()
    except ValueError as exc:
        raise ConfigError(f"--budget: {exc}") from None


def _estimate_row(
    table: Table,
    factory: Callable[[], Any],
    model: str,
    patch: str,
    dims: int,
    channels: int,
    batch: int,
    limit: int,
) -> None:
    """The memory estimate of training the model on `--patch` at `--batch`, as `table`'s row."""
    from seglab.errors import ConfigError
    from seglab.planner import estimate_memory, format_size

    network = factory()
    example = ",".join([str(network.divisor * 8)] * dims)
    try:
        side = tuple(int(v) for v in patch.split(","))
    except ValueError:
        side = ()
    if len(side) != dims or min(side) < network.divisor:
        raise ConfigError(
            f"--patch: {model} needs {dims} whole sizes of at least {network.divisor} "
            f"(its multiple), got '{patch}'; e.g. --patch {example}"
        )
    estimate = estimate_memory(network, (channels, *side), batch)
    for column in ("parameters", "gradients", "optimizer", "activations", "total", "fits"):
        table.add_column(column, justify="right")
    sizes = (
        estimate.params_bytes,
        estimate.grads_bytes,
        estimate.optimizer_bytes,
        estimate.activations_bytes,
        estimate.total_bytes,
    )
    fits = "yes" if estimate.total_bytes <= limit else "no"
    table.add_row(*(format_size(v) for v in sizes), fits)


@examples(
    "seglab data synth --kind nuclei --n 200 --out data/nuclei",
    "seglab data synth --kind circles --n 100 --out data/circles --no-split",
    "seglab data synth --kind nuclei --modality he --bit-depth 16 --size 256 --out data/he",
    "seglab data synth --kind streets --n 200 --out data/streets",
    "seglab data synth --kind blobs3d --n 20 --size 64 --out data/blobs",
    "seglab data synth --kind blobs3d --classes 3 --n 20 --size 64 --out data/blobs3",
)
def data_synth(
    out: Annotated[Path, typer.Option(help="Folder to create.")],
    kind: Annotated[
        str,
        typer.Option(
            help="circles (folders), nuclei (dsb2018, realistic), nuclei_simple (dsb2018, easy), "
            "streets (cityscapes) or blobs3d (volumes)."
        ),
    ] = "nuclei",
    n: Annotated[int, typer.Option(help="Number of images.", min=1)] = 200,
    size: Annotated[
        int,
        typer.Option(help="Image side in pixels (streets: the height; width = 2 x size).", min=8),
    ] = 128,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    no_split: Annotated[
        bool, typer.Option("--no-split", help="No train/val/test sub-folders.")
    ] = False,
    classes: Annotated[
        int | None,
        typer.Option(
            min=2,
            help="blobs3d only: labels are class indices 0..C-1 (a blob's class is its size; "
            "train with data.num_classes=C). Default: binary (objects numbered 1..K).",
        ),
    ] = None,
    modality: Annotated[
        str | None,
        typer.Option(
            help="nuclei only: fluorescence, brightfield, he (H&E-like), ihc "
            "(immunohistochemistry-like) or mixed."
        ),
    ] = None,
    bit_depth: Annotated[
        int | None, typer.Option("--bit-depth", help="nuclei only: 8 or 16 bits per channel.")
    ] = None,
) -> None:
    """Write a synthetic dataset in a real layout (deterministic for a seed).

    Streets are 128 x 256 scenes in the Cityscapes layout; blobs3d with `--classes 3` has
    background and blobs of two sizes.
    """
    from seglab.errors import ConfigError

    splits = None if no_split else (0.7, 0.15, 0.15)
    if kind == "blobs3d" and (modality is not None or bit_depth is not None):
        raise ConfigError("--modality and --bit-depth: only --kind nuclei takes them")
    if kind != "blobs3d" and classes is not None:
        raise ConfigError(f"--classes: only --kind blobs3d takes it, not {kind}")
    if kind == "blobs3d":
        from seglab.data.volumes import write_blobs3d

        counts = write_blobs3d(out, n, size=size, seed=seed, splits=splits, classes=classes)
    else:
        from seglab.data.synthetic import write_synthetic

        counts = write_synthetic(kind, out, n, size, seed, splits, modality, bit_depth)
    console.print(f"wrote {kind} to {out}: " + ", ".join(f"{k} {v}" for k, v in counts.items()))


@examples(
    "seglab data inspect data/nuclei --grid nuclei_grid.png",
    "seglab data inspect data/streets --layout cityscapes",
)
def data_inspect(
    root: Annotated[Path, typer.Argument(help="Data folder.")],
    layout: LayoutOption = "auto",
    grid: Annotated[Path | None, typer.Option(help="Where to write the sample grid PNG.")] = None,
) -> None:
    """Counts, sizes, channels, bit depth, foreground fraction, class weights and a sample grid."""
    from seglab.data.inspect import format_inspection, inspect_dataset, save_dataset_grid

    report = inspect_dataset(root, layout)
    console.print(format_inspection(report))
    # Not inside the data folder: a dataset is input and stays untouched.
    grid_path = grid or Path(f"{root.resolve().name}_samples.png")
    save_dataset_grid(root, grid_path, layout)
    console.print(f"sample grid: {grid_path}")


@examples("seglab data cache", "seglab data cache runs/cache --clear")
def data_cache(
    folder: Annotated[
        Path, typer.Argument(help="The cache folder (default: runs/cache, beside the runs).")
    ] = Path("runs/cache"),
    clear: Annotated[bool, typer.Option("--clear", help="Delete the cache.")] = False,
) -> None:
    """Show or clear the cache of decoded samples that training reads from.

    Training decodes each sample once into `cache/` beside its run folders (or
    `data.cache_dir`), keyed by the source files and the pre-processing, and later runs,
    `compare` and `cv` reuse it; a changed file gets a new entry. Without `--clear`: the
    entries and size of the cache.
    """
    from seglab.data.cache import cache_size, clear_cache
    from seglab.planner import format_size

    if clear:
        entries, total = clear_cache(folder)
        console.print(f"removed {entries} cached samples ({format_size(total)}) from {folder}")
        return
    entries, total = cache_size(folder)
    console.print(f"{folder}: {entries} cached samples, {format_size(total)}")


def register(app: typer.Typer, data_app: typer.Typer) -> None:
    """Add this module's commands to the app."""
    app.command()(plan)
    data_app.command("synth")(data_synth)
    data_app.command("inspect")(data_inspect)
    data_app.command("cache")(data_cache)
