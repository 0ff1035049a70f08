"""`seglab compare` and `seglab cv`: several runs on one split, one table (see `seglab.cli.main`,
which registers these commands)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from seglab.cli.options import (
    Progress,
    TrainingOptions,
    console,
    examples,
    run_folder,
    training_options,
)


@training_options
@examples(
    "seglab compare --models otsu,unet,unet_extended --data data/nuclei --out runs/cmp",
    "seglab compare --losses dice,ce_dice --data data/streets --layout cityscapes --epochs 1",
    "seglab compare --losses dice,ce_dice,jaccard,tversky,focal_tversky --data data/streets "
    "--model unet_mini --seeds 3 --out runs/losses",
    "seglab compare --config examples/001_unet_mini_cityscapes.yaml --data data/streets "
    "--losses dice,ce_dice,jaccard,tversky,focal_tversky",
)
def compare(
    training: TrainingOptions,
    models: Annotated[
        str | None, typer.Option(help="Comma-separated models, e.g. otsu,unet (default: --model).")
    ] = None,
    losses: Annotated[
        str | None,
        typer.Option(help="Comma-separated losses, e.g. dice,ce_dice,jaccard (default: --loss)."),
    ] = None,
    seeds: Annotated[
        int, typer.Option(help="Repeat each run with this many seeds: mean ± std.", min=1)
    ] = 1,
    out: Annotated[
        Path | None, typer.Option(help="Folder (default runs/compare-DATE-TIME).")
    ] = None,
    progress: Progress = True,
) -> None:
    """Train and evaluate models or losses on the same split: comparison.csv/.md/.png, MLflow.

    Every run trains with its own model and loss (recorded in its config.yaml and MLflow
    params), on the same data, split, seed and epochs.
    """
    cfg = training.load()
    from seglab.training.compare import compare as compare_models

    folder = run_folder(out, "compare-")
    result = compare_models(
        cfg, _names(models), folder, progress=progress, losses=_names(losses), seeds=seeds
    )
    console.print(_comparison_table(result.rows, folder))
    console.print(f"wrote {folder / 'comparison.csv'}, comparison.md, comparison.png")


def _comparison_table(rows: list[dict[str, Any]], folder: Path) -> Table:
    """The runs' test scores (mean ± std over seeds), in the columns that any run has."""
    table = Table(title=f"comparison on the test set ({folder})")
    candidates = ("run", "val_loss", "miou", "dice", "iou", "dsb_map", "ap@0.5", "seconds")
    columns = [c for c in candidates if any(row.get(c) is not None for row in rows)]
    for column in columns:
        table.add_column(column, justify="left" if column == "run" else "right")
    for row in rows:
        table.add_row(*[_score_cell(row, c) for c in columns])
    return table


def _names(text: str | None) -> list[str] | None:
    return None if text is None else [n.strip() for n in text.split(",") if n.strip()]


def _score_cell(row: dict[str, Any], column: str) -> str:
    value = row.get(column)
    if not isinstance(value, float) or column == "seconds":
        return "" if value is None else str(value)
    spread = row.get(f"{column}_std")
    return f"{value:.4f}" + (f" ± {spread:.4f}" if spread is not None else "")


@training_options
@examples(
    "seglab cv --folds 5 --task classification --data digits --layout digits --model mlp_dropout",
    "seglab cv --folds 3 --data data/nuclei --epochs 10",
)
def cv(
    training: TrainingOptions,
    folds: Annotated[int, typer.Option(help="Number of folds.", min=2)] = 5,
    out: Annotated[Path | None, typer.Option(help="Folder (default runs/cv-DATE-TIME).")] = None,
    progress: Progress = True,
) -> None:
    """K-fold cross-validation (stratified for classification): mean ± std of every metric."""
    cfg = training.load()
    from seglab.training.crossval import cross_validate

    folder = run_folder(out, "cv-")
    result = cross_validate(cfg, folds, folder, progress=progress)
    console.print(_cv_table(result.mean, result.std, f"{folds}-fold cross-validation ({folder})"))
    console.print(f"wrote {folder / 'cv.csv'}, cv.md, cv.png")


def _cv_table(mean: dict[str, float], std: dict[str, float], title: str) -> Table:
    """Mean and standard deviation over the folds of every metric but the per-image means."""
    table = Table(title=title)
    for column in ("metric", "mean", "std"):
        table.add_column(column, justify="left" if column == "metric" else "right")
    for key, value in mean.items():
        if not key.endswith("_per_image"):
            table.add_row(key, f"{value:.4f}", f"{std[key]:.4f}")
    return table


def register(app: typer.Typer) -> None:
    """Add this module's commands to the app."""
    app.command()(compare)
    app.command()(cv)
