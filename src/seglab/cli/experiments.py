"""`seglab compare` and `seglab cv`: several runs on one split, one table (see `seglab.cli.main`,
which registers these commands)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from seglab.cli.options import Progress, console


def compare(
    models: Annotated[
        str | None, typer.Option(help="Comma-separated models, e.g. otsu,unet (default: config's).")
    ] = None,
    losses: Annotated[
        str | None,
        typer.Option(help="Comma-separated losses, e.g. dice,ce_dice,jaccard (default: config's)."),
    ] = None,
    seeds: Annotated[
        int, typer.Option(help="Repeat each run with this many seeds: mean ± std.", min=1)
    ] = 1,
    data: Annotated[Path | None, typer.Option(help="Data folder (sets data.root).")] = None,
    config: Annotated[Path | None, typer.Option(help="YAML config shared by all runs.")] = None,
    set_: Annotated[
        list[str] | None, typer.Option("--set", help="Override, e.g. train.epochs=10 (repeat).")
    ] = None,
    out: Annotated[Path | None, typer.Option(help="Folder (default runs/compare-<time>).")] = None,
    no_track: Annotated[bool, typer.Option("--no-track", help="Do not log to MLflow.")] = False,
    progress: Progress = True,
) -> None:
    """Train and evaluate models or losses on the same split: comparison.csv/.md/.png, MLflow.

    Every run trains with its own model and loss (recorded in its config.yaml and MLflow
    params), on the same data, split, seed and epochs.

    Examples:
      `seglab compare --models otsu,unet,unet_extended --data data/nuclei --out runs/cmp`
      `seglab compare --losses dice,ce_dice,jaccard,tversky,focal_tversky --data data/streets
      --set model.name=unet_mini --seeds 3 --out runs/losses`
    """
    import time

    from seglab.config import load_config

    overrides = [f"data.root={data}"] if data is not None else []
    if no_track:
        overrides.append("tracking.enabled=false")
    cfg = load_config(config, [*overrides, *(set_ or [])])
    from seglab.training.compare import compare as compare_models

    folder = out or Path("runs") / time.strftime("compare-%Y%m%d-%H%M%S")
    result = compare_models(
        cfg, _names(models), folder, progress=progress, losses=_names(losses), seeds=seeds
    )
    table = Table(title=f"comparison on the test set ({folder})")
    candidates = ("run", "val_loss", "miou", "dice", "iou", "dsb_map", "ap@0.5", "seconds")
    columns = [c for c in candidates if any(row.get(c) is not None for row in result.rows)]
    for column in columns:
        table.add_column(column, justify="left" if column == "run" else "right")
    for row in result.rows:
        table.add_row(*[_score_cell(row, c) for c in columns])
    console.print(table)
    console.print(f"wrote {folder / 'comparison.csv'}, comparison.md, comparison.png")


def _names(text: str | None) -> list[str] | None:
    return None if text is None else [n.strip() for n in text.split(",") if n.strip()]


def _score_cell(row: dict[str, Any], column: str) -> str:
    value = row.get(column)
    if not isinstance(value, float) or column == "seconds":
        return "" if value is None else str(value)
    spread = row.get(f"{column}_std")
    return f"{value:.4f}" + (f" ± {spread:.4f}" if spread is not None else "")


def cv(
    folds: Annotated[int, typer.Option(help="Number of folds.")] = 5,
    data: Annotated[Path | None, typer.Option(help="Data folder (sets data.root).")] = None,
    task: Annotated[
        str | None, typer.Option(help="segmentation (default) or classification.")
    ] = None,
    model: Annotated[str | None, typer.Option(help="Model name.")] = None,
    config: Annotated[Path | None, typer.Option(help="YAML config.")] = None,
    set_: Annotated[
        list[str] | None, typer.Option("--set", help="Override, e.g. train.epochs=10 (repeat).")
    ] = None,
    out: Annotated[Path | None, typer.Option(help="Folder (default runs/cv-<time>).")] = None,
    no_track: Annotated[bool, typer.Option("--no-track", help="Do not log to MLflow.")] = False,
    progress: Progress = True,
) -> None:
    """K-fold cross-validation (stratified for classification): mean ± std of every metric.

    Examples:

    * `seglab cv --folds 5 --task classification --data digits --model mlp_dropout`
    * `seglab cv --folds 3 --data data/nuclei --set train.epochs=10`
    """
    import time

    from seglab.config import load_config

    overrides = [
        f"{k}={v}"
        for k, v in (("task", task), ("data.root", data), ("model.name", model))
        if v is not None
    ]
    if no_track:
        overrides.append("tracking.enabled=false")
    cfg = load_config(config, [*overrides, *(set_ or [])])
    from seglab.training.crossval import cross_validate

    folder = out or Path("runs") / time.strftime("cv-%Y%m%d-%H%M%S")
    result = cross_validate(cfg, folds, folder, progress=progress)
    table = Table(title=f"{folds}-fold cross-validation ({folder})")
    for column in ("metric", "mean", "std"):
        table.add_column(column, justify="left" if column == "metric" else "right")
    for key, value in result.mean.items():
        if not key.endswith("_per_image"):
            table.add_row(key, f"{value:.4f}", f"{result.std[key]:.4f}")
    console.print(table)
    console.print(f"wrote {folder / 'cv.csv'}, cv.md, cv.png")


def register(app: typer.Typer) -> None:
    """Add this module's commands to the app."""
    app.command()(compare)
    app.command()(cv)
