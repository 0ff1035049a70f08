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
from seglab.cli import predict as predict_commands
from seglab.cli.failures import describe_bug, describe_os_error
from seglab.cli.options import (
    DataOption,
    LayoutOption,
    NoTrackOption,
    OverlapOption,
    PrecisionOption,
    Progress,
    TaskOption,
    TileOption,
    TtaOption,
    apply_inference_settings,
    config_overrides,
    console,
    errors,
    run_folder,
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
        handler = _StderrHandler()
        handler.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)


class _StderrHandler(logging.StreamHandler[Any]):
    """Writes to the `sys.stderr` of the moment, not to the one there when it was made (the
    command runs again in the same process under tests and tools that swap it)."""

    @property
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, value: Any) -> None:
        """Ignored: the stream is always the current `sys.stderr`."""


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
        if "iou" in values:  # segmentation classes: their IoU (None when a class is absent)
            iou = values["iou"]
            table.add_row(f"[dim]IoU {name}[/]", "n/a" if iou is None else f"{iou:.4f}", "")
        else:  # classification classes: precision, recall and F1
            scores = ", ".join(f"{k} {v:.4f}" for k, v in values.items() if isinstance(v, float))
            table.add_row(f"[dim]class {name}[/] ({values.get('support', 0)} images)", scores, "")
    return table


@app.command()
def demo(
    out: Annotated[Path, typer.Option(help="Folder for the data and the run.")] = Path("runs/demo"),
    n: Annotated[int, typer.Option(help="Number of synthetic images.")] = 240,
    set_: Annotated[list[str] | None, typer.Option("--set", help="Config override.")] = None,
    no_track: NoTrackOption = False,
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
    data: DataOption = None,
    task: TaskOption = None,
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
    no_track: NoTrackOption = False,
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
    options: dict[str, object] = {
        "task": task,
        "data.root": data,
        "data.layout": layout,
        "model.name": model,
        "loss.name": loss,
        "train.epochs": epochs,
        "tracking.uri": tracking_uri,
    }
    given = config_overrides(options, set_, no_track=no_track, skip_bad=skip_bad)
    _report_training(_train_or_resume(config, given, out, resume, progress))


def _train_or_resume(
    config: Path | None, given: list[str], out: Path | None, resume: Path | None, progress: bool
) -> Any:
    """A new run from the config and the overrides, or `resume` continued with them."""
    if resume is not None:
        from seglab.training.run import resume as resume_run

        # Only what was given explicitly changes a resumed run (e.g. --epochs to go further).
        return resume_run(resume, given, progress=progress)
    from seglab.config import load_config

    # Lightning is imported only once the config is valid, so config errors come fast.
    cfg = load_config(config, given)
    from seglab.training.run import train as train_run

    return train_run(cfg, run_folder(out), progress=progress)


def _report_training(result: Any) -> None:
    """The validation and test scores, the run folder and the bundle of a finished run."""
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
    apply_inference_settings(predictor, tile, overlap, tta)
    result = evaluate_run(
        predictor, data, out, layout=layout, split=split, skip_bad=skip_bad, progress=progress
    )
    console.print(_metrics_table(f"{split} ({result.metrics['n_images']} images)", result.metrics))
    console.print(f"report: {result.out_dir / 'report.html'}")


def main() -> None:
    """Entry point: errors are printed as one message, never as a bare traceback
    (`seglab.cli.failures`)."""
    try:
        app()
    except SeglabError as exc:
        errors.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
        sys.exit(2)
    except KeyboardInterrupt:
        errors.print("interrupted")
        sys.exit(130)
    except OSError as exc:
        errors.print(f"[bold red]error:[/] {escape(describe_os_error(exc))}", soft_wrap=True)
        sys.exit(2)
    except Exception as exc:
        errors.print(f"[bold red]error:[/] {escape(describe_bug(exc))}", soft_wrap=True)
        sys.exit(1)


# Registered last, so `seglab --help` lists the workflow (demo, train, ...) first.
predict_commands.register(app)
experiment_commands.register(app)
data_commands.register(app, data_app)
deploy_commands.register(app)
