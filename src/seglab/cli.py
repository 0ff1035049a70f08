"""The `seglab` command line: thin wrappers over the public API, no logic of its own.

Heavy imports (torch, Lightning, MLflow) happen inside the commands, so `seglab --help` is fast
and `predict` / `evaluate` never import Lightning or MLflow.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from seglab import __version__
from seglab.errors import SeglabError

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
os.environ.setdefault("MPLBACKEND", "Agg")

console = Console()
errors = Console(stderr=True)

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

Progress = Annotated[bool, typer.Option("--progress/--no-progress", help="Show progress bars.")]
TileOption = Annotated[
    int | None, typer.Option(help="Sliding-window tile side (default: the bundle's, 1024).")
]
OverlapOption = Annotated[float, typer.Option(help="Sliding-window tile overlap.")]
TtaOption = Annotated[bool, typer.Option("--tta", help="Average over flipped predictions.")]


def _inference_settings(predictor: Any, tile: int | None, overlap: float, tta: bool) -> None:
    """Apply sliding-window and TTA options to network predictors (baselines have none)."""
    if hasattr(predictor, "tile"):
        if tile is not None:
            predictor.tile = tile
        predictor.overlap = overlap
        predictor.tta = tta


LayoutOption = Annotated[
    str, typer.Option("--layout", help="Data layout: auto, folders or dsb2018.")
]


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
        from seglab.training import resume as resume_run

        # Only what was given explicitly changes a resumed run (e.g. --epochs to go further).
        result = resume_run(resume, given, progress=progress)
    else:
        # Lightning is imported only once the config is valid, so config errors come fast.
        cfg = load_config(config, given)
        from seglab.training import train as train_run

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
    progress: Progress = True,
) -> None:
    """Score a model on labelled data: metrics.json, per_image.csv, confusion images, report.

    Example: `seglab evaluate --model runs/nuclei/model --data data/nuclei --out eval/`
    """
    from seglab.evaluation import evaluate as evaluate_run
    from seglab.inference.loading import load_predictor
    from seglab.inference.volumes import VolumePredictor

    predictor = load_predictor(model)
    _inference_settings(predictor, tile, overlap, tta)
    if isinstance(predictor, VolumePredictor):
        from seglab.volume_evaluation import evaluate_volumes

        result = evaluate_volumes(predictor, data, out, split=split, progress=progress)
    else:
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
        str, typer.Option(help="auto (onnx when the bundle has model.onnx), torch or onnx.")
    ] = "auto",
    tile: TileOption = None,
    overlap: OverlapOption = 0.5,
    tta: TtaOption = False,
    workers: Annotated[
        int, typer.Option(help="Processes sharing the images (each loads the model once).", min=1)
    ] = 1,
    progress: Progress = True,
) -> None:
    """Predict masks (and instances) for images of any size.

    `--model` is a bundle folder or a baseline name (`otsu`, no training).

    Examples:

    * `seglab predict --model runs/nuclei/model 'data/new/*.png' --out predictions/`
    * `seglab predict --model runs/nuclei/model stage1_test/ --out pred/ --instances --rle sub.csv`
    * `seglab predict --model runs/nuclei/model big_folder/ --out pred/ --workers 2`
    """
    from seglab.inference.files import predict_files
    from seglab.inference.loading import load_predictor
    from seglab.inference.volumes import VolumePredictor, predict_volume_files

    predictor = load_predictor(model, backend=backend)
    _inference_settings(predictor, tile, overlap, tta)
    if isinstance(predictor, VolumePredictor):
        if threshold is not None:
            predictor.threshold = threshold
        masks = predict_volume_files(predictor, list(inputs), out, probabilities)
        console.print(f"wrote {len(masks)} volume masks to {out}")
        return
    if predictor.metadata.get("task") == "classification":
        from seglab.classification_report import predict_image_files

        written = predict_image_files(predictor, list(inputs), out)
        console.print(f"wrote classes and probabilities to {written}")
        return
    if threshold is not None:
        predictor.threshold = threshold
    from seglab.inference.parallel import PredictorSpec

    settings: dict[str, Any] = {"threshold": predictor.threshold}
    if hasattr(predictor, "tile"):
        settings.update(tile=predictor.tile, overlap=overlap, tta=tta)
    load = PredictorSpec(str(model), backend, settings)
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
    )
    console.print(f"wrote {len(results)} masks to {out}" + (f", submission {rle}" if rle else ""))


@app.command()
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
    from seglab.experiments import compare as compare_models

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


@app.command()
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
    from seglab.crossval import cross_validate

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


@app.command()
def export(
    model: Annotated[Path, typer.Option(help="Bundle folder (a run's model/).")],
    opset: Annotated[int, typer.Option(help="ONNX opset.")] = 18,
) -> None:
    """Export a bundle to ONNX (`model/model.onnx`, dynamic batch and size) with a parity check.

    Example: `seglab export --model runs/nuclei/model`, then `seglab predict --backend onnx ...`
    """
    from seglab.export import export_onnx

    result = export_onnx(model, opset=opset)
    console.print(
        f"wrote {result.path} in {result.seconds:.1f} s; parity with torch: max abs difference "
        f"of probabilities {result.max_abs_diff:.2e} (limit 1e-4)"
    )


@app.command()
def serve(
    model: Annotated[Path, typer.Option(help="Bundle folder, or `otsu`.")],
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port.")] = 8000,
    workers: Annotated[int, typer.Option(help="Server processes.")] = 1,
    backend: Annotated[str, typer.Option(help="auto, torch or onnx.")] = "auto",
    max_upload_mb: Annotated[float, typer.Option(help="Largest accepted upload (MB).")] = 20.0,
) -> None:
    """Serve a model over HTTP: web page at /, POST /predict, GET /health, /model, /docs.

    Example: `seglab serve --model runs/nuclei/model --port 8000`, then open http://127.0.0.1:8000
    """
    from seglab.serve import run

    console.print(f"serving {model} on http://{host}:{port} (Ctrl+C to stop)")
    run(model, host=host, port=port, workers=workers, backend=backend, max_upload_mb=max_upload_mb)


@app.command()
def plan(
    model: Annotated[str, typer.Option(help="unet3d or unet.")] = "unet3d",
    patch: Annotated[
        str | None, typer.Option(help="Estimate this patch, e.g. 96,96,96 (else plan).")
    ] = None,
    batch: Annotated[int, typer.Option(help="Batch size for --patch.")] = 2,
    channels: Annotated[int, typer.Option(help="Input channels.")] = 1,
    budget: Annotated[
        str | None, typer.Option(help="Memory budget, e.g. 8GiB (default: free memory).")
    ] = None,
    n_filters: Annotated[int, typer.Option(help="Width multiplier of the model.")] = 2,
) -> None:
    """Estimate training memory (parameters, gradients, Adam state, activations) for a patch
    and batch, or find the largest patch per batch size that fits a budget.

    Examples: `seglab plan --model unet3d --patch 96,96,96 --batch 2`,
    `seglab plan --model unet3d --budget 8GiB`
    """
    from seglab.errors import ConfigError
    from seglab.planner import (
        estimate_memory,
        format_size,
        free_memory_bytes,
        parse_size,
        plan_patch,
    )

    if model == "unet3d":
        from seglab.models.unet3d import UNet3D

        def factory() -> Any:
            return UNet3D(in_channels=channels, n_filters=n_filters)

        dims = 3
    elif model == "unet":
        from seglab.models import create_model

        def factory() -> Any:
            return create_model("unet", in_channels=channels, n_filters=n_filters)

        dims = 2
    else:
        raise ConfigError(f"--model: plan supports unet3d and unet, got '{model}'")
    try:
        limit = parse_size(budget) if budget else free_memory_bytes()
    except ValueError as exc:
        raise ConfigError(f"--budget: {exc}") from None
    table = Table(title=f"{model} training memory (fp32, Adam), budget {format_size(limit)}")
    if patch is not None:
        side = tuple(int(v) for v in patch.split(","))
        if len(side) != dims:
            raise ConfigError(f"--patch: {model} needs {dims} sizes, got '{patch}'")
        estimate = estimate_memory(factory(), (channels, *side), batch)
        for column in ("parameters", "gradients", "optimizer", "activations", "total", "fits"):
            table.add_column(column, justify="right")
        table.add_row(
            *(
                format_size(v)
                for v in (
                    estimate.params_bytes,
                    estimate.grads_bytes,
                    estimate.optimizer_bytes,
                    estimate.activations_bytes,
                    estimate.total_bytes,
                )
            ),
            "yes" if estimate.total_bytes <= limit else "no",
        )
    else:
        rows = plan_patch(factory, channels, limit, factory().divisor, spatial_dims=dims)
        for column in ("batch", "largest patch side", "estimated total"):
            table.add_column(column, justify="right")
        for row in rows:
            table.add_row(str(row.batch), str(row.side), format_size(row.total_bytes))
        if not rows:
            console.print("nothing fits this budget: lower n_filters or raise --budget")
    console.print(table)


@data_app.command("synth")
def data_synth(
    out: Annotated[Path, typer.Option(help="Folder to create.")],
    kind: Annotated[
        str,
        typer.Option(
            help="circles (folders), nuclei (dsb2018), streets (cityscapes) or blobs3d (volumes)."
        ),
    ] = "nuclei",
    n: Annotated[int, typer.Option(help="Number of images.")] = 200,
    size: Annotated[
        int, typer.Option(help="Image side in pixels (streets: the height; width = 2 x size).")
    ] = 128,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    no_split: Annotated[
        bool, typer.Option("--no-split", help="No train/val/test sub-folders.")
    ] = False,
) -> None:
    """Write a synthetic dataset in a real layout (deterministic for a seed).

    Examples: `seglab data synth --kind nuclei --n 200 --out data/nuclei`,
    `seglab data synth --kind streets --n 200 --out data/streets` (128 x 256 street scenes),
    `seglab data synth --kind blobs3d --n 20 --size 64 --out data/blobs`
    """
    splits = None if no_split else (0.7, 0.15, 0.15)
    if kind == "blobs3d":
        from seglab.data.volumes import write_blobs3d

        counts = write_blobs3d(out, n, size=size, seed=seed, splits=splits)
    else:
        from seglab.data.synthetic import write_synthetic

        counts = write_synthetic(kind, out, n, size=size, seed=seed, splits=splits)
    console.print(f"wrote {kind} to {out}: " + ", ".join(f"{k} {v}" for k, v in counts.items()))


@data_app.command("inspect")
def data_inspect(
    root: Annotated[Path, typer.Argument(help="Data folder.")],
    layout: LayoutOption = "auto",
    grid: Annotated[Path | None, typer.Option(help="Where to write the sample grid PNG.")] = None,
) -> None:
    """Counts, sizes, channels, bit depth, foreground fraction, class weights and a sample grid.

    Example: `seglab data inspect data/nuclei --grid nuclei_grid.png`
    """
    from seglab.data.inspect import format_inspection, inspect_dataset, save_dataset_grid

    report = inspect_dataset(root, layout)
    console.print(format_inspection(report))
    # Not inside the data folder: a dataset is input and stays untouched.
    grid_path = grid or Path(f"{root.resolve().name}_samples.png")
    save_dataset_grid(root, grid_path, layout)
    console.print(f"sample grid: {grid_path}")


@app.command()
def ui(
    runs: Annotated[Path, typer.Option(help="Folder holding the runs and mlflow.db.")] = Path(
        "runs"
    ),
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port.")] = 5000,
) -> None:
    """Open the MLflow UI on the local tracking store of a runs folder.

    Example: `seglab ui --runs runs/demo` then browse http://127.0.0.1:5000
    """
    from seglab.tracking import launch_ui

    console.print(f"MLflow UI on http://{host}:{port} (Ctrl+C to stop)")
    raise typer.Exit(launch_ui(runs, host, port))


@app.command()
def view(
    image: Annotated[
        Path, typer.Argument(help="Image (PNG, JPEG, TIFF) or volume (TIFF stack, .npy, NIfTI).")
    ],
    model: Annotated[
        str | None, typer.Option(help="Bundle folder (a run's model/) or `otsu`.")
    ] = None,
    truth: Annotated[
        Path | None, typer.Option(help="Ground-truth mask or label image to compare with.")
    ] = None,
    threshold: Annotated[
        float | None, typer.Option(help="Override the bundle's tuned threshold.")
    ] = None,
    backend: Annotated[str, typer.Option(help="auto, torch or onnx.")] = "auto",
) -> None:
    """Open napari with the image, the probabilities, the mask and the instances (labels
    layers), the ground truth, and a dock widget to run other models on any image layer.

    Needs the viewer extra: `pip install 'seglab[viewer]'`.

    Examples:

    * `seglab view data/nuclei/test/img_0001/images/img_0001.png --model runs/nuclei/model`
    * `seglab view cells.png --model otsu --truth cells_mask.png`
    """
    from seglab.viewer import import_napari, open_viewer

    napari = import_napari()
    open_viewer(image, model, truth, threshold=threshold, backend=backend)
    napari.run()


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
