"""The `seglab` command line: thin wrappers over the public API, no logic of its own.

Heavy imports (torch, Lightning, MLflow) happen inside the commands, so `seglab --help` is fast
and `predict` / `evaluate` never import Lightning or MLflow.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from seglab import __version__
from seglab.cli import data as data_commands
from seglab.cli import deploy as deploy_commands
from seglab.cli import experiments as experiment_commands
from seglab.cli.options import (
    LayoutOption,
    OverlapOption,
    PrecisionOption,
    Progress,
    TileOption,
    TtaOption,
    console,
    errors,
)
from seglab.errors import SeglabError

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
os.environ.setdefault("MPLBACKEND", "Agg")


app = typer.Typer(
    name="seglab",
    help="U-Net segmentation (and image classification): prepare data, train, tune, evaluate, "
    "compare, predict, export and serve.\n\n"
    "Start with `seglab demo`, then `seglab train --data DIR`.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode="markdown",
    context_settings={"help_option_names": ["-h", "--help"]},
)
data_app = typer.Typer(help="Make and inspect datasets.", no_args_is_help=True)
app.add_typer(data_app, name="data")


def _inference_settings(predictor: Any, tile: int | None, overlap: float, tta: bool) -> None:
    """Apply sliding-window and TTA options to network predictors (baselines have none)."""
    if hasattr(predictor, "tile"):
        if tile is not None:
            predictor.tile = tile
        predictor.overlap = overlap
        predictor.tta = tta


def _version(value: bool) -> None:
    if value:
        console.print(f"seglab {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print version.")
    ] = False,
) -> None:
    """seglab command line."""
    # seglab's own notes (precision chosen, loss weights, patch size, compile time) on stderr.
    logger = logging.getLogger("seglab")
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)


def _metrics_table(title: str, metrics: Mapping[str, object]) -> Table:
    """Dataset-level scores beside their per-image means, then any other entries."""
    table = Table(title=title)
    for column in ("metric", "dataset", "mean per image"):
        table.add_column(column, justify="left" if column == "metric" else "right")
    for key, value in metrics.items():
        if key.endswith("_per_image") or isinstance(value, dict):
            continue
        per_image = metrics.get(f"{key}_per_image")
        shown = f"{value:.4f}" if isinstance(value, float) else str(value)
        table.add_row(key, shown, f"{per_image:.4f}" if isinstance(per_image, float) else "")
    for modality, values in metrics.get("per_modality", {}).items():  # type: ignore[attr-defined]
        scores = ", ".join(f"{k} {v:.4f}" for k, v in values.items() if isinstance(v, float))
        table.add_row(f"[dim]{modality}[/] ({values['n_images']} images)", scores, "")
    for name, values in metrics.get("per_class", {}).items():  # type: ignore[attr-defined]
        iou = values.get("iou")
        table.add_row(f"[dim]IoU {name}[/]", "n/a" if iou is None else f"{iou:.4f}", "")
    return table


@app.command()
def demo(
    out: Annotated[Path, typer.Option(help="Folder for the data and the run.")] = Path("runs/demo"),
    n: Annotated[int, typer.Option(help="Number of synthetic images.")] = 240,
    set_: Annotated[list[str] | None, typer.Option("--set", help="Config override.")] = None,
    no_track: Annotated[bool, typer.Option("--no-track", help="Do not log to MLflow.")] = False,
    task: Annotated[
        str, typer.Option(help="segmentation (nuclei) or classification (digits).")
    ] = "segmentation",
    progress: Progress = True,
) -> None:
    """Synthesize nuclei, train a small U-Net, tune, evaluate and predict (a few minutes on CPU);
    or, with `--task classification`, train the seed-004 CNN on the bundled digits.

    Examples: `seglab demo --out runs/demo`, `seglab demo --task classification`
    """
    from seglab.demo import run_classification_demo, run_demo

    if task == "classification":
        outcome = run_classification_demo(out, set_ or [], track=not no_track, progress=progress)
        console.print(
            f"[bold green]Demo done[/] in {outcome.seconds:.0f} s: test accuracy "
            f"{outcome.test_score:.4f}"
        )
        console.print(f"  run folder : {outcome.run_dir}\n  report     : {outcome.report}")
        return
    result = run_demo(out, n, set_ or [], track=not no_track, progress=progress)
    console.print(
        f"[bold green]Demo done[/] in {result.seconds:.0f} s: test Dice {result.test_dice:.4f}"
    )
    console.print(f"  run folder : {result.run_dir}")
    console.print(f"  report     : {result.report}")
    console.print(f"  predictions: {result.predictions}")


@app.command()
def train(
    data: Annotated[Path | None, typer.Option(help="Data folder (sets data.root).")] = None,
    task: Annotated[
        str | None, typer.Option(help="segmentation (default) or classification.")
    ] = None,
    layout: Annotated[
        str | None,
        typer.Option(
            help="auto, folders, dsb2018, cityscapes, volumes; idx, class_folders, digits "
            "(classification)."
        ),
    ] = None,
    model: Annotated[str | None, typer.Option(help="Model name, e.g. unet.")] = None,
    loss: Annotated[str | None, typer.Option(help="Loss name, e.g. bce_dice.")] = None,
    epochs: Annotated[int | None, typer.Option(help="Maximum number of epochs.")] = None,
    config: Annotated[Path | None, typer.Option(help="YAML config file.")] = None,
    set_: Annotated[
        list[str] | None, typer.Option("--set", help="Override, e.g. train.lr=0.001 (repeat).")
    ] = None,
    out: Annotated[Path | None, typer.Option(help="Run folder (default runs/<time>).")] = None,
    resume: Annotated[Path | None, typer.Option(help="Continue this run folder.")] = None,
    tracking_uri: Annotated[str | None, typer.Option(help="MLflow server URI.")] = None,
    no_track: Annotated[bool, typer.Option("--no-track", help="Do not log to MLflow.")] = False,
    skip_bad: Annotated[
        bool, typer.Option("--skip-bad", help="Skip bad samples (listed in skipped.json).")
    ] = False,
    progress: Progress = True,
) -> None:
    """Train a model, tune its threshold on val, write the bundle and evaluate on test.

    Examples:

    * `seglab train --data data/nuclei --epochs 30 --out runs/nuclei`
    * `seglab train --config exp.yaml --set train.lr=0.0003 --set model.params.n_filters=4`
    * `seglab train --resume runs/nuclei`
    * `seglab train --task classification --data digits --model cnn --out runs/digits`
    """
    import time

    from seglab.config import load_config

    overrides = []
    for key, value in (
        ("task", task),
        ("data.root", data),
        ("data.layout", layout),
        ("model.name", model),
        ("loss.name", loss),
        ("train.epochs", epochs),
        ("tracking.uri", tracking_uri),
    ):
        if value is not None:
            overrides.append(f"{key}={value}")
    if no_track:
        overrides.append("tracking.enabled=false")
    if skip_bad:
        overrides.append("data.skip_bad=true")
    given = [*overrides, *(set_ or [])]
    if resume is not None:
        from seglab.training.run import resume as resume_run

        # Only what was given explicitly changes a resumed run (e.g. --epochs to go further).
        result = resume_run(resume, given, progress=progress)
    else:
        # Lightning is imported only once the config is valid, so config errors come fast.
        cfg = load_config(config, given)
        from seglab.training.run import train as train_run

        run_dir = out or Path("runs") / time.strftime("%Y%m%d-%H%M%S")
        result = train_run(cfg, run_dir, progress=progress)
    if not result.val_metrics:  # a DDP process other than rank 0: rank 0 reports
        return
    multiclass = "miou" in result.val_metrics  # classes by argmax: no threshold
    title = "validation" if multiclass else f"validation (threshold {result.threshold:.2f})"
    console.print(_metrics_table(title, result.val_metrics))
    if result.test_metrics:
        console.print(_metrics_table("test", result.test_metrics))
    console.print(f"run folder: {result.run_dir}\nbundle: {result.bundle_path}")


@app.command()
def evaluate(
    model: Annotated[Path, typer.Option(help="Bundle folder (a run's model/) or `otsu`.")],
    data: Annotated[Path, typer.Option(help="Data folder with masks.")],
    out: Annotated[Path, typer.Option(help="Output folder for metrics and report.")],
    split: Annotated[str, typer.Option(help="Split sub-folder to evaluate.")] = "test",
    layout: LayoutOption = "auto",
    skip_bad: Annotated[bool, typer.Option("--skip-bad", help="Skip bad samples.")] = False,
    tile: TileOption = None,
    overlap: OverlapOption = 0.5,
    tta: TtaOption = False,
    precision: PrecisionOption = "auto",
    progress: Progress = True,
) -> None:
    """Score a model on labelled data: metrics.json, per_image.csv, confusion images, report.

    Example: `seglab evaluate --model runs/nuclei/model --data data/nuclei --out eval/`
    """
    from seglab.evaluation.segmentation import evaluate as evaluate_run
    from seglab.inference.loading import load_predictor

    predictor = load_predictor(model, precision=precision)
    _inference_settings(predictor, tile, overlap, tta)
    result = evaluate_run(
        predictor, data, out, layout=layout, split=split, skip_bad=skip_bad, progress=progress
    )
    console.print(_metrics_table(f"{split} ({result.metrics['n_images']} images)", result.metrics))
    console.print(f"report: {result.out_dir / 'report.html'}")


@app.command()
def predict(
    inputs: Annotated[list[str], typer.Argument(help="Image files, folders or glob patterns.")],
    model: Annotated[Path, typer.Option(help="Model bundle folder.")],
    out: Annotated[Path, typer.Option(help="Output folder.")],
    probabilities: Annotated[
        bool, typer.Option("--probabilities", help="Also write probability maps.")
    ] = False,
    overlays: Annotated[bool, typer.Option("--overlays", help="Also write overlays.")] = False,
    threshold: Annotated[
        float | None, typer.Option(help="Override the bundle's tuned threshold.")
    ] = None,
    instances: Annotated[
        bool, typer.Option("--instances", help="Also write 16-bit label PNGs and outlines.")
    ] = False,
    rle: Annotated[
        Path | None, typer.Option(help="Write a Kaggle DSB2018 submission CSV (run-length).")
    ] = None,
    backend: Annotated[
        str,
        typer.Option(
            help="auto (onnx when the bundle has model.onnx, torch on CPUs with native bf16), "
            "torch or onnx."
        ),
    ] = "auto",
    tile: TileOption = None,
    overlap: OverlapOption = 0.5,
    tta: TtaOption = False,
    precision: PrecisionOption = "auto",
    workers: Annotated[
        int, typer.Option(help="Processes sharing the images (each loads the model once).", min=1)
    ] = 1,
    lazy_above: Annotated[
        float,
        typer.Option(
            help="TIFFs above this many megapixels (and zarr folders) are predicted tile by "
            "tile with bounded memory into <stem>_mask.tif.",
            min=0,
        ),
    ] = 64.0,
    large_format: Annotated[
        str, typer.Option(help="Format of lazily predicted masks: tif (tiled BigTIFF) or zarr.")
    ] = "tif",
    progress: Progress = True,
) -> None:
    """Predict masks (and instances) for images of any size.

    `--model` is a bundle folder or a baseline name (`otsu`, no training). TIFFs above
    `--lazy-above` megapixels and `.zarr` / `.ome.zarr` folders are read, predicted and
    written band by band, so images larger than memory work.

    Examples:

    * `seglab predict --model runs/nuclei/model 'data/new/*.png' --out predictions/`
    * `seglab predict --model runs/nuclei/model stage1_test/ --out pred/ --instances --rle sub.csv`
    * `seglab predict --model runs/nuclei/model big_folder/ --out pred/ --workers 2`
    * `seglab predict --model runs/nuclei/model slide.ome.tif --out pred/ --lazy-above 16`
    * `seglab predict --model runs/nuclei/model plate.ome.zarr --out pred/ --large-format zarr`
    """
    from seglab.inference.files import predict_files
    from seglab.inference.loading import load_predictor
    from seglab.inference.volumes import predict_volume_files

    predictor = load_predictor(model, backend=backend, precision=precision)
    _inference_settings(predictor, tile, overlap, tta)
    if predictor.kind.volumes:
        if threshold is not None:
            predictor.threshold = threshold
        masks = predict_volume_files(predictor, list(inputs), out, probabilities)
        console.print(f"wrote {len(masks)} volume masks to {out}")
        return
    if predictor.kind.classification:
        from seglab.inference.classifier import predict_image_files

        written = predict_image_files(predictor, list(inputs), out)
        console.print(f"wrote classes and probabilities to {written}")
        return
    if threshold is not None:
        predictor.threshold = threshold
    from seglab.inference.parallel import PredictorSpec

    settings: dict[str, Any] = {"threshold": predictor.threshold}
    if hasattr(predictor, "tile"):
        settings.update(tile=predictor.tile, overlap=overlap, tta=tta)
    load = PredictorSpec(str(model), backend, precision, settings)
    results = predict_files(
        predictor,
        list(inputs),
        out,
        probabilities,
        overlays,
        instances,
        rle,
        progress,
        workers=workers,
        load=load,
        lazy_above=lazy_above,
        large_format=large_format,
    )
    console.print(f"wrote {len(results)} masks to {out}" + (f", submission {rle}" if rle else ""))


def main() -> None:
    """Entry point: user errors are printed without a traceback."""
    try:
        app()
    except SeglabError as exc:
        errors.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
        sys.exit(2)
    except KeyboardInterrupt:
        errors.print("interrupted")
        sys.exit(130)


# Registered last, so `seglab --help` lists the workflow (demo, train, ...) first.
experiment_commands.register(app)
data_commands.register(app, data_app)
deploy_commands.register(app)
